"""The one accessor of policy tables for the review: a checked spec in, its tables and their decisions out.

Every other review module reads permissions through here, never through `agentspec.policy` directly,
so a change to how the tables are built (a schema over the same dict shape) or to how the evaluator
decides (shadow mode) reaches the whole review at one place.

"Allowed" in a review means *the call executes*: the evaluator says `allow`, or the workflow is in
shadow mode and the call passes through (`shadow_deny`). Only a `deny` stops a call.
"""

from __future__ import annotations

import re
from typing import Any

from agentspec import model as m
from agentspec import policy

Tables = dict[str, Any]

# Parts of the tables no allow/deny decision reads: they change with every version bump or build.
_UNREAD = ("spec_hash", "compiler", "agent")


def tables_of(spec: m.RSpec) -> Tables:
    """The policy tables of a checked agent, without the spec hash: no decision reads it (`_UNREAD`)."""
    return policy.tables(spec, stamped=False)


def workflows(t: Tables) -> dict[str, dict[str, Any]]:
    return dict(t["workflows"])


def tools(t: Tables) -> dict[str, dict[str, Any]]:
    return dict(t["tools"])


def shared(t: Tables) -> dict[str, Any]:
    """What every decision may read besides its own workflow and tool (tiers, auth, limits...)."""
    return {k: v for k, v in t.items() if k not in ("workflows", "tools", *_UNREAD)}


def decide(t: Tables, workflow: str, tool: str, url: str) -> tuple[bool, str]:
    """Whether the call executes under these tables, and the evaluator's rule for it."""
    verdict = policy.evaluate_tool_call(t, workflow, tool, url)
    return verdict["decision"] != "deny", f"{verdict['decision']} ({verdict['rule']})"


def default_url(tool: dict[str, Any]) -> str:
    """The URL a tool calls with every placeholder filled, as the evaluator fills it."""
    return _PLACEHOLDER.sub("x", tool["url"])


_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
