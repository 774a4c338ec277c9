"""`agentspec trace calibrate DIR -o traffic.toml`: the simulator's traffic model (docs/simulate.md) fitted from
a pulled fleet export. The export in (turn traces, decision records, task records, the reported policy); out, a
`Traffic` (validated by `agentspec.sim.traffic.parse`) as TOML with the sample behind every figure in a comment,
and a summary of what was measured (per-model TTFT and latency quantiles, failure counts, arrivals by hour).

What is read from where (the runtime's traces, docs/runtime.md):

- Sessions, turns per session, workflow shares and tenants: the decision chains. Every turn starts with a
  `model.route:` record, failed turns included (a failed turn leaves no turn trace), so a session's turns are its
  route records; a chain without one is a task's.
- Per-model latency: the TTFT of turns with no model retry (the first answer is one clean attempt of the model
  that answered); failure rates by kind: the turn traces' `retry_log` (`MODEL: 429`, `MODEL: 5xx`, a timeout),
  over attempts = answered rounds + failures; a turn whose every model failed (`model.unavailable`) counts one
  failed attempt of each model of its tier. `error_ms`: TTFT minus the answering model's median latency, over the
  turns whose one retry was that model's failure.
- Per-tool latency and failures: each turn trace's `tools` (attempts, outcome, status, ms): the latency of calls
  that succeeded at the first attempt; transient failures = retried attempts + calls that failed with a 5xx, 429
  or no status; `fail_4xx` the calls refused for good; a failure without status that took the tool's timeout is a
  `timeout`.
- Tool mix: per workflow, the share of traced turns that called each tool. Think time: the gap from one traced
  turn's end to the next one's start. Tasks: task ids per session of the workflow. Tokens: the prompt's growth
  over turns (a linear fit over the turns before the first checkpoint) and medians of answer sizes. Cache: the
  share of later turns that read cached tokens. Arrivals: sessions' first records, overall and by UTC hour.

The fit is empirical quantiles and ratios in DuckDB (no loop over the records in Python); numpy fits the line.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agentspec.trace.fleet import EXPORT_SCHEMA, export_files

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class CalibrationError(RuntimeError):
    """The export cannot be calibrated from (no traces, unreadable files, no policy to name the tiers)."""


@dataclass(frozen=True)
class Calibration:
    """The fitted traffic model (a TOML-ready dict), the comments for it, and what was measured."""

    traffic: dict[str, Any]
    notes: dict[str, str]
    summary: dict[str, Any]

    def toml(self) -> str:
        return to_toml(self.traffic, self.notes)


_TRACE_COLUMNS = (
    "{schema: 'INTEGER', id: 'VARCHAR', ts: 'VARCHAR', tenant: 'VARCHAR', session: 'VARCHAR', seq: 'BIGINT', "
    'data: \'STRUCT(workflow VARCHAR, tier VARCHAR, "gen_ai.response.model" VARCHAR, ttft_ms DOUBLE, '
    'latency_ms DOUBLE, rounds INTEGER, "gen_ai.usage.input_tokens" DOUBLE, "gen_ai.usage.output_tokens" DOUBLE, '
    '"gen_ai.usage.cache_read.input_tokens" DOUBLE, cost_usd DOUBLE, '
    "retry_log STRUCT(kind VARCHAR, target VARCHAR, reason VARCHAR)[], "
    "model_rounds STRUCT(round INTEGER, model VARCHAR, latency_ms DOUBLE, attempts STRUCT(model VARCHAR, "
    "ok BOOLEAN, status INTEGER, error VARCHAR, latency_ms DOUBLE)[])[], "
    "tools STRUCT(tool VARCHAR, decision VARCHAR, outcome VARCHAR, status INTEGER, attempts INTEGER, ms DOUBLE, "
    "latency_ms DOUBLE, attempt_log STRUCT(sent BOOLEAN, status INTEGER, rule VARCHAR, latency_ms DOUBLE)[])[])'}"
)
_DECISION_COLUMNS = (
    "{schema: 'INTEGER', id: 'VARCHAR', tenant: 'VARCHAR', session: 'VARCHAR', seq: 'BIGINT', "
    "data: 'STRUCT(ts VARCHAR, workflow VARCHAR, action VARCHAR, decision VARCHAR, rule VARCHAR, spec_hash VARCHAR)'}"
)
_TASK_COLUMNS = "{schema: 'INTEGER', id: 'VARCHAR', workflow: 'VARCHAR', session: 'VARCHAR'}"


def _glob(root: Path, kind: str) -> str:
    return "'" + str(root / kind / "dt=*" / "workflow=*" / "*.ndjson").replace("'", "''") + "'"


def _load(con: Any, root: Path) -> None:
    """Tables `t` (turn traces), `d` (decision records), `k` (task events), each event once by id."""
    sources = {"t": ("traces", _TRACE_COLUMNS), "d": ("decisions", _DECISION_COLUMNS), "k": ("tasks", _TASK_COLUMNS)}
    for table, (kind, columns) in sources.items():
        if not export_files(root, kind):
            if kind == "tasks":
                con.execute("CREATE TABLE k (schema INTEGER, id VARCHAR, workflow VARCHAR, session VARCHAR)")
                continue
            raise CalibrationError(f"`{root}` holds no {kind} (no `{kind}/dt=*/workflow=*/*.ndjson`)")
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_json({_glob(root, kind)}, format = 'newline_delimited', "
            f"columns = {columns}) QUALIFY row_number() OVER (PARTITION BY id) = 1"
        )
        bad = con.execute(f"SELECT schema FROM {table} WHERE schema IS DISTINCT FROM ? LIMIT 1", [EXPORT_SCHEMA])
        row = bad.fetchone()
        if row is not None:
            raise CalibrationError(
                f"the {kind} files under `{root}` have export schema {row[0]!r}; this agentspec reads {EXPORT_SCHEMA}"
            )
    # Turns with their start time; `clean`: no model retry, so TTFT is one attempt of the answering model.
    con.execute("""
        CREATE TABLE turns AS
        SELECT tenant, session, seq AS turn, data.workflow AS workflow, data.tier AS tier,
               data."gen_ai.response.model" AS model, data.ttft_ms AS ttft, data.latency_ms AS latency,
               coalesce(data.rounds, 1) AS rounds, data."gen_ai.usage.input_tokens" AS inp,
               data."gen_ai.usage.output_tokens" AS out, data."gen_ai.usage.cache_read.input_tokens" AS cached,
               data.cost_usd AS cost, data.tools AS tools, data.model_rounds AS model_rounds,
               [r FOR r IN coalesce(data.retry_log, []) IF r.kind = 'model'] AS model_retries,
               epoch_ms(ts::TIMESTAMPTZ) AS end_ms
        FROM t""")
    con.execute(
        "CREATE TABLE dec AS SELECT tenant, session, seq, data.workflow AS workflow, data.action AS action, "
        "data.decision AS decision, data.rule AS rule, epoch_ms(data.ts::TIMESTAMPTZ) AS at_ms FROM d"
    )


def _policy(root: Path, spec: str | None) -> dict[str, Any]:
    from agentspec.trace.replay import ReplayInputError, candidate_tables, policies_in

    try:
        if spec is not None:
            return candidate_tables(spec)
        policies = policies_in(root)
    except ReplayInputError as exc:
        raise CalibrationError(str(exc)) from exc
    if not policies:
        raise CalibrationError(
            f"`{root}` holds no reported policy (`policies/*.json`, kept by `trace pull --all --url`); "
            "pass `--spec SPEC` to name the tiers' models and the tools' timeouts"
        )
    # The newest deploy's: the policy of the spec hash of the last decision record.
    return policies[sorted(policies)[-1]] if len(policies) == 1 else _newest(root, policies)


def _newest(root: Path, policies: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        row = con.execute(
            f"SELECT data.spec_hash FROM read_json({_glob(root, 'decisions')}, format = 'newline_delimited', "
            "columns = {data: 'STRUCT(spec_hash VARCHAR, ts VARCHAR)'}) ORDER BY data.ts DESC LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    return policies.get(row[0] if row else "", next(iter(policies.values())))


def _r(x: float | None, digits: int = 1) -> float:
    return round(float(x or 0.0), digits)


def _dist(p50: float | None, p95: float | None) -> dict[str, float]:
    lo = max(_r(p50), 0.1)
    return {"p50": lo, "p95": max(_r(p95), lo)}


def _rate(n: float, of: float) -> float:
    return round(min(1.0, n / of), 6) if of > 0 else 0.0


def calibrate(root: str | Path, spec: str | None = None) -> Calibration:
    """Fit a traffic model from the export at `root` (see the module docstring for what comes from where)."""
    import duckdb

    root = Path(root)
    if not root.is_dir():
        raise CalibrationError(f"`{root}` is not an export directory")
    policy = _policy(root, spec)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")
        _load(con, root)
        return _fit(con, policy)
    except duckdb.Error as exc:
        message = str(exc).strip().splitlines()[0]
        hint = " (a truncated file?)" if "Malformed JSON" in message or "unexpected end" in message else ""
        raise CalibrationError(f"the export under `{root}` cannot be read{hint}: {message}") from exc
    finally:
        con.close()


def _fit(con: Any, policy: Mapping[str, Any]) -> Calibration:
    traffic: dict[str, Any] = {}
    notes: dict[str, str] = {}
    summary: dict[str, Any] = {}

    # ── sessions and workflows ──
    sessions = con.execute("""
        WITH s AS (
          SELECT tenant, session, any_value(workflow) AS workflow, min(at_ms) AS start_ms,
                 count(*) FILTER (WHERE starts_with(action, 'model.route:')) AS turns
          FROM dec GROUP BY tenant, session
        )
        SELECT workflow, tenant, count(*) AS n, sum(turns) AS turns, max(turns) AS max_turns
        FROM s WHERE turns > 0 GROUP BY workflow, tenant ORDER BY workflow, tenant""").fetchall()
    if not sessions:
        raise CalibrationError("the export holds no session (no `model.route:` decision record)")
    total = sum(int(r[2]) for r in sessions)
    traffic["sessions"] = total
    span = con.execute("""
        SELECT min(start_ms), max(start_ms), count(*) FROM (
          SELECT min(at_ms) AS start_ms FROM dec GROUP BY tenant, session
          HAVING count(*) FILTER (WHERE starts_with(action, 'model.route:')) > 0)""").fetchone()
    first, last, n_sessions = span
    seconds = (last - first) / 1000 if last is not None and first is not None else 0.0
    traffic["arrival_rate"] = round((n_sessions - 1) / seconds, 4) if seconds > 0 and n_sessions > 1 else 1.0
    notes["arrival_rate"] = f"{n_sessions} sessions over {seconds:.1f} s"
    hourly = con.execute("""
        WITH s AS (SELECT min(at_ms) AS start_ms FROM dec GROUP BY tenant, session
                   HAVING count(*) FILTER (WHERE starts_with(action, 'model.route:')) > 0)
        SELECT hour(make_timestamp(start_ms * 1000)) AS h, count(*) FROM s GROUP BY h ORDER BY h""").fetchall()
    summary["arrivals_by_hour"] = {int(h): int(n) for h, n in hourly}
    summary["observed_s"] = seconds
    # The simulator takes one rate; the hours it averages over are kept beside it, for a peak-hour what-if.
    notes["arrivals_by_hour"] = ", ".join(f"{int(h):02d}h {int(n)}" for h, n in hourly)

    by_wf: dict[str, dict[str, Any]] = {}
    for wf, tenant, n, turns, max_turns in sessions:
        w = by_wf.setdefault(wf, {"n": 0, "turns": 0, "max": 0, "tenants": {}})
        w["n"] += int(n)
        w["turns"] += int(turns)
        w["max"] = max(w["max"], int(max_turns))
        w["tenants"][tenant] = int(n)
    think = dict(
        con.execute("""
        WITH x AS (
          SELECT workflow, end_ms - latency AS start_ms, end_ms,
                 lag(end_ms) OVER (PARTITION BY tenant, session ORDER BY turn) AS prev_end
          FROM turns)
        SELECT workflow, avg(greatest(start_ms - prev_end, 0)) FROM x WHERE prev_end IS NOT NULL GROUP BY workflow
        """).fetchall()
    )
    traced = dict(con.execute("SELECT workflow, count(*) FROM turns GROUP BY workflow").fetchall())
    mix = con.execute("""
        SELECT workflow, tool, count(DISTINCT (tenant, session, turn)) FROM (
          SELECT workflow, tenant, session, turn, unnest(tools).tool AS tool FROM turns)
        GROUP BY workflow, tool ORDER BY workflow, tool""").fetchall()
    # A task is in the task export (its step records), and its decision chain is the one without a route record.
    tasks = dict(
        con.execute("""
        SELECT workflow, count(DISTINCT session) FROM (
          SELECT workflow, session FROM k
          UNION SELECT any_value(workflow), session FROM dec GROUP BY tenant, session
                HAVING count(*) FILTER (WHERE starts_with(action, 'model.route:')) = 0)
        GROUP BY workflow""").fetchall()
    )
    workflows: dict[str, Any] = {}
    for wf, w in sorted(by_wf.items()):
        if wf not in policy["workflows"]:
            continue  # a workflow the current spec no longer has: nothing to simulate it with
        entry: dict[str, Any] = {"share": round(w["n"] / total, 6)}
        mean = w["turns"] / w["n"]
        entry["turns"] = {"mean": round(max(1.0, mean), 4), "max": max(1, w["max"])}
        if wf in think:
            entry["think_ms"] = _r(think[wf])
        entry["tenants"] = {t: round(n / w["n"], 6) for t, n in sorted(w["tenants"].items())}
        tools = {tool: _rate(n, traced.get(wf, 0)) for f, tool, n in mix if f == wf and tool in policy["tools"]}
        if tools:
            entry["tools"] = tools
        if policy["workflows"][wf]["steps"]:
            entry["tasks"] = _rate(tasks.get(wf, 0), w["n"])
        workflows[wf] = entry
        notes[f"workflows.{wf}"] = (
            f"{w['n']} sessions, {w['turns']} turns ({traced.get(wf, 0)} traced), {tasks.get(wf, 0)} tasks"
        )
    traffic["workflows"] = workflows

    traffic["models"], summary["models"], model_notes = _models(con, policy)
    notes.update(model_notes)
    traffic["tools"], summary["tools"], tool_notes = _tools(con, policy)
    notes.update(tool_notes)
    traffic["tokens"], traffic["cache"], token_notes = _tokens(con, policy)
    notes.update(token_notes)
    summary["turns"] = {
        row[0]: {"turns": int(row[1]), "latency_p50": row[2], "latency_p95": row[3], "cost_per_turn": row[4]}
        for row in con.execute(
            "SELECT workflow, count(*), quantile_cont(latency, 0.5), quantile_cont(latency, 0.95), avg(cost) "
            "FROM turns GROUP BY workflow ORDER BY workflow"
        ).fetchall()
    }
    return Calibration(traffic, notes, summary)


# One row per model attempt, from the per-round records where the trace has them (`model_rounds`: each attempt's
# model, status, error and latency), else from what every trace has: `rounds` answers by the answering model (the
# first one's latency is the TTFT when no model was retried) and a failure per `retry_log` entry.
_MODEL_ATTEMPTS = """
CREATE TABLE mattempts AS
WITH new AS (
  SELECT a.model, a.ok, a.status, a.error, a.latency_ms AS latency
  FROM (SELECT unnest(r.attempts) AS a FROM (SELECT unnest(model_rounds) AS r FROM turns WHERE len(model_rounds) > 0))
),
old_ok AS (
  SELECT model, true AS ok, NULL::INTEGER AS status, NULL AS error,
         CASE WHEN i = 1 AND len(model_retries) = 0 THEN ttft END AS latency
  FROM (SELECT model, model_retries, ttft, unnest(range(1, rounds + 1)) AS i FROM turns
        WHERE coalesce(len(model_rounds), 0) = 0 AND model IS NOT NULL)
),
old_failed AS (
  SELECT split_part(r.reason, ': ', 1) AS model, false AS ok,
         TRY_CAST(substr(r.reason, strpos(r.reason, ': ') + 2) AS INTEGER) AS status,
         substr(r.reason, strpos(r.reason, ': ') + 2) AS error, NULL::DOUBLE AS latency
  FROM (SELECT unnest(model_retries) AS r FROM turns WHERE coalesce(len(model_rounds), 0) = 0)
)
SELECT *, CASE WHEN ok THEN NULL WHEN status = 429 THEN 'busy_429' WHEN status >= 500 THEN 'fail_5xx'
               WHEN regexp_matches(lower(coalesce(error, '')), 'timed? ?out|abort') THEN 'timeout'
               ELSE 'fail_5xx' END AS kind
FROM (SELECT * FROM new UNION ALL SELECT * FROM old_ok UNION ALL SELECT * FROM old_failed)
"""


def _models(con: Any, policy: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    con.execute(_MODEL_ATTEMPTS)
    stats = con.execute("""
        SELECT model, count(*) FILTER (WHERE ok), count(*) FILTER (WHERE ok AND latency IS NOT NULL),
               quantile_cont(latency, 0.5) FILTER (WHERE ok), quantile_cont(latency, 0.95) FILTER (WHERE ok),
               quantile_cont(latency, 0.99) FILTER (WHERE ok),
               quantile_cont(latency, 0.5) FILTER (WHERE NOT ok AND kind <> 'timeout')
        FROM mattempts GROUP BY model ORDER BY model""").fetchall()
    failures = con.execute(
        "SELECT model, kind, count(*) FROM mattempts WHERE NOT ok GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    unavailable = dict(
        con.execute(
            "SELECT substr(action, 12), count(*) FROM dec WHERE starts_with(action, 'model.call:') "
            "AND rule = 'model.unavailable' GROUP BY ALL"
        ).fetchall()
    )
    answered = {m: int(n) for m, n, *_ in stats}
    latency = {m: (int(k), p50, p95, p99) for m, _, k, p50, p95, p99, _ in stats}
    measured_error = {m: e for m, *_, e in stats if e is not None}
    # Without per-attempt latency: a turn whose one retry was model F's failure, answered by model A in one
    # round: TTFT = F's error time + A's latency, so F's error time is the median of TTFT minus A's median.
    medians = {m: v[1] for m, v in latency.items() if v[1] is not None}
    errors: dict[str, list[float]] = {}
    for failed, model, ttft in con.execute("""
        SELECT split_part(model_retries[1].reason, ': ', 1), model, ttft FROM turns
        WHERE len(model_retries) = 1 AND rounds = 1 AND coalesce(len(model_rounds), 0) = 0""").fetchall():
        if model in medians:
            errors.setdefault(failed, []).append(max(0.0, float(ttft) - float(medians[model])))
    kinds: dict[str, dict[str, int]] = {}
    for model, kind, n in failures:
        kinds.setdefault(model, {})[kind] = int(n)
    # A turn whose every model failed left no trace: each model of its tier failed once more, of its usual kind.
    for tier, n in unavailable.items():
        for model in policy["tiers"].get(tier, {}).get("models", []):
            seen = kinds.setdefault(model, {})
            total_seen = sum(seen.values())
            shares = {k: v / total_seen for k, v in seen.items()} if total_seen else {"fail_5xx": 1.0}
            for kind, share in shares.items():
                seen[kind] = seen.get(kind, 0) + round(n * share)
    models: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    notes: dict[str, str] = {}
    tier_models = {m for t in policy["tiers"].values() for m in t["models"]}
    for model in sorted(set(answered) | set(kinds)):
        if model not in tier_models:
            continue
        failed = kinds.get(model, {})
        attempts = float(answered.get(model, 0)) + sum(failed.values())
        entry: dict[str, Any] = {}
        n, p50, p95, p99 = latency.get(model, (0, None, None, None))
        if n:
            entry["latency"] = _dist(p50, p95)
        for kind in ("fail_5xx", "timeout", "busy_429"):
            entry[kind] = _rate(failed.get(kind, 0), attempts)
        if model in measured_error:
            entry["error_ms"] = _r(measured_error[model])
        elif errors.get(model):
            entry["error_ms"] = _r(float(np.median(errors[model])))
        models[model] = entry
        summary[model] = {"attempts": int(attempts), "failures": failed,
                          "latency": {"n": n, "p50": p50, "p95": p95, "p99": p99}}  # fmt: skip
        notes[f"models.{model}"] = f"{int(attempts)} attempts, {sum(failed.values())} failed; latency from {n} answers"
    summary_ttft = con.execute("""
        SELECT model, count(*), quantile_cont(ttft, 0.5), quantile_cont(ttft, 0.95), quantile_cont(ttft, 0.99),
               quantile_cont(latency, 0.5), quantile_cont(latency, 0.95), quantile_cont(latency, 0.99)
        FROM turns WHERE model IS NOT NULL GROUP BY model""").fetchall()
    for model, n, t50, t95, t99, l50, l95, l99 in summary_ttft:
        if model in summary:
            summary[model]["turn_ttft"] = {"n": int(n), "p50": t50, "p95": t95, "p99": t99}
            summary[model]["turn_latency"] = {"n": int(n), "p50": l50, "p95": l95, "p99": l99}
    return models, summary, notes


# One row per tool attempt that was sent: from `attempt_log` where the trace has it (each attempt's status, rule
# and latency), else from the call's `attempts`, `outcome`, `status` and `ms`: every attempt but the last failed
# transiently (it was retried), the last one is the outcome, and its latency is known when it was the only one.
_TOOL_ATTEMPTS = """
CREATE TABLE tattempts AS
WITH calls AS (SELECT unnest(tools) AS c FROM turns),
new AS (
  SELECT c.tool, a.status, a.rule, a.latency_ms AS latency
  FROM (SELECT c, unnest(c.attempt_log) AS a FROM calls WHERE len(c.attempt_log) > 0) WHERE a.sent
),
old_retried AS (
  SELECT c.tool, NULL::INTEGER AS status, 'tool.error' AS rule, NULL::DOUBLE AS latency
  FROM (SELECT c, unnest(range(1, c.attempts)) FROM calls
        WHERE coalesce(len(c.attempt_log), 0) = 0 AND c.outcome IN ('ok', 'failed'))
),
old_last AS (
  SELECT c.tool, c.status, CASE WHEN c.outcome = 'ok' THEN 'ok' WHEN c.status IS NOT NULL THEN 'tool.status'
                                WHEN c.ms / c.attempts >= 0.9 * t.timeout_ms THEN 'tool.timeout'
                                ELSE 'tool.error' END AS rule,
         CASE WHEN c.attempts = 1 THEN coalesce(c.latency_ms, c.ms) END AS latency
  FROM calls JOIN tool_timeouts t ON t.tool = c.tool
  WHERE coalesce(len(c.attempt_log), 0) = 0 AND c.outcome IN ('ok', 'failed')
)
SELECT *, CASE WHEN rule = 'ok' THEN 'ok'
               WHEN rule = 'tool.status' AND status BETWEEN 400 AND 499 AND status <> 429 THEN 'fail_4xx'
               WHEN rule = 'tool.timeout' THEN 'timeout' ELSE 'fail' END AS kind
FROM (SELECT * FROM new UNION ALL SELECT * FROM old_retried UNION ALL SELECT * FROM old_last)
"""


def _tools(con: Any, policy: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    con.execute("CREATE TABLE tool_timeouts (tool VARCHAR, timeout_ms DOUBLE)")
    con.executemany(
        "INSERT INTO tool_timeouts VALUES (?, ?)", [(k, float(v["timeout_ms"])) for k, v in policy["tools"].items()]
    )
    con.execute(_TOOL_ATTEMPTS)
    rows = con.execute("""
        SELECT tool, count(*) AS attempts,
               count(*) FILTER (WHERE kind = 'fail'), count(*) FILTER (WHERE kind = 'timeout'),
               count(*) FILTER (WHERE kind = 'fail_4xx'),
               quantile_cont(latency, 0.5) FILTER (WHERE kind = 'ok'),
               quantile_cont(latency, 0.95) FILTER (WHERE kind = 'ok'),
               quantile_cont(latency, 0.5) FILTER (WHERE kind IN ('fail', 'fail_4xx'))
        FROM tattempts GROUP BY tool ORDER BY tool""").fetchall()
    tools: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for tool, attempts, fail, timeout, f4, p50, p95, err in rows:
        if tool not in policy["tools"]:
            continue
        entry: dict[str, Any] = {}
        if p50 is not None:
            entry["latency"] = _dist(p50, p95)
        entry["fail"] = _rate(fail, attempts)
        entry["timeout"] = _rate(timeout, attempts)
        entry["fail_4xx"] = _rate(f4, attempts)
        if err is not None:
            entry["error_ms"] = _r(err)
        tools[tool] = entry
        summary[tool] = {"attempts": int(attempts), "latency_p50": p50, "latency_p95": p95, "transient": int(fail),
                         "timeouts": int(timeout), "refused": int(f4)}  # fmt: skip
        notes[f"tools.{tool}"] = f"{int(attempts)} attempts, {int(fail) + int(timeout) + int(f4)} failed"
    return tools, summary, notes


def _tokens(con: Any, policy: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    # The prompt grows by the last turn's input and answer: fit input tokens against the turn number over clean,
    # tool-free turns before any checkpoint could have trimmed the history (and within the 20 turns a prompt holds).
    every = [w["checkpoint"]["every"] for w in policy["workflows"].values() if w.get("checkpoint")]
    upto = min([20, *every])
    one = np.array(
        con.execute(
            "SELECT turn, inp, out FROM turns WHERE rounds = 1 AND len(model_retries) = 0 AND inp IS NOT NULL "
            "AND turn <= ? ORDER BY tenant, session, turn",
            [upto],
        ).fetchall(),
        dtype=float,
    ).reshape(-1, 3)
    tokens: dict[str, Any] = {}
    notes: dict[str, str] = {}
    if len(one):
        output = float(np.median(one[:, 2]))
        if len(np.unique(one[:, 0])) > 1:
            slope, intercept = np.polyfit(one[:, 0] - 1, one[:, 1], 1)
        else:
            slope, intercept = 0.0, float(np.median(one[:, 1]))
        inp = max(0.0, float(slope) - output)
        tokens = {"system": max(0, round(float(intercept) - inp)), "input": round(inp), "output": round(output)}
        two = np.array(
            con.execute(
                "SELECT turn, inp, out FROM turns WHERE rounds = 2 AND len(model_retries) = 0 AND len(tools) = 1 "
                "AND turn <= ?",
                [upto],
            ).fetchall(),
            dtype=float,
        ).reshape(-1, 3)
        if len(two):
            tool_call = max(0.0, float(np.median(two[:, 2])) - output)
            first_round = intercept + slope * (two[:, 0] - 1)
            tool_result = float(np.median(two[:, 1] - 2 * first_round - tool_call))
            tokens["tool_call"] = round(tool_call)
            tokens["tool_result"] = max(0, round(tool_result))
        notes["tokens"] = f"a line through {len(one)} tool-free turns, {len(two)} one-tool turns"
    # A prefix can only be cached on the model that saw it: later turns answered by the previous turn's model.
    hit = con.execute("""
        SELECT count(*) FILTER (WHERE cached > 0), count(*) FROM (
          SELECT cached, model, lag(model) OVER (PARTITION BY tenant, session ORDER BY turn) AS before FROM turns)
        WHERE model = before""").fetchone()
    cache = {"affinity": True, "hit": _rate(hit[0], hit[1]) if hit and hit[1] else 0.0}
    if cache["hit"] == 0.0:
        cache["hit_without_affinity"] = 0.0  # nothing was ever cached: no prefix survives either way
    notes["cache"] = (
        f"{hit[0] if hit else 0} of {hit[1] if hit else 0} turns on the last turn's model read cached tokens"
    )
    return tokens, cache, notes


# ── TOML ──────────────────────────────────────────────────────────────────────


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else "0.0"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML form for {v!r}")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else _value(k)


def to_toml(traffic: Mapping[str, Any], notes: Mapping[str, str]) -> str:
    """The traffic model as TOML, tables in the order docs/simulate.md lists them, each with its note."""
    out = [
        "# Traffic fitted by `agentspec trace calibrate` from a fleet export (docs/replay.md).",
        "# Every figure below is measured; the comment beside a table says from how many samples.",
    ]
    if notes.get("arrivals_by_hour"):
        out.append(f"# sessions started by UTC hour: {notes['arrivals_by_hour']}")
    for k in ("sessions", "arrival_rate", "seed"):
        if k in traffic:
            note = f"  # {notes[k]}" if k in notes else ""
            out.append(f"{k} = {_value(traffic[k])}{note}")
    for section in ("tokens", "cache"):
        if traffic.get(section):
            out += ["", f"[{section}]" + (f"  # {notes[section]}" if section in notes else "")]
            out += [f"{_key(k)} = {_value(v)}" for k, v in traffic[section].items()]
    for group in ("workflows", "models", "tools"):
        for name, entry in traffic.get(group, {}).items():
            comment = notes.get(f"{group}.{name}")
            out += ["", f"[{group}.{_key(name)}]" + (f"  # {comment}" if comment else "")]
            out += [f"{_key(k)} = {_value(v)}" for k, v in entry.items()]
    return "\n".join(out) + "\n"


# ── the command ───────────────────────────────────────────────────────────────


def add_parser(trace_commands: Any) -> argparse.ArgumentParser:
    cal = trace_commands.add_parser("calibrate", help="fit the simulator's traffic model from a pulled fleet export")
    cal.add_argument("source", metavar="DIR", help="a pulled export (agentspec trace pull --all)")
    cal.add_argument("-o", "--out", required=True, metavar="FILE", help="the traffic model to write (TOML)")
    cal.add_argument("--spec", default=None, metavar="SPEC", help="default: the policy the runtime reported")
    return cal


def run(args: argparse.Namespace) -> int:
    from agentspec.sim.traffic import TrafficError, parse

    try:
        result = calibrate(args.source, args.spec)
    except CalibrationError as exc:
        sys.stderr.write(f"agentspec: {exc}\n")
        return EXIT_USAGE
    text = result.toml()
    try:
        parse(text, args.out)  # what is written must load: a fitted value out of range is a bug here
    except TrafficError as exc:  # pragma: no cover - a guard, not a path
        sys.stderr.write(f"agentspec: the fitted traffic model does not validate: {exc}\n")
        return EXIT_FAIL
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as exc:
        sys.stderr.write(f"agentspec: cannot write `{args.out}`: {exc.strerror or exc}\n")
        return EXIT_FAIL
    t = result.traffic
    print(
        f"calibrated from {t['sessions']:,} sessions: {len(t['workflows'])} workflows, {len(t['models'])} models, "
        f"{len(t['tools'])} tools, {t['arrival_rate']} sessions/s -> {args.out}"
    )
    return EXIT_OK
