"""Policy tables: the resolved model in, the JSON tables every allow/deny decision reads out.

The tables' shape is defined once, by the models in `agentspec.policy_schema`; `tables`
builds them through those models. The same tables are read by the generated runtime
(`src/runtime/policy.ts`, typed by the generated `policy_types.ts`) and by the Python
evaluator below (the simulator and the tests), so the two can be compared decision for
decision. The tables are stamped with the spec hash: a hash of the resolved
model, so reformatting a spec or moving its files does not change it, while any change
of meaning does.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal, TypedDict, cast

from agentspec import __version__, urlhost
from agentspec import model as m
from agentspec import policy_schema as s
from agentspec.policy_schema import FORMAT, PolicyTables
from agentspec.policy_schema import load_policy as load_policy
from agentspec.targets.cloudflare import EMBEDDING_MODELS, binding_name, vector_binding, workflow_binding

# The runtime's request limits (docs/runtime.md, "Error codes"): a body over this is a 413.
MAX_BODY_BYTES = 64 * 1024
MAX_SESSION_ID = 128


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8: the form every hash in agentspec is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# Fields added to the resolved model after specs were first hashed: left out of the hash while unset, so a
# spec that uses none of them keeps the hash it had.
_LATER_FIELDS = frozenset({"artifact", "index", "query", "top", "writes", "indexes"})


def _without_unset_later(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_unset_later(v) for k, v in value.items() if not (k in _LATER_FIELDS and (v is None or v == []))
        }
    if isinstance(value, list):
        return [_without_unset_later(v) for v in value]
    return value


def spec_hash(spec: m.RSpec) -> str:
    # An unsigned spec hashes as it did before `audit` existed: adding the field changed no deployed hash.
    exclude = {"files"} if spec.signing_secret is not None else {"files", "signing_secret"}
    meaning = _without_unset_later(spec.model_dump(mode="json", exclude=exclude))
    return "sha256:" + hashlib.sha256(canonical_json(meaning).encode()).hexdigest()


# The stamp of tables made with `stamped=False`: no spec hashes to it.
UNSTAMPED = "sha256:" + "0" * 64


def tables(spec: m.RSpec, *, stamped: bool = True) -> dict[str, Any]:
    """The policy tables of a checked agent as JSON-ready data: `policy_model(spec)` dumped, `policy.json`'s content."""
    return policy_model(spec, stamped=stamped).model_dump(mode="json", by_alias=True)


def policy_model(spec: m.RSpec, *, stamped: bool = True) -> s.PolicyTables:
    """The policy tables of a checked agent (its name, version and auth are set), as the schema's models.

    `stamped=False` leaves the spec hash out (`UNSTAMPED`) for a reader that compares decisions only, as
    the review does: hashing a 5,000-tool spec costs more than building its tables."""
    assert spec.version is not None and spec.tokens_secret is not None and spec.tenant_header is not None
    return s.PolicyTables(
        format=FORMAT,
        spec_hash=spec_hash(spec) if stamped else UNSTAMPED,
        compiler=f"agentspec {__version__}",
        agent=s.Agent(name=spec.name, version=spec.version, owner=spec.owner),
        auth=s.Auth(
            scheme="bearer",
            tokens_secret=spec.tokens_secret,
            admin_secret=spec.admin_secret,
            tenant_header=spec.tenant_header,
        ),
        audit=s.Audit(signing_secret=spec.signing_secret) if spec.signing_secret else None,
        limits=s.Limits(max_body_bytes=MAX_BODY_BYTES, max_session_id=MAX_SESSION_ID),
        stores={name: s.Store(kind=kind, binding=binding_name(name)) for name, kind in spec.stores},
        tiers={t.name: _tier(t) for t in spec.tiers},
        identities={name: s.Identity(secrets=list(secrets)) for name, secrets in spec.identities},
        tools={t.name: _tool(t) for t in spec.tools},
        workflows={w.name: _workflow(w) for w in spec.workflows},
        indexes={i.name: _index(i, spec) for i in spec.indexes},
    )


def _index(i: m.RIndex, spec: m.RSpec) -> s.IndexSpec:
    semantic = None
    if i.semantic_tier is not None:
        models = spec.tier(i.semantic_tier).models
        semantic = s.SemanticSpec(
            tier=i.semantic_tier,
            dimensions=EMBEDDING_MODELS[models[0]],
            vector_binding=vector_binding(i.name),
        )
    return s.IndexSpec(store=i.store, keyword=i.keyword, semantic=semantic)


def _tier(t: m.RTier) -> s.Tier:
    price = (
        s.Price(input_per_mtok=t.price_in, output_per_mtok=t.price_out)
        if t.price_in is not None and t.price_out is not None
        else None
    )
    return s.Tier(models=list(t.models), timeout_ms=t.timeout_ms, clearance=t.clearance, price=price)


def _fields(fields: tuple[m.RField, ...]) -> dict[str, s.FieldSpec]:
    return {f.name: cast(s.FieldSpec, f.type + ("?" if f.optional else "")) for f in fields}


def _tool(t: m.RTool) -> s.ToolSpec:
    return s.ToolSpec(
        method=t.method,
        url=t.url,
        host=t.host,
        risk=t.risk,
        read_only=t.read_only,
        idempotency_key=t.idempotency_key,
        timeout_ms=t.timeout_ms,
        identity=t.identity,
        secrets=list(t.secrets),
        headers=dict(t.headers),
        compensate=t.compensate,
        args=_fields(t.args),
        returns=_fields(t.returns) if t.returns is not None else None,
        max_response_bytes=t.max_response_bytes,
        artifact=(
            s.ArtifactSpec(
                store=t.artifact.store,
                binding=binding_name(t.artifact.store),
                field=t.artifact.field,
                show=list(t.artifact.show) if t.artifact.show is not None else None,
            )
            if t.artifact
            else None
        ),
    )


def _workflow(w: m.RWorkflow) -> s.Workflow:
    return s.Workflow(
        klass=w.klass,
        mode=w.mode,
        turn_risk=w.turn_risk,
        turn_tier=w.turn_tier,
        routes=dict(w.routes),
        tools=list(w.tools),
        outbound=list(w.outbound),
        affinity=s.Affinity(header=w.affinity_header, ttl_ms=w.ttl_ms),
        checkpoint=(
            s.Checkpoint(every=w.checkpoint_every, tier=w.checkpoint_tier, store=binding_name(w.checkpoint_store))
            if w.checkpoint_every is not None and w.checkpoint_tier and w.checkpoint_store
            else None
        ),
        pii=s.Pii(classes=list(w.pii_classes), patterns=dict(w.pii_patterns)),
        steps=[s.Step.model_validate(step.model_dump(exclude_none=True)) for step in w.steps],
        task_binding=workflow_binding(w.name) if w.steps else None,
        slo=s.SloTable.model_validate(w.slo.model_dump(exclude_none=True)),
        writes=list(w.writes),
        indexes=list(w.indexes),
    )


# ───────────────────────────── the Python evaluator ─────────────────────────────

Decision = Literal["allow", "deny", "shadow_deny"]


class Verdict(TypedDict):
    decision: Decision
    rule: str
    reason: str


def evaluate_tool_call(
    policy: PolicyTables | dict[str, Any], workflow: str, tool: str, url: str | None = None
) -> Verdict:
    """Decide a tool call exactly as `evaluateToolCall` in the runtime (src/runtime/policy.ts) does.

    `policy` is the tables' model or their JSON-ready dict (`tables(spec)`, a parsed `policy.json` read through
    `load_policy` once). The decision reads the dict form: the simulator and the review decide millions of calls,
    and validating the tables on every call would cost more than the decision.

    In shadow mode a would-be denial runs (`shadow_deny`) only for a `read_only` tool whose risk the workflow's
    turn tier clears; a state-changing or over-clearance call is denied for real, under its own rule.
    """
    if isinstance(policy, PolicyTables):
        policy = policy.model_dump(mode="json", by_alias=True)
    wf = policy["workflows"].get(workflow)
    if wf is None:
        return {"decision": "deny", "rule": "workflow.unknown", "reason": f"workflow `{workflow}` is not declared"}
    if tool not in policy["tools"]:
        return {"decision": "deny", "rule": "tools.unknown", "reason": f"tool `{tool}` is not declared"}
    spec = policy["tools"][tool]
    refused: Verdict | None = None
    if tool not in wf["tools"]:
        refused = {"decision": "deny", "rule": "tools.allowlist", "reason": f"tool `{tool}` is not allowed"}
    else:
        target = url or _PLACEHOLDER.sub("x", spec["url"])
        if not host_allowed(wf["outbound"], target):
            # Not urlsplit: it throws on a malformed bracketed host, which is a denial here, not a crash.
            host = re.split(r"[/?#]", target.split("//", 1)[-1], maxsplit=1)[0]
            refused = {"decision": "deny", "rule": "outbound.allowlist", "reason": f"host `{host}` is not allowed"}
    if refused is None:
        return {"decision": "allow", "rule": "tools.allow", "reason": f"tool `{tool}` is allowed"}
    if wf["mode"] != "shadow":
        return refused
    if not spec["read_only"]:
        return {"decision": "deny", "rule": "shadow.not_read_only", "reason": refused["reason"]}
    tier = policy["tiers"].get(wf["turn_tier"])
    clearance = tier["clearance"] if tier is not None else "low"
    if m.RISK_ORDER.get(spec["risk"], len(m.RISK_ORDER)) > m.RISK_ORDER.get(clearance, 0):
        return {"decision": "deny", "rule": "shadow.over_clearance", "reason": refused["reason"]}
    return {"decision": "shadow_deny", "rule": refused["rule"], "reason": refused["reason"]}


_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def host_allowed(allowed: list[str], url: str) -> bool:
    """`isHostAllowed` of src/runtime/guard.ts, with the URL's host canonicalized as the runtime's URL parser
    does (agentspec/urlhost.py)."""
    return urlhost.host_allowed(allowed, url)
