"""State and PII: the resolved model in, E0401, E0402 and E0405 out.

A workflow persists conversation state, summaries and decision records, so it masks personal
data before anything is persisted, with detectors the runtime's regular-expression engine reads
as the checker does; checkpoints come at a whole number of turns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import regress

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


# The runtime compiles a detector as `new RegExp(source, "g")` (src/runtime/pii.ts): ECMAScript, no `u` flag.
RUNTIME_FLAGS = "g"


def compile_pattern(pattern: str) -> regress.Regex:
    """A PII pattern as the runtime's engine reads it (regress implements ECMAScript regular expressions)."""
    return regress.Regex(pattern, RUNTIME_FLAGS)


def regex_problem(pattern: str) -> str | None:
    """Why a PII pattern will not work as written in the runtime's engine (ECMAScript, via `regress`)."""
    if not pattern:
        return "is empty"
    for construct, why in (
        ("(?<=", "uses a look-behind, which not every JavaScript runtime accepts"),
        ("(?<!", "uses a negative look-behind, which not every JavaScript runtime accepts"),
        ("(?<", "uses a named group `(?<name>`, which Python does not accept"),
        ("(?P", "uses Python-only named-group syntax"),
        ("(?#", "uses an inline comment"),
        ("(?>", "uses an atomic group, which JavaScript does not have"),
        ("(?(", "uses a conditional group, which JavaScript does not have"),
        ("\\A", "uses `\\A`, which JavaScript does not know"),
        ("\\Z", "uses `\\Z`, which JavaScript does not know"),
        ("++", "uses a possessive quantifier"),
        ("*+", "uses a possessive quantifier"),
        ("?+", "uses a possessive quantifier"),
    ):
        if construct in pattern:
            return why
    if re.search(r"\(\?[a-zA-Z]", pattern):
        return "uses inline flags, which JavaScript does not accept"
    # Python reads `{,6}` as "at most 6"; JavaScript (without `u`) as the literal text `{,6}`.
    brace = re.search(r"(?<!\\)\{,[0-9]+\}", pattern)
    if brace:
        return f"uses `{brace.group()}`, which JavaScript reads as literal text, not as a repetition"
    if re.search("[\ud800-\udfff]", pattern):
        # A lone surrogate (`"\ud800"` in the spec) cannot be handed to the regex engine as UTF-8.
        return "contains a lone UTF-16 surrogate, which is not text"
    try:
        compiled = compile_pattern(pattern)
    except regress.RegressError as exc:
        return f"is not a regular expression JavaScript accepts: {str(exc).lower()}"
    if compiled.find("") is not None:
        return "matches the empty string, so it would mask nothing and loop"
    return None
