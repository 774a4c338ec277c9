"""Security property 1, over HTTP: shadow mode is safe to turn on.

In the shadow workflow `watch` (tests/e2e/specs/playground.agent, turns on tier `low`, cleared for `medium`) a
call `enforce` would deny runs only if its tool is `read_only` and within that clearance. A state-changing call
(`write_note`, `wire_money`) or a read-only one above the clearance (`audit_log`, risk high) is denied for real,
never reaches its host, and is recorded under its own rule in the session's chain.
"""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import Runtime
from .stubs import Cue, ToolAnswer

LOW = "@cf/test/low-primary"


def _decisions(body: dict, action: str) -> list[tuple[str, str]]:
    return [(d["decision"], d["rule"]) for d in body["decisions"] if d["action"] == action]


@pytest.mark.parametrize(
    ("tool", "args", "path", "rule"),
    [
        ("write_note", {"note_id": "s-1", "text": "x"}, "/v1/notes", "shadow.not_read_only"),
        ("wire_money", {"wire_id": "s-2"}, "/v1/wires", "shadow.not_read_only"),
        ("audit_log", {"entry_id": "s-3"}, "/v1/audit/", "shadow.over_clearance"),
    ],
)
def test_shadow_denies_harmful_would_be_denials_for_real(
    playground: Runtime, tool: str, args: dict, path: str, rule: str
) -> None:
    sid = f"shadow-deny-{uuid.uuid4().hex[:8]}"
    playground.tools.answer(path, ToolAnswer(body={"ok": True}))
    playground.model.cue(LOW, Cue(tool_calls=[(tool, args)]), Cue(text="done"))
    r = playground.turn(sid, "watch", "do it")
    assert r.status_code == 200, r.text
    body = r.json()
    assert _decisions(body, f"tool.call:{tool}") == [("deny", rule)]
    assert _decisions(body, f"tool.result:{tool}") == []  # never sent, so no outcome
    assert playground.tools.calls(path) == []
    # The model reads the denial, with the rule that made it.
    tool_msgs = [m for m in playground.model.requests[-1].body["messages"] if m["role"] == "tool"]
    assert [json.loads(m["content"]) for m in tool_msgs] == [{"error": "denied by policy", "rule": rule}]
    records = playground.traces(sid)["records"]
    assert [(x["decision"], x["rule"]) for x in records if x["action"] == f"tool.call:{tool}"] == [("deny", rule)]


def test_shadow_still_runs_a_harmless_would_be_denial_next_to_a_denied_one(playground: Runtime) -> None:
    sid = f"shadow-mixed-{uuid.uuid4().hex[:8]}"
    playground.tools.answer("/v1/peek/", ToolAnswer(body={"peek_id": "p-1"}))
    playground.model.cue(
        LOW,
        Cue(tool_calls=[("write_note", {"note_id": "m-1", "text": "x"}), ("peek", {"peek_id": "p-1"})]),
        Cue(text="done"),
    )
    r = playground.turn(sid, "watch", "both")
    assert r.status_code == 200, r.text
    body = r.json()
    assert _decisions(body, "tool.call:write_note") == [("deny", "shadow.not_read_only")]
    assert _decisions(body, "tool.call:peek") == [("shadow_deny", "tools.allowlist")]
    assert _decisions(body, "tool.result:peek") == [("ok", "tool.ok")]
    assert playground.tools.calls("/v1/notes") == []
    assert [c.path for c in playground.tools.calls("/v1/peek/")] == ["/v1/peek/p-1"]
