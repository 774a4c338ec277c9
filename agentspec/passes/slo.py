"""SLO feasibility: the resolved model in, W0501 and W0502 out, each with its arithmetic as notes.

The worst case of a workflow's steps (timeouts times attempts plus backoff) against its latency
bound, and the declared tokens per task at the routed tier's prices against its cost bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, report
from agentspec.resolve import Resolution, WorkflowSite


def ms(value: float) -> str:
    """A millisecond figure as a reader would write it, for the arithmetic in warnings."""
    if not math.isfinite(value):
        return "unbounded"
    for unit, size in (("h", 3_600_000), ("m", 60_000)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    if value >= 1000 and value % 1000 == 0:
        return f"{value / 1000:g}s"
    if value >= 1000:
        return f"{value / 1000:.1f}s"
    return f"{value:g}ms"


def check(res: Resolution) -> Iterator[Diagnostic]:
    for site in res.sites:
        slo = site.node.first(m.Slo)
        if slo is not None:
            yield from _latency(site, slo)
            yield from _cost(res, site, slo)


def _latency(site: WorkflowSite, node: m.Slo) -> Iterator[Diagnostic]:
    latency = node.first(m.Latency)
    slo = site.slo
    if not (slo.latency_ms and site.steps and latency):
        return
    lines, total = [], 0.0
    for step in site.steps:
        worst, formula = worst_case(step.resolved)
        total += worst
        lines.append(f"step `{step.resolved.name}`: {formula} = {ms(worst)}")
    if total > slo.latency_ms:
        lines.append(f"worst case {ms(total)} > {slo.latency_percentile} bound {ms(slo.latency_ms)}")
        yield report(
            "W0501", "latency", latency.span, notes=lines, where=site.where, worst=ms(total), bound=ms(slo.latency_ms)
        )


def _cost(res: Resolution, site: WorkflowSite, node: m.Slo) -> Iterator[Diagnostic]:
    """Tokens per task priced at every tier the task uses: its turn tier and each `infer` step's tier."""
    cost = node.first(m.Cost)
    slo = site.slo
    if not (cost and slo.cost_usd and slo.tokens_in is not None and slo.tokens_out is not None and site.turn_tier):
        return
    names = dict.fromkeys([site.turn_tier, *(s.resolved.tier for s in site.steps if s.resolved.tier)])
    over: list[tuple[float, m.RTier]] = []
    for name in names:
        tier = res.r_tiers.get(name or "")
        if tier is None or tier.price_in is None or tier.price_out is None:
            continue
        spend = slo.tokens_in / 1e6 * tier.price_in + slo.tokens_out / 1e6 * tier.price_out
        if spend > slo.cost_usd + 1e-12:
            over.append((spend, tier))
    if not over:
        return
    notes = [
        f"tier `{tier.name}`: {slo.tokens_in} in x ${tier.price_in:g}/Mtok + {slo.tokens_out} out x "
        f"${tier.price_out:g}/Mtok = ${spend:.6f}".rstrip("0")
        for spend, tier in over
    ]
    spend, dearest = max(over, key=lambda o: o[0])
    notes.append(f"${spend:.6f}".rstrip("0") + f" > bound ${slo.cost_usd:g}")
    yield report("W0502", "cost", cost.span, notes=notes, where=site.where, tier=dearest.name)


def worst_case(step: m.RStep) -> tuple[float, str]:
    """A step's worst-case duration and the formula that gives it, for W0501's notes.

    Closed forms, so `retry 100000` costs nothing to evaluate; the formula names at most
    six backoff delays.
    """
    if step.kind == "sleep":
        return float(step.duration_ms or 0), f"sleep {ms(step.duration_ms or 0)}"
    n, delay = step.retries, float(step.delay_ms)
    attempts = n + 1
    if step.backoff == "constant":
        backoff = delay * n
    elif step.backoff == "linear":
        backoff = delay * n * (n + 1) / 2
    else:
        backoff = delay * (2.0**n - 1) if n < 1024 else math.inf
    total = attempts * step.timeout_ms + backoff
    formula = f"{attempts} x {ms(step.timeout_ms)}"
    if n:
        factor = {"constant": lambda a: 1.0, "linear": float, "exponential": lambda a: 2.0 ** (a - 1)}[step.backoff]
        shown = n if n <= 6 else 4  # every delay while they fit on a line, else the first four
        formula += " + backoff " + " + ".join(ms(delay * factor(a)) for a in range(1, shown + 1))
        if shown < n:
            formula += f" + ... ({n} delays)"
    return total, formula
