"""Allowlists and hosts: the resolved model in, E0301 and E0302 out.

Every tool a workflow can reach must be in its `tools allow` when a step calls it, and every
host it sends requests to (its tools', its alert webhook's) must be in its `outbound allow`:
the runtime's guarded fetch would block anything else.
"""

from __future__ import annotations

from collections.abc import Iterator

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, report
from agentspec.hosts import canonical_problem, whatwg_host
from agentspec.policy import host_allowed
from agentspec.resolve import PLACEHOLDER, Resolution, WorkflowSite, url_parts


def url_allowed(url: str, hosts: tuple[str, ...]) -> bool:
    """The runtime's own rule (`isHostAllowed`, mirrored by the Python evaluator) on a URL template."""
    return host_allowed(list(hosts), PLACEHOLDER.sub("x", url))


def check(res: Resolution) -> Iterator[Diagnostic]:
    for site in res.sites:
        yield from _steps_allowed(res, site)
        yield from _tool_hosts(res, site)
        yield from _webhook_host(site)


def _steps_allowed(res: Resolution, site: WorkflowSite) -> Iterator[Diagnostic]:
    for step in site.steps:
        action = step.node.action
        if isinstance(action, m.Call) and action.tool.value in res.tools and action.tool.value not in site.allow_refs:
            where = f"step `{step.resolved.name}`"
            yield report(
                "E0302",
                "not-allowed",
                action.tool.span,
                where=where,
                tool=action.tool.value,
                workflow=site.node.name.value,
            )


def _tool_hosts(res: Resolution, site: WorkflowSite) -> Iterator[Diagnostic]:
    outbound = site.node.first(m.OutboundAllow)
    for name in site.reachable:
        tool = res.r_tools.get(name)
        if tool is None or not tool.host or url_allowed(tool.url, site.hosts):
            continue
        ref = site.allow_refs.get(name)
        span = ref.span if ref else (outbound.span if outbound else site.node.name.span)
        yield report("E0301", "tool", span, tool=name, host=tool.host, where=site.where)


def _webhook_host(site: WorkflowSite) -> Iterator[Diagnostic]:
    slo = site.node.first(m.Slo)
    webhook = slo.first(m.Webhook) if slo else None
    parsed = url_parts(webhook.url.value) if webhook else None
    if webhook is None or parsed is None or parsed[0].scheme not in ("http", "https") or not parsed[0].hostname:
        return
    parts, port = parsed
    if canonical_problem(parts.hostname) is not None:
        return  # resolution's E0615
    host = whatwg_host(parts.scheme, parts.hostname, port)
    if not url_allowed(webhook.url.value, site.hosts):
        yield report("E0301", "webhook", webhook.url.span, host=host, where=site.where)
