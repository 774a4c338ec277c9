"""The meaning file: a checked agent in, a sorted, normalised, human-readable text of what it means out.

Written next to the spec (`support_desk.agent` -> `support_desk.meaning`) by `agentspec snapshot`
and committed, so a change of meaning shows as a reviewed diff of this file in the pull request.
It is built from the resolved model and the policy tables only: reordering clauses, reformatting,
comments, moving declarations between files or renaming the file leave it byte for byte the same.
"Calls" are computed with the policy evaluator: a tool at a host is listed when that call executes.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from agentspec import model as m
from agentspec.review import tables as tb

HEADER = "# The meaning of agent `{name}`, written by `agentspec snapshot`. Do not edit: run it again.\n"


def meaning_path(spec_path: str) -> str:
    base, _ = os.path.splitext(spec_path)
    return base + ".meaning"


def _list(values: object) -> str:
    items = sorted(str(v) for v in values)  # type: ignore[attr-defined]
    return ", ".join(items) if items else "none"


def _calls(t: tb.Tables, wf_name: str) -> list[str]:
    """Every tool the workflow may run, with the hosts where the call executes."""
    wf = tb.workflows(t)[wf_name]
    lines = []
    candidates = tb.tools(t) if wf["mode"] == "shadow" else {n: tb.tools(t)[n] for n in wf["tools"]}
    for name in sorted(candidates):
        tool = candidates[name]
        urls = {tb.default_url(tool)} | {f"https://{h}/" for h in wf["outbound"]}
        hosts = set()
        for url in sorted(urls):
            runs, _ = tb.decide(t, wf_name, name, url)
            if runs:
                hosts.add(urlsplit(url).netloc)
        if hosts:
            lines.append(f"    {name} -> {_list(hosts)}")
    return lines


def _tool(t: m.RTool) -> list[str]:
    lines = [f"tool {t.name}", f"  {t.method} {t.url}", f"  risk {t.risk}" + (", read-only" if t.read_only else "")]
    lines.append(f"  idempotency key: {t.idempotency_key or 'none'}")
    lines.append(f"  compensate: {t.compensate or 'none'}")
    lines.append(f"  runs as: {t.identity or 'no identity'}, secrets: {_list(t.secrets)}")
    lines.append(f"  timeout {t.timeout_ms}ms, max response {t.max_response_bytes} bytes")
    lines.append("  args: " + _list(f"{f.name}{'?' if f.optional else ''}: {f.type}" for f in t.args))
    if t.returns is not None:
        lines.append("  returns: " + _list(f"{f.name}{'?' if f.optional else ''}: {f.type}" for f in t.returns))
    if t.headers:
        lines.append("  headers: " + _list(k for k, _ in t.headers))
    # Only when kept, so the meaning of a spec without artifacts reads as it always did.
    if t.artifact is not None:
        kept = f"field {t.artifact.field}" if t.artifact.field else "the whole result"
        shown = _list(t.artifact.show) if t.artifact.show is not None else "every other field"
        lines.append(f"  artifact: {kept} kept in {t.artifact.store}; the model reads {shown} and a reference")
    return lines


def _slo(slo: m.RSlo) -> str:
    parts = []
    if slo.latency_ms is not None:
        parts.append(f"latency {slo.latency_percentile} < {slo.latency_ms}ms")
    if slo.ttft_ms is not None:
        parts.append(f"ttft {slo.ttft_percentile} < {slo.ttft_ms}ms")
    if slo.success_pct is not None:
        parts.append(f"success >= {slo.success_pct:g}%")
    if slo.cost_usd is not None:
        parts.append(f"cost per task < ${slo.cost_usd:g}")
    if slo.cache_hit_pct is not None:
        parts.append(f"cache hit >= {slo.cache_hit_pct:g}%")
    if slo.cache_drop_pct is not None:
        parts.append(f"cache hit alert drop {slo.cache_drop_pct:g}%")
    if slo.denied_pct is not None:
        parts.append(f"denied <= {slo.denied_pct:g}%")
    if slo.tokens_in is not None:
        parts.append(f"tokens per task in {slo.tokens_in} out {slo.tokens_out}")
    if slo.webhook is not None:
        parts.append(f"webhook {slo.webhook}")
    return "; ".join(parts) if parts else "none"


def _workflow(spec: m.RSpec, t: tb.Tables, w: m.RWorkflow) -> list[str]:
    tier = spec.tier(w.turn_tier)
    lines = [
        f"workflow {w.name} (class {w.klass})",
        f"  policy {w.mode}",
        f"  turns: risk {w.turn_risk} on tier {w.turn_tier} (clears {tier.clearance})",
        "  routes: " + _list(f"{r} -> {tier_}" for r, tier_ in w.routes),
        "  tools allow: " + _list(w.tools),
        "  outbound allow: " + _list(w.outbound),
        *(["  stores write: " + _list(w.writes)] if w.writes else []),
        *(["  indexes allow: " + _list(w.indexes)] if w.indexes else []),
        "  calls (tool -> hosts where the call executes):",
        *_calls(t, w.name),
        f"  session affinity: {w.affinity_header} ttl {w.ttl_ms}ms",
        "  checkpoint: "
        + (
            f"every {w.checkpoint_every} turns with tier {w.checkpoint_tier} into {w.checkpoint_store}"
            if w.checkpoint_every is not None
            else "none"
        ),
        "  pii mask: " + _list(w.pii_classes),
        "  pii patterns: " + _list(f"{n} {p!r}" for n, p in w.pii_patterns),
    ]
    for s in w.steps:
        what = {
            "call": f"call {s.tool}",
            "infer": f"infer tier {s.tier}",
            "sleep": f"sleep {s.duration_ms}ms",
            "wait": f"wait for {s.event}",
            "search": f"search index {s.index} top {s.top}",
        }[s.kind]
        lines.append(f"  step {s.name}: {what}, retry {s.retries} {s.backoff} {s.delay_ms}ms, timeout {s.timeout_ms}ms")
    lines.append("  slo: " + _slo(w.slo))
    return lines


def meaning(spec: m.RSpec) -> str:
    """The meaning text of a checked agent."""
    t = tb.tables_of(spec)
    lines = [HEADER.format(name=spec.name).rstrip("\n"), ""]
    lines.append(f"agent {spec.name} version {spec.version}")
    lines.append(f"  owner: {spec.owner or 'none'}")
    lines.append(f"  auth: bearer tokens in {spec.tokens_secret}, admin secret {spec.admin_secret or 'none'}")
    lines.append(f"  tenant header: {spec.tenant_header}")
    lines.append("  stores: " + _list(f"{kind} {name}" for name, kind in spec.stores))
    for tier in sorted(spec.tiers, key=lambda x: x.name):
        lines += ["", f"tier {tier.name}", f"  models: {' -> '.join(tier.models)}", f"  clears risk {tier.clearance}"]
        price = "none" if tier.price_in is None else f"in ${tier.price_in:g} out ${tier.price_out:g} per Mtok"
        lines += [f"  price: {price}", f"  timeout {tier.timeout_ms}ms"]
    for name, secrets in sorted(spec.identities):
        lines += ["", f"identity {name}", f"  secrets: {_list(secrets)}"]
    for tool in sorted(spec.tools, key=lambda x: x.name):
        lines += ["", *_tool(tool)]
    for index in sorted(spec.indexes, key=lambda x: x.name):
        kinds = (["keyword"] if index.keyword else []) + (
            [f"semantic with tier {index.semantic_tier}"] if index.semantic_tier else []
        )
        lines += ["", f"index {index.name}", f"  over: {index.store}", f"  ranks by: {' and '.join(kinds)}"]
    for wf in sorted(spec.workflows, key=lambda x: x.name):
        lines += ["", *_workflow(spec, t, wf)]
    return "\n".join(lines) + "\n"
