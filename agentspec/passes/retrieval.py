"""Artifacts and retrieval indexes: the resolved model in, E0101, E0302, E0406, E0407, E0408 and E0409 out.

A tool may keep its result (or one field) as an artifact in an R2 store, and an index covers the artifacts
of one store. What the checker holds a spec to: artifacts and indexes live in R2 stores (E0407); a workflow
that can call an artifact-keeping tool lists the store in `stores write` (E0409); a semantic index embeds
with a tier of known embedding models of one dimension that serves nothing else (E0408); a `search` step
names an index its workflow allows (E0302); an index is not named like a tool, since the model calls both by
name (E0101); and every writer of an indexed store masks at least what each of the index's readers masks
(E0406), so nothing enters an index that a reader promises never to keep.
"""

from __future__ import annotations

from collections.abc import Iterator

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, did_you_mean, report
from agentspec.resolve import Resolution, WorkflowSite
from agentspec.targets.cloudflare import EMBEDDING_MODELS


def check(res: Resolution) -> Iterator[Diagnostic]:
    yield from _store_kinds(res)
    yield from _index_names(res)
    yield from _embedding_tiers(res)
    for site in res.sites:
        yield from _writes(res, site)
        yield from _searches(site)
    yield from _masking(res)


def _is_kv(res: Resolution, store: str) -> bool:
    found = res.stores.get(store)
    return found is not None and found.kind.value == "kv"


def _store_kinds(res: Resolution) -> Iterator[Diagnostic]:
    for tool in res.tools.values():
        artifact = tool.first(m.Artifact)
        if artifact is not None and _is_kv(res, artifact.store.value):
            yield report("E0407", "artifact", artifact.store.span, tool=tool.name.value, store=artifact.store.value)
    for index in res.indexes.values():
        if _is_kv(res, index.store.value):
            yield report("E0407", "index", index.store.span, index=index.name.value, store=index.store.value)
    for site in res.sites:
        writes = site.node.first(m.StoresWrite)
        for ref in writes.stores if writes else ():
            if _is_kv(res, ref.value):
                yield report("E0407", "write", ref.span, where=site.where, store=ref.value)


def _index_names(res: Resolution) -> Iterator[Diagnostic]:
    for index in res.indexes.values():
        if index.name.value in res.tools:
            yield report("E0101", "index-tool", index.name.span, name=index.name.value)


def _chat_uses(res: Resolution, tier: str) -> list[str]:
    """What else runs on a tier: turns (a route, or the default turn tier), `infer` steps, checkpoints."""
    uses: list[str] = []
    for site in res.sites:
        if site.turn_tier == tier:
            uses.append(f"the turns of {site.where}")
        checkpoint = site.node.first(m.Checkpoint)
        if checkpoint is not None and checkpoint.tier.value == tier:
            uses.append(f"the checkpoints of {site.where}")
        for step in site.steps:
            if isinstance(step.node.action, m.Infer) and step.node.action.tier.value == tier:
                uses.append(f"step `{step.resolved.name}` of {site.where}")
    return uses


def _embedding_tiers(res: Resolution) -> Iterator[Diagnostic]:
    for index in res.indexes.values():
        semantic = index.first(m.Semantic)
        if semantic is None or semantic.tier.value not in res.tiers:
            continue  # keyword only, or resolution's E0102
        tier_name = semantic.tier.value
        tier = res.tiers[tier_name]
        models = [s for clause in tier.clauses_of(m.Primary) for s in (clause.model,)]
        models += [s for clause in tier.clauses_of(m.Fallback) for s in clause.models]
        known = True
        for model in models:
            if model.value not in EMBEDDING_MODELS:
                known = False
                listed = ", ".join(f"`{k}`" for k in EMBEDDING_MODELS)
                help = did_you_mean(model.value, EMBEDDING_MODELS) or f"known embedding models: {listed}"
                yield report("E0408", "model", model.span, help=help, model=model.value, tier=tier_name, known=listed)
        dims = sorted({EMBEDDING_MODELS[s.value] for s in models if s.value in EMBEDDING_MODELS})
        if known and len(dims) > 1:
            yield report("E0408", "dimensions", tier.name.span, tier=tier_name, dims=", ".join(map(str, dims)))
        uses = _chat_uses(res, tier_name)
        if uses:
            yield report("E0408", "chat", semantic.tier.span, tier=tier_name, index=index.name.value, use=uses[0])


def _artifact_store(res: Resolution, tool: str) -> str | None:
    decl = res.tools.get(tool)
    artifact = decl.first(m.Artifact) if decl else None
    return artifact.store.value if artifact else None


def _writes(res: Resolution, site: WorkflowSite) -> Iterator[Diagnostic]:
    listed = {ref.value for clause in site.node.clauses_of(m.StoresWrite) for ref in clause.stores}
    for tool in site.reachable:
        store = _artifact_store(res, tool)
        if store is None or store not in res.stores or store in listed:
            continue
        ref = site.allow_refs.get(tool)
        called = next(
            (
                s.node.action.tool
                for s in site.steps
                if isinstance(s.node.action, m.Call) and s.node.action.tool.value == tool
            ),
            None,
        )
        span = ref.span if ref else called.span if called else site.node.name.span
        yield report("E0409", "not-listed", span, where=site.where, tool=tool, store=store)


def _searches(site: WorkflowSite) -> Iterator[Diagnostic]:
    allowed = {ref.value for clause in site.node.clauses_of(m.IndexesAllow) for ref in clause.indexes}
    for step in site.steps:
        action = step.node.action
        if isinstance(action, m.Search) and action.index.value not in allowed:
            yield report(
                "E0302",
                "index-not-allowed",
                action.index.span,
                where=f"step `{step.resolved.name}`",
                index=action.index.value,
                workflow=site.node.name.value,
            )


def _mask(site: WorkflowSite) -> set[tuple[str, str | None]]:
    """A workflow's masked classes: built-ins by name, its own patterns by name and regex (two workflows'
    `employee_id` patterns mask the same only when they are the same regex)."""
    classes: set[tuple[str, str | None]] = set()
    mask = site.node.first(m.PiiMask)
    for cls in mask.classes if mask else ():
        pattern = site.pii_patterns.get(cls.value)
        classes.add((cls.value, pattern.regex.value if pattern else None))
    return classes


def _masking(res: Resolution) -> Iterator[Diagnostic]:
    for index in res.indexes.values():
        store = index.store.value
        name = index.name.value
        readers = [
            s
            for s in res.sites
            if name in {ref.value for c in s.node.clauses_of(m.IndexesAllow) for ref in c.indexes}
            or any(isinstance(st.node.action, m.Search) and st.node.action.index.value == name for st in s.steps)
        ]
        writers = [s for s in res.sites if any(_artifact_store(res, t) == store for t in s.reachable)]
        for writer in writers:
            kept = _mask(writer)
            mask = writer.node.first(m.PiiMask)
            if mask is None or not mask.classes:
                continue  # the state pass's E0402
            for reader in readers:
                if reader is writer:
                    continue
                missing = sorted(c for c in _mask(reader) - kept)
                if missing:
                    cls = missing[0][0]
                    yield report(
                        "E0406",
                        "weaker",
                        mask.span,
                        writer=writer.where,
                        store=store,
                        index=name,
                        cls=cls,
                        reader=reader.where,
                    )
                    break
