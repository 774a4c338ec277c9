"""The simulator's one door to the policy: a checked spec in, its policy tables and tool-call verdicts out.

Everything the simulator knows about allow/deny comes through here, from `agentspec.policy.tables` and
`agentspec.policy.evaluate_tool_call` (the evaluator the runtime's is tested against), so a change to the
policy's semantics (shadow mode, clearances) reaches the simulation without touching it.
"""

from __future__ import annotations

from typing import Any

from agentspec import model as m
from agentspec import policy


def tables(spec: m.RSpec) -> dict[str, Any]:
    """The policy tables as the runtime reads them (`policy/policy.json`)."""
    return policy.tables(spec)


def verdict(tables_: dict[str, Any], workflow: str, tool: str) -> str:
    """`allow`, `deny` or `shadow_deny` for one tool call the model (or a step) makes in `workflow`."""
    return str(policy.evaluate_tool_call(tables_, workflow, tool)["decision"])
