"""The shape of what `GET /v1/traces` answers: JSON text in, typed records and turn traces out.

`records` is the session's hash-chained decision log (runtime `chain.ts`), oldest first; `turns` holds one
trace per completed turn (runtime `session.ts`), with OpenTelemetry GenAI attribute names where one exists.

What a rerun (`agentspec trace replay DIR --runtime URL`, `trace/rerun.py`) and the traffic calibration read is
typed here too, and documented in docs/runtime.md (Per-turn trace records): each model round of a turn
(`model_rounds`: the models tried, the tool calls it asked for with their arguments projected onto the tool's
declared `args` and PII-masked), and each tool call (`tools`: its attempts, latency, outcome and failure kind, and
its projected, masked result). A task's step records carry the same for call and infer steps (`TaskStepRecord`),
its summary its params, and each event sent to it is an export record of step `agentspec.event.<uuid>` with its
`type` and `payload`.
Nothing here is unmasked: every string value a tool call or a tool result holds is masked with the workflow's
`pii mask` rules before it is persisted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NotRequired, TypedDict
from urllib.parse import quote

GENESIS_HASH = "0" * 64


def decision_id(tenant: str, session: str, seq: int) -> str:
    """A decision event's export id, as the runtime's `decisionId` writes it (`export.ts`): the tenant is part of
    it because two tenants may use one session id; `quote` with these safe characters is `encodeURIComponent`."""
    return f"decision:{quote(tenant, safe=_URI_SAFE)}:{quote(session, safe=_URI_SAFE)}:{seq}"


_URI_SAFE = "!'()*"

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
    #: optional: why, in words, when the rule alone does not say it (`model.unavailable`: each model's cause,
    #: `@cf/a: cannot reach HOST: ...; @cf/b: HTTP 503`); hashed like every field, absent from most records
    detail: NotRequired[str]
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


class ModelAttempt(TypedDict):
    """One model tried in a round (the tier's fallback chain): `ok` for the one that answered."""

    model: str
    ok: bool
    #: the HTTP status (the OpenAI-compatible backend); null for the Workers AI binding or no answer at all
    status: int | None
    #: why it failed: `HTTP 503`, `timeout`, `cannot reach HOST: ...`, `answer is not JSON: ...`; null when ok
    error: str | None
    latency_ms: int


class ToolRequest(TypedDict):
    """One tool call a model answer asked for, in the order asked (calls past a cap included)."""

    name: str
    #: the arguments the tool declares, and only those (no type check: a wrong type is kept, to fail again on a
    #: rerun), each string masked; `{}` for a tool the policy does not declare
    args: dict[str, Any]
    #: the names of undeclared arguments (masked), which the runtime drops and records as `tool.args:...`
    undeclared: list[str]


class Usage(TypedDict):
    input: int
    output: int
    cached: int


class ModelRound(TypedDict):
    """One model round of a turn: the fallback chain it went through, what the answer asked for, its tokens."""

    round: int  # 1-based
    #: the model that answered
    model: str
    #: from the first attempt to the answer
    latency_ms: int
    attempts: list[ModelAttempt]
    usage: Usage
    #: empty for the final answer (in the last allowed round, what it asks for is ignored and still listed)
    tool_calls: list[ToolRequest]


class ToolAttempt(TypedDict):
    """One attempt of a tool call (a transient failure of a replay-safe tool is sent again once)."""

    #: whether a request went out (false: refused before sending, by the guard, a template or a missing secret)
    sent: bool
    #: the HTTP status; null when none came back (timeout, network error, not sent)
    status: int | None
    #: `ok`, or the failure rule: `tool.status`, `tool.timeout`, `tool.error`, `tool.redirect_refused`,
    #: `tool.arguments`, `tool.path`, `outbound.guard`
    rule: str
    latency_ms: int


class ToolCallTrace(TypedDict):
    """One tool call of a turn that reached the policy decision (calls past a cap are decisions only)."""

    tool: str
    #: the model round (1-based) whose answer asked for it; `model_rounds[round - 1].tool_calls` holds its request
    round: int
    decision: str
    rule: str
    #: `ok`, `denied` (by policy: never sent), `blocked` (outbound guard) or `failed`
    outcome: str
    #: null unless `failed` or `blocked`: the failure kind, one of ToolAttempt's rules
    failure: str | None
    #: the last attempt's HTTP status
    status: int | None
    attempts: int
    #: from the first attempt to the outcome (0 when denied)
    latency_ms: int
    attempt_log: list[ToolAttempt]
    #: what the model read back when `ok`: the answer projected onto the declared `returns`, masked; else null
    result: dict[str, Any] | None
    idempotency_key: str | None


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
    model_rounds: list[ModelRound]
    tools: list[ToolCallTrace]
    checkpoint: dict[str, Any] | None
    decisions: list[DecisionRef]
    # plus "gen_ai.*" attributes, which are not identifiers: read them with turn["gen_ai.request.model"]


class TaskStepRecord(TypedDict, total=False):
    """A task's step record (`GET /v1/tasks/{id}` `steps`, and the fleet export's task events), masked."""

    name: str
    #: `complete`, `retrying`, `failed`, `compensated`, `not_compensated`, `compensation_retrying`,
    #: `compensation_failed`
    status: str
    #: the Workflows attempt of the step (or of its compensation)
    attempts: int
    error: str
    #: call steps and compensations: the tool called
    tool: str
    compensation: str
    #: call steps: the declared arguments sent (masked), the HTTP status, the failure rule (as ToolAttempt's)
    #: and, when complete, the projected answer (masked); the request's latency
    args: dict[str, Any]
    http_status: int | None
    failure: str | None
    result: dict[str, Any]
    latency_ms: int
    #: infer steps: the model that answered, the models tried, the tokens, the answer's text (masked)
    model: str
    model_attempts: list[ModelAttempt]
    usage: Usage
    text: str


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
