"""State and PII: the resolved model in, E0401, E0402 and E0405 out.

A workflow persists conversation state, summaries and decision records, so it masks personal
data before anything is persisted, with detectors the runtime's regular-expression engine reads
as the checker does; checkpoints come at a whole number of turns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, report
from agentspec.resolve import Resolution, WorkflowSite


def check(res: Resolution) -> Iterator[Diagnostic]:
    for site in res.sites:
        yield from _cadence(site)
        yield from _patterns(site)
        yield from _mask(site)


def _cadence(site: WorkflowSite) -> Iterator[Diagnostic]:
    checkpoint = site.node.first(m.Checkpoint)
    if checkpoint is None or checkpoint.every.kind != "number":
        return  # no checkpoint, or resolution's E0601
    value = checkpoint.every.value
    if not math.isfinite(value):
        return  # resolution's E0602
    if value != int(value) or value < 1:
        yield report("E0401", "cadence", checkpoint.every.span, text=checkpoint.every.text)


def _patterns(site: WorkflowSite) -> Iterator[Diagnostic]:
    for name, pattern in site.pii_patterns.items():
        problem = regex_problem(pattern.regex.value)
        if problem:
            yield report("E0405", "invalid", pattern.regex.span, name=name, problem=problem)


def _mask(site: WorkflowSite) -> Iterator[Diagnostic]:
    mask = site.node.first(m.PiiMask)
    if mask is None or not mask.classes:
        yield report("E0402", "no-mask", mask.span if mask else site.node.name.span, where=site.where)


def regex_problem(pattern: str) -> str | None:
    """Why a PII pattern will not work in both Python (the simulator) and JavaScript (the runtime)."""
    if not pattern:
        return "is empty"
    for construct, why in (
        ("(?<=", "uses a look-behind, which not every JavaScript runtime accepts"),
        ("(?<!", "uses a negative look-behind, which not every JavaScript runtime accepts"),
        ("(?<", "uses a named group `(?<name>`, which Python does not accept"),
        ("(?P", "uses Python-only named-group syntax"),
        ("(?#", "uses an inline comment"),
        ("\\A", "uses `\\A`, which JavaScript does not know"),
        ("\\Z", "uses `\\Z`, which JavaScript does not know"),
        ("++", "uses a possessive quantifier"),
        ("*+", "uses a possessive quantifier"),
    ):
        if construct in pattern:
            return why
    if re.search(r"\(\?[a-zA-Z]", pattern):
        return "uses inline flags, which JavaScript does not accept"
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"is not a valid regular expression: {exc}"
    if compiled.match(""):
        return "matches the empty string, so it would mask nothing and loop"
    return None
