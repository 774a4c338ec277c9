"""Drill-down for the notebook: an open export, a dimension (tenant, region or model family) and, optionally, one
of its values in; per workflow rows of the review's headline figures for that slice out, computed in SQL.
"""

from __future__ import annotations

from typing import Any

from agentspec.report.engine import Export

#: The dimensions a review can be sliced by, and the traces column each one is.
DIMENSIONS = {"tenant": "tenant", "region": "region", "model family": "model_family"}

_SLICE = """
    SELECT {column} AS value, workflow, count(*) AS turns, count(DISTINCT (tenant, session)) AS sessions,
      quantile_disc(latency_ms, 0.95) AS latency_p95, quantile_disc(ttft_ms, 0.95) AS ttft_p95,
      100.0 * sum(least(cached_tokens, input_tokens)) / nullif(sum(input_tokens), 0) AS cache_hit_pct,
      sum(coalesce(cost_usd, 0) + coalesce(checkpoint_cost_usd, 0))::DOUBLE AS cost_usd,
      sum(len(list_filter(tools, lambda c: c.decision IN ('deny', 'shadow_deny')))) AS denied_tool_calls,
      sum(len(tools)) AS tool_calls
    FROM traces {where} GROUP BY ALL ORDER BY value, workflow"""


def values(export: Export, dimension: str) -> list[str]:
    """The values a dimension takes in the export, sorted."""
    column = DIMENSIONS[dimension]
    rows = export.con.execute(f"SELECT DISTINCT {column} FROM traces WHERE {column} IS NOT NULL ORDER BY 1")
    return [str(r[0]) for r in rows.fetchall()]


def drill(export: Export, dimension: str, value: str | None = None) -> list[dict[str, Any]]:
    """Headline figures per (value, workflow) of `dimension`; only `value`'s rows when given."""
    column = DIMENSIONS[dimension]  # a KeyError for an unknown dimension: the SQL names only known columns
    where = f"WHERE {column} = $value" if value is not None else ""
    sql = _SLICE.format(column=column, where=where)
    result = export.con.execute(sql, {"value": value} if value is not None else {})
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
