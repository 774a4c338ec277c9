"""The catalogue of review change codes: code in, its title, classification and explanation out.

Change codes start with `R` so they never clash with the checker's `E`/`W` diagnostic codes, and
`agentspec explain R0203` prints them like a diagnostic's. A code never changes meaning once
published: its class (widening, narrowing, neutral, mixed) is part of it, which is why a change that
widens one way and narrows another has a code of its own rather than a class chosen at run time.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Classification = Literal["widening", "narrowing", "mixed", "neutral"]

# Most severe first: the order of a pull-request comment.
SEVERITY: dict[Classification, int] = {"widening": 0, "mixed": 1, "narrowing": 2, "neutral": 3}


class ChangeCode(NamedTuple):
    code: str
    title: str
    classification: Classification
    explanation: str


_W, _N, _M, _0 = "widening", "narrowing", "mixed", "neutral"

_PERMISSIONS = """Computed from the two policy tables, not from the text: for every (workflow, tool, host) the
review asks the policy evaluator whether the call executes under OLD and under NEW. A call executes
when it is allowed, or when a `policy shadow` workflow lets it pass through."""

_CATALOGUE: list[tuple[str, str, str, str]] = [
    (
        "R0001",
        "permission widened",
        _W,
        _PERMISSIONS + "\n\nA call that OLD denies now executes. The change carries a counterexample: the workflow,"
        " tool, URL and risk of a request that OLD denies and NEW lets run. It needs a security review.",
    ),
    (
        "R0002",
        "permission narrowed",
        _N,
        _PERMISSIONS + "\n\nA call that executed under OLD is now denied. Check that no task relies on it.",
    ),
    (
        "R0003",
        "widening without a version bump",
        _W,
        """The change widens what the agent may do, but `agent NAME version N` was not raised. Deployed
runtimes, decision records and traces name the version: bump it so a reader of a trace can tell
which permissions were in force.""",
    ),
    ("R0004", "version changed", _0, "The agent's `version` changed."),
    (
        "R0101",
        "tool added",
        _0,
        "A tool was declared. Declaring a tool grants nothing: what a workflow may call shows as R0001/R0203.",
    ),
    ("R0102", "tool removed", _N, "A tool is no longer declared, so nothing can call it."),
    (
        "R0103",
        "tool risk lowered",
        _W,
        """A tool's `risk` was lowered. Risk decides the model tier a turn runs on and whether shadow
mode may pass the call through: a lower risk lets a weaker tier, or a shadow workflow, run it.""",
    ),
    ("R0104", "tool risk raised", _N, "A tool's `risk` was raised: it now needs a tier cleared for more."),
    (
        "R0105",
        "tool now read-only",
        _W,
        """A tool was declared `read_only`. A read-only tool is retried freely, needs no idempotency key and
may pass through a shadow workflow: the declaration is trusted, so it needs a review.""",
    ),
    ("R0106", "tool no longer read-only", _N, "A tool lost `read_only`: it is treated as changing state."),
    (
        "R0107",
        "idempotency key removed",
        _W,
        """A tool lost its `idempotency key`: a retried or replayed call may now act twice.""",
    ),
    ("R0108", "idempotency key added", _N, "A tool gained an `idempotency key`: a replay no longer acts twice."),
    (
        "R0109",
        "idempotency key changed",
        _0,
        """The template of an idempotency key changed: calls that were one may become two, or the reverse.
Check that the new key still names one action.""",
    ),
    (
        "R0110",
        "compensation removed",
        _W,
        "A tool lost its `compensate` tool: a failed task no longer undoes what it did.",
    ),
    ("R0111", "compensation added", _N, "A tool gained a `compensate` tool: a failed task undoes it."),
    ("R0112", "compensation changed", _0, "A tool is compensated by another tool than before."),
    (
        "R0113",
        "tool endpoint changed",
        _0,
        "A tool's method or URL changed. Where it may reach shows as R0001/R0002 when hosts differ.",
    ),
    (
        "R0114",
        "tool gains secrets",
        _W,
        "A tool runs as an identity holding secrets it did not hold before (`as IDENTITY`).",
    ),
    ("R0115", "tool loses secrets", _N, "A tool runs as an identity holding fewer secrets than before."),
    ("R0116", "tool secrets changed", _M, "A tool holds some new secrets and lost others."),
    ("R0117", "tool identity renamed", _0, "A tool runs as another identity holding the same secrets."),
    (
        "R0118",
        "tool contract changed",
        _0,
        "A tool's arguments, returns, headers, timeout or response size limit changed.",
    ),
    (
        "R0201",
        "workflow added",
        _0,
        "A workflow was declared. What it may call shows as R0001, each with a counterexample.",
    ),
    ("R0202", "workflow removed", _N, "A workflow is gone: requests naming it are denied."),
    ("R0203", "tool allowlist widened", _W, "A workflow's `tools allow` list gained tools."),
    ("R0204", "tool allowlist narrowed", _N, "A workflow's `tools allow` list lost tools."),
    ("R0205", "outbound allowlist widened", _W, "A workflow's `outbound allow` list gained hosts."),
    ("R0206", "outbound allowlist narrowed", _N, "A workflow's `outbound allow` list lost hosts."),
    (
        "R0207",
        "enforce to shadow",
        _W,
        """A workflow went from `policy enforce` to `policy shadow`: calls enforcement denies may now run
(read-only calls within the tier's clearance pass through and are recorded).""",
    ),
    ("R0208", "shadow to enforce", _N, "A workflow went from `policy shadow` to `policy enforce`."),
    (
        "R0209",
        "routed to a lower tier",
        _W,
        """A risk level is routed to a tier with lower clearance (or, at equal clearance, a cheaper one):
a weaker model decides those turns.""",
    ),
    ("R0210", "routed to a higher tier", _N, "A risk level is routed to a tier with higher clearance or price."),
    ("R0211", "routing changed both ways", _M, "Some risk levels go to a lower tier, others to a higher one."),
    ("R0212", "routing changed", _0, "Routes changed between tiers that do not compare (same clearance, no price)."),
    ("R0213", "steps changed", _0, "The durable steps of a workflow changed."),
    ("R0214", "session affinity changed", _0, "A workflow's session affinity header or TTL changed."),
    (
        "R0301",
        "tier clearance raised",
        _W,
        """A model tier `clears risk` higher than before: its model may now decide riskier turns.""",
    ),
    ("R0302", "tier clearance lowered", _N, "A model tier clears less risk than before."),
    (
        "R0303",
        "model chain changed",
        _0,
        """A tier's primary model or fallback chain changed. The change shows the price per 1,000 tasks of
each workflow whose turns run on the tier, at the token budgets its SLO declares.""",
    ),
    (
        "R0304",
        "tier price changed",
        _0,
        "A tier's declared price changed; the change shows the price per 1,000 tasks of its workflows.",
    ),
    ("R0305", "tier added", _0, "A model tier was declared."),
    ("R0306", "tier removed", _0, "A model tier is no longer declared."),
    ("R0307", "tier timeout changed", _0, "A model tier's timeout changed."),
    ("R0401", "identity gains secrets", _W, "An identity holds secrets it did not hold before."),
    ("R0402", "identity loses secrets", _N, "An identity holds fewer secrets than before."),
    ("R0403", "identity secrets changed", _M, "An identity gained some secrets and lost others."),
    ("R0404", "identity added", _0, "An identity was declared."),
    ("R0405", "identity removed", _N, "An identity is no longer declared."),
    (
        "R0501",
        "PII masking narrowed",
        _W,
        "A workflow masks fewer PII classes before persisting: more personal data is stored.",
    ),
    ("R0502", "PII masking widened", _N, "A workflow masks more PII classes before persisting."),
    ("R0503", "PII pattern changed", _0, "A custom `pii pattern` was added, removed or its regex changed."),
    (
        "R0601",
        "checkpoint cadence changed",
        _0,
        "A workflow's `checkpoint every N turns` changed (or its summary tier or store).",
    ),
    (
        "R0701",
        "SLO loosened",
        _W,
        """An SLO bound promises less: a latency, cost or denial bound raised or removed, a success or
cache-hit bound lowered or removed.""",
    ),
    ("R0702", "SLO tightened", _N, "An SLO bound promises more, or a new bound was declared."),
    ("R0703", "SLO changed", _0, "An SLO's percentile, token budget or webhook changed."),
    ("R0801", "auth tokens secret changed", _0, "The secret holding the bearer tokens changed."),
    ("R0802", "admin secret changed", _0, "The admin secret changed, was added or was removed."),
    ("R0803", "tenant header changed", _0, "The header naming the tenant changed."),
    ("R0804", "stores changed", _0, "A KV or R2 store was declared or removed."),
    ("R0805", "owner changed", _0, "The agent's `owner` changed."),
    (
        "R0901",
        "tool result kept as an artifact",
        _W,
        """A tool gained `artifact in STORE`: its (masked) result is now written to R2 and indexed, where
later sessions of the tenant can find it; the model reads a projection and a reference instead.""",
    ),
    ("R0902", "artifact no longer kept", _N, "A tool's result is no longer kept in R2: the model reads it whole."),
    ("R0903", "artifact changed", _0, "A tool keeps another field, in another store, or shows other fields."),
    ("R0904", "workflow writes a store", _W, "A workflow's `stores write` gained a store it may keep artifacts in."),
    ("R0905", "workflow writes fewer stores", _N, "A workflow's `stores write` lost a store."),
    (
        "R0906",
        "index allowlist widened",
        _W,
        "A workflow's `indexes allow` gained an index: its turns and steps may search what the tenant kept.",
    ),
    ("R0907", "index allowlist narrowed", _N, "A workflow's `indexes allow` lost an index."),
    ("R0908", "index added", _0, "A retrieval index was declared. Who may search it shows as R0906."),
    ("R0909", "index removed", _N, "A retrieval index is no longer declared."),
    ("R0910", "index changed", _0, "An index's store, `keyword` or `semantic` tier changed."),
]

CHANGE_CODES: dict[str, ChangeCode] = {
    code: ChangeCode(code, title, cls, text)  # type: ignore[arg-type]
    for code, title, cls, text in _CATALOGUE
}


def classification(code: str) -> Classification:
    return CHANGE_CODES[code].classification


def explain(code: str) -> str | None:
    """The text `agentspec explain` prints for a change code, or None when it is not one."""
    entry = CHANGE_CODES.get(code.upper())
    if entry is None:
        return None
    return f"{entry.code}: {entry.title} ({entry.classification})\n\n{entry.explanation}"
