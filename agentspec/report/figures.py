"""The review's figures: an open export (engine.py) and, optionally, the checked spec's SLOs in; plain tables of
rows out (`Figures`), every figure computed by DuckDB SQL over the export's tables, none by a Python loop.

Definitions (the runtime's where it has one, `codegen/cloudflare/runtime/slo.ts`):
- latency and ttft percentiles are nearest-rank (`quantile_disc`), over finished turns;
- cache hit is token-weighted: cached input tokens / input tokens, in %;
- session locality: of the turns that follow another turn of their session, the share served with the same
  affinity key from the same colo as the turn before;
- policy-denied tool-call ratio: tool calls (`tool.call:*` decisions) the policy denied (`deny`, `shadow_deny`);
- replay-safe retry success: of the tool calls a turn retried (only replay-safe calls are retried) and the task
  steps that needed more than one attempt, the share that succeeded in the end;
- cost per successful task: everything the workflow's turns, checkpoints and tasks cost, over its successful
  turns and tasks (a failed one costs too, and earns nothing);
- success: finished turns over turns (a turn every model failed is recorded as `model.unavailable`), and
  completed tasks over finished tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from agentspec.report.engine import Export

Row = dict[str, Any]

# Latency histogram bucket upper bounds, ms (the last is open).
LATENCY_BUCKETS = (50, 100, 250, 500, 1000, 2500, 5000, 10000)

_SQL: dict[str, str] = {
    "latency": """
        SELECT workflow, coalesce(region, '(all)') AS region, count(*) AS turns,
          quantile_disc(latency_ms, 0.5) AS p50, quantile_disc(latency_ms, 0.95) AS p95,
          quantile_disc(latency_ms, 0.99) AS p99, max(latency_ms) AS max,
          quantile_disc(ttft_ms, 0.95) AS ttft_p95
        FROM traces GROUP BY GROUPING SETS ((workflow, region), (workflow))
        ORDER BY workflow, region = '(all)' DESC, region""",
    "histogram": """
        SELECT workflow, bucket, count(*) AS turns FROM (
          -- bucket i (1-based) holds latencies in (bound[i-1], bound[i]]; the last one everything above
          SELECT workflow, len(list_filter($bounds, lambda b: b < latency_ms)) + 1 AS bucket FROM traces)
        GROUP BY ALL ORDER BY ALL""",
    "cache": """
        WITH calls AS (
          SELECT workflow, prompt_family, input_tokens, cached_tokens FROM traces
          UNION ALL
          SELECT workflow, checkpoint_family, checkpoint_input_tokens, checkpoint_cached_tokens FROM traces
          WHERE checkpoint_family IS NOT NULL AND checkpoint_input_tokens IS NOT NULL)
        SELECT workflow, prompt_family, count(*) AS calls, sum(input_tokens) AS input_tokens,
          sum(cached_tokens) AS cached_tokens,
          100.0 * sum(least(cached_tokens, input_tokens)) / nullif(sum(input_tokens), 0) AS hit_pct
        FROM calls GROUP BY ALL ORDER BY ALL""",
    "locality": """
        WITH t AS (
          SELECT workflow, tenant, model_family, affinity, region, input_tokens, cached_tokens, session,
            lag(affinity) OVER w AS prev_affinity, lag(region) OVER w AS prev_region
          FROM traces WINDOW w AS (PARTITION BY tenant, session ORDER BY turn))
        SELECT CASE WHEN GROUPING(workflow) = 0 THEN 'workflow' WHEN GROUPING(tenant) = 0 THEN 'tenant'
            ELSE 'model_family' END AS dimension,
          coalesce(workflow, tenant, model_family) AS value,
          count(DISTINCT (tenant, session)) AS sessions, count(*) AS turns,
          count(prev_affinity) AS followups,
          count(*) FILTER (WHERE prev_affinity = affinity AND prev_region = region) AS local,
          100.0 * count(*) FILTER (WHERE prev_affinity = affinity AND prev_region = region)
            / nullif(count(prev_affinity), 0) AS locality_pct,
          count(DISTINCT region) AS colos,
          100.0 * sum(least(cached_tokens, input_tokens)) / nullif(sum(input_tokens), 0) AS cache_hit_pct
        FROM t GROUP BY GROUPING SETS ((workflow), (tenant), (model_family))
        ORDER BY dimension, value""",
    "denied": """
        SELECT workflow, count(*) AS tool_calls,
          count(*) FILTER (WHERE decision IN ('deny', 'shadow_deny')) AS denied,
          100.0 * count(*) FILTER (WHERE decision IN ('deny', 'shadow_deny')) / count(*) AS denied_pct
        FROM decisions WHERE action LIKE 'tool.call:%' GROUP BY ALL ORDER BY ALL""",
    "retries": """
        WITH turn_calls AS (
          SELECT workflow, unnest(tools) AS call FROM traces),
        turn_retries AS (
          SELECT workflow, 'turn tool call' AS kind, call.outcome = 'ok' AS ok FROM turn_calls
          WHERE call.attempts > 1),
        steps AS (
          SELECT workflow, task, step, max(attempt) AS attempts,
            bool_or(status = 'retrying') AS retried, bool_or(status = 'complete') AS ok
          FROM tasks WHERE step IS NOT NULL GROUP BY ALL),
        step_retries AS (
          SELECT workflow, 'task step' AS kind, ok FROM steps WHERE retried OR attempts > 1),
        refused AS (
          SELECT workflow, count(*) AS refused FROM (SELECT workflow, unnest(retry_log) AS r FROM traces)
          WHERE r.kind = 'tool' AND NOT r.performed GROUP BY ALL)
        SELECT workflow, count(*) AS retried, count(*) FILTER (WHERE ok) AS succeeded,
          100.0 * count(*) FILTER (WHERE ok) / count(*) AS success_pct,
          count(*) FILTER (WHERE kind = 'turn tool call') AS turn_calls,
          count(*) FILTER (WHERE kind = 'task step') AS task_steps,
          coalesce(any_value(refused.refused), 0) AS refused_unsafe
        FROM (SELECT * FROM turn_retries UNION ALL SELECT * FROM step_retries)
        LEFT JOIN refused USING (workflow) GROUP BY ALL ORDER BY ALL""",
    "outcomes": """
        WITH wf AS (
          SELECT workflow FROM traces UNION SELECT workflow FROM decisions UNION SELECT workflow FROM tasks),
        turns AS (
          SELECT workflow, count(*) AS ok_turns,
            sum(coalesce(cost_usd, 0) + coalesce(checkpoint_cost_usd, 0)) AS turn_cost,
            count(cost_usd) AS priced_turns
          FROM traces GROUP BY ALL),
        failed AS (
          SELECT workflow, count(*) AS failed_turns FROM decisions
          WHERE action LIKE 'model.call:%' AND rule = 'model.unavailable' GROUP BY ALL),
        summaries AS (
          SELECT workflow, count(*) FILTER (WHERE status = 'complete') AS ok_tasks,
            count(*) FILTER (WHERE status = 'failed') AS failed_tasks,
            sum(coalesce(cost_usd, 0)) AS task_cost, count(cost_usd) AS priced_tasks,
            quantile_disc(latency_ms, 0.95) AS task_latency_p95
          FROM tasks WHERE step IS NULL GROUP BY ALL),
        compensations AS (
          SELECT workflow, count(DISTINCT (task, step)) AS compensated FROM tasks
          WHERE status = 'compensated' GROUP BY ALL)
        SELECT workflow, coalesce(ok_turns, 0) AS ok_turns, coalesce(failed_turns, 0) AS failed_turns,
          100.0 * coalesce(ok_turns, 0) / nullif(coalesce(ok_turns, 0) + coalesce(failed_turns, 0), 0)
            AS turn_success_pct,
          coalesce(ok_tasks, 0) AS ok_tasks, coalesce(failed_tasks, 0) AS failed_tasks,
          100.0 * coalesce(ok_tasks, 0) / nullif(coalesce(ok_tasks, 0) + coalesce(failed_tasks, 0), 0)
            AS task_success_pct,
          coalesce(compensated, 0) AS compensated, task_latency_p95,
          coalesce(turn_cost, 0) + coalesce(task_cost, 0) AS cost_usd,
          coalesce(priced_turns, 0) + coalesce(priced_tasks, 0) AS priced,
          (coalesce(turn_cost, 0) + coalesce(task_cost, 0))
            / nullif(coalesce(ok_turns, 0) + coalesce(ok_tasks, 0), 0) AS cost_per_success_usd
        FROM wf LEFT JOIN turns USING (workflow) LEFT JOIN failed USING (workflow)
          LEFT JOIN summaries USING (workflow) LEFT JOIN compensations USING (workflow)
        ORDER BY workflow""",
    "alerts": """
        SELECT workflow, substr(action, 7) AS sli, decision, count(*) AS fired, min(dt) AS first, max(dt) AS last
        FROM decisions WHERE action LIKE 'alert:%' GROUP BY ALL ORDER BY ALL""",
    "period": """
        SELECT min(dt) AS first, max(dt) AS last, count(*) AS turns, count(DISTINCT (tenant, session)) AS sessions,
          count(DISTINCT tenant) AS tenants, count(DISTINCT workflow) AS workflows
        FROM traces""",
}


@dataclass(frozen=True)
class Figures:
    """Every table of the review, by name (the keys of `_SQL`), each a list of rows."""

    tables: dict[str, list[Row]] = field(default_factory=dict)

    def rows(self, name: str) -> list[Row]:
        return self.tables.get(name, [])

    def by_workflow(self, name: str) -> dict[str, Row]:
        return {str(r["workflow"]): r for r in self.rows(name) if r.get("region", "(all)") == "(all)"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if isinstance(value, Decimal):
        return float(value)
    return str(value)  # dates


def compute(export: Export) -> Figures:
    """Run every query of the review over the export's tables."""
    tables: dict[str, list[Row]] = {}
    for name, sql in _SQL.items():
        params = {"bounds": list(LATENCY_BUCKETS)} if "$bounds" in sql else None
        result = export.con.execute(sql, params) if params else export.con.execute(sql)
        columns = [d[0] for d in result.description]
        tables[name] = [{c: _jsonable(v) for c, v in zip(columns, row, strict=True)} for row in result.fetchall()]
    return Figures(tables)
