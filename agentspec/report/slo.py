"""Each workflow's declared SLOs against the export: the checked spec's `slo` blocks and an open export in, one
row per (workflow, SLI) out with the target, the measured value (SQL over the export) and whether it holds.

The indicators are the runtime's (`codegen/cloudflare/runtime/slo.ts`), measured over the whole period instead
of a sliding window: nearest-rank latency and ttft percentiles, success of turns and tasks, cost per successful
task, token-weighted cache hit, and denials as a share of all decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentspec import model as m
from agentspec.report.engine import Export

_PERCENTILE = "SELECT quantile_disc({column}, $q) FROM traces WHERE workflow = $w"
_SUCCESS = """
    WITH o AS (
      SELECT (SELECT count(*) FROM traces WHERE workflow = $w) AS ok_turns,
        (SELECT count(*) FROM decisions WHERE workflow = $w AND action LIKE 'model.call:%'
          AND rule = 'model.unavailable') AS failed_turns,
        (SELECT count(*) FROM tasks WHERE workflow = $w AND step IS NULL AND status = 'complete') AS ok_tasks,
        (SELECT count(*) FROM tasks WHERE workflow = $w AND step IS NULL AND status = 'failed') AS failed_tasks)
    SELECT 100.0 * (ok_turns + ok_tasks) / nullif(ok_turns + ok_tasks + failed_turns + failed_tasks, 0) FROM o"""
_COST = """
    SELECT ((SELECT sum(coalesce(cost_usd, 0) + coalesce(checkpoint_cost_usd, 0)) FROM traces WHERE workflow = $w)
      + coalesce((SELECT sum(cost_usd) FROM tasks WHERE workflow = $w AND step IS NULL), 0))
      / nullif((SELECT count(*) FROM traces WHERE workflow = $w)
        + (SELECT count(*) FROM tasks WHERE workflow = $w AND step IS NULL AND status = 'complete'), 0)"""
_CACHE = """
    SELECT 100.0 * sum(least(cached_tokens, input_tokens)) / nullif(sum(input_tokens), 0)
    FROM traces WHERE workflow = $w"""
_DENIED = """
    SELECT 100.0 * count(*) FILTER (WHERE decision = 'deny' AND rule <> 'model.unavailable')
      / nullif(count(*), 0) FROM decisions WHERE workflow = $w"""


@dataclass(frozen=True)
class SloRow:
    """One declared objective of one workflow, measured."""

    workflow: str
    sli: str
    target: str
    value: float | None
    unit: str
    #: True: held; False: crossed; None: no data to judge.
    holds: bool | None

    def as_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "sli": self.sli,
            "target": self.target,
            "value": self.value,
            "unit": self.unit,
            "holds": self.holds,
        }


def _one(export: Export, sql: str, **params: Any) -> float | None:
    rows = export.con.execute(sql, params).fetchall()
    value = rows[0][0] if rows else None
    return None if value is None else float(value)


def _judge(value: float | None, bound: float, ceiling: bool) -> bool | None:
    if value is None:
        return None
    return value <= bound if ceiling else value >= bound


def _quantile(label: str | None) -> float | None:
    if not label or not label.startswith("p"):
        return None
    try:
        p = float(label[1:])
    except ValueError:
        return None
    return p / 100 if 0 < p <= 100 else None


def evaluate(export: Export, spec: m.RSpec) -> list[SloRow]:
    """Every declared SLO of every workflow of `spec`, in declaration order."""
    rows: list[SloRow] = []
    for wf in spec.workflows:
        slo, w = wf.slo, wf.name
        for sli, label, bound, column in (
            ("latency", slo.latency_percentile, slo.latency_ms, "latency_ms"),
            ("ttft", slo.ttft_percentile, slo.ttft_ms, "ttft_ms"),
        ):
            q = _quantile(label)
            if q is None or bound is None:
                continue
            value = _one(export, _PERCENTILE.format(column=column), q=q, w=w)
            rows.append(SloRow(w, sli, f"{label} < {bound} ms", value, "ms", _judge(value, bound, True)))
        if slo.success_pct is not None:
            value = _one(export, _SUCCESS, w=w)
            held = _judge(value, slo.success_pct, False)
            rows.append(SloRow(w, "success", f">= {slo.success_pct}%", value, "%", held))
        if slo.cost_usd is not None:
            value = _one(export, _COST, w=w)
            held = _judge(value, slo.cost_usd, True)
            rows.append(SloRow(w, "cost", f"< ${slo.cost_usd} per task", value, "USD", held))
        if slo.cache_hit_pct is not None:
            value = _one(export, _CACHE, w=w)
            rows.append(
                SloRow(w, "cache_hit", f">= {slo.cache_hit_pct}%", value, "%", _judge(value, slo.cache_hit_pct, False))
            )
        if slo.denied_pct is not None:
            value = _one(export, _DENIED, w=w)
            rows.append(SloRow(w, "denied", f"<= {slo.denied_pct}%", value, "%", _judge(value, slo.denied_pct, True)))
    return rows
