"""`agentspec trace replay`: recorded decisions re-evaluated against the reported policy (drift) and a candidate
spec (flips), over a synthetic export of specs/support_desk.agent whose every decision is the evaluator's verdict
(agentspec/trace/synthetic.py). Expected counts are computed here from the export files, not by the replay."""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import httpx
import pytest

from agentspec.check import check
from agentspec.cli import main
from agentspec.load import load
from agentspec.policy import tables
from agentspec.sim import traffic as traffic_mod
from agentspec.trace import synthetic
from agentspec.trace.fleet import pull_all
from agentspec.trace.replay import INDEX_FILE, ReplayInputError, candidate_tables, load_policy_file
from agentspec.trace.replay import load as load_recorded
from agentspec.trace.verify import record_hash

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "support_desk.agent"

# Refund tasks that often fail at send_email, so compensations (decided as the call they undo) are recorded.
TRAFFIC = """
arrival_rate = 5.0
[workflows.orders]
share = 0.6
turns = { mean = 3, max = 8 }
tools = { lookup_order = 0.6, issue_refund = 0.1 }
[workflows.refunds]
share = 0.4
turns = { mean = 2, max = 5 }
tools = { lookup_order = 0.5, send_email = 0.3 }
tasks = 0.8
[tools.send_email]
fail_4xx = 0.4
"""


@pytest.fixture(scope="module")
def policy() -> dict:
    spec = check(load(str(SPEC))).spec
    assert spec is not None
    return tables(spec)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory, policy: dict) -> Path:
    out = tmp_path_factory.mktemp("replay") / "export"
    synthetic.generate(out, policy, traffic_mod.parse(TRAFFIC), 400, seed=3)
    return out


def _records(root: Path) -> list[dict]:
    return [json.loads(line)["data"] for p in sorted(root.glob("decisions/*/*/*.ndjson")) for line in p.open()]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["trace", "replay", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code, out, _ = _run(capsys, *argv, "--format", "json")
    return code, json.loads(out)


def _candidate(tmp_path: Path, policy: dict, workflow: str, tool: str) -> Path:
    """A policy.json like `policy` with `tool` removed from `workflow`'s allowlist (a spec cannot express every
    such change: a step that calls the tool would not check)."""
    changed = copy.deepcopy(policy)
    changed["workflows"][workflow]["tools"].remove(tool)
    changed["spec_hash"] = "sha256:" + "c" * 64
    path = tmp_path / f"without-{tool}.json"
    path.write_text(json.dumps(changed))
    return path


def test_against_the_reported_policy_nothing_drifts(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = _records(export)
    code, body = _json(capsys, str(export))
    assert code == 0
    assert body["drifted"] == 0 and body["drift"] == [] and body["unchecked"] == {}
    replayable = [r for r in records if r["action"].startswith(("tool.call:", "model.route:"))]
    assert body["decisions"] == len(replayable) > 1000
    assert body["outcomes"] == len(records) - len(replayable)
    assert body["chains"]["broken"] == []
    code, out, _ = _run(capsys, str(export))
    assert code == 0 and f"{len(replayable):,} decisions checked, 0 drifted" in out


def test_removing_one_tool_flips_exactly_its_decisions_in_that_workflow(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_dir = tmp_path / "candidate"
    shutil.copytree(SPEC.parent / "shared", spec_dir / "shared")
    text = SPEC.read_text()
    old = "tools allow [lookup_order, issue_refund, cancel_refund, send_email]"
    assert old in text and "step confirm = " in text
    text = text.replace(old, "tools allow [lookup_order, issue_refund, cancel_refund]")
    # The step that sends the email goes too: a step calling a tool outside the allowlist does not check.
    text = "\n".join(line for line in text.splitlines() if "step confirm = " not in line) + "\n"
    (spec_dir / "candidate.agent").write_text(text)
    expected = [r for r in _records(export) if r["workflow"] == "refunds" and r["action"] == "tool.call:send_email"]
    assert expected and all(r["decision"] == "allow" for r in expected)

    code, body = _json(capsys, str(export), "--against", str(spec_dir / "candidate.agent"))
    assert code == 0  # flips alone do not fail without --fail-on flips
    flips = body["candidate"]["flips"]
    assert [(f["workflow"], f["tool"], f["recorded"]["rule"], f["now"]["rule"]) for f in flips] == [
        ("refunds", "send_email", "tools.allow", "tools.allowlist")
    ]
    assert flips[0]["count"] == body["candidate"]["flipped"] == len(expected)
    first = min(expected, key=lambda r: (r["tenant"], r["session"], r["seq"]))
    assert {k: flips[0]["example"][k] for k in ("tenant", "session", "seq")} == {
        k: first[k] for k in ("tenant", "session", "seq")
    }
    code, out, _ = _run(capsys, str(export), "--against", str(spec_dir / "candidate.agent"), "--fail-on", "flips")
    assert code == 1
    assert f"{len(expected):,} decisions would flip, in 1 group" in out
    assert "refunds  tool `send_email`  allow (tools.allow) -> deny (tools.allowlist)" in out


def test_a_compensation_is_decided_as_the_call_it_undoes(
    export: Path, tmp_path: Path, policy: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    records = _records(export)
    compensations = [r for r in records if r["intent"] == "compensate issue_refund with cancel_refund"
                     and r["action"] == "tool.call:cancel_refund"]  # fmt: skip
    assert compensations, "the traffic should make refund tasks roll back"
    # Without cancel_refund in the allowlist, a compensation still runs: it is decided as issue_refund.
    code, body = _json(capsys, str(export), "--against", str(_candidate(tmp_path, policy, "refunds", "cancel_refund")))
    assert code == 0 and body["candidate"]["flips"] == []
    # Without issue_refund, both the calls and their compensations flip.
    code, body = _json(capsys, str(export), "--against", str(_candidate(tmp_path, policy, "refunds", "issue_refund")))
    by_tool = {f["tool"]: f["count"] for f in body["candidate"]["flips"]}
    calls = [r for r in records if r["workflow"] == "refunds" and r["action"] == "tool.call:issue_refund"]
    assert by_tool == {"cancel_refund": len(compensations), "issue_refund": len(calls)}


def test_a_tampered_record_is_reported_first_and_its_chain_not_replayed(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_ = tmp_path / "export"
    shutil.copytree(export, copy_)
    part = sorted(copy_.glob("decisions/*/workflow=orders/*.ndjson"))[0]
    events = [json.loads(line) for line in part.open()]
    victim = next(e for e in events if e["data"]["decision"] == "deny")
    victim["data"]["decision"] = "allow"  # a denial rewritten as an allow, hash left alone
    part.write_text("".join(json.dumps(e) + "\n" for e in events))
    key = (victim["tenant"], victim["session"])
    chain = [r for r in _records(copy_) if (r["tenant"], r["session"]) == key]
    replayable = [r for r in chain if r["action"].startswith(("tool.call:", "model.route:"))]

    _, clean = _json(capsys, str(export))
    code, body = _json(capsys, str(copy_))
    assert code == 1
    assert [(b["tenant"], b["session"]) for b in body["chains"]["broken"]] == [key]
    assert body["decisions"] == clean["decisions"] - len(replayable)
    assert body["drift"] == []  # the forged allow was not replayed, so it is not drift
    code, out, _ = _run(capsys, str(copy_))
    lines = out.splitlines()
    assert lines[0].startswith(f"error: the chain of session `{key[1]}` (tenant `{key[0]}`) is broken: record seq")
    assert f"its {len(chain)} records are not replayed" in lines[1]


def test_a_policy_that_disagrees_with_the_records_is_drift(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_ = tmp_path / "export"
    shutil.copytree(export, copy_)
    (path,) = (copy_ / "policies").glob("*.json")
    reported = json.loads(path.read_text())
    reported["workflows"]["orders"]["tools"] = []  # what the runtime said it enforced is not what it did
    path.write_text(json.dumps(reported))
    allowed = [r for r in _records(copy_) if r["workflow"] == "orders" and r["action"] == "tool.call:lookup_order"]
    code, body = _json(capsys, str(copy_))
    assert code == 1
    assert [(d["workflow"], d["tool"], d["count"]) for d in body["drift"]] == [("orders", "lookup_order", len(allowed))]
    code, out, _ = _run(capsys, str(copy_))
    assert "error: drift in workflow `orders`, tool `lookup_order`: recorded allow (tools.allow)" in out
    assert "the reported policy gives deny (tools.allowlist)" in out and "e.g. tenant `" in out


def test_records_without_a_reported_policy_fail_until_one_is_given(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_ = tmp_path / "export"
    shutil.copytree(export, copy_)
    (path,) = (copy_ / "policies").glob("*.json")
    kept = tmp_path / "policy.json"
    path.rename(kept)
    code, out, _ = _run(capsys, str(copy_))
    assert code == 1 and "error: no reported policy for spec hash `sha256:" in out and "--policy FILE" in out
    assert _run(capsys, str(copy_), "--policy", str(kept))[0] == 0


def test_one_pulled_session_replays(export: Path, tmp_path: Path, policy: dict, capsys) -> None:
    records = [r for r in _records(export) if r["session"] == "s-1"]
    traces = tmp_path / "s-1.json"
    traces.write_text(json.dumps({"records": records, "turns": []}))
    (policy_file,) = (export / "policies").glob("*.json")
    code, body = _json(capsys, str(traces), "--policy", str(policy_file))
    replayable = [r for r in records if r["action"].startswith(("tool.call:", "model.route:"))]
    assert code == 0 and body["decisions"] == len(replayable) > 0
    records[1]["rule"] = "forged"
    traces.write_text(json.dumps({"records": records, "turns": []}))
    code, body = _json(capsys, str(traces), "--policy", str(policy_file))
    assert code == 1 and body["decisions"] == 0 and len(body["chains"]["broken"]) == 1


def test_redelivered_batches_count_once(export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_ = tmp_path / "export"
    shutil.copytree(export, copy_)
    part = sorted(copy_.glob("decisions/*/*/*.ndjson"))[0]
    shutil.copy(part, part.with_name("part-redelivered.ndjson"))
    assert _json(capsys, str(copy_))[1]["decisions"] == _json(capsys, str(export))[1]["decisions"]


@pytest.mark.parametrize("damage", ["truncated", "schema", "missing", "empty"])
def test_bad_exports_are_clear_errors(export: Path, tmp_path: Path, damage: str, capsys) -> None:
    copy_ = tmp_path / "export"
    shutil.copytree(export, copy_)
    part = sorted(copy_.glob("decisions/*/*/*.ndjson"))[0]
    if damage == "truncated":
        part.write_bytes(part.read_bytes()[:-40])
        (copy_ / ".agentspec-chains.json").unlink(missing_ok=True)
    elif damage == "schema":
        events = [json.loads(line) for line in part.open()]
        events[0]["schema"] = 2
        part.write_text("".join(json.dumps(e) + "\n" for e in events))
    elif damage == "missing":
        copy_ = tmp_path / "nowhere"
    else:
        shutil.rmtree(copy_ / "decisions")
    code, out, err = _run(capsys, str(copy_))
    assert code == 2 and out == "" and "Traceback" not in err
    expected = {
        "truncated": f"`{part}` line",
        "schema": "has export schema 2; this agentspec reads",
        "missing": "is neither an export directory nor a traces file",
        "empty": "holds no decision records",
    }[damage]
    assert expected in err, err


def test_a_candidate_that_does_not_check_is_a_clear_error(export: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.agent"
    bad.write_text(SPEC.read_text().replace("tools allow [lookup_order]", "tools allow [lookup_ordr]"))
    code, out, err = _run(capsys, str(export), "--against", str(bad))
    assert code == 2 and out == ""
    assert "the candidate spec" in err and "does not check" in err and "error[E" in err and "lookup_ordr" in err
    with pytest.raises(ReplayInputError, match=r"is not a policy\.json"):
        (tmp_path / "p.json").write_text('{"format": 1}')
        candidate_tables(str(tmp_path / "p.json"))


def test_identical_decision_keys_are_evaluated_once(export: Path) -> None:
    rec = load_recorded(export)
    # A handful of keys stand for the export's thousands of decisions.
    assert len(rec.groups) < 20 and rec.decisions > 50 * len(rec.groups)
    counts = Counter((g.key.workflow, g.key.target) for g in rec.groups)
    assert counts[("refunds", "cancel_refund")] == 1


def test_a_pull_keeps_the_reported_policy(export: Path, tmp_path: Path, policy: dict) -> None:
    objects = sorted(p.relative_to(export).as_posix() for p in export.rglob("*.ndjson"))

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/policy":
            return httpx.Response(200, json=policy)
        key = request.url.params.get("key")
        if key is not None:
            return httpx.Response(200, content=(export / key).read_bytes())
        listing = [{"key": k, "size": 1, "etag": k, "uploaded": "2026-12-01T00:00:00Z"} for k in objects]
        return httpx.Response(200, json={"schema": 1, "objects": listing})

    out = tmp_path / "out"
    pull_all("http://runtime", out, admin_token="admin", transport=httpx.MockTransport(handler))
    kept = out / "policies" / f"{policy['spec_hash'].removeprefix('sha256:')}.json"
    assert json.loads(kept.read_text()) == policy
    assert main(["trace", "replay", str(out)]) == 0


def test_a_forged_but_consistent_chain_is_drift(export: Path, tmp_path: Path, capsys) -> None:
    """A runtime that wrote a valid chain with a verdict its policy does not give (a bug, or a patched runtime)."""
    copy_ = tmp_path / "export"
    shutil.copytree(export, copy_)
    parts = sorted(copy_.glob("decisions/*/workflow=orders/*.ndjson"))
    events = [json.loads(line) for p in parts for line in p.open()]
    session = next(e["session"] for e in events if e["data"]["rule"] == "tools.allowlist")
    prev = "0" * 64
    forged = 0
    for e in sorted((e for e in events if e["session"] == session), key=lambda e: e["seq"]):
        d = e["data"]
        if d["rule"] == "tools.allowlist":
            d["decision"], d["rule"] = "allow", "tools.allow"
            forged += 1
        d["prev_hash"] = prev
        d["hash"] = prev = record_hash(d)
    by_part: dict[Path, list[dict]] = {}
    for p in parts:
        by_part[p] = [next(x for x in events if x["id"] == json.loads(line)["id"]) for line in p.open()]
    for p, evs in by_part.items():
        p.write_text("".join(json.dumps(e) + "\n" for e in evs))
    code, body = _json(capsys, str(copy_))
    assert code == 1 and body["chains"]["broken"] == []
    assert [(d["workflow"], d["tool"], d["recorded"]["rule"], d["now"]["rule"], d["count"]) for d in body["drift"]] == [
        ("orders", "issue_refund", "tools.allow", "tools.allowlist", forged)
    ]


def test_a_second_replay_reads_the_index_until_a_decision_file_changes(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_ = tmp_path / "export"
    shutil.copytree(export, copy_)
    (copy_ / INDEX_FILE).unlink(missing_ok=True)
    _, first = _json(capsys, str(copy_))
    index = json.loads((copy_ / INDEX_FILE).read_text())
    index["outcomes"] = 7  # a marker: read back only if the index is used
    (copy_ / INDEX_FILE).write_text(json.dumps(index))
    assert _json(capsys, str(copy_))[1]["outcomes"] == 7
    part = sorted(copy_.glob("decisions/*/*/*.ndjson"))[0]
    part.write_bytes(part.read_bytes())  # same records, a new mtime: the index no longer vouches for them
    os.utime(part, ns=(1, 1))
    assert _json(capsys, str(copy_))[1] == first


def test_a_reported_policy_with_the_signing_public_key_loads(export: Path, tmp_path: Path, policy: dict) -> None:
    """With `audit sign with secret`, `GET /v1/policy` adds the public key to `audit` (worker.ts)."""
    reported = {**policy, "audit": {"signing_secret": "AUDIT_KEY", "alg": "Ed25519", "key_id": "k1",
                                    "public_key": "AAAA", "spki_pem": "-----BEGIN PUBLIC KEY-----"}}  # fmt: skip
    path = tmp_path / "reported.json"
    path.write_text(json.dumps(reported))
    assert load_policy_file(path)["audit"]["key_id"] == "k1"
    reported["audit"]["signing_secret"] = 7
    path.write_text(json.dumps(reported))
    with pytest.raises(ReplayInputError, match="is not a policy"):
        load_policy_file(path)
