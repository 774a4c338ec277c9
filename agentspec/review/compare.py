"""Model comparison: two checked sides in, every field-level change of meaning out.

Reads the resolved models (`agentspec.model.RSpec`), so clause order, formatting, comments and
file names never show as changes. Each change gets the code whose class fits its direction (see
`classify`), and the places it is written on both sides, found through the syntax model's spans.
Permission verdicts per (workflow, tool, host) are the `counterexamples` stage's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentspec import model as m
from agentspec.review import classify as cl
from agentspec.review import tables as tb
from agentspec.review.change import Change, Location
from agentspec.review.sources import Side, Where

Key = tuple[str, ...]


# ───────────────────────────── where things are written ─────────────────────────────


def span_index(side: Side) -> tuple[dict[Key, m.Span], dict[Key, m.Node]]:
    """The agent header's spans by key, and each tier, tool and workflow declaration by (kind, name).

    Clauses are indexed only when a change asks for one (`Locator.at`): a 5,000-tool spec has
    hundreds of thousands of clause spans and a review reads a few hundred of them.
    """
    index: dict[Key, m.Span] = {}
    decls: dict[Key, m.Node] = {}
    kinds: dict[type, str] = {m.Tier: "tier", m.Tool: "tool", m.Workflow: "workflow", m.Index: "index"}
    for f in side.loaded.files:
        body = f.body
        if isinstance(body, m.Agent):
            index.setdefault(("agent",), body.name.span)
            index.setdefault(("version",), body.version.span)
        for item in body.items:
            if isinstance(item, (m.Tier, m.Tool, m.Workflow, m.Index)):
                decls.setdefault((kinds[type(item)], item.name.value), item)
            elif isinstance(item, m.Owner):
                index.setdefault(("owner",), item.span)
            elif isinstance(item, m.Auth):
                index.setdefault(("auth",), item.span)
                index.setdefault(("admin",), item.admin_secret.span if item.admin_secret else item.span)
            elif isinstance(item, m.Tenant):
                index.setdefault(("tenant",), item.span)
            elif isinstance(item, m.Store):
                index.setdefault(("store", item.name.value), item.span)
            elif isinstance(item, m.Identity):
                index.setdefault(("identity", item.name.value), item.span)
    return index, decls


def _clause_spans(decl: m.Node) -> dict[Key, m.Span]:
    index: dict[Key, m.Span] = {}

    def put(key: Key, span: m.Span) -> None:
        index.setdefault(key, span)

    _put_clause_spans(put, decl)
    return index


def _put_clause_spans(put: Any, decl: m.Node) -> None:
    """`put(key, span)` each key a declaration writes: the one place that knows every declaration kind."""
    if isinstance(decl, m.Tier):
        _tier_spans(put, decl)
    elif isinstance(decl, m.Tool):
        _tool_spans(put, decl)
    elif isinstance(decl, m.Workflow):
        _workflow_spans(put, decl)
    elif isinstance(decl, m.Index):
        put(("index", decl.name.value), decl.name.span)
        for c in decl.clauses:
            put(("index", decl.name.value, "kind"), c.span)


def _tier_spans(put: Any, tier: m.Tier) -> None:
    name = tier.name.value
    put(("tier", name), tier.name.span)
    for c in tier.clauses:
        kind = {m.Clears: "clears", m.Price: "price", m.Timeout: "timeout"}.get(type(c), "models")
        put(("tier", name, kind), c.span)


_TOOL_CLAUSES: dict[type, str] = {
    m.Endpoint: "endpoint",
    m.Risk: "risk",
    m.ReadOnly: "read_only",
    m.Idempotency: "idempotency",
    m.Compensate: "compensate",
    m.RunAs: "identity",
    m.Artifact: "artifact",
}


def _tool_spans(put: Any, tool: m.Tool) -> None:
    name = tool.name.value
    put(("tool", name), tool.name.span)
    for c in tool.clauses:
        put(("tool", name, _TOOL_CLAUSES.get(type(c), "contract")), c.span)


def _workflow_spans(put: Any, wf: m.Workflow) -> None:
    name = wf.name.value
    put(("workflow", name), wf.name.span)
    for c in wf.clauses:
        if isinstance(c, m.Route):
            put(("workflow", name, "route", c.risk.value), c.span)
            put(("workflow", name, "route"), c.span)
        elif isinstance(c, m.ToolsAllow):
            put(("workflow", name, "tools"), c.span)
            for t in c.tools:
                put(("workflow", name, "tools", t.value), t.span)
        elif isinstance(c, m.OutboundAllow):
            put(("workflow", name, "outbound"), c.span)
            for h in c.hosts:
                put(("workflow", name, "outbound", h.value), h.span)
        elif isinstance(c, m.PiiMask):
            put(("workflow", name, "pii"), c.span)
            for p in c.classes:
                put(("workflow", name, "pii", p.value), p.span)
        elif isinstance(c, m.PiiPattern):
            put(("workflow", name, "pii_pattern", c.name.value), c.span)
        elif isinstance(c, (m.StoresWrite, m.IndexesAllow)):
            clause, refs = ("writes", c.stores) if isinstance(c, m.StoresWrite) else ("indexes", c.indexes)
            put(("workflow", name, clause), c.span)
            for ref in refs:
                put(("workflow", name, clause, ref.value), ref.span)
        else:
            # A clause kind not named here (a newer language feature) is still located, under its own name,
            # rather than failing the whole review.
            kind = {
                m.Policy: "policy",
                m.Affinity: "affinity",
                m.Checkpoint: "checkpoint",
                m.Step: "steps",
                m.Slo: "slo",
            }.get(type(c), type(c).__name__.lower())
            put(("workflow", name, kind), c.span)


def written(side: Side) -> dict[Key, Where]:
    """Every key's place on a side, clauses included: what a `Locator` reads, without the syntax model."""
    spans, decls = span_index(side)
    index: dict[Key, Where] = {k: (span.file, span.line, span.column) for k, span in spans.items()}

    def put(key: Key, span: m.Span) -> None:  # the first place wins, as in `_clause_spans` and `Locator.at`
        if key not in index:
            index[key] = (span.file, span.line, span.column)

    for decl in decls.values():
        _put_clause_spans(put, decl)
    return index


class Locator:
    """The location of a key on one side: the nearest written ancestor, else the agent's name."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.index: dict[Key, m.Span | Where]
        self.decls: dict[Key, m.Node]
        if side.spans is not None:  # checked in a worker process: every key is indexed already
            self.index, self.decls = dict(side.spans), {}
        else:
            spans, self.decls = span_index(side)
            self.index = dict(spans)
        self.done: set[Key] = set()

    @classmethod
    def of(cls, side: Side) -> Locator:
        """One locator per side, shared by every stage of a review."""
        if not isinstance(side.locator, Locator):
            side.locator = cls(side)
        return side.locator

    def at(self, *key: str) -> Location:
        decl_key = key[:2]
        if len(key) >= 2 and decl_key not in self.done and decl_key in self.decls:
            self.done.add(decl_key)
            for k, span in _clause_spans(self.decls[decl_key]).items():
                self.index.setdefault(k, span)
        for n in range(len(key), 0, -1):
            found = self.index.get(key[:n])
            if found is not None:
                return self._location(found)
        return self._location(self.index[("agent",)])

    def _location(self, place: m.Span | Where) -> Location:
        file, line, column = place if isinstance(place, tuple) else (place.file, place.line, place.column)
        return Location(self.side.display(file), line, column)


# ───────────────────────────── the comparison ─────────────────────────────


def _show(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, (set, frozenset, list, tuple)):
        return "[" + ", ".join(str(v) for v in sorted(value, key=str)) + "]"
    return str(value)


class Comparison:
    """Collects the changes between two sides."""

    def __init__(self, old: Side, new: Side) -> None:
        self.old, self.new = old, new
        self.o, self.n = old.spec, new.spec
        self.old_at, self.new_at = Locator.of(old), Locator.of(new)
        self.agent = new.spec.name
        self.changes: list[Change] = []
        # A tool's and a workflow's table entries project every field of their resolved models, and
        # plain dicts compare far faster than pydantic models: unchanged ones are skipped by them.
        self.old_tools, self.new_tools = tb.tools(old.tables), tb.tools(new.tables)
        self.old_wfs, self.new_wfs = tb.workflows(old.tables), tb.workflows(new.tables)

    def add(
        self,
        code: str,
        subject: Key,
        message: str,
        old: object = None,
        new: object = None,
        where: Key | None = None,
        old_where: Key | None = None,
        note: str | None = None,
    ) -> None:
        key = where or subject
        self.changes.append(
            Change(
                code=code,
                agent=self.agent,
                subject=subject,
                message=message,
                old=None if old is None else _show(old),
                new=None if new is None else _show(new),
                # A side without the item points at its nearest enclosing declaration.
                old_at=self.old_at.at(*(old_where or key)),
                new_at=self.new_at.at(*key),
                note=note,
            )
        )

    def run(self) -> list[Change]:
        self.service()
        self.tiers()
        self.identities()
        self.tools()
        self.indexes()
        self.workflows()
        return self.changes

    # ── agent header ──

    def service(self) -> None:
        o, n = self.o, self.n
        if o.version != n.version:
            self.add("R0004", ("version",), f"version `{o.version}` -> `{n.version}`", o.version, n.version)
        if o.owner != n.owner:
            self.add("R0805", ("owner",), "owner changed", o.owner, n.owner)
        if o.tokens_secret != n.tokens_secret:
            self.add("R0801", ("auth",), "bearer tokens secret changed", o.tokens_secret, n.tokens_secret)
        if o.admin_secret != n.admin_secret:
            self.add("R0802", ("admin",), "admin secret changed", o.admin_secret, n.admin_secret)
        if o.tenant_header != n.tenant_header:
            self.add("R0803", ("tenant",), "tenant header changed", o.tenant_header, n.tenant_header)
        if set(o.stores) != set(n.stores):
            # Point at a store that changed on each side (the agent's name when a side has none).
            first_new = min(set(n.stores) - set(o.stores), default=("", ""))[0]
            first_old = min(set(o.stores) - set(n.stores), default=("", ""))[0]
            self.add(
                "R0804",
                ("stores",),
                "stores changed",
                [f"{k} {s}" for s, k in o.stores],
                [f"{k} {s}" for s, k in n.stores],
                where=("store", first_new) if first_new else ("agent",),
                old_where=("store", first_old) if first_old else ("agent",),
            )

    # ── tiers ──

    def tiers(self) -> None:
        old = {t.name: t for t in self.o.tiers}
        new = {t.name: t for t in self.n.tiers}
        for name in sorted(old.keys() | new.keys()):
            subject = ("tier", name)
            a, b = old.get(name), new.get(name)
            if a is None:
                self.add("R0305", subject, f"tier `{name}` added")
                continue
            if b is None:
                self.add("R0306", subject, f"tier `{name}` removed")
                continue
            direction = cl.risk_direction(a.clearance, b.clearance)
            if direction != "neutral":
                code = "R0301" if direction == "widening" else "R0302"
                self.add(code, (*subject, "clears"), f"tier `{name}` clears risk", a.clearance, b.clearance)
            if a.models != b.models:
                self.add(
                    "R0303",
                    (*subject, "models"),
                    f"tier `{name}` models changed",
                    " -> ".join(a.models),
                    " -> ".join(b.models),
                    note=self.price_note(workflows_on=name),
                )
            if (a.price_in, a.price_out) != (b.price_in, b.price_out):
                self.add(
                    "R0304",
                    (*subject, "price"),
                    f"tier `{name}` price changed",
                    cl.price(a),
                    cl.price(b),
                    note=self.price_note(workflows_on=name),
                )
            if a.timeout_ms != b.timeout_ms:
                self.add(
                    "R0307", (*subject, "timeout"), f"tier `{name}` timeout", f"{a.timeout_ms}ms", f"{b.timeout_ms}ms"
                )

    def price_note(self, workflows_on: str | None = None, workflow: str | None = None) -> str | None:
        """The price per 1,000 tasks of the affected workflows, at their declared token budgets."""
        old = {w.name: w for w in self.o.workflows}
        new = {w.name: w for w in self.n.workflows}
        parts = []
        for name in sorted(old.keys() & new.keys()):
            a, b = old[name], new[name]
            if workflow is not None and name != workflow:
                continue
            if workflows_on is not None and workflows_on not in (a.turn_tier, b.turn_tier):
                continue
            before, after = cl.cost_per_1000(self.o, a), cl.cost_per_1000(self.n, b)
            if before is None or after is None:
                parts.append(f"`{name}` has no token budget and price to price")
            else:
                delta = after - before
                sign = "+" if delta >= 0 else "-"
                parts.append(f"`{name}` ${before:,.2f} -> ${after:,.2f} ({sign}${abs(delta):,.2f})")
        return "price per 1,000 tasks: " + "; ".join(parts) if parts else None

    # ── identities ──

    def identities(self) -> None:
        old, new = dict(self.o.identities), dict(self.n.identities)
        for name in sorted(old.keys() | new.keys()):
            subject = ("identity", name)
            if name not in old:
                self.add("R0404", subject, f"identity `{name}` added", None, new[name])
            elif name not in new:
                self.add("R0405", subject, f"identity `{name}` removed", old[name], None)
            else:
                code = cl.set_code(set(old[name]), set(new[name]), gained="R0401", lost="R0402", both="R0403")
                if code:
                    self.add(code, subject, f"identity `{name}` secrets", old[name], new[name])

    # ── tools ──

    def tools(self) -> None:
        old = {t.name: t for t in self.o.tools}
        new = {t.name: t for t in self.n.tools}
        for name in sorted(old.keys() | new.keys()):
            a, b = old.get(name), new.get(name)
            if a is None:
                assert b is not None
                self.add("R0101", ("tool", name), f"tool `{name}` added (risk `{b.risk}`)")
            elif b is None:
                self.add("R0102", ("tool", name), f"tool `{name}` removed")
            elif self.old_tools.get(name) != self.new_tools.get(name):
                self.tool(name, a, b)

    def tool(self, name: str, a: m.RTool, b: m.RTool) -> None:
        s = ("tool", name)
        direction = cl.risk_direction(b.risk, a.risk)  # a lower risk widens
        if direction != "neutral":
            self.add(
                "R0103" if direction == "widening" else "R0104", (*s, "risk"), f"tool `{name}` risk", a.risk, b.risk
            )
        if a.read_only != b.read_only:
            self.add(
                "R0105" if b.read_only else "R0106",
                (*s, "read_only"),
                f"tool `{name}` read-only",
                a.read_only,
                b.read_only,
            )
        code = cl.optional_code(a.idempotency_key, b.idempotency_key, removed="R0107", added="R0108", changed="R0109")
        if code:
            self.add(code, (*s, "idempotency"), f"tool `{name}` idempotency key", a.idempotency_key, b.idempotency_key)
        code = cl.optional_code(a.compensate, b.compensate, removed="R0110", added="R0111", changed="R0112")
        if code:
            self.add(code, (*s, "compensate"), f"tool `{name}` compensation", a.compensate, b.compensate)
        if (a.method, a.url) != (b.method, b.url):
            self.add("R0113", (*s, "endpoint"), f"tool `{name}` endpoint", f"{a.method} {a.url}", f"{b.method} {b.url}")
        code = cl.set_code(set(a.secrets), set(b.secrets), gained="R0114", lost="R0115", both="R0116")
        if code is None and a.identity != b.identity:
            code = "R0117"
        if code:
            self.add(
                code,
                (*s, "identity"),
                f"tool `{name}` runs as `{b.identity}` holding secrets",
                a.secrets,
                b.secrets,
                note=f"identity `{a.identity}` -> `{b.identity}`",
            )
        code = cl.optional_code(
            _artifact(a.artifact), _artifact(b.artifact), removed="R0902", added="R0901", changed="R0903"
        )
        if code:
            what = f"tool `{name}` keeps its result as an artifact"
            self.add(code, (*s, "artifact"), what, _artifact(a.artifact), _artifact(b.artifact))
        fields = [
            f
            for f in ("args", "returns", "headers", "timeout_ms", "max_response_bytes")
            if getattr(a, f) != getattr(b, f)
        ]
        if fields:
            self.add("R0118", (*s, "contract"), f"tool `{name}` contract changed: {', '.join(fields)}")

    # ── retrieval indexes ──

    def indexes(self) -> None:
        old = {i.name: i for i in self.o.indexes}
        new = {i.name: i for i in self.n.indexes}
        for name in sorted(old.keys() | new.keys()):
            a, b = old.get(name), new.get(name)
            if a is None:
                assert b is not None
                self.add("R0908", ("index", name), f"index `{name}` added ({_index(b)})")
            elif b is None:
                self.add("R0909", ("index", name), f"index `{name}` removed")
            elif a != b:
                self.add("R0910", ("index", name, "kind"), f"index `{name}`", _index(a), _index(b))

    # ── workflows ──

    def workflows(self) -> None:
        old = {w.name: w for w in self.o.workflows}
        new = {w.name: w for w in self.n.workflows}
        for name in sorted(old.keys() | new.keys()):
            a, b = old.get(name), new.get(name)
            if a is None:
                self.add("R0201", ("workflow", name), f"workflow `{name}` added")
            elif b is None:
                self.add("R0202", ("workflow", name), f"workflow `{name}` removed")
            elif self.old_wfs.get(name) != self.new_wfs.get(name):
                self.workflow(name, a, b)

    def workflow(self, name: str, a: m.RWorkflow, b: m.RWorkflow) -> None:
        s = ("workflow", name)
        self.added_removed(
            s, "tools", set(a.tools), set(b.tools), "R0203", "R0204", f"workflow `{name}` tool allowlist"
        )
        self.added_removed(
            s, "outbound", set(a.outbound), set(b.outbound), "R0205", "R0206", f"workflow `{name}` outbound allowlist"
        )
        self.added_removed(
            s, "writes", set(a.writes), set(b.writes), "R0904", "R0905", f"workflow `{name}` stores write"
        )
        self.added_removed(
            s, "indexes", set(a.indexes), set(b.indexes), "R0906", "R0907", f"workflow `{name}` index allowlist"
        )
        if a.mode != b.mode:
            code = "R0207" if b.mode == "shadow" else "R0208"
            self.add(code, (*s, "policy"), f"workflow `{name}` policy", a.mode, b.mode)
        self.routes(name, a, b)
        self.added_removed(
            s, "pii", set(a.pii_classes), set(b.pii_classes), "R0502", "R0501", f"workflow `{name}` PII mask"
        )
        pa, pb = dict(a.pii_patterns), dict(b.pii_patterns)
        for p in sorted(pa.keys() | pb.keys()):
            if pa.get(p) != pb.get(p):
                self.add("R0503", (*s, "pii_pattern", p), f"workflow `{name}` pii pattern `{p}`", pa.get(p), pb.get(p))
        ca = (a.checkpoint_every, a.checkpoint_tier, a.checkpoint_store)
        cb = (b.checkpoint_every, b.checkpoint_tier, b.checkpoint_store)
        if ca != cb:
            self.add("R0601", (*s, "checkpoint"), f"workflow `{name}` checkpoint", cl.checkpoint(ca), cl.checkpoint(cb))
        if a.steps != b.steps:
            self.add(
                "R0213",
                (*s, "steps"),
                f"workflow `{name}` steps",
                [st.name for st in a.steps],
                [st.name for st in b.steps],
            )
        if (a.affinity_header, a.ttl_ms) != (b.affinity_header, b.ttl_ms):
            self.add(
                "R0214",
                (*s, "affinity"),
                f"workflow `{name}` session affinity",
                f"{a.affinity_header} ttl {a.ttl_ms}ms",
                f"{b.affinity_header} ttl {b.ttl_ms}ms",
            )
        for field_, old_v, new_v, code in cl.slo_changes(a.slo, b.slo):
            self.add(code, (*s, "slo", field_), f"workflow `{name}` SLO `{field_}`", old_v, new_v)

    def added_removed(
        self, s: Key, clause: str, old: set[str], new: set[str], gained: str, lost: str, what: str
    ) -> None:
        """One change per item gained and per item lost, so each has its own fingerprint and place."""
        for item in sorted(new - old):
            self.add(gained, (*s, clause, item), f"{what} gains `{item}`", None, item, old_where=(*s, clause))
        for item in sorted(old - new):
            self.add(
                lost,
                (*s, clause, item),
                f"{what} loses `{item}`",
                item,
                None,
                where=(*s, clause),
                old_where=(*s, clause, item),
            )

    def routes(self, name: str, a: m.RWorkflow, b: m.RWorkflow) -> None:
        ra: dict[str, str] = {**dict(a.routes), "turns": a.turn_tier}
        rb: dict[str, str] = {**dict(b.routes), "turns": b.turn_tier}
        if ra == rb:
            return
        directions: list[str] = []
        moved = []
        for risk in sorted(ra.keys() | rb.keys()):
            ta, tb = ra.get(risk), rb.get(risk)
            if ta == tb:
                continue
            moved.append(f"{risk}: {ta or 'none'} -> {tb or 'none'}")
            if ta is not None and tb is not None:
                directions.append(cl.tier_direction(self.o.tier(ta), self.n.tier(tb)))
        code = cl.combined_code(directions, widening="R0209", narrowing="R0210", mixed="R0211", neutral="R0212")
        self.add(
            code,
            ("workflow", name, "route"),
            f"workflow `{name}` routing ({'; '.join(moved)})",
            _routes(ra),
            _routes(rb),
            note=self.price_note(workflow=name),
        )


def _artifact(artifact: m.RArtifact | None) -> str | None:
    if artifact is None:
        return None
    kept = f"field {artifact.field}" if artifact.field else "the whole result"
    shown = ", ".join(artifact.show) if artifact.show is not None else "every other field"
    return f"{kept} in {artifact.store}, showing {shown}"


def _index(index: m.RIndex) -> str:
    kinds = (["keyword"] if index.keyword else []) + (
        [f"semantic with tier {index.semantic_tier}"] if index.semantic_tier else []
    )
    return f"over {index.store}: " + " and ".join(kinds)


def _routes(routes: dict[str, str]) -> str:
    return ", ".join(f"{k}->{v}" for k, v in sorted(routes.items()))


def compare(old: Side, new: Side) -> list[Change]:
    """Every field-level change from OLD to NEW."""
    return Comparison(old, new).run()


def keys(changes: Iterable[Change]) -> list[Key]:
    return [c.subject for c in changes]
