"""Plausibility: the resolved model in, W0503 and W0504 out, for declarations that are legal but unlikely meant.

A `read_only` tool that POSTs, PUTs, PATCHes or DELETEs probably changes something, and then it
escapes the idempotency guarantee; a retry count in the hundreds, or a backoff schedule longer
than a Workflow may even sleep, is a typo more often than a plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, report
from agentspec.passes.slo import ms
from agentspec.resolve import Resolution
from agentspec.targets import cloudflare as target

WRITING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# More attempts than anyone plans for: a remote service that failed a hundred times will not answer the next.
RETRY_PLAUSIBLE = 100


def check(res: Resolution) -> Iterator[Diagnostic]:
    for tool in res.tools.values():
        read_only = tool.first(m.ReadOnly)
        endpoint = tool.first(m.Endpoint)
        if read_only and endpoint and endpoint.method.value.upper() in WRITING_METHODS:
            yield report("W0503", "method", read_only.span, tool=tool.name.value, method=endpoint.method.value.upper())
    for site in res.sites:
        for step in site.steps:
            retry = step.node.first(m.Retry)
            resolved = step.resolved
            if retry is None or resolved.kind not in ("call", "infer"):
                continue
            backoff = _total_backoff(resolved)
            if resolved.retries > RETRY_PLAUSIBLE or backoff > target.MAX_SLEEP_MS:
                yield report(
                    "W0504",
                    "retries",
                    retry.span,
                    step=resolved.name,
                    retries=resolved.retries,
                    backoff=ms(backoff) if backoff <= target.MAX_SLEEP_MS else "more than 365 days",
                    most=RETRY_PLAUSIBLE,
                )


def _total_backoff(step: m.RStep) -> float:
    n, delay = step.retries, float(step.delay_ms)
    if step.backoff == "constant":
        return delay * n
    if step.backoff == "linear":
        return delay * n * (n + 1) / 2
    return delay * (2.0**n - 1) if n < 1024 else math.inf
