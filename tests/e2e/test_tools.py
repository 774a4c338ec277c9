"""Tool calls and their policy, over HTTP against the running runtime: the allowlist, the outbound guard,
shadow mode, secrets per identity, Idempotency-Key, result projection and replay-safe retries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from .conftest import Runtime
from .stubs import Cue, ToolAnswer, ToolStub

LOW = "@cf/test/low-primary"


def session(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def tool_messages(runtime: Runtime) -> list[dict]:
    """The tool messages of the last model request that carried any."""
    for seen in reversed(runtime.model.requests):
        tools = [m for m in seen.body["messages"] if m["role"] == "tool"]
        if tools:
            return tools
    return []


def decision(body: dict, action: str) -> dict:
    found = [d for d in body["decisions"] if d["action"] == action]
    assert len(found) == 1, (action, body["decisions"])
    return found[0]


@contextmanager
def redirecting(stub: ToolStub, path: str, location: str) -> Iterator[None]:
    """Make the tool stub's answers under `path` carry a `location` header (the stub sends none itself)."""
    server = stub.http.server
    base = server.RequestHandlerClass

    class Redirect(base):  # type: ignore[misc, valid-type]
        def send_header(self, keyword: str, value: str) -> None:
            super().send_header(keyword, value)
            if keyword == "content-type" and self.path.startswith(path):
                super().send_header("location", location)

    server.RequestHandlerClass = Redirect
    try:
        yield
    finally:
        server.RequestHandlerClass = base


def test_allowlisted_tool_runs_with_its_idempotency_key(playground: Runtime) -> None:
    sid = session("key")
    playground.tools.answer("/v1/notes", ToolAnswer(body={"note_id": "n-1"}))
    playground.model.cue(LOW, Cue(tool_calls=[("write_note", {"note_id": "n-1", "text": "hello"})]), Cue(text="done"))
    r = playground.turn(sid, "chat", "please note hello")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["output"] == "done"
    assert decision(body, "tool.call:write_note") | {"seq": 0} == {
        "seq": 0,
        "action": "tool.call:write_note",
        "decision": "allow",
        "rule": "tools.allow",
    }
    assert decision(body, "tool.result:write_note")["decision"] == "ok"
    calls = playground.tools.calls("/v1/notes")
    assert len(calls) == 1
    # The spec's template is "{session}:{args.note_id}", scoped to agent, tenant and tool.
    note_key = playground.idempotency_key("write_note", {"session": sid, "args.note_id": "n-1"})
    assert calls[0].headers["idempotency-key"] == note_key
    assert calls[0].method == "POST"
    assert calls[0].body == {"note_id": "n-1", "text": "hello"}
    assert playground.tools.effects == {note_key: 1}


def test_tool_outside_the_allowlist_is_denied_and_never_called(playground: Runtime) -> None:
    sid = session("deny")
    playground.model.cue(LOW, Cue(tool_calls=[("side_effect", {"effect_id": "e-1"})]), Cue(text="could not"))
    r = playground.turn(sid, "chat", "do the side effect")
    assert r.status_code == 200, r.text
    denied = decision(r.json(), "tool.call:side_effect")
    assert (denied["decision"], denied["rule"]) == ("deny", "tools.allowlist")
    assert not any(d["action"] == "tool.result:side_effect" for d in r.json()["decisions"])
    assert playground.tools.requests == []  # no tool endpoint saw anything
    assert json.loads(tool_messages(playground)[0]["content"]) == {
        "error": "denied by policy",
        "rule": "tools.allowlist",
    }
    records = playground.traces(sid)["records"]
    recorded = [x for x in records if x["action"] == "tool.call:side_effect"]
    assert [(x["seq"], x["decision"], x["rule"]) for x in recorded] == [(denied["seq"], "deny", "tools.allowlist")]


def test_a_redirect_to_another_origin_is_not_followed(playground: Runtime) -> None:
    elsewhere = ToolStub()  # another loopback origin, outside every allowlist
    try:
        sid = session("redirect")
        playground.tools.answer("/v1/items/redir", ToolAnswer(status=302, body={"moved": True}))
        playground.model.cue(LOW, Cue(tool_calls=[("lookup", {"item_id": "redir"})]), Cue(text="no luck"))
        with redirecting(playground.tools, "/v1/items/redir", f"{elsewhere.origin}/steal"):
            r = playground.turn(sid, "chat", "look up redir")
        assert r.status_code == 200, r.text
        assert [(s.method, s.path) for s in playground.tools.requests] == [("GET", "/v1/items/redir")]
        assert elsewhere.requests == []  # the redirect was not followed
        result = decision(r.json(), "tool.result:lookup")
        assert (result["decision"], result["rule"]) == ("failed", "tool.redirect_refused")
        assert json.loads(tool_messages(playground)[0]["content"]) == {"error": "tool failed (302)"}
        turn = playground.traces(sid)["turns"][-1]
        call = turn["tools"][0]
        assert [a | {"latency_ms": 0} for a in call["attempt_log"]] == [
            {"sent": True, "status": 302, "rule": "tool.redirect_refused", "latency_ms": 0}
        ]
        assert call | {"latency_ms": 0, "attempt_log": []} == {
            "tool": "lookup",
            "round": 1,
            "decision": "allow",
            "rule": "tools.allow",
            "outcome": "failed",
            "failure": "tool.redirect_refused",
            "status": 302,
            "attempts": 1,
            "latency_ms": 0,
            "attempt_log": [],
            "result": None,
            "idempotency_key": None,
        }
    finally:
        elsewhere.close()


def test_shadow_mode_runs_a_would_be_denial_and_records_it(playground: Runtime) -> None:
    """A read-only call within clearance (state-changing ones: tests/e2e/test_security_shadow.py)."""
    sid = session("shadow")
    playground.tools.answer("/v1/peek/", ToolAnswer(body={"peek_id": "w-1"}))
    playground.model.cue(LOW, Cue(tool_calls=[("peek", {"peek_id": "w-1"})]), Cue(text="ok"))
    r = playground.turn(sid, "watch", "peek at it")
    assert r.status_code == 200, r.text
    shadow = decision(r.json(), "tool.call:peek")
    assert (shadow["decision"], shadow["rule"]) == ("shadow_deny", "tools.allowlist")
    assert decision(r.json(), "tool.result:peek")["decision"] == "ok"
    calls = playground.tools.calls("/v1/peek/")
    assert len(calls) == 1 and calls[0].path == "/v1/peek/w-1"
    records = playground.traces(sid)["records"]
    assert any(x["decision"] == "shadow_deny" and x["action"] == "tool.call:peek" for x in records)


def test_a_tool_gets_exactly_its_identitys_secrets(playground: Runtime) -> None:
    sid = session("secrets")
    playground.model.cue(
        LOW,
        Cue(tool_calls=[("lookup", {"item_id": "i-1"}), ("write_note", {"note_id": "n-2", "text": "t"})]),
        Cue(text="done"),
    )
    r = playground.turn(sid, "chat", "look and note")
    assert r.status_code == 200, r.text
    requests = playground.tools.requests
    assert sorted(s.path for s in requests) == ["/v1/items/i-1", "/v1/notes"]
    note = playground.tools.calls("/v1/notes")[0]
    assert note.headers["x-notes-key"] == "value-of-NOTES_KEY"
    secret_values = set(playground.secrets.values()) | set(json.loads(playground.secrets["API_TOKENS"]))
    lookup = playground.tools.calls("/v1/items/")[0]
    for name, value in lookup.headers.items():
        assert not any(secret in value for secret in secret_values), (name, value)
    assert "x-notes-key" not in lookup.headers
    # write_note's other headers carry nothing but its own secret, and the model never sees any secret.
    for name, value in note.headers.items():
        if name != "x-notes-key":
            assert not any(secret in value for secret in secret_values), (name, value)
    for seen in playground.model.requests:
        text = json.dumps(seen.headers) + json.dumps(seen.body)
        assert not any(secret in text for secret in secret_values)


def test_a_tool_result_is_projected_onto_its_declared_shape(playground: Runtime) -> None:
    sid = session("project")
    playground.tools.answer(
        "/v1/items/",
        ToolAnswer(
            body={
                "item_id": "i-3",
                "status": "open",
                "internal_cost_cents": 4200,
                "owner": {"email": "owner@corp.example"},
            }
        ),
    )
    playground.model.cue(LOW, Cue(tool_calls=[("lookup", {"item_id": "i-3"})]), Cue(text="it is open"))
    r = playground.turn(sid, "chat", "status of i-3?")
    assert r.status_code == 200, r.text
    messages = tool_messages(playground)
    assert len(messages) == 1
    assert json.loads(messages[0]["content"]) == {"item_id": "i-3", "status": "open"}
    assert "owner@corp.example" not in json.dumps(playground.model.requests[-1].body)


def test_a_transient_failure_is_retried_once_with_the_same_key(playground: Runtime) -> None:
    sid = session("retry")
    playground.tools.answer(
        "/v1/notes", ToolAnswer(status=503, body={"error": "busy"}), ToolAnswer(body={"note_id": "n-3"})
    )
    playground.model.cue(LOW, Cue(tool_calls=[("write_note", {"note_id": "n-3", "text": "t"})]), Cue(text="done"))
    r = playground.turn(sid, "chat", "note n-3")
    assert r.status_code == 200, r.text
    calls = playground.tools.calls("/v1/notes")
    note_key = playground.idempotency_key("write_note", {"session": sid, "args.note_id": "n-3"})
    assert [c.headers["idempotency-key"] for c in calls] == [note_key] * 2
    assert playground.tools.effects == {note_key: 1}
    assert json.loads(tool_messages(playground)[0]["content"]) == {"note_id": "n-3"}
    turn = playground.traces(sid)["turns"][-1]
    assert turn["retries"] == 1
    assert [(x["kind"], x["target"], x["attempt"], x["replay_safe"], x["performed"]) for x in turn["retry_log"]] == [
        ("tool", "write_note", 2, True, True)
    ]
    assert turn["tools"][0]["attempts"] == 2 and turn["tools"][0]["outcome"] == "ok"
