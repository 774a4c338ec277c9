"""Platform limits: the resolved model in, E0603 out, for what the target (Cloudflare) would refuse.

The limits are the target module's tables (agentspec/targets/cloudflare.py), the same the
emitter names things with.
"""

from __future__ import annotations

from collections.abc import Iterator

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, report
from agentspec.resolve import Resolution, StepSite
from agentspec.targets import cloudflare as target


def check(res: Resolution) -> Iterator[Diagnostic]:
    for site in res.sites:
        name = site.node.name
        if len(name.value) + target.INSTANCE_ID_SUFFIX > target.INSTANCE_ID_MAX:
            yield report(
                "E0603",
                "workflow-name",
                name.span,
                name=name.value,
                length=len(name.value),
                limit=target.INSTANCE_ID_MAX,
                most=target.INSTANCE_ID_MAX - target.INSTANCE_ID_SUFFIX,
            )
        for step in site.steps:
            yield from _step(res, step)


def _step(res: Resolution, step: StepSite) -> Iterator[Diagnostic]:
    node, resolved = step.node, step.resolved
    where = f"step `{resolved.name}`"
    if len(resolved.name) > target.STEP_NAME_MAX:
        yield report("E0603", "step-name", node.name.span, limit=target.STEP_NAME_MAX)
    action = node.action
    if isinstance(action, m.Call):
        tool = res.r_tools.get(action.tool.value)
        if tool is not None and tool.max_response_bytes > target.STEP_RESULT_MAX:
            decl = res.tools[tool.name].first(m.MaxResponse)
            size = decl.size.text if decl else "?"
            yield report("E0603", "step-result", action.tool.span, where=where, tool=tool.name, size=size)
    elif isinstance(action, m.Sleep):
        if resolved.duration_ms is not None and resolved.duration_ms > target.MAX_SLEEP_MS:
            yield report("E0603", "sleep", action.duration.span, where=where)
    elif isinstance(action, m.WaitEvent) and not target.EVENT_TYPE.fullmatch(action.event.value):
        yield report("E0603", "event", action.event.span, event=action.event.value)
