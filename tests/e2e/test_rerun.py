"""Recorded traffic rerun on a running runtime (`agentspec trace replay DIR --runtime URL`), end to end in workerd.

tests/e2e/specs/rerun.agent records a run (three sessions: tool calls that succeed, retry, fail, carry an
undeclared argument or name no tool, a model fallback, a turn no model answers, a checkpoint; and a task with call
steps, a retried step and an infer step), the fleet export is pulled, and the recording is rerun, answered by the
replay stub only: on a fresh runtime of the same spec every decision is the recorded one; on a runtime compiled
from a candidate that removes `write_note` from `desk`'s allowlist, each session's first divergence is its first
`write_note` call, and the task (another workflow) is unchanged.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from agentspec.cli import main
from agentspec.devserver import free_port
from agentspec.trace.fleet import export_files, read_events
from agentspec.trace.schema import decision_id

from .conftest import ADMIN, SPECS, Runtime
from .stubs import Cue, ModelStub, ToolAnswer, ToolStub

pytestmark = pytest.mark.slow

LOW = "@cf/test/low-primary"
FALLBACK = "@cf/test/low-fallback"
ORDER = {"order_id": "A-1", "email": "ann@example.com", "total_cents": 1200}
#: What the rerun does not compare (the runtime's environment): none of these occur in this recording.
ENVIRONMENTAL = ("alert:", "slo.observe", "session.expired")


def _stopped(runtime: Runtime) -> None:
    runtime.stop()
    shutil.rmtree(runtime.project / ".wrangler", ignore_errors=True)


def _answered_by_stub(spec: Path, workdir: Path, port: int) -> Runtime:
    """A runtime whose INFERENCE_URL and TOOL_ORIGINS point at a replay stub on `port` (not running yet)."""
    origin = f"http://127.0.0.1:{port}"
    model = cast(ModelStub, SimpleNamespace(url=f"{origin}/v1"))
    tools = cast(ToolStub, SimpleNamespace(origin=origin))
    return Runtime(spec, workdir, model, tools)


def _turn(rt: Runtime, session: str, text: str, tenant: str, *cues: tuple[str, Cue]) -> int:
    by_model: dict[str, list[Cue]] = {}
    for model, cue in cues:
        by_model.setdefault(model, []).append(cue)
    for model, queued in by_model.items():
        rt.model.cue(model, *queued)
    r = rt.turn(session, "desk", text, tenant=tenant)
    return r.status_code


def _drive(rt: Runtime) -> list[tuple[str, str, str]]:
    """The recorded run; answers its (kind, tenant, id) scopes."""
    tools = rt.tools
    tools.answer("/v1/orders/A-1", ToolAnswer(body=ORDER, times=100))
    tools.answer("/v1/notes", ToolAnswer(body={"note_id": "n-1"}, times=100))
    lookup = Cue(tool_calls=[("lookup", {"order_id": "A-1"})])
    # s1: a lookup; a note with an undeclared argument and an email in its text; a fallback, a retried lookup
    # and the checkpoint of turn 3.
    assert _turn(rt, "s1", "where is A-1?", "acme", (LOW, lookup), (LOW, Cue(text="it shipped"))) == 200
    # One answer, two calls: a note (with an undeclared argument and an email in its text), then a lookup.
    note = Cue(
        tool_calls=[
            ("write_note", {"note_id": "n-1", "text": "mail ann@example.com", "mood": "calm"}),
            ("lookup", {"order_id": "A-1"}),
        ]
    )
    assert _turn(rt, "s1", "note it", "acme", (LOW, note), (LOW, Cue(text="noted"))) == 200
    tools.answer("/v1/orders/A-2", ToolAnswer(status=503), ToolAnswer(body={**ORDER, "order_id": "A-2"}, times=10))
    again = Cue(tool_calls=[("lookup", {"order_id": "A-2"})])
    assert _turn(rt, "s1", "and A-2?", "acme", (LOW, Cue(status=500)), (FALLBACK, again), (LOW, Cue(text="ok"))) == 200
    # s2: a note the service refuses (422); a turn no model answers; a tool that does not exist.
    tools.answer("/v1/notes", ToolAnswer(status=422, body={"error": "bad"}, times=100))
    refused = Cue(tool_calls=[("write_note", {"note_id": "n-2", "text": "hello"})])
    assert _turn(rt, "s2", "write n-2", "globex", (LOW, refused), (LOW, Cue(text="could not"))) == 200
    assert _turn(rt, "s2", "anyone?", "globex", (LOW, Cue(status=503)), (FALLBACK, Cue(status=503))) == 503
    nope = Cue(tool_calls=[("nope", {"x": 1})])
    assert _turn(rt, "s2", "try nope", "globex", (LOW, nope), (LOW, Cue(text="no such tool"))) == 200
    # s3: the same request as s1's first turn, answered otherwise (the lookup fails twice): rerun in parallel
    # with s1, each must get its own answers.
    tools.answer("/v1/orders/A-1", ToolAnswer(status=503, times=2), ToolAnswer(body=ORDER, times=100))
    assert _turn(rt, "s3", "where is A-1?", "acme", (LOW, lookup), (LOW, Cue(text="down"))) == 200
    # globex's s1: the same session id as acme's, the same first request, another answer (404): rerun at the same
    # time as acme's, each must still get its own.
    tools.answer(
        "/v1/orders/A-1", ToolAnswer(status=404, body={"error": "gone"}, times=1), ToolAnswer(body=ORDER, times=99)
    )
    assert _turn(rt, "s1", "where is A-1?", "globex", (LOW, lookup), (LOW, Cue(text="gone"))) == 200
    # A task: lookup, a note that fails once and is retried by Workflows, a model step.
    tools.answer("/v1/notes", ToolAnswer(status=503), ToolAnswer(body={"note_id": "A-1"}, times=100))
    rt.model.cue(LOW, Cue(text="noted A-1"))
    with rt.client() as c:
        r = c.post(
            "/v1/tasks",
            json={"workflow": "note_order", "params": {"order_id": "A-1", "email": "ann@example.com"}},
            headers=rt.headers("acme"),
        )
    assert r.status_code == 202, r.text
    task = r.json()["task_id"]
    assert rt.wait_task(task)["status"] == "complete"
    # A saga: the hold is taken, the note refused (422, not retried), the hold released.
    tools.answer("/v1/holds", ToolAnswer(body={"hold_id": "h-1"}, times=100))
    tools.answer("/v1/holds/h-1/release", ToolAnswer(body={"hold_id": "h-1"}, times=100))
    tools.answer("/v1/notes", ToolAnswer(status=422, body={"error": "no"}, times=100))
    with rt.client() as c:
        r = c.post("/v1/tasks", json={"workflow": "hold_order", "params": {"order_id": "A-1"}}, headers=rt.headers())
    assert r.status_code == 202, r.text
    saga = r.json()["task_id"]
    assert rt.wait_task(saga, timeout=120)["status"] == "errored"
    deadline = time.monotonic() + 60  # generous: the machine these run on is shared
    while not any(s["status"] == "compensated" for s in rt.wait_task(saga)["steps"]):
        assert time.monotonic() < deadline, "the hold was not released"
        time.sleep(0.25)
    # A task that waits for an approval, sent as an event (its payload holds an email).
    tools.answer("/v1/notes", ToolAnswer(body={"note_id": "n-9"}, times=100))
    with rt.client() as c:
        r = c.post("/v1/tasks", json={"workflow": "approve_note", "params": {}}, headers=rt.headers())
        assert r.status_code == 202, r.text
        waiting = r.json()["task_id"]
        event = {"type": "approved", "payload": {"note_id": "n-9", "by": "ann@example.com"}}
        assert c.post(f"/v1/tasks/{waiting}/events", json=event, headers=rt.headers()).status_code == 202
    assert rt.wait_task(waiting, timeout=120)["status"] == "complete"
    return [
        ("session", "acme", "s1"),
        ("session", "globex", "s2"),
        ("session", "acme", "s3"),
        ("session", "globex", "s1"),
        ("task", "acme", task),
        ("task", "acme", saga),
        ("task", "acme", waiting),
    ]


def _chain(rt: Runtime, kind: str, tenant: str, id: str) -> list[dict[str, Any]]:
    with rt.client() as c:
        r = c.get("/v1/traces", params={kind: id}, headers=rt.admin_headers(tenant))
    assert r.status_code == 200, r.text
    return r.json()["records"]


def _pull(rt: Runtime, out: Path, scopes: list[tuple[str, str, str]]) -> None:
    """Pull the export until it holds every record and turn (the queue batches each second), then every task's
    summary."""
    want = sum(len(_chain(rt, k, t, i)) for k, t, i in scopes)
    turns = sum(len(rt.traces(i, tenant=t)["turns"]) for k, t, i in scopes if k == "session")
    deadline = time.monotonic() + 120
    while True:
        assert main(["trace", "pull", "--all", "--url", rt.url, "--admin-token", ADMIN, "-o", str(out)]) == 0
        # By id, as the review counts: two tenants here share `s1`, so the id must name the tenant.
        events = [e for p in export_files(out, "decisions") for e in read_events(p)]
        assert all(e["id"] == decision_id(e["tenant"], e["session"], e["seq"]) for e in events)
        records = {e["id"] for e in events}
        traces = {e["id"] for p in export_files(out, "traces") for e in read_events(p)}
        summaries = {e["id"] for p in export_files(out, "tasks") for e in read_events(p) if e["data"]["step"] is None}
        if len(records) >= want and len(traces) >= turns and len(summaries) == 3:
            return
        assert time.monotonic() < deadline, f"export has {len(records)}/{want} records, {len(traces)}/{turns} turns"
        time.sleep(1)


@pytest.fixture(scope="module")
def recording(tmp_path_factory, model_stub: ModelStub, tool_stub: ToolStub) -> Iterator[tuple[Path, dict]]:
    """The recorded run, pulled: its export directory and each scope's recorded chain."""
    rt = Runtime(SPECS / "rerun.agent", tmp_path_factory.mktemp("rerun-rec"), model_stub, tool_stub)
    rt.start(120)
    try:
        model_stub.reset()
        tool_stub.reset()
        scopes = _drive(rt)
        out = tmp_path_factory.mktemp("rerun-export")
        _pull(rt, out, scopes)
        chains = {(k, t, i): _chain(rt, k, t, i) for k, t, i in scopes}
        yield out, chains
    finally:
        _stopped(rt)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Iterator[tuple[Runtime, int]]:
    """The same spec, fresh state, answered by a replay stub only."""
    port = free_port()
    rt = _answered_by_stub(SPECS / "rerun.agent", tmp_path_factory.mktemp("rerun-fresh"), port)
    rt.start(120)
    try:
        yield rt, port
    finally:
        _stopped(rt)


@pytest.fixture(scope="module")
def candidate(tmp_path_factory) -> Iterator[tuple[Runtime, int]]:
    """The candidate spec: `write_note` removed from `desk`'s allowlist (the first workflow), nothing else."""
    text = (SPECS / "rerun.agent").read_text()
    changed = text.replace("tools allow [lookup, write_note]", "tools allow [lookup]", 1)
    assert changed != text and changed.count("tools allow [lookup, write_note]") == 1
    spec = tmp_path_factory.mktemp("rerun-candidate-spec") / "rerun.agent"
    spec.write_text(changed)
    port = free_port()
    rt = _answered_by_stub(spec, tmp_path_factory.mktemp("rerun-candidate"), port)
    rt.start(120)
    try:
        yield rt, port
    finally:
        _stopped(rt)


def _argv(out: Path, rt: Runtime, port: int) -> list[str]:
    return ["trace", "replay", str(out), "--runtime", rt.url, "--admin-token", ADMIN, "--stub-port", str(port)]


def _replay(out: Path, rt: Runtime, port: int, capsys, *extra: str) -> tuple[int, dict]:
    code = main([*_argv(out, rt, port), "--format", "json", "--prefix", "r1-", *extra])
    return code, json.loads(capsys.readouterr().out)


def _keys(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(r["action"], r["decision"], r["rule"]) for r in records if not r["action"].startswith(ENVIRONMENTAL)]


def test_the_recording_holds_what_a_rerun_needs(recording: tuple[Path, dict]) -> None:
    out, _ = recording
    traces = {
        (e["tenant"], e["session"], e["seq"]): e["data"] for p in export_files(out, "traces") for e in read_events(p)
    }
    # s1 turn 2: the note's request, its undeclared argument by name, the email in its text masked.
    second = traces[("acme", "s1", 2)]
    assert second["model_rounds"][0]["tool_calls"] == [
        {"name": "write_note", "args": {"note_id": "n-1", "text": "mail [email]"}, "undeclared": ["mood"]},
        {"name": "lookup", "args": {"order_id": "A-1"}, "undeclared": []},
    ]
    assert second["tools"][0]["result"] == {"note_id": "n-1"}
    # s1 turn 1: the lookup's result, projected and masked.
    assert traces[("acme", "s1", 1)]["tools"][0]["result"] == {**ORDER, "email": "[email]"}
    # s1 turn 3: the fallback round and the retried lookup, attempt by attempt.
    third = traces[("acme", "s1", 3)]
    first_round = third["model_rounds"][0]
    assert [(a["model"], a["ok"], a["status"]) for a in first_round["attempts"]] == [
        (LOW, False, 500),
        (FALLBACK, True, 200),
    ]
    call = third["tools"][0]
    assert (call["outcome"], call["failure"], call["attempts"]) == ("ok", None, 2)
    assert [(a["sent"], a["status"], a["rule"]) for a in call["attempt_log"]] == [
        (True, 503, "tool.status"),
        (True, 200, "ok"),
    ]
    assert call["latency_ms"] >= 0 and third["checkpoint"]["ok"] is True
    # s2 turn 1: a refused note is a failure of kind tool.status, with no result.
    refused = traces[("globex", "s2", 1)]["tools"][0]
    assert (refused["outcome"], refused["failure"], refused["status"], refused["result"]) == (
        "failed",
        "tool.status",
        422,
        None,
    )
    # The task: its params masked in its summary; each call step's arguments and result, masked.
    events = [e["data"] for p in export_files(out, "tasks") for e in read_events(p)]
    summary = next(d for d in events if d["step"] is None and d["task"].startswith("note_order-"))
    assert summary["params"] == {"order_id": "A-1", "email": "[email]"}
    note = next(
        d for d in events if d["step"] == "note" and d["status"] == "complete" and d["task"].startswith("note_order-")
    )
    assert note["args"] == {"note_id": "A-1", "text": "[email]"} and note["result"] == {"note_id": "A-1"}
    retried = next(
        d for d in events if d["step"] == "note" and d["status"] == "retrying" and d["task"].startswith("note_order-")
    )
    assert (retried["http_status"], retried["failure"], retried["sent"]) == (503, "tool.status", True)
    infer = next(d for d in events if d["step"] == "summary" and d["status"] == "complete")
    sent = next(d for d in events if str(d["step"]).startswith("agentspec.event."))
    assert (sent["type"], sent["payload"]) == ("approved", {"note_id": "n-9", "by": "[email]"})
    assert infer["text"] == "noted A-1" and infer["model_attempts"][0]["model"] == LOW
    # Nothing raw anywhere in the export.
    for path in [*export_files(out, "traces"), *export_files(out, "tasks"), *export_files(out, "decisions")]:
        assert "ann@example.com" not in path.read_text()


def test_a_rerun_on_a_fresh_runtime_of_the_same_spec_decides_the_same(
    recording: tuple[Path, dict], fresh: tuple[Runtime, int], capsys
) -> None:
    out, chains = recording
    rt, port = fresh
    code, report = _replay(out, rt, port, capsys, "--jobs", "4")
    assert code == 0, report
    assert report["diverged"] == 0 and report["not_rerun"] == 0
    scopes = {(s["kind"], s["tenant"], s["id"]): s for s in report["scopes"]}
    assert set(scopes) == {(k, t, i) for k, t, i in chains}
    # Independently of the command's own comparison: the new chains, read from the runtime, are the recorded ones.
    for (kind, tenant, id), recorded in chains.items():
        scope = scopes[(kind, tenant, id)]
        assert scope["identical"] and scope["compared"] == len(_keys(recorded)) > 0
        assert _keys(_chain(rt, kind, tenant, scope["rerun_id"])) == _keys(recorded)
    # The recording exercises what it claims to: a fallback, a retry, a failed turn, a checkpoint, a dropped arg.
    actions = [a for k in chains.values() for a, _, _ in _keys(k)]
    needed = (
        "model.fallback:",
        "model.call:",
        "checkpoint:",
        "tool.args:write_note:mood",
        "tool.call:nope",
        "compensation:",
    )
    for prefix in needed:
        assert any(a.startswith(prefix) for a in actions), prefix


def test_a_candidate_without_a_tool_first_diverges_at_its_first_call(
    recording: tuple[Path, dict], candidate: tuple[Runtime, int], capsys
) -> None:
    out, chains = recording
    rt, port = candidate
    code, report = _replay(out, rt, port, capsys)
    assert code == 1
    scopes = {(s["kind"], s["tenant"], s["id"]): s for s in report["scopes"]}
    for (kind, tenant, id), recorded in chains.items():
        keys = _keys(recorded)
        first = next((i for i, (a, _, _) in enumerate(keys) if a == "tool.call:write_note"), None)
        scope = scopes[(kind, tenant, id)]
        if kind == "task" or first is None:
            assert scope["identical"], scope  # another workflow, or no write_note: unchanged
            continue
        d = scope["divergence"]
        assert d["index"] == first, scope
        assert (d["recorded"]["action"], d["recorded"]["decision"], d["recorded"]["rule"]) == keys[first]
        assert (d["rerun"]["action"], d["rerun"]["decision"], d["rerun"]["rule"]) == (
            "tool.call:write_note",
            "deny",
            "tools.allowlist",
        )
    # After the divergence the rest of that turn still gets its own answers: the lookup after the denied note
    # is answered with the lookup's recorded result (not the note's), as it was recorded.
    s1 = next(s for s in report["scopes"] if (s["tenant"], s["id"]) == ("acme", "s1"))
    rerun_s1 = _keys(_chain(rt, "session", "acme", s1["rerun_id"]))
    after = rerun_s1[rerun_s1.index(("tool.call:write_note", "deny", "tools.allowlist")) + 1 :]
    assert after[:2] == [("tool.call:lookup", "allow", "tools.allow"), ("tool.result:lookup", "ok", "tool.ok")]
    assert {(s["tenant"], s["id"], s["divergence"]["turn"]) for s in report["scopes"] if s["divergence"]} == {
        ("acme", "s1", 2),
        ("globex", "s2", 1),
    }
    # The human report names the first divergence of each session.
    code = main([*_argv(out, rt, port), "--prefix", "r2-"])
    text = capsys.readouterr().out
    assert code == 1, text
    assert "diverges: session `s1` (tenant `acme`, workflow `desk`) at decision 5, turn 2 (recorded seq 5)" in text
    assert "recorded  tool.call:write_note  allow  tools.allow" in text
    assert "rerun     tool.call:write_note  deny  tools.allowlist" in text
    assert "7 recorded: 5 identical, 2 diverge, 0 not rerun; 35 decisions compared" in text
    assert "identical:" not in text  # counted, not listed


def test_bad_input_is_a_clear_error(
    recording: tuple[Path, dict], fresh: tuple[Runtime, int], tmp_path: Path, capsys
) -> None:
    out, _ = recording
    port = free_port()
    # An unreachable runtime.
    argv = ["trace", "replay", str(out), "--runtime", f"http://127.0.0.1:{free_port()}", "--admin-token", ADMIN]
    assert main([*argv, "--stub-port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the runtime" in err and "Traceback" not in err
    # A runtime that is not pointed at the stub: said so, with the lines that would point it there.
    assert (
        main(["trace", "replay", str(out), "--runtime", fresh[0].url, "--admin-token", ADMIN, "--stub-port", str(port)])
        == 2
    )
    err = capsys.readouterr().err
    assert "never reached the replay stub" in err and f"INFERENCE_URL=http://127.0.0.1:{port}/v1" in err
    assert '"shop.example.com": "http://127.0.0.1:' in err
    # A recording made by a runtime that kept no model rounds.
    old = tmp_path / "old"
    shutil.copytree(out, old)
    for path in export_files(old, "traces"):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for line in lines:
            line["data"].pop("model_rounds", None)
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["trace", "replay", str(old), "--runtime", "http://127.0.0.1:9", "--admin-token", ADMIN]) == 2
    assert "predates rerun recording" in capsys.readouterr().err
    # A truncated export file.
    cut = tmp_path / "cut"
    shutil.copytree(out, cut)
    victim = export_files(cut, "traces")[0]
    victim.write_text(victim.read_text()[:-40])
    assert main(["trace", "replay", str(cut), "--runtime", "http://127.0.0.1:9", "--admin-token", ADMIN]) == 2
    assert "truncated" in capsys.readouterr().err


def test_a_tampered_session_is_reported_not_rerun(
    recording: tuple[Path, dict], fresh: tuple[Runtime, int], tmp_path: Path, capsys
) -> None:
    out, _ = recording
    rt, port = fresh
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    (tampered / ".agentspec-chains.json").unlink(missing_ok=True)
    for path in export_files(tampered, "decisions"):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for line in lines:
            if line["session"] == "s3" and line["data"]["action"] == "tool.result:lookup":
                line["data"]["decision"] = "ok" if line["data"]["decision"] != "ok" else "failed"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code, report = _replay(tampered, rt, port, capsys, "--prefix", "r3-")
    assert code == 1
    s3 = next(s for s in report["scopes"] if s["id"] == "s3")
    assert s3["rerun_id"] is None and "broken" in s3["error"]
    assert all(s["identical"] for s in report["scopes"] if s["id"] != "s3")
