"""Security properties 2 and 3 for a turn's tool calls, over HTTP (tests/e2e/specs/playground.agent).

2. Idempotency-Keys are scoped to agent, tenant and tool, and their parts are length-prefixed: two tenants with
   the same session id, or two calls whose values differ only in where a separator falls, never share a key
   (the stub, like a real idempotent API, replays the stored answer for a key it has seen).
3. A tool request carries only what the spec declares: undeclared arguments are dropped (and recorded), a path
   placeholder never leaves its segment, argument types are checked before the call, and tool calls per model
   answer and per turn are capped.
"""

from __future__ import annotations

import json
import uuid

from .conftest import Runtime
from .stubs import Cue, ToolAnswer

LOW = "@cf/test/low-primary"


def sid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def actions(body: dict, prefix: str) -> list[tuple[str, str, str]]:
    return [(d["action"], d["decision"], d["rule"]) for d in body["decisions"] if d["action"].startswith(prefix)]


def tool_replies(rt: Runtime) -> list[dict]:
    for seen in reversed(rt.model.requests):
        replies = [json.loads(m["content"]) for m in seen.body["messages"] if m["role"] == "tool"]
        if replies:
            return replies
    return []


# ── property 2: keys ─────────────────────────────────────────────────────────


def test_two_tenants_with_one_session_id_never_share_a_key(playground: Runtime) -> None:
    shared = sid("tenants")
    playground.tools.answer(
        "/v1/notes", ToolAnswer(body={"note_id": "for-acme"}), ToolAnswer(body={"note_id": "for-globex"})
    )
    for tenant in ("acme", "globex"):
        playground.model.cue(LOW, Cue(tool_calls=[("write_note", {"note_id": "n-1", "text": tenant})]), Cue(text="ok"))
        r = playground.turn(shared, "chat", "note it", tenant=tenant)
        assert r.status_code == 200, r.text
        # Each tenant reads its own answer, not the one the other's key stored.
        assert tool_replies(playground) == [{"note_id": f"for-{tenant}"}]
    keys = [c.headers["idempotency-key"] for c in playground.tools.calls("/v1/notes")]
    assert keys == [
        playground.idempotency_key("write_note", {"session": shared, "args.note_id": "n-1"}, tenant="acme"),
        playground.idempotency_key("write_note", {"session": shared, "args.note_id": "n-1"}, tenant="globex"),
    ]
    assert len(set(keys)) == 2 and sorted(playground.tools.effects.values()) == [1, 1]


def test_a_separator_inside_a_value_cannot_make_two_calls_share_a_key(playground: Runtime) -> None:
    """`{session}:{args.note_id}` expands ("x:a", "b") and ("x", "a:b") to the same text."""
    base = sid("sep")
    for session, note in ((f"{base}:a", "b"), (base, "a:b")):
        playground.model.cue(LOW, Cue(tool_calls=[("write_note", {"note_id": note, "text": "t"})]), Cue(text="ok"))
        assert playground.turn(session, "chat", "note").status_code == 200
    keys = [c.headers["idempotency-key"] for c in playground.tools.calls("/v1/notes")]
    assert len(keys) == 2 and keys[0] != keys[1]
    assert sorted(playground.tools.effects.values()) == [1, 1]  # two side effects, none replayed


# ── property 3: what a request carries ──────────────────────────────────────


def test_undeclared_arguments_are_dropped_and_recorded(playground: Runtime) -> None:
    s = sid("undeclared")
    playground.tools.answer("/v1/items/", ToolAnswer(body={"item_id": "i-1", "status": "open"}))
    playground.tools.answer("/v1/notes", ToolAnswer(body={"note_id": "n-9"}))
    playground.model.cue(
        LOW,
        Cue(tool_calls=[
            ("lookup", {"item_id": "i-1", "debug": "1", "callback": "https://evil.example.net/"}),
            ("write_note", {"note_id": "n-9", "text": "t", "owner": "root"}),
        ]),
        Cue(text="ok"),
    )  # fmt: skip
    r = playground.turn(s, "chat", "look and note")
    assert r.status_code == 200, r.text
    assert [c.path for c in playground.tools.calls("/v1/items/")] == ["/v1/items/i-1"]  # no query from undeclared
    assert [c.body for c in playground.tools.calls("/v1/notes")] == [{"note_id": "n-9", "text": "t"}]
    assert actions(r.json(), "tool.args:") == [
        ("tool.args:lookup:callback,debug", "dropped", "tool.args.undeclared"),
        ("tool.args:write_note:owner", "dropped", "tool.args.undeclared"),
    ]
    stored = [x["action"] for x in playground.traces(s)["records"]]
    assert "tool.args:write_note:owner" in stored


def test_a_path_placeholder_cannot_leave_its_segment(playground: Runtime) -> None:
    """`lookup` is GET .../v1/items/{item_id} and read-only: a refusal is final, never retried."""
    for value in ("..", ".", ""):
        s = sid("path")
        playground.tools.reset()
        playground.model.cue(LOW, Cue(tool_calls=[("lookup", {"item_id": value})]), Cue(text="ok"))
        r = playground.turn(s, "chat", "look")
        assert r.status_code == 200, r.text
        assert actions(r.json(), "tool.result:lookup") == [("tool.result:lookup", "failed", "tool.path")], value
        assert playground.tools.requests == [], value
        trace = playground.traces(s)["turns"][-1]["tools"]
        assert [(t["outcome"], t["attempts"]) for t in trace] == [("failed", 1)]
    # Separators are encoded, so they stay inside the segment.
    playground.tools.reset()
    playground.model.cue(LOW, Cue(tool_calls=[("lookup", {"item_id": "../notes?x=1#y"})]), Cue(text="ok"))
    assert playground.turn(sid("path"), "chat", "look").status_code == 200
    assert [c.path for c in playground.tools.requests] == ["/v1/items/..%2Fnotes%3Fx%3D1%23y"]


def test_argument_types_are_checked_before_the_call(playground: Runtime) -> None:
    s = sid("types")
    playground.model.cue(
        LOW,
        Cue(tool_calls=[("lookup", {"item_id": 42}), ("write_note", {"note_id": "n", "text": {"nested": 1}})]),
        Cue(text="ok"),
    )
    r = playground.turn(s, "chat", "typed")
    assert r.status_code == 200, r.text
    assert actions(r.json(), "tool.result:") == [
        ("tool.result:lookup", "failed", "tool.arguments"),
        ("tool.result:write_note", "failed", "tool.arguments"),
    ]
    assert playground.tools.requests == []


def test_tool_calls_are_capped_per_answer(playground: Runtime) -> None:
    s = sid("cap-answer")
    calls = [("lookup", {"item_id": f"i-{i}"}) for i in range(9)]
    playground.model.cue(LOW, Cue(tool_calls=calls), Cue(text="ok"))
    r = playground.turn(s, "chat", "many")
    assert r.status_code == 200, r.text
    decided = actions(r.json(), "tool.call:lookup")
    assert decided == [("tool.call:lookup", "allow", "tools.allow")] * 8 + [
        ("tool.call:lookup", "deny", "tool.limit.answer")
    ]
    assert len(playground.tools.calls("/v1/items/")) == 8
    assert tool_replies(playground)[-1] == {"error": "denied by policy", "rule": "tool.limit.answer"}


def test_tool_calls_are_capped_per_turn(playground: Runtime) -> None:
    s = sid("cap-turn")
    answer = [("lookup", {"item_id": f"i-{i}"}) for i in range(8)]
    playground.model.cue(LOW, Cue(tool_calls=answer), Cue(tool_calls=answer), Cue(tool_calls=answer), Cue(text="ok"))
    r = playground.turn(s, "chat", "more")
    assert r.status_code == 200, r.text
    rules = [rule for _, _, rule in actions(r.json(), "tool.call:lookup")]
    assert rules == ["tools.allow"] * 16 + ["tool.limit.turn"] * 8
    assert len(playground.tools.calls("/v1/items/")) == 16
