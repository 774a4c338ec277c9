"""The shape of what `GET /v1/traces` answers: JSON text in, typed records and turn traces out.

`records` is the session's hash-chained decision log (runtime `chain.ts`), oldest first; `turns` holds one
trace per completed turn (runtime `session.ts`), with OpenTelemetry GenAI attribute names where one exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NotRequired, TypedDict

GENESIS_HASH = "0" * 64

#: Every field a chain record carries besides `seq`; each is a string.
STRING_FIELDS = (
    "ts",
    "tenant",
    "session",
    "workflow",
    "intent",
    "action",
    "decision",
    "rule",
    "spec_hash",
    "prev_hash",
    "hash",
)


class ChainRecord(TypedDict):
    seq: int
    ts: str
    tenant: str
    session: str
    workflow: str
    intent: str
    action: str
    decision: str
    rule: str
    spec_hash: str
    prev_hash: str
    hash: str


class DecisionRef(TypedDict):
    seq: int
    action: str
    decision: str
    rule: str


class RetryRecord(TypedDict):
    kind: str
    target: str
    attempt: int
    reason: str
    replay_safe: bool
    performed: bool


class TurnTrace(TypedDict, total=False):
    trace_id: str
    turn: int
    workflow: str
    tenant: str
    region: str
    tier: str
    model_family: str
    prompt_family: str
    ttft_ms: int
    latency_ms: int
    cost_usd: float | None
    retries: int
    retry_log: list[RetryRecord]
    tools: list[dict[str, Any]]
    checkpoint: dict[str, Any] | None
    decisions: list[DecisionRef]
    # plus "gen_ai.*" attributes, which are not identifiers: read them with turn["gen_ai.request.model"]


class Traces(TypedDict):
    records: list[ChainRecord]
    turns: list[TurnTrace]
    # written by `agentspec trace pull`, absent in a raw /v1/traces answer
    source: NotRequired[dict[str, Any]]
    # for a spec with `audit sign with secret`: the chain's signed heads (trace/heads.py) and the key's public half
    heads: NotRequired[list[dict[str, Any]]]
    audit: NotRequired[dict[str, Any]]


class SchemaError(ValueError):
    """The JSON is not a /v1/traces answer."""


def parse(text: str) -> Traces:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SchemaError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise SchemaError("expected an object with a `records` list, as `GET /v1/traces` answers")
    turns = data.get("turns", [])
    if not isinstance(turns, list):
        raise SchemaError("`turns` is not a list")
    data.setdefault("turns", [])
    return data  # type: ignore[return-value]


def load(path: str | Path) -> Traces:
    """Read a traces file; OSError when it cannot be read, SchemaError when it is not traces."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    return parse(text)
