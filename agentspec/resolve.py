"""Resolution: parsed spec files in, the resolved model (a Resolution) and what resolution found out.

Resolution builds what the guarantee passes (agentspec/passes/) read: every declaration by name,
each tier, tool and workflow resolved (references followed, defaults applied, quantities in
base units), and beside each resolved value the syntax nodes it came from, so a pass that runs
late still points at the source. It reports only what resolving finds: a name declared twice
(E0101), not declared (E0102), a clause given twice (E0006) or missing (E0007), a value of the
wrong kind or out of range (E0601, E0602, E0603 for a fraction of a millisecond), a
placeholder naming nothing (E0604), a URL, header or host that does not parse (E0605-E0610),
a call's arguments that do not match its tool (E0611, E0612), an option a step cannot use
(E0008), a checkpoint store of the wrong kind (E0403) and a PII class nobody declares (E0404).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast, get_args
from urllib.parse import urlsplit

from agentspec import model as m
from agentspec.diagnostics import KEEP_HELP, Diagnostic, did_you_mean, form_help, report
from agentspec.hosts import canonical_problem, whatwg_host
from agentspec.platform import (
    BUILTIN_PII,
    DEFAULT_AFFINITY_HEADER,
    DEFAULT_MAX_RESPONSE,
    DEFAULT_STEP_DELAY_MS,
    DEFAULT_TIER_TIMEOUT_MS,
    DEFAULT_TOOL_TIMEOUT_MS,
    DEFAULT_TTL_MS,
    DEFAULT_WAIT_TIMEOUT_MS,
    SEARCH_FIELDS,
    SEARCH_TOP,
)

_NOWHERE = m.Span(file="", line=1, column=1, end_line=1, end_column=1, start=0, end=0)
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
RISKS: tuple[m.RiskLevel, ...] = ("low", "medium", "high")


def placeholders(text: str) -> list[str]:
    return PLACEHOLDER.findall(text)


# ───────────────────────────── clause tables, derived once from the model ─────────────────────────────

# Clauses a block may repeat; every other clause of a block may appear once (E0006).
_REPEATABLE: frozenset[type] = frozenset({m.Route, m.PiiPattern, m.Step})


def _clause_kinds(block: type[m.Block]) -> tuple[type, ...]:
    """The clause types a block's `clauses` field admits, read off the model's own union."""
    annotation = block.model_fields["clauses"].annotation
    (union,) = get_args(annotation)[:1]
    return tuple(k for k in get_args(union) or (union,) if k not in _REPEATABLE)


ONCE: dict[type, tuple[type, ...]] = {b: _clause_kinds(b) for b in (m.Tier, m.Tool, m.Index, m.Workflow, m.Step, m.Slo)}


@functools.cache
def _kinds_of(kinds: tuple[type, ...], clause: type) -> tuple[type, ...]:
    """The kinds among `kinds` that a clause of this type is one of (isinstance), worked out once per pair."""
    return tuple(k for k in kinds if issubclass(clause, k))


# How a diagnostic names a clause: its keyword, as the grammar writes it.
CLAUSE_NAMES: dict[type, str] = {
    m.Endpoint: "the endpoint",
    m.Risk: "`risk`",
    m.ReadOnly: "`read_only`",
    m.Idempotency: "`idempotency key`",
    m.Timeout: "`timeout`",
    m.Compensate: "`compensate`",
    m.RunAs: "`as`",
    m.Args: "`args`",
    m.Returns: "`returns`",
    m.Headers: "`headers`",
    m.MaxResponse: "`max response`",
    m.Artifact: "`artifact`",
    m.Keyword: "`keyword`",
    m.Semantic: "`semantic`",
    m.StoresWrite: "`stores write`",
    m.IndexesAllow: "`indexes allow`",
    m.Primary: "`primary`",
    m.Fallback: "`fallback`",
    m.Price: "`price`",
    m.Clears: "`clears risk`",
    m.ToolsAllow: "`tools allow`",
    m.OutboundAllow: "`outbound allow`",
    m.Policy: "`policy`",
    m.Affinity: "`session affinity`",
    m.Checkpoint: "`checkpoint`",
    m.PiiMask: "`pii mask`",
    m.Slo: "`slo`",
    m.Retry: "`retry`",
    m.Backoff: "`backoff`",
    m.Latency: "`latency`",
    m.Ttft: "`ttft`",
    m.Success: "`success`",
    m.Cost: "`cost per task`",
    m.CacheHit: "`cache hit`",
    m.Denied: "`denied`",
    m.Tokens: "`tokens per task`",
    m.Webhook: "`webhook`",
}

_EXAMPLES: dict[str, str] = {
    "duration": "a duration such as `30s`",
    "percent": "a percentage such as `99.5%`",
    "money": "an amount of money such as `$0.02`",
    "size": "a size such as `512KiB`",
    "number": "a plain number such as `3`",
}

_UNIT_EXAMPLE = {"duration": "{}s", "percent": "{}%", "money": "${}", "size": "{}KiB"}


# ───────────────────────────── the resolved model ─────────────────────────────


@dataclass(frozen=True)
class StepSite:
    """A resolved step and the step it was written as."""

    node: m.Step
    resolved: m.RStep


@dataclass(frozen=True)
class WorkflowSite:
    """A resolved workflow and the nodes its passes point at. `resolved` is None when it has no turn tier."""

    node: m.Workflow
    where: str
    allowed: tuple[str, ...]
    allow_refs: Mapping[str, m.Name]
    hosts: tuple[str, ...]
    mode: str
    routes: Mapping[str, str]
    route_nodes: Mapping[str, m.Route]
    turn_risk: m.RiskLevel
    turn_tier: str | None
    reachable: tuple[str, ...]
    steps: tuple[StepSite, ...]
    pii_patterns: Mapping[str, m.PiiPattern]
    slo: m.RSlo
    resolved: m.RWorkflow | None


@dataclass
class Resolution:
    """Everything declared, by name, and everything resolved; the passes' only input."""

    root: m.SpecFile
    libraries: list[m.SpecFile]
    tiers: dict[str, m.Tier] = field(default_factory=dict)
    identities: dict[str, m.Identity] = field(default_factory=dict)
    tools: dict[str, m.Tool] = field(default_factory=dict)
    stores: dict[str, m.Store] = field(default_factory=dict)
    indexes: dict[str, m.Index] = field(default_factory=dict)
    workflows: dict[str, m.Workflow] = field(default_factory=dict)
    secrets_declared: set[str] = field(default_factory=set)
    r_tiers: dict[str, m.RTier] = field(default_factory=dict)
    r_tools: dict[str, m.RTool] = field(default_factory=dict)
    r_indexes: dict[str, m.RIndex] = field(default_factory=dict)
    sites: list[WorkflowSite] = field(default_factory=list)
    spec: m.RSpec | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def identity_holding(self, secret: str) -> list[str]:
        return [i.name.value for i in self.identities.values() if secret in {s.value for s in i.secrets}]


def resolve(root: m.SpecFile, libraries: list[m.SpecFile]) -> Resolution:
    """Resolve a root file and its libraries; `spec` is set whether or not resolution found errors."""
    resolver = _Resolver(Resolution(root, libraries))
    resolver.run()
    return resolver.res


def _scratch() -> _Resolver:
    return _Resolver(
        Resolution(m.SpecFile.model_construct(path="", imports=(), body=cast(Any, None), span=_NOWHERE), [])
    )


def url_host(text: str) -> str | None:
    """The host (as the runtime's `URL.host` writes it) of a tool URL the checker accepts, else None."""
    resolver = _scratch()
    host = resolver.check_url(m.Str.model_construct(value=text, span=_NOWHERE), "a URL", None, "")
    return host if not resolver.res.diagnostics else None


def outbound_entry(text: str) -> str | None:
    """An `outbound allow` entry as the checker keeps it, or None when the checker refuses it."""
    return _scratch().outbound_entry(m.Str.model_construct(value=text, span=_NOWHERE))


def url_parts(text: str) -> tuple[Any, int | None] | None:
    """`urlsplit` of a URL template with its placeholders filled, and its port; None when it does not parse."""
    try:
        parts = urlsplit(PLACEHOLDER.sub("x", text))
        return parts, parts.port
    except ValueError:
        return None


class _Resolver:
    def __init__(self, res: Resolution) -> None:
        self.res = res

    def add(self, code: str, form: str, span: m.Span, *, help: str | None = KEEP_HELP, **fields: Any) -> None:
        self.res.diagnostics.append(report(code, form, span, help=help, **fields))

    def undefined(self, kind: str, ref: m.Name, known: Iterable[str]) -> None:
        self.add("E0102", "undefined", ref.span, help=did_you_mean(ref.value, known), kind=kind, name=ref.value)

    # quantities --------------------------------------------------------------

    def quantity(self, q: m.Quantity, *kinds: str, what: str) -> float | None:
        if q.kind not in kinds:
            example = _UNIT_EXAMPLE.get(kinds[0]) if q.kind == "number" else None
            self.add(
                "E0601",
                "unit",
                q.span,
                help=None if example is None else KEEP_HELP,
                what=what,
                expected=" or ".join(_EXAMPLES[k] for k in kinds),
                text=q.text,
                kind=kinds[0],
                example=(example or "").format(q.text),
            )
            return None
        if not math.isfinite(q.value):
            self.add("E0602", "too-large", q.span, what=what, text=q.text if len(q.text) <= 20 else q.text[:17] + "...")
            return None
        return q.value

    def duration(self, q: m.Quantity | None, what: str, default: int | None = None) -> int | None:
        if q is None:
            return default
        value = self.quantity(q, "duration", what=what)
        if value is None:
            return default
        if value <= 0:
            self.add("E0602", "not-positive", q.span, what=what, text=q.text)
            return default
        if value != int(value):
            self.add("E0603", "fraction-ms", q.span, what=what, text=q.text)
            return default
        return int(value)

    def percent(self, q: m.Quantity | None, what: str) -> float | None:
        if q is None:
            return None
        value = self.quantity(q, "percent", what=what)
        if value is not None and not 0 <= value <= 100:
            self.add("E0602", "percent", q.span, what=what, text=q.text)
            return None
        return value

    def whole(self, q: m.Quantity, what: str, minimum: int) -> int | None:
        value = self.quantity(q, "number", what=what)
        if value is None:
            return None
        if value != int(value) or value < minimum:
            self.add("E0602", "whole", q.span, what=what, minimum=minimum, text=q.text)
            return None
        return int(value)

    # clauses -----------------------------------------------------------------

    def once(self, block: m.Block, where: str) -> None:
        """E0006 for a clause given twice: the second would silently win."""
        kinds = ONCE[type(block)]
        # One pass counting the clauses of each kind; only a kind given twice is listed again.
        counts: dict[type, int] = {}
        for clause in block.clauses:
            for kind in _kinds_of(kinds, type(clause)):
                counts[kind] = counts.get(kind, 0) + 1
        for kind in kinds:
            if counts.get(kind, 0) < 2:
                continue
            extra: m.Node
            for extra in block.clauses_of(kind)[1:]:
                name = CLAUSE_NAMES.get(kind, kind.__name__.lower())
                self.add("E0006", "twice", extra.span, clause=name, where=where)

    def header_name(self, name: m.Str) -> None:
        # Letters, digits and dashes: every header name in practice, and safe to quote in the generated docs'
        # shell examples (HTTP would also allow `!#$%&'*+.^_|~` and backticks).
        if not re.fullmatch(r"[A-Za-z0-9-]+", name.value):
            self.add("E0609", "header", name.span, name=name.value)

    def fields(self, fields: tuple[m.Field, ...], where: str) -> set[str]:
        names: set[str] = set()
        for f in fields:
            if f.name.value in names:
                self.add("E0101", "field-twice", f.name.span, field=f.name.value, where=where)
            names.add(f.name.value)
        return names

    # the spec ----------------------------------------------------------------

    def run(self) -> None:
        res = self.res
        body = res.root.body
        self.declare([item for lib in res.libraries for item in lib.body.items] + list(body.items))
        for tier in res.tiers.values():
            res.r_tiers[tier.name.value] = self.resolve_tier(tier)
        res.secrets_declared = self.declared_secrets(body)
        for tool in res.tools.values():
            resolved = self.resolve_tool(tool)
            if resolved is not None:
                res.r_tools[tool.name.value] = resolved
        for index in res.indexes.values():
            r_index = self.resolve_index(index)
            if r_index is not None:
                res.r_indexes[index.name.value] = r_index
        res.sites = [self.resolve_workflow(w) for w in res.workflows.values()]
        if isinstance(body, m.Agent):
            res.spec = self.resolve_agent(body, [s.resolved for s in res.sites if s.resolved is not None])
        else:
            res.spec = m.RSpec(
                kind="library",
                name=body.name.value,
                version=None,
                owner=None,
                tokens_secret=None,
                admin_secret=None,
                tenant_header=None,
                stores=(),
                tiers=tuple(res.r_tiers.values()),
                identities=self.r_identities(),
                tools=tuple(res.r_tools.values()),
                workflows=(),
                files=self.files(),
            )

    def files(self) -> tuple[str, ...]:
        return (self.res.root.path, *(f.path for f in self.res.libraries))

    def r_identities(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple((i.name.value, tuple(s.value for s in i.secrets)) for i in self.res.identities.values())

    def declare(self, items: list[Any]) -> None:
        res = self.res
        tables: dict[type, tuple[dict[str, Any], str]] = {
            m.Tier: (res.tiers, "model tier"),
            m.Identity: (res.identities, "identity"),
            m.Tool: (res.tools, "tool"),
            m.Store: (res.stores, "store"),
            m.Index: (res.indexes, "index"),
            m.Workflow: (res.workflows, "workflow"),
        }
        for item in items:
            if type(item) not in tables:
                continue
            table, kind = tables[type(item)]
            name: m.Name = item.name
            if name.value in table:
                first = table[name.value].name.span
                notes = [f"first declared at {first}"]
                res.diagnostics.append(
                    report("E0101", "declared-twice", name.span, notes=notes, kind=kind, name=name.value)
                )
                continue
            table[name.value] = item

    def declared_secrets(self, body: m.Agent | m.Library) -> set[str]:
        secrets = {s.value for i in self.res.identities.values() for s in i.secrets}
        if isinstance(body, m.Agent):
            for auth in body.of(m.Auth):
                secrets.add(auth.tokens_secret.value)
                if auth.admin_secret:
                    secrets.add(auth.admin_secret.value)
            for audit in body.of(m.Audit):
                secrets.add(audit.signing_secret.value)
        return secrets

    # tiers -------------------------------------------------------------------

    def resolve_tier(self, tier: m.Tier) -> m.RTier:
        where = f"model tier `{tier.name.value}`"
        self.once(tier, where)
        primary = tier.first(m.Primary)
        if primary is None:
            self.add("E0007", "no-primary", tier.name.span, where=where)
        fallback = tier.first(m.Fallback)
        chain = ([primary.model] if primary else []) + list(fallback.models if fallback else ())
        seen: set[str] = set()
        for model_str in chain:
            if model_str.value in seen:
                self.add("E0101", "model-twice", model_str.span, model=model_str.value, where=where)
            seen.add(model_str.value)
            if not model_str.value.strip():
                self.add("E0602", "empty-model", model_str.span)
        price = tier.first(m.Price)
        price_in = price_out = None
        if price:
            price_in = self.quantity(price.input, "number", "money", what="an input price")
            price_out = self.quantity(price.output, "number", "money", what="an output price")
            for q, value in ((price.input, price_in), (price.output, price_out)):
                if value is not None and value < 0:
                    self.add("E0602", "negative-price", q.span, text=q.text)
        timeout = tier.first(m.Timeout)
        clears = tier.first(m.Clears)
        return m.RTier(
            name=tier.name.value,
            models=tuple(s.value for s in chain),
            timeout_ms=self.duration(timeout.duration if timeout else None, "a model timeout", DEFAULT_TIER_TIMEOUT_MS)
            or DEFAULT_TIER_TIMEOUT_MS,
            clearance=clears.risk.value if clears else "low",
            price_in=price_in,
            price_out=price_out,
        )

    # tools -------------------------------------------------------------------

    def resolve_tool(self, tool: m.Tool) -> m.RTool | None:
        name = tool.name.value
        where = f"tool `{name}`"
        self.once(tool, where)
        endpoint = tool.first(m.Endpoint)
        risk = tool.first(m.Risk)
        if endpoint is None:
            self.add("E0007", "no-endpoint", tool.name.span, where=where)
        if risk is None:
            self.add("E0007", "no-risk", tool.name.span, where=where)
        args = tool.first(m.Args)
        arg_fields = args.fields if args else ()
        arg_names = self.fields(arg_fields, f"the arguments of {where}")
        returns = tool.first(m.Returns)
        if returns:
            self.fields(returns.fields, f"the result of {where}")
        host = self.check_url(endpoint.url, "a tool URL", arg_names, where) if endpoint else ""
        idem = tool.first(m.Idempotency)
        if idem:
            self.key_placeholders(idem, arg_names, where)
        compensate = tool.first(m.Compensate)
        if compensate and compensate.tool.value not in self.res.tools:
            self.undefined("tool", compensate.tool, self.res.tools)
        run_as = tool.first(m.RunAs)
        if run_as and run_as.identity.value not in self.res.identities:
            self.undefined("identity", run_as.identity, self.res.identities)
        headers = tool.first(m.Headers)
        secrets = self.header_secrets(headers, where)
        timeout = tool.first(m.Timeout)
        max_bytes = self.max_response(tool.first(m.MaxResponse))
        artifact = self.artifact(tool.first(m.Artifact), returns, where)
        if endpoint is None or risk is None:
            return None
        return m.RTool(
            name=name,
            method=endpoint.method.value,
            url=endpoint.url.value,
            host=host,
            risk=risk.level.value,
            read_only=tool.first(m.ReadOnly) is not None,
            idempotency_key=idem.key.value if idem else None,
            timeout_ms=self.duration(timeout.duration if timeout else None, "a tool timeout", DEFAULT_TOOL_TIMEOUT_MS)
            or DEFAULT_TOOL_TIMEOUT_MS,
            identity=run_as.identity.value if run_as else None,
            secrets=tuple(sorted(set(secrets))),
            headers=tuple((h.name.value.lower(), h.value.value) for h in (headers.headers if headers else ())),
            compensate=compensate.tool.value if compensate else None,
            args=tuple(m.RField(name=f.name.value, type=f.type.value, optional=f.optional) for f in arg_fields),
            returns=tuple(m.RField(name=f.name.value, type=f.type.value, optional=f.optional) for f in returns.fields)
            if returns
            else None,
            max_response_bytes=max_bytes,
            artifact=artifact,
        )

    def artifact(self, clause: m.Artifact | None, returns: m.Returns | None, where: str) -> m.RArtifact | None:
        """A tool's `artifact` clause: its store declared, its field and `show` fields among the declared result
        fields (unchecked when the tool declares no `returns`). The store's kind is the retrieval pass's E0407."""
        if clause is None:
            return None
        if clause.store.value not in self.res.stores:
            self.undefined("store", clause.store, self.res.stores)
        declared = [f.name.value for f in returns.fields] if returns else None
        named = ([clause.field] if clause.field else []) + list(clause.show or ())
        for ref in named if declared is not None else ():
            if ref.value not in declared:  # type: ignore[operator]
                self.undefined(f"result field of {where}", ref, declared or ())
        show = tuple(n.value for n in clause.show) if clause.show is not None else None
        if clause.field is not None and show is not None and clause.field.value in show:
            self.add("E0101", "kept-and-shown", clause.field.span, field=clause.field.value)
        return m.RArtifact(store=clause.store.value, field=clause.field.value if clause.field else None, show=show)

    # retrieval indexes --------------------------------------------------------

    def resolve_index(self, index: m.Index) -> m.RIndex | None:
        where = f"index `{index.name.value}`"
        self.once(index, where)
        ok = True
        if index.store.value not in self.res.stores:
            self.undefined("store", index.store, self.res.stores)
            ok = False
        semantic = index.first(m.Semantic)
        if semantic is not None and semantic.tier.value not in self.res.tiers:
            self.undefined("model tier", semantic.tier, self.res.tiers)
            ok = False
        keyword = index.first(m.Keyword) is not None
        if not keyword and semantic is None:
            self.add("E0007", "no-index-kind", index.name.span, where=where)
        if not ok:
            return None
        return m.RIndex(
            name=index.name.value,
            store=index.store.value,
            keyword=keyword,
            semantic_tier=semantic.tier.value if semantic else None,
        )

    def key_placeholders(self, idem: m.Idempotency, arg_names: set[str], where: str) -> None:
        for placeholder in placeholders(idem.key.value):
            if placeholder in ("session", "workflow"):
                continue
            if placeholder.startswith("args.") and placeholder[5:] in arg_names:
                continue
            # Suggest by the argument's own name: `args.` shared by every candidate makes any two
            # look alike (`args.order_id` is no misspelling of `args.body`).
            close = did_you_mean(placeholder.removeprefix("args."), arg_names)
            better = close.replace("`", "`args.", 1) if close and placeholder.startswith("args.") else KEEP_HELP
            self.add("E0604", "key", idem.key.span, help=better, where=where, placeholder=placeholder)

    def header_secrets(self, headers: m.Headers | None, where: str) -> list[str]:
        """The secrets a tool's headers read; E0609/E0604 for a header that is not one."""
        secrets: list[str] = []
        for header in headers.headers if headers else ():
            self.header_name(header.name)
            for placeholder in placeholders(header.value.value):
                if not placeholder.startswith("secret."):
                    header_name = header.name.value
                    self.add(
                        "E0604", "header", header.value.span, header=header_name, where=where, placeholder=placeholder
                    )
                    continue
                secrets.append(placeholder[len("secret.") :])
        return secrets

    def max_response(self, clause: m.MaxResponse | None) -> int:
        if clause is None:
            return DEFAULT_MAX_RESPONSE
        value = self.quantity(clause.size, "size", what="a response size limit")
        if value is None:
            return DEFAULT_MAX_RESPONSE
        if value <= 0:
            self.add("E0602", "response-size", clause.size.span)
        return int(value)

    def check_url(self, url: m.Str, what: str, arg_names: set[str] | None, where: str) -> str:
        """Validate an absolute http(s) URL template; return its host (lowercase, with any port)."""
        text = url.value
        parsed = url_parts(text)
        if parsed is None or parsed[0].scheme not in ("http", "https") or not parsed[0].hostname:
            self.add("E0605", "not-absolute", url.span, what=what, text=text)
            return ""
        parts, port = parsed
        if parts.username or parts.password:
            self.add("E0606", "credentials", url.span, what=what)
        placeholder_host = "{" in urlsplit(text).netloc
        if placeholder_host:
            self.add("E0607", "host", url.span, what=what)
        for placeholder in placeholders(text) if arg_names is not None else ():
            if placeholder not in arg_names:  # type: ignore[operator]
                help = did_you_mean(placeholder, arg_names or ()) or KEEP_HELP
                self.add("E0604", "url", url.span, help=help, where=where, placeholder=placeholder)
        if placeholder_host:
            return ""  # no fixed host to check against the allowlist
        problem = canonical_problem(parts.hostname)
        if problem is not None:
            why, canonical = problem
            help = form_help("E0615", "write", canonical=canonical) if canonical else KEEP_HELP
            self.add("E0615", "url", url.span, help=help, what=what, host=parts.hostname, why=why)
            return ""
        return whatwg_host(parts.scheme, parts.hostname, port)

    # workflows ---------------------------------------------------------------

    def resolve_workflow(self, wf: m.Workflow) -> WorkflowSite:
        name = wf.name.value
        where = f"workflow `{name}`"
        self.once(wf, where)
        allowed, allow_refs = self.allowlist(wf)
        hosts = self.outbound(wf)
        policy = wf.first(m.Policy)
        mode = policy.mode.value if policy else "enforce"
        routes, route_nodes = self.routes(wf, where)
        risks = [self.res.r_tools[t].risk for t in allowed if t in self.res.r_tools]
        turn_risk: m.RiskLevel = max(risks, key=m.RISK_ORDER.__getitem__) if risks else "low"
        turn_tier = self.route_for(turn_risk, routes)
        if turn_tier is None and self.res.tiers:
            self.add("E0007", "no-turn-tier", wf.name.span, where=where)
        steps = self.resolve_steps(wf)
        affinity = wf.first(m.Affinity)
        if affinity:
            self.header_name(affinity.header)
        ttl = self.duration(affinity.ttl if affinity else None, "a session ttl", DEFAULT_TTL_MS) or DEFAULT_TTL_MS
        checkpoint = wf.first(m.Checkpoint)
        every, tier_name, store = self.checkpoint(checkpoint, where) if checkpoint else (None, None, None)
        patterns = self.pii_patterns(wf)
        pii_classes = self.pii_classes(wf, patterns)
        slo = self.resolve_slo(wf, where)
        writes = self.listed(wf.first(m.StoresWrite), self.res.stores, "store")
        indexes = self.listed(wf.first(m.IndexesAllow), self.res.indexes, "index")
        resolved = None
        if turn_tier is not None:
            resolved = m.RWorkflow(
                name=name,
                klass=wf.klass.value,
                mode=mode,
                routes=tuple((r, routes[r]) for r in RISKS if r in routes),
                turn_risk=turn_risk,
                turn_tier=turn_tier,
                tools=tuple(allowed),
                outbound=tuple(hosts),
                affinity_header=(affinity.header.value.lower() if affinity else DEFAULT_AFFINITY_HEADER),
                ttl_ms=ttl,
                checkpoint_every=every,
                checkpoint_tier=tier_name,
                checkpoint_store=store,
                pii_classes=pii_classes,
                pii_patterns=tuple((k, p.regex.value) for k, p in patterns.items()),
                steps=tuple(s.resolved for s in steps),
                slo=slo,
                writes=tuple(writes),
                indexes=tuple(indexes),
            )
        return WorkflowSite(
            node=wf,
            where=where,
            allowed=tuple(allowed),
            allow_refs=allow_refs,
            hosts=tuple(hosts),
            mode=mode,
            routes=routes,
            route_nodes=route_nodes,
            turn_risk=turn_risk,
            turn_tier=turn_tier,
            reachable=tuple(self.reachable_tools(wf, allowed)),
            steps=tuple(steps),
            pii_patterns=patterns,
            slo=slo,
            resolved=resolved,
        )

    def allowlist(self, wf: m.Workflow) -> tuple[list[str], dict[str, m.Name]]:
        allow = wf.first(m.ToolsAllow)
        allowed: list[str] = []
        allow_refs: dict[str, m.Name] = {}
        for ref in allow.tools if allow else ():
            if ref.value not in self.res.tools:
                self.undefined("tool", ref, self.res.tools)
                continue
            if ref.value in allow_refs:
                self.add("E0101", "listed-twice", ref.span, tool=ref.value)
                continue
            allow_refs[ref.value] = ref
            allowed.append(ref.value)
        return allowed, allow_refs

    def listed(self, clause: m.StoresWrite | m.IndexesAllow | None, table: Mapping[str, Any], kind: str) -> list[str]:
        """The declared names of a `stores write` or `indexes allow` list: E0102 for an undeclared one, E0101 twice."""
        if clause is None:
            return []
        refs = clause.stores if isinstance(clause, m.StoresWrite) else clause.indexes
        out: list[str] = []
        for ref in refs:
            if ref.value not in table:
                self.undefined(kind, ref, table)
            elif ref.value in out:
                self.add("E0101", "listed-twice-kind", ref.span, kind=kind, name=ref.value)
            else:
                out.append(ref.value)
        return out

    def outbound(self, wf: m.Workflow) -> list[str]:
        outbound = wf.first(m.OutboundAllow)
        entries = [self.outbound_entry(host) for host in (outbound.hosts if outbound else ())]
        return [e for e in entries if e is not None]

    def outbound_entry(self, host: m.Str) -> str | None:
        """An `outbound allow` entry, lowercased; None (and E0610 or E0615) when it is not a host."""
        value = host.value.strip().lower()
        if "/" in value or not re.fullmatch(r"[a-z0-9.-]+(:[0-9]{1,5})?|\[[0-9a-f:]+\](:[0-9]{1,5})?", value):
            self.add("E0610", "host", host.span, host=host.value)
            return None
        name = value[1 : value.index("]")] if value.startswith("[") else value.rsplit(":", 1)[0]
        problem = canonical_problem(name)
        if problem is not None:
            why, canonical = problem
            help = form_help("E0615", "write", canonical=canonical) if canonical else KEEP_HELP
            self.add("E0615", "entry", host.span, help=help, host=host.value, why=why)
            return None
        return value

    def routes(self, wf: m.Workflow, where: str) -> tuple[dict[str, str], dict[str, m.Route]]:
        routes: dict[str, str] = {}
        route_nodes: dict[str, m.Route] = {}
        for route in wf.clauses_of(m.Route):
            if route.risk.value in routes:
                self.add("E0006", "route-twice", route.span, risk=route.risk.value, where=where)
                continue
            if route.tier.value not in self.res.tiers:
                self.undefined("model tier", route.tier, self.res.tiers)
                continue
            routes[route.risk.value] = route.tier.value
            route_nodes[route.risk.value] = route
        return routes, route_nodes

    def route_for(self, risk: m.RiskLevel, routes: Mapping[str, str]) -> str | None:
        """The tier a risk level routes to: its own route, else the nearest lower one, else the first tier."""
        for level in reversed(RISKS[: RISKS.index(risk) + 1]):
            if level in routes:
                return routes[level]
        # Unrouted: the first tier the agent itself declares, so an imported library's tier never
        # becomes the default by accident; a library checked alone falls back to its own first tier.
        tiers = self.res.tiers
        own = [i.name.value for i in self.res.root.body.items if isinstance(i, m.Tier) and i.name.value in tiers]
        return own[0] if own else next(iter(tiers), None)

    def reachable_tools(self, wf: m.Workflow, allowed: list[str]) -> list[str]:
        """Allowed tools, tools that steps call, and everything their compensations reach."""
        out: list[str] = []
        todo = list(allowed) + [s.action.tool.value for s in wf.clauses_of(m.Step) if isinstance(s.action, m.Call)]
        while todo:
            name = todo.pop(0)
            if name in out or name not in self.res.tools:
                continue
            out.append(name)
            compensate = self.res.tools[name].first(m.Compensate)
            if compensate:
                todo.append(compensate.tool.value)
        return out

    def checkpoint(self, checkpoint: m.Checkpoint, where: str) -> tuple[int | None, str | None, str | None]:
        """Cadence (its range is the state pass's E0401), tier and KV store of a checkpoint clause."""
        cadence = self.quantity(checkpoint.every, "number", what="checkpoint cadence")
        every = int(cadence) if cadence is not None and cadence == int(cadence) and cadence >= 1 else None
        tier_name = None
        if checkpoint.tier.value not in self.res.tiers:
            self.undefined("model tier", checkpoint.tier, self.res.tiers)
        else:
            tier_name = checkpoint.tier.value
        return every, tier_name, self.checkpoint_store(checkpoint, where)

    def checkpoint_store(self, checkpoint: m.Checkpoint, where: str) -> str | None:
        kv = [s for s in self.res.stores.values() if s.kind.value == "kv"]
        if checkpoint.store is not None:
            store = self.res.stores.get(checkpoint.store.value)
            if store is None:
                self.undefined("store", checkpoint.store, self.res.stores)
                return None
            if store.kind.value != "kv":
                help = did_you_mean(checkpoint.store.value, [s.name.value for s in kv]) or KEEP_HELP
                self.add("E0403", "r2", checkpoint.store.span, help=help, store=store.name.value)
                return None
            return store.name.value
        if len(kv) == 1:
            return kv[0].name.value
        if not kv:
            self.add("E0403", "no-kv", checkpoint.span, where=where)
        else:
            self.add("E0403", "which-kv", checkpoint.span, where=where, count=len(kv), first=kv[0].name.value)
        return None

    def pii_patterns(self, wf: m.Workflow) -> dict[str, m.PiiPattern]:
        """The workflow's own detectors by name (validity is the state pass's E0405)."""
        patterns: dict[str, m.PiiPattern] = {}
        for pattern in wf.clauses_of(m.PiiPattern):
            name = pattern.name.value
            if name in patterns or name in BUILTIN_PII:
                self.add(
                    "E0101", "detector-twice" if name in patterns else "detector-builtin", pattern.name.span, name=name
                )
                continue
            patterns[name] = pattern
        return patterns

    def pii_classes(self, wf: m.Workflow, patterns: Mapping[str, m.PiiPattern]) -> tuple[str, ...]:
        mask = wf.first(m.PiiMask)
        classes: list[str] = []
        known = [*BUILTIN_PII, *patterns]
        for cls in mask.classes if mask else ():
            if cls.value not in known:
                builtins = ", ".join(f"`{c}`" for c in BUILTIN_PII)
                help = did_you_mean(cls.value, known) or KEEP_HELP
                self.add("E0404", "unknown", cls.span, help=help, name=cls.value, builtins=builtins)
                continue
            if cls.value not in classes:
                classes.append(cls.value)
        return tuple(classes)

    # steps -------------------------------------------------------------------

    def resolve_steps(self, wf: m.Workflow) -> list[StepSite]:
        out: list[StepSite] = []
        earlier: dict[str, set[str] | None] = {}  # step name -> fields its result has (None: unknown)
        for step in wf.clauses_of(m.Step):
            name = step.name.value
            where = f"step `{name}`"
            self.once(step, where)
            if name in earlier or name == "params":
                self.add("E0101", "step-twice" if name != "params" else "params-step", step.name.span, step=name)
                continue
            retry = step.first(m.Retry)
            retries = self.whole(retry.count, "a retry count", 0) if retry else 0
            backoff = step.first(m.Backoff)
            delay = self.duration(backoff.delay if backoff else None, "a backoff delay", DEFAULT_STEP_DELAY_MS)
            self.unusable_options(step, where)
            extra, fields, default_timeout = self.action(step.action, earlier, where)
            timeout_clause = step.first(m.Timeout)
            timeout = (
                self.duration(timeout_clause.duration if timeout_clause else None, "a step timeout", default_timeout)
                or default_timeout
            )
            earlier[name] = fields
            resolved = m.RStep(
                name=name,
                retries=retries or 0,
                backoff=(backoff.strategy.value if backoff else "exponential"),
                delay_ms=delay or DEFAULT_STEP_DELAY_MS,
                timeout_ms=timeout,
                **extra,
            )
            out.append(StepSite(step, resolved))
        return out

    def action(
        self, action: m.StepAction, earlier: dict[str, set[str] | None], where: str
    ) -> tuple[dict[str, Any], set[str] | None, int]:
        """A step action's resolved fields, the fields its result has (None: unknown) and its default timeout."""
        if isinstance(action, m.Call):
            return self.call(action, earlier, where)
        if isinstance(action, m.Infer):
            default_timeout = DEFAULT_TOOL_TIMEOUT_MS
            if action.tier.value not in self.res.tiers:
                self.undefined("model tier", action.tier, self.res.tiers)
            else:
                tier = self.res.r_tiers[action.tier.value]
                default_timeout = tier.timeout_ms * max(1, len(tier.models))
            self.check_template(action.prompt, earlier, where)
            return (
                {"kind": "infer", "tier": action.tier.value, "prompt": action.prompt.value},
                {"text"},
                default_timeout,
            )
        if isinstance(action, m.Search):
            if action.index.value not in self.res.indexes:
                self.undefined("index", action.index, self.res.indexes)
            self.check_template(action.query, earlier, where)
            top = self.whole(action.top, "a result count", 1) if action.top else None
            return (
                {"kind": "search", "index": action.index.value, "query": action.query.value, "top": top or SEARCH_TOP},
                set(SEARCH_FIELDS),
                DEFAULT_TOOL_TIMEOUT_MS,
            )
        if isinstance(action, m.Sleep):
            duration = self.duration(action.duration, "a sleep")
            return {"kind": "sleep", "duration_ms": duration}, set(), DEFAULT_TOOL_TIMEOUT_MS
        return {"kind": "wait", "event": action.event.value}, None, DEFAULT_WAIT_TIMEOUT_MS

    def call(
        self, action: m.Call, earlier: dict[str, set[str] | None], where: str
    ) -> tuple[dict[str, Any], set[str] | None, int]:
        tool_name = action.tool.value
        tool = self.res.r_tools.get(tool_name)
        if tool_name not in self.res.tools:
            self.undefined("tool", action.tool, self.res.tools)
        fields = {f.name for f in tool.returns} if tool is not None and tool.returns is not None else None
        args = None
        if action.args is not None:
            args = []
            seen: set[str] = set()
            declared = [f.name for f in tool.args] if tool is not None else []
            for arg in action.args:
                if arg.name.value in seen:
                    self.add("E0101", "argument-twice", arg.name.span, arg=arg.name.value)
                seen.add(arg.name.value)
                if tool is not None and arg.name.value not in declared:
                    help = did_you_mean(arg.name.value, declared)
                    self.add("E0611", "unknown", arg.name.span, help=help, tool=tool_name, arg=arg.name.value)
                self.check_template(arg.template, earlier, where)
                args.append((arg.name.value, arg.template.value))
            missing = [f.name for f in tool.args if not f.optional and f.name not in seen] if tool else []
            if missing:
                self.add("E0612", "missing", action.span, where=where, arg=missing[0], tool=tool_name)
        timeout = tool.timeout_ms if tool is not None else DEFAULT_TOOL_TIMEOUT_MS
        return {"kind": "call", "tool": tool_name, "args": tuple(args) if args is not None else None}, fields, timeout

    def unusable_options(self, step: m.Step, where: str) -> None:
        """A sleep is neither retried nor timed out, and a wait is not retried (its `timeout` is how long it
        waits): an option written there would be dropped without a word."""
        action = step.action
        if isinstance(action, m.Sleep):
            unusable: tuple[type, ...] = (m.Retry, m.Backoff, m.Timeout)
            what = "a `sleep` step"
        elif isinstance(action, m.WaitEvent):
            unusable, what = (m.Retry, m.Backoff), "a `wait event` step"
        else:
            return
        why = " (a wait's `timeout` is how long it waits)" if isinstance(action, m.WaitEvent) else ""
        for option in step.clauses:
            if isinstance(option, unusable):
                word = {m.Retry: "retry", m.Backoff: "backoff", m.Timeout: "timeout"}[type(option)]
                self.add("E0008", "unusable", option.span, where=where, what=what, word=word, why=why)

    def check_template(self, template: m.Str, earlier: dict[str, set[str] | None], where: str) -> None:
        for placeholder in placeholders(template.value):
            head, _, rest = placeholder.partition(".")
            if head == "params" and rest:
                continue
            if head in earlier and rest:
                fields = earlier[head]
                if fields is None or rest.split(".")[0] in fields:
                    continue
                listed = ", ".join(f"`{f}`" for f in sorted(fields)) or "nothing"
                self.add(
                    "E0604",
                    "step-field",
                    template.span,
                    help=did_you_mean(rest, fields) or KEEP_HELP,
                    where=where,
                    placeholder=placeholder,
                    step=head,
                    field=rest,
                    fields=listed,
                )
                continue
            known = ", ".join(f"`{{{k}}}`" for k in ["params.NAME", *(f"{s}.FIELD" for s in earlier)])
            help = did_you_mean(head, list(earlier)) or KEEP_HELP
            self.add("E0604", "step", template.span, help=help, where=where, placeholder=placeholder, known=known)

    # service levels ----------------------------------------------------------

    def resolve_slo(self, wf: m.Workflow, where: str) -> m.RSlo:
        slo = wf.first(m.Slo)
        if slo is None:
            return m.RSlo()
        self.once(slo, f"the `slo` of {where}")
        self.directions(slo)
        values: dict[str, Any] = {}
        latency = slo.first(m.Latency)
        if latency:
            values["latency_percentile"] = self.percentile(latency.percentile)
            values["latency_ms"] = self.duration(latency.bound, "a latency bound")
        ttft = slo.first(m.Ttft)
        if ttft:
            values["ttft_percentile"] = self.percentile(ttft.percentile)
            values["ttft_ms"] = self.duration(ttft.bound, "a time-to-first-token bound")
        success = slo.first(m.Success)
        if success:
            values["success_pct"] = self.percent(success.bound, "a success rate")
        denied = slo.first(m.Denied)
        if denied:
            values["denied_pct"] = self.percent(denied.bound, "a denied ratio")
        cache = slo.first(m.CacheHit)
        if cache:
            values["cache_hit_pct"] = self.percent(cache.bound, "a cache-hit rate")
            values["cache_drop_pct"] = self.percent(cache.alert_drop, "an alert threshold")
        cost = slo.first(m.Cost)
        if cost:
            value = self.quantity(cost.bound, "money", what="a cost bound")
            if value is not None and value <= 0:
                self.add("E0602", "cost", cost.bound.span)
            values["cost_usd"] = value
        tokens = slo.first(m.Tokens)
        if tokens:
            values["tokens_in"] = self.whole(tokens.input, "an input token count", 0)
            values["tokens_out"] = self.whole(tokens.output, "an output token count", 0)
        webhook = slo.first(m.Webhook)
        if webhook:
            self.check_url(webhook.url, "an alert webhook", None, where)
            values["webhook"] = webhook.url.value
        return m.RSlo(**{k: v for k, v in values.items() if v is not None})

    def directions(self, slo: m.Slo) -> None:
        # An SLO bounds latency, cost and denials from above and success and cache hits from below;
        # the feasibility arithmetic relies on it.
        bounds: list[tuple[m.Latency | m.Ttft | m.Cost | m.Denied | m.Success | m.CacheHit | None, bool]] = [
            (slo.first(m.Latency), True),
            (slo.first(m.Ttft), True),
            (slo.first(m.Cost), True),
            (slo.first(m.Denied), True),
            (slo.first(m.Success), False),
            (slo.first(m.CacheHit), False),
        ]
        for clause, upper in bounds:
            if clause is None:
                continue
            comparator = clause.comparator
            if (comparator.value in ("<", "<=")) != upper:
                right = "`<` or `<=`" if upper else "`>` or `>=`"
                self.add("E0602", "direction", comparator.span, right=right)

    def percentile(self, word: m.Word) -> str | None:
        value = float(word.value[1:])
        if not 0 < value < 100:
            self.add("E0602", "percentile", word.span, text=word.value)
            return None
        return word.value

    # the agent ---------------------------------------------------------------

    def resolve_agent(self, agent: m.Agent, workflows: list[m.RWorkflow]) -> m.RSpec:
        res = self.res
        agent_name = agent.name.value
        for kind, label in ((m.Owner, "`owner`"), (m.Auth, "`auth`"), (m.Tenant, "`tenant`"), (m.Audit, "`audit`")):
            for extra in agent.of(kind)[1:]:
                self.add("E0006", "twice", extra.span, clause=label, where=f"agent `{agent_name}`")
        version = self.whole(agent.version, "an agent version", 1)
        auth = next(iter(agent.of(m.Auth)), None)
        tenant = next(iter(agent.of(m.Tenant)), None)
        if auth is None:
            self.add("E0007", "no-auth", agent.name.span, agent=agent_name)
        if tenant is None:
            self.add("E0007", "no-tenant", agent.name.span, agent=agent_name)
        else:
            self.header_name(tenant.header)
        if not res.tiers:
            self.add("E0007", "no-tiers", agent.name.span, agent=agent_name)
        owner = next(iter(agent.of(m.Owner)), None)
        audit = next(iter(agent.of(m.Audit)), None)
        return m.RSpec(
            kind="agent",
            name=agent_name,
            version=version,
            owner=owner.value.value if owner else None,
            tokens_secret=auth.tokens_secret.value if auth else None,
            admin_secret=auth.admin_secret.value if auth and auth.admin_secret else None,
            tenant_header=tenant.header.value.lower() if tenant else None,
            signing_secret=audit.signing_secret.value if audit else None,
            stores=tuple((s.name.value, s.kind.value) for s in res.stores.values()),
            tiers=tuple(res.r_tiers.values()),
            identities=self.r_identities(),
            tools=tuple(res.r_tools.values()),
            workflows=tuple(workflows),
            files=self.files(),
            indexes=tuple(res.r_indexes.values()),
        )
