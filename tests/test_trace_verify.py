"""agentspec.trace on its own: hash parity with the runtime's chain.ts, and every kind of tampering found,
located by seq and field, through the library and the `agentspec trace` CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import httpx
import pytest

from agentspec.cli import main
from agentspec.trace import GENESIS_HASH, TraceError, pull, record_hash, render, verify

# The vector codegen/cloudflare/runtime/test/chain.test.ts checks inside workerd (PY_RECORD, PY_HASH).
TS_RECORD = {
    "seq": 1,
    "ts": "2026-11-26T04:00:00.000Z",
    "tenant": "acme",
    "session": "s-1",
    "workflow": "refunds",
    "intent": 'refund order ORD-1 — “quoted” é 😀 tab\t nl\n ctl\u0001 del\u007f \\ "',
    "action": "tool:issue_refund",
    "decision": "allow",
    "rule": "tools.allow",
    "spec_hash": "sha256:" + "ab" * 32,
    "prev_hash": GENESIS_HASH,
}
TS_HASH = "8e5f3cf75a4e273248d8c9af979ea888456a46fcca6debf764409a273e0f2271"

STEPS = [
    ("model.route:low", "allow", "route.risk.low"),
    ("tool.call:write_note", "allow", "tools.allow"),
    ("tool.result:write_note", "ok", "tool.ok"),
    ("tool.call:side_effect", "deny", "tools.allowlist"),
    ("model.route:low", "allow", "route.risk.low"),
    ("checkpoint:SUMMARIES", "allow", "checkpoint.every"),
]


def chain(n: int = len(STEPS)) -> dict:
    records: list[dict] = []
    for i, (action, decision, rule) in enumerate(STEPS[:n]):
        body = {
            "seq": i + 1,
            "ts": f"2026-11-26T04:00:0{i}.000Z",
            "tenant": "acme",
            "session": "s-1",
            "workflow": "chat",
            "intent": "note [email]",
            "action": action,
            "decision": decision,
            "rule": rule,
            "spec_hash": "sha256:" + "cd" * 32,
            "prev_hash": records[-1]["hash"] if records else GENESIS_HASH,
        }
        records.append({**body, "hash": record_hash(body)})
    turns = [
        {"turn": 1, "decisions": [{k: r[k] for k in ("seq", "action", "decision", "rule")} for r in records[:4]]},
        {"turn": 2, "decisions": [{k: r[k] for k in ("seq", "action", "decision", "rule")} for r in records[4:]]},
    ]
    return {"records": records, "turns": turns}


def errors(traces: dict) -> list:
    return [p for p in verify(traces) if p.severity == "error"]


def test_the_hash_is_byte_identical_to_chain_ts() -> None:
    assert record_hash(TS_RECORD) == TS_HASH
    assert record_hash({**TS_RECORD, "hash": "ignored"}) == TS_HASH


def test_an_intact_chain_has_no_problems() -> None:
    traces = chain()
    assert verify(traces) == []
    assert render([], "t.json", traces["records"]).startswith("chain intact: 6 records (seq 1 to 6), head ")


def test_an_altered_field_is_located_by_seq_and_field() -> None:
    traces = chain()
    traces["records"][3]["decision"] = "allow"
    [problem] = errors(traces)
    assert (problem.seq, problem.index, problem.field) == (4, 3, "decision")
    assert problem.message == "record seq 4 was altered after it was written"
    assert any("turn 1's trace recorded `deny`" in n for n in problem.notes)


def test_an_altered_field_without_turn_traces_is_still_found() -> None:
    traces = chain()
    traces["records"][1]["intent"] = "something else"
    del traces["turns"]
    [problem] = errors(traces)
    assert (problem.seq, problem.field) == (2, "hash")  # no evidence for which field: the hash is what fails


def test_a_rewritten_hash_is_told_apart_from_altered_contents() -> None:
    traces = chain()
    traces["records"][2]["hash"] = "f" * 64
    [problem] = errors(traces)
    assert (problem.seq, problem.field, problem.message) == (3, "hash", "record seq 3 carries a rewritten hash")


def test_a_forged_record_with_a_recomputed_hash_breaks_the_next_link() -> None:
    traces = chain()
    forged = {k: v for k, v in traces["records"][3].items() if k != "hash"} | {
        "decision": "allow",
        "rule": "tools.allow",
    }
    traces["records"][3] = forged | {"hash": record_hash(forged)}
    problems = errors(traces)
    assert [(p.seq, p.field) for p in problems] == [(5, "prev_hash")]
    warnings = [p for p in verify(traces) if p.severity == "warning"]
    assert {(p.seq, p.field) for p in warnings} == {(4, "decision"), (4, "rule")}


def test_a_removed_record_is_named() -> None:
    traces = chain()
    del traces["records"][2]
    [problem] = errors(traces)
    assert (problem.seq, problem.field, problem.message) == (3, "seq", "record seq 3 is missing")
    assert problem.notes == ("between seq 2 and seq 4",)


def test_a_removed_last_record_is_found_through_the_turn_traces() -> None:
    traces = chain()
    traces["records"].pop()
    [problem] = errors(traces)
    assert problem.message == "record seq 6 is missing"
    assert "turn 2's trace refers to it" in problem.notes


def test_a_reordered_pair_is_named() -> None:
    traces = chain()
    traces["records"][1], traces["records"][2] = traces["records"][2], traces["records"][1]
    [problem] = errors(traces)
    assert (problem.seq, problem.index, problem.message) == (2, 2, "records seq 3 and seq 2 are out of order")


def test_a_chain_must_start_at_genesis() -> None:
    traces = chain()
    first = {k: v for k, v in traces["records"][0].items() if k != "hash"} | {"prev_hash": "1" * 64}
    traces["records"][0] = first | {"hash": record_hash(first)}
    problems = errors(traces)
    # The forged first record, and the record that still links to the original one.
    assert [(p.seq, p.field) for p in problems] == [(1, "prev_hash"), (2, "prev_hash")]
    assert "expected genesis (64 zeros)" in problems[0].notes[0]


def test_a_malformed_record_is_reported_not_raised() -> None:
    traces = chain(2)
    del traces["records"][1]["rule"]
    traces["turns"] = []
    [problem] = errors(traces)
    assert (problem.seq, problem.field) == (2, "rule")


def test_cli_verify_exit_codes_and_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(chain()))
    assert main(["trace", "verify", str(good)]) == 0
    bad = copy.deepcopy(chain())
    bad["records"][3]["decision"] = "allow"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    capsys.readouterr()
    assert main(["trace", "verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[:2] == [
        "error: record seq 4 was altered after it was written",
        f"  --> {path}: records[3], seq 4, field `decision`",
    ]
    assert out.rstrip().endswith("chain broken: 1 error in 6 records")
    assert main(["trace", "verify", str(path), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["problems"][0]["seq"] == 4
    assert main(["trace", "verify", str(tmp_path / "nope.json")]) == 2
    (tmp_path / "junk.json").write_text("[1, 2]")
    assert main(["trace", "verify", str(tmp_path / "junk.json")]) == 2


def test_pull_sends_the_admin_token_and_stamps_the_source() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=chain())

    traces = pull("http://runtime.test", "s-1", "acme", "adm", since=0, transport=httpx.MockTransport(handler))
    assert seen[0].headers["authorization"] == "Bearer adm" and seen[0].headers["x-tenant-id"] == "acme"
    assert seen[0].url.params["session"] == "s-1"
    assert traces["source"]["session"] == "s-1" and verify(traces) == []


def test_pull_reports_the_runtimes_error() -> None:
    transport = httpx.MockTransport(
        lambda _: httpx.Response(
            401, json={"error": {"code": "unauthorized", "message": "this route needs the admin token"}}
        )
    )
    with pytest.raises(TraceError, match=r"answered 401 \(unauthorized: this route needs the admin token\)"):
        pull("http://runtime.test", "s-1", "acme", "wrong", transport=transport)


def test_pull_names_the_flag_when_the_tenant_header_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    # The runtime names the header it wanted; the user is told the CLI flag that sends it.
    def handler(request: httpx.Request) -> httpx.Response:
        if "x-team-id" in request.headers:
            return httpx.Response(200, json=chain())
        error = {"code": "missing_tenant", "message": "send the `x-team-id` header"}
        return httpx.Response(400, json={"error": error})

    transport = httpx.MockTransport(handler)
    with pytest.raises(TraceError) as raised:
        pull("http://runtime.test", "s-1", "acme", "adm", transport=transport)
    assert "pass `--tenant-header x-team-id`" in str(raised.value)
    assert "this pull sent `x-tenant-id`" in str(raised.value)
    assert pull("http://runtime.test", "s-1", "acme", "adm", tenant_header="x-team-id", transport=transport)


def test_pull_all_names_the_flag_when_the_tenant_header_is_wrong(tmp_path: Path) -> None:
    from agentspec.trace.fleet import ExportError, pull_all

    error = {"code": "missing_tenant", "message": "send the `x-org` header"}
    transport = httpx.MockTransport(lambda _: httpx.Response(400, json={"error": error}))
    with pytest.raises(ExportError, match=r"answered 400 \(missing_tenant: .*pass `--tenant-header x-org`"):
        pull_all("http://runtime.test", tmp_path / "out", admin_token="adm", transport=transport)


def test_pull_of_an_unknown_session_asks_about_the_tenant() -> None:
    error = {"code": "unknown_session", "message": "session `s-1` has no records"}
    transport = httpx.MockTransport(lambda _: httpx.Response(404, json={"error": error}))
    with pytest.raises(TraceError, match=r"has no records; is `--tenant` the session.s tenant\?\)"):
        pull("http://runtime.test", "s-1", "acme", "adm", transport=transport)


def test_a_records_optional_detail_is_hashed_like_any_field() -> None:
    # `model.unavailable` records carry each model's cause in `detail`; the chain covers it.
    traces = chain()
    last = traces["records"][-1]
    body = {k: v for k, v in last.items() if k != "hash"} | {"detail": "@cf/a: cannot reach 127.0.0.1:9: refused"}
    traces["records"][-1] = {**body, "hash": record_hash(body)}
    assert errors(traces) == []
    traces["records"][-1]["detail"] = "@cf/a: HTTP 503"
    assert [p.seq for p in errors(traces)] == [last["seq"]]
