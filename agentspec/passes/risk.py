"""Tiers and risk: the resolved model in, E0303 and E0304 out.

A turn's risk is the highest risk among the workflow's allowed tools; the tier its turns run on
must be cleared for it. A workflow in `policy shadow` must not be able to reach a high-risk tool.
"""

from __future__ import annotations

from collections.abc import Iterator

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, report
from agentspec.resolve import Resolution, WorkflowSite


def check(res: Resolution) -> Iterator[Diagnostic]:
    for site in res.sites:
        yield from _clearance(res, site)
        yield from _shadow(res, site)


def _clearance(res: Resolution, site: WorkflowSite) -> Iterator[Diagnostic]:
    tier = res.r_tiers.get(site.turn_tier) if site.turn_tier else None
    if tier is None or m.RISK_ORDER[tier.clearance] >= m.RISK_ORDER[site.turn_risk]:
        return
    risk = site.turn_risk
    riskiest = next(t for t in site.allowed if t in res.r_tools and res.r_tools[t].risk == risk)
    span = site.route_nodes[risk].span if risk in site.route_nodes else site.allow_refs[riskiest].span
    yield report(
        "E0303", "uncleared", span, tool=riskiest, risk=risk, where=site.where, tier=tier.name, clearance=tier.clearance
    )


def shadow_executable(res: Resolution, site: WorkflowSite) -> list[str]:
    """The calls a shadow workflow can execute beyond what `enforce` allows.

    The runtime's shadow rule: a call that `enforce` would deny runs anyway only if the tool is
    `read_only` and its risk is within the clearance of the tier the workflow's turns run on; any
    other would-be denial is denied for real. So a shadow workflow can execute, besides its
    reachable tools, every declared read-only tool within that clearance, listed or not.
    """
    tier = res.r_tiers.get(site.turn_tier) if site.turn_tier else None
    if site.mode != "shadow" or tier is None:
        return []
    clearance = m.RISK_ORDER[tier.clearance]
    return [
        name
        for name, tool in res.r_tools.items()
        if name not in site.reachable and tool.read_only and m.RISK_ORDER[tool.risk] <= clearance
    ]


def _shadow(res: Resolution, site: WorkflowSite) -> Iterator[Diagnostic]:
    policy = site.node.first(m.Policy)
    if site.mode != "shadow" or policy is None:
        return
    executable = [*site.reachable, *shadow_executable(res, site)]
    high = [t for t in executable if t in res.r_tools and res.r_tools[t].risk == "high"]
    if high:
        yield report("E0304", "shadow", policy.span, where=site.where, tool=high[0])
