"""Semantic checks: parsed spec files in, the resolved model (agentspec.model.RSpec) and every diagnostic out.

The checker never stops at the first problem. It resolves every reference and applies the
defaults documented in docs/language.md (agentspec/resolve.py), then runs each guarantee as its
own pass over the resolved model (agentspec/passes/), each with its own diagnostic codes
(agentspec/codes.py). The resolved model is returned only when there is no error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, has_errors
from agentspec.gcpause import paused
from agentspec.load import Loaded
from agentspec.passes import (
    allowlists,
    headers,
    idempotency,
    names,
    platform,
    plausibility,
    retrieval,
    risk,
    secrets,
    slo,
    state,
)
from agentspec.resolve import Resolution, resolve

Pass = Callable[[Resolution], Iterable[Diagnostic]]

# Every guarantee the checker keeps, in the order it runs; adding one is adding a function here.
PASSES: tuple[Pass, ...] = (
    idempotency.check,  # E0201-E0204, E0608: retried side effects carry keys; compensations end
    allowlists.check,  # E0301, E0302: every reachable tool and host is listed
    risk.check,  # E0303, E0304: turns run on cleared tiers; no high risk in shadow mode
    secrets.check,  # E0103, E0305: a tool reads only its identity's secrets
    headers.check,  # E0101, E0306, E0307, W0308: headers are the spec's own; auth secrets stay with auth
    state.check,  # E0401, E0402, E0405: persisted state is masked, checkpoints whole
    retrieval.check,  # E0406-E0409: artifacts kept in R2 by workflows that may, indexed no less masked than read
    slo.check,  # W0501, W0502: the SLOs can hold in the worst case
    platform.check,  # E0603: the target accepts the generated project
    plausibility.check,  # W0503, W0504: declarations that are legal but unlikely meant
    names.check,  # E0603, E0613, E0614: generated names are valid, distinct and not JavaScript's own
)


@dataclass
class CheckResult:
    spec: m.RSpec | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def check(loaded: Loaded) -> CheckResult:
    """Check a loaded spec (a root file and its imports)."""
    if loaded.root_file is None:
        return CheckResult(None, list(loaded.diagnostics))
    libraries = [f for f in loaded.files if f.path != loaded.root]
    with paused():
        res = resolve(loaded.root_file, libraries)
        found = [d for guarantee in PASSES for d in guarantee(res)]
    diagnostics = [*loaded.diagnostics, *res.diagnostics, *found]
    return CheckResult(res.spec if not has_errors(diagnostics) else None, diagnostics)
