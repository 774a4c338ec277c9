"""The rerun's parts that need no runtime (agentspec/trace/rerun.py): how a recording is read, how the replay stub
answers model and tool requests from it, and how decisions are compared. End to end in workerd:
tests/e2e/test_rerun.py."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentspec.cli import main
from agentspec.devserver import free_port
from agentspec.trace.rerun import (
    Attempt,
    Decision,
    ModelTurn,
    ReplayStub,
    RerunError,
    ToolReply,
    _Cursor,
    first_divergence,
    load_recording,
    rerun_task_id,
    tool_patterns,
    trace_id_of,
)

LOW, FALLBACK = "m-primary", "m-fallback"


@pytest.fixture
def stub():
    s = ReplayStub("127.0.0.1", 0)
    yield s
    s.close()


def ask(stub: ReplayStub, model: str, affinity: str, trace: str = "a" * 32, system: str = "") -> httpx.Response:
    messages = [{"role": "system", "content": system}] if system else []
    return httpx.post(
        f"{stub.origin}/v1/chat/completions",
        json={"model": model, "messages": [*messages, {"role": "user", "content": "hi"}]},
        headers={"x-session-affinity": affinity, "traceparent": f"00-{trace}-0000000000000001-01"},
    )


def tool(stub: ReplayStub, trace: str = "a" * 32) -> httpx.Response:
    return httpx.get(f"{stub.origin}/v1/orders/A-1", headers={"traceparent": f"00-{trace}-0000000000000002-01"})


def answer(calls: list[tuple[str, dict[str, Any]]] | None = None, text: str = "") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, (n, a) in enumerate(calls)
        ]
    return message


def test_the_stub_replays_a_fallback_then_the_answer_then_the_next_round(stub: ReplayStub) -> None:
    rounds = [
        ModelTurn(
            (Attempt(LOW, False, 500), Attempt(FALLBACK, True, 200)), answer([("lookup", {"id": "1"})]), (9, 2, 4)
        ),
        ModelTurn((Attempt(LOW, True, 200),), answer(text="done")),
    ]
    stub.expect("s1", None, _Cursor(rounds, [], None))
    assert ask(stub, LOW, "s1").status_code == 500  # the recorded failure of the primary
    first = ask(stub, FALLBACK, "s1").json()
    assert first["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "lookup"
    assert first["usage"] == {"prompt_tokens": 9, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}
    assert ask(stub, LOW, "s1").json()["choices"][0]["message"]["content"] == "done"  # round 2: the primary answers
    assert ask(stub, LOW, "s1").json()["choices"][0]["message"]["content"] == "(no recorded answer)"


def test_parallel_sessions_get_their_own_answers_and_tool_results(stub: ReplayStub) -> None:
    """Two sessions asking the same thing at once: each answered from its own recording, by affinity (model) and
    by the trace id the model request carried (tools)."""
    for sid, trace, result in (("s1", "1" * 32, {"v": 1}), ("s2", "2" * 32, {"v": 2})):
        stub.expect(
            sid,
            None,
            _Cursor([ModelTurn((), answer([("lookup", {})]))], [ToolReply("lookup", 200, "ok", result)], None),
        )
        ask(stub, LOW, sid, trace)
    assert tool(stub, "2" * 32).json() == {"v": 2}
    assert tool(stub, "1" * 32).json() == {"v": 1}
    assert tool(stub, "1" * 32).status_code == 599  # nothing more was recorded for that turn


def test_a_turn_no_model_answered_fails_every_model_and_a_failed_summary_fails(stub: ReplayStub) -> None:
    stub.expect("s1", None, _Cursor([ModelTurn((), None)], [], False))
    assert [ask(stub, m, "s1").status_code for m in (LOW, FALLBACK, LOW)] == [503, 503, 503]
    assert ask(stub, LOW, "s1", system="Summarize this conversation for the agent").status_code == 503
    assert ask(stub, LOW, "nobody").status_code == 503  # a request of no recorded session


def test_recorded_tool_failures_come_back_as_they_were(stub: ReplayStub) -> None:
    trace = "c" * 32
    replies = [
        ToolReply("lookup", 422, "tool.status"),
        ToolReply("lookup", 200, "tool.status"),  # a 200 the runtime refused: its answer broke the declared shape
        ToolReply("lookup", 302, "tool.redirect_refused"),
        ToolReply("lookup", None, "tool.error"),
        ToolReply("lookup", None, "tool.timeout"),
    ]
    stub.tool_timeouts = {"lookup": 0.2}
    stub.expect(None, trace, _Cursor([], replies, None))
    assert tool(stub, trace).status_code == 422
    refused = tool(stub, trace)
    assert refused.status_code == 200 and not refused.text.startswith("{")
    assert (
        httpx.get(f"{stub.origin}/x", headers={"traceparent": f"00-{trace}-01-01"}, follow_redirects=False).status_code
        == 302
    )
    with pytest.raises(httpx.TransportError):
        tool(stub, trace)  # the connection ends without an answer: a network error
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{stub.origin}/x", headers={"traceparent": f"00-{trace}-01-01"}, timeout=0.1)  # held past 0.2 s
    assert httpx.post(f"{stub.origin}/hooks/slo", json={}).status_code == 200  # an SLO webhook: no trace context


def test_a_busy_port_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(RerunError, match=r"cannot listen on 127\.0\.0\.1"):
            ReplayStub("127.0.0.1", s.getsockname()[1])


def test_ids_match_the_runtime() -> None:
    # The runtime's traceparent (runtime/test/rerun.test.ts has the same cases).
    assert trace_id_of("9b1f0c3e-5d0a-4c55-9a43-2f1e7b6c8d21") == "9b1f0c3e5d0a4c559a432f1e7b6c8d21"
    assert trace_id_of("fade-0123456789abcdef0123456789abcdef") == "0123456789abcdef0123456789abcdef"
    assert trace_id_of("xyz") == "0" * 31 + "1"
    # worker.ts: `<workflow>-` + sha256(P(tenant) P(key))[:32], P(x) = len ":" x in UTF-16 code units.
    assert rerun_task_id("orders", "acme", "k") == "orders-" + hashlib.sha256(b"4:acme1:k").hexdigest()[:32]
    assert rerun_task_id("o", "é😀", "k").startswith("o-")  # a non-BMP tenant counts two units, as JavaScript does


def test_first_divergence() -> None:
    a = [Decision(1, "model.route:low", "allow", "route.risk.low"), Decision(2, "tool.call:x", "allow", "tools.allow")]
    assert first_divergence(a, [Decision(9, *d.key) for d in a]) is None  # seqs aside, the same decisions
    b = [a[0], Decision(2, "tool.call:x", "deny", "tools.allowlist")]
    assert first_divergence(a, b) == (1, a[1], b[1])
    assert first_divergence(a, a[:1]) == (1, a[1], None)


def _event(kind: str, session: str, seq: int, data: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    return {"schema": 1, "kind": kind, "id": id or f"{kind}:{session}:{seq}", "ts": "2026-12-02T00:00:00.000Z",
            "workflow": "desk", "tenant": "acme", "session": session, "seq": seq, "data": data}  # fmt: skip


def _write(root: Path, kind: str, events: list[dict[str, Any]]) -> None:
    folder = root / kind / "dt=2026-12-02" / "workflow=desk"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-1.ndjson").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_an_old_recording_and_a_missing_trace_are_said_so(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("AGENTSPEC_ADMIN_TOKEN", raising=False)
    from agentspec.trace.verify import record_hash

    prev = "0" * 64
    records = []
    for seq, action in ((1, "model.route:low"), (2, "model.route:low")):
        r = {"seq": seq, "ts": "t", "tenant": "acme", "session": "s1", "workflow": "desk", "intent": "hi"}
        r |= {"action": action, "decision": "allow", "rule": "route.risk.low", "spec_hash": "h", "prev_hash": prev}
        r["hash"] = record_hash(r)
        prev = r["hash"]
        records.append(r)
    _write(tmp_path, "decisions", [_event("decision", "s1", r["seq"], r) for r in records])
    trace = {"trace_id": "t1", "turn": 1, "workflow": "desk", "decisions": [{"seq": 1}], "tools": []}
    _write(tmp_path, "traces", [_event("trace", "s1", 1, trace, "trace:t1")])
    with pytest.raises(RerunError, match="predates rerun recording"):
        load_recording(tmp_path)
    _write(tmp_path, "traces", [_event("trace", "s1", 1, {**trace, "model_rounds": []}, "trace:t1")])
    (scope,) = load_recording(tmp_path).scopes
    assert (
        scope.unreplayable is not None
        and "turn at seq 2" in scope.unreplayable
        and "no turn trace" in scope.unreplayable
    )
    # Through the command: a missing token and an --against beside --runtime are usage errors, exit 2.
    assert main(["trace", "replay", str(tmp_path), "--runtime", "http://127.0.0.1:9"]) == 2
    assert main(["trace", "replay", str(tmp_path), "--runtime", "x", "--admin-token", "t"]) == 2
    assert "not an http(s) URL" in capsys.readouterr().err


def test_an_event_of_another_shape_and_a_foreign_server_are_clear_errors(tmp_path: Path, capsys) -> None:
    _write(tmp_path, "decisions", [_event("decision", "s1", 1, {"seq": 1, "tenant": "acme"})])  # no action
    (tmp_path / ".agentspec-chains.json").write_text("{}")
    assert main(["trace", "replay", str(tmp_path), "--runtime", "http://127.0.0.1:9", "--admin-token", "t"]) == 2
    err = capsys.readouterr().err
    assert "holds an export event of another shape" in err and "Traceback" not in err

    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Html(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>bad gateway</html>"
            self.send_response(502)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    good = tmp_path / "good"
    r = {"seq": 1, "ts": "t", "tenant": "acme", "session": "s1", "workflow": "desk", "intent": "hi"}
    r |= {"action": "model.route:low", "decision": "allow", "rule": "route.risk.low", "spec_hash": "h"}
    _write(good, "decisions", [_event("decision", "s1", 1, r)])
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        port = str(free_port())
        assert main(["trace", "replay", str(good), "--runtime", url, "--admin-token", "t", "--stub-port", port]) == 2
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert "`GET /healthz`" in err and "answered 502 with no JSON object" in err and "Traceback" not in err


def test_a_call_the_runtime_no_longer_makes_is_passed_over(stub: ReplayStub) -> None:
    """Recorded: a note, then a lookup. A candidate that denies the note sends only the lookup: it gets the lookup's
    answer, not the note's (which would break the lookup's declared shape)."""
    stub.tool_paths = tool_patterns(
        {
            "tools": {
                "write_note": {"method": "POST", "url": "https://notes.example.com/v1/notes"},
                "lookup": {"method": "GET", "url": "https://shop.example.com/v1/orders/{order_id}?x=1"},
            }
        }
    )
    trace = "d" * 32
    replies = [ToolReply("write_note", 200, "ok", {"note_id": "n"}), ToolReply("lookup", 200, "ok", {"order_id": "A"})]
    stub.expect(None, trace, _Cursor([], replies, None))
    assert tool(stub, trace).json() == {"order_id": "A"}  # GET /v1/orders/A-1: the lookup
    assert tool(stub, trace).status_code == 599  # nothing recorded is left for it
    # A request no tool's URL matches gets the next recorded attempt, in order.
    stub.expect(None, trace, _Cursor([], replies, None))
    assert httpx.get(f"{stub.origin}/elsewhere", headers={"traceparent": f"00-{trace}-01-01"}).json() == {
        "note_id": "n"
    }
