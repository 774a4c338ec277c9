"""Idempotency and compensation: the resolved model in, E0201-E0204 and E0608 out.

A call that changes state can be retried (by a step's `retry`, the Workflow engine or the agent
loop), so it must carry a key the remote service deduplicates on; a compensation runs during a
rollback that may itself be retried, and a chain of compensations must end.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, report
from agentspec.resolve import Resolution, placeholders


def example_key(tool: m.Tool) -> str:
    """An idempotency key clause to suggest for `tool`, from its own first declared argument."""
    args = tool.first(m.Args)
    if args and args.fields:
        return f'`idempotency key "{{session}}:{{args.{args.fields[0].name.value}}}"`'
    return 'an argument that identifies the change (`args { ID: string }`) and `idempotency key "{session}:{args.ID}"`'


def check(res: Resolution) -> Iterator[Diagnostic]:
    yield from _side_effect_clauses(res)
    compensating = yield from _compensations(res)
    yield from _reachable_without_key(res, reported=compensating)
    yield from _keys_that_do_not_identify(res)
    yield from _optional_in_key_or_url(res)
    yield from _undoable(res)


def _keys_that_do_not_identify(res: Resolution) -> Iterator[Diagnostic]:
    """E0205: a key built only from `{workflow}` and `{session}` is one key for every call the model or a task
    makes in a session, so a second, distinct change (another refund) would be taken for a repeat of the first."""
    reported: set[str] = set()
    for site in res.sites:
        for name in site.reachable:
            node = res.tools.get(name)
            idem = node.first(m.Idempotency) if node else None
            used = placeholders(idem.key.value) if idem else []
            if node is None or idem is None or not used or name in reported:
                continue
            if node.first(m.ReadOnly) is not None:
                continue
            if any(p.startswith("args.") for p in used):
                continue
            reported.add(name)
            form = "workflow-only" if "session" not in used else "session-only"
            yield report("E0205", form, idem.key.span, tool=name, where=site.where, example=example_key(node))


def _optional_in_key_or_url(res: Resolution) -> Iterator[Diagnostic]:
    """E0206: a caller may leave an optional argument out, and the key or URL would then read nothing."""
    for name, tool in res.tools.items():
        args = tool.first(m.Args)
        optional = {f.name.value for f in args.fields if f.optional} if args else set()
        if not optional:
            continue
        idem = tool.first(m.Idempotency)
        endpoint = tool.first(m.Endpoint)
        for text, what in (
            (idem.key if idem else None, "idempotency key"),
            (endpoint.url if endpoint else None, "URL"),
        ):
            for placeholder in placeholders(text.value) if text else ():
                arg = placeholder.removeprefix("args.") if what == "idempotency key" else placeholder
                if arg in optional and text is not None:
                    yield report("E0206", "optional", text.span, tool=name, what=what, arg=arg)


def _undoable(res: Resolution) -> Iterator[Diagnostic]:
    """E0207: the runtime fills a compensation's arguments, by name, from the original call's arguments and its
    result; a required argument found in neither means the rollback can never run. A tool on a compensation
    cycle is left to E0203: breaking the cycle changes what compensates what."""
    for name, tool in res.tools.items():
        if _on_cycle(res, name):
            continue
        compensate = tool.first(m.Compensate)
        original = res.r_tools.get(name)
        target = res.r_tools.get(compensate.tool.value) if compensate else None
        if compensate is None or original is None or target is None:
            continue
        available = {f.name for f in original.args} | {f.name for f in original.returns or ()}
        lacking = [f.name for f in target.args if not f.optional and f.name not in available]
        if lacking:
            yield report("E0207", "lacking", compensate.tool.span, tool=name, compensation=target.name, arg=lacking[0])


def _side_effect_clauses(res: Resolution) -> Iterator[Diagnostic]:
    """E0204 on read-only tools that declare side-effect clauses; E0608 on keys with no placeholder."""
    for tool in res.tools.values():
        where = f"tool `{tool.name.value}`"
        read_only = tool.first(m.ReadOnly)
        idem = tool.first(m.Idempotency)
        compensate = tool.first(m.Compensate)
        if read_only and idem:
            yield report("E0204", "key", idem.span, where=where)
        if read_only and compensate:
            yield report("E0204", "compensate", compensate.span, where=where)
        if idem and not placeholders(idem.key.value):
            yield report("E0608", "constant", idem.key.span, where=where, example=example_key(tool))


def _compensations(res: Resolution) -> Generator[Diagnostic, None, set[str]]:
    """E0202 and E0203; returns the compensating tools reported, which E0201 then leaves alone."""
    reported: set[str] = set()
    cycles: set[frozenset[str]] = set()
    tools = res.tools
    for name, tool in tools.items():
        compensate = tool.first(m.Compensate)
        if compensate is None or compensate.tool.value not in tools:
            continue
        target = tools[compensate.tool.value]
        if target.first(m.Idempotency) is None:
            reported.add(target.name.value)
            yield report(
                "E0202", "not-idempotent", compensate.tool.span, tool=target.name.value, example=example_key(target)
            )
        # Follow the chain; a cycle is reported once, at the tool where it closes.
        chain = [name]
        current = target
        while current.name.value not in chain:
            chain.append(current.name.value)
            nxt = current.first(m.Compensate)
            if nxt is None or nxt.tool.value not in tools:
                break
            current = tools[nxt.tool.value]
        else:
            if current.name.value == name and frozenset(chain) not in cycles:
                cycles.add(frozenset(chain))
                yield report("E0203", "cycle", compensate.span, chain=" -> ".join([*chain, name]))
    return reported


def _reachable_without_key(res: Resolution, reported: set[str]) -> Iterator[Diagnostic]:
    """E0201, once per tool, at the first workflow that can reach it."""
    for site in res.sites:
        for name in site.reachable:
            tool = res.r_tools.get(name)
            if tool is None or tool.read_only or tool.idempotency_key is not None or name in reported:
                continue
            reported.add(name)
            node = res.tools[name]
            yield report(
                "E0201", "not-idempotent", node.name.span, tool=name, where=site.where, example=example_key(node)
            )


def _on_cycle(res: Resolution, start: str) -> bool:
    """Whether following `compensate` from `start` comes back to it."""
    seen: set[str] = set()
    current = res.tools.get(start)
    while current is not None:
        compensate = current.first(m.Compensate)
        if compensate is None:
            return False
        nxt = compensate.tool.value
        if nxt == start:
            return True
        if nxt in seen:
            return False
        seen.add(nxt)
        current = res.tools.get(nxt)
    return False
