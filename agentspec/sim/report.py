"""Simulation results: the engine's tallies in, a JSON-able report and a rich table out.

Per workflow: p50/p95/p99 latency and TTFT of turns, task latency, success rates, cost per turn and per
successful task (or turn, for a workflow without steps), the token-weighted cache-hit rate, the policy-denied
ratio, retries (and how many were replay-safe, how many were refused), each declared SLO's verdict over every
sample of the run with its margin (headroom: positive passes, negative fails), and the alerts the runtime's
monitor would have fired, with when (sample number and simulated seconds since the first session).
"""

from __future__ import annotations

from typing import Any

from agentspec.sim.engine import Tally, quantile
from agentspec.sim.slo import parse_percentile


def _pct(part: float, whole: float) -> float | None:
    return round(part / whole * 100, 4) if whole else None


def _q(hist: Any, q: float) -> float | None:
    v = quantile(hist, q)
    return round(v, 1) if v is not None else None


def verdicts(t: Tally, slo: dict[str, Any]) -> list[dict[str, Any]]:
    """Each declared SLO judged once over every sample of the run, as the monitor judges a window."""
    out: list[dict[str, Any]] = []

    def add(sli: str, value: float | None, bound: float, floor: bool, unit: str, **extra: Any) -> None:
        if value is None:
            out.append({"sli": sli, "verdict": "not judged", "value": None, "bound": bound, "margin": None,
                        "unit": unit, **extra})  # fmt: skip
            return
        passed = value >= bound if floor else value <= bound
        margin = value - bound if floor else bound - value
        out.append({"sli": sli, "verdict": "pass" if passed else "fail", "value": value, "bound": bound,
                    "margin": margin, "unit": unit, **extra})  # fmt: skip

    lp = parse_percentile(slo.get("latency_percentile"))
    if lp is not None and "latency_ms" in slo:
        add("latency", quantile(t.sample_latency, lp / 100), slo["latency_ms"], False, "ms", percentile=f"p{lp:g}")
    tp = parse_percentile(slo.get("ttft_percentile"))
    if tp is not None and "ttft_ms" in slo:
        add("ttft", quantile(t.sample_ttft, tp / 100), slo["ttft_ms"], False, "ms", percentile=f"p{tp:g}")
    if "success_pct" in slo:
        add("success", t.samples_ok / t.samples * 100 if t.samples else None, slo["success_pct"], True, "%")
    if "denied_pct" in slo:
        value = t.sample_denied / t.sample_decisions * 100 if t.sample_decisions else None
        add("denied", value, slo["denied_pct"], False, "%")
    if "cost_usd" in slo:
        add("cost", t.sample_cost / t.sample_priced if t.sample_priced else None, slo["cost_usd"], False, "usd")
    if "cache_hit_pct" in slo:
        value = t.sample_cached / t.sample_input * 100 if t.sample_input else None
        add("cache_hit", value, slo["cache_hit_pct"], True, "%")
    if "cache_drop_pct" in slo:
        fired = t.alert_counts.get("cache_hit_drop", 0)
        out.append({"sli": "cache_hit_drop", "verdict": "fail" if fired else "pass", "value": fired,
                    "bound": slo["cache_drop_pct"], "margin": None, "unit": "alerts"})  # fmt: skip
    return out


def workflow_report(name: str, t: Tally, slo: dict[str, Any], has_steps: bool) -> dict[str, Any]:
    successes = t.tasks_ok if has_steps and t.tasks else t.turns_ok
    return {
        "workflow": name,
        "turns": t.turns,
        "turn_success_pct": _pct(t.turns_ok, t.turns),
        "latency_ms": {
            "p50": _q(t.turn_latency, 0.5),
            "p95": _q(t.turn_latency, 0.95),
            "p99": _q(t.turn_latency, 0.99),
        },
        "ttft_ms": {"p50": _q(t.turn_ttft, 0.5), "p95": _q(t.turn_ttft, 0.95), "p99": _q(t.turn_ttft, 0.99)},
        "tasks": t.tasks,
        "task_success_pct": _pct(t.tasks_ok, t.tasks),
        "task_latency_ms": {
            "p50": _q(t.task_latency, 0.5),
            "p95": _q(t.task_latency, 0.95),
            "p99": _q(t.task_latency, 0.99),
        },
        "cost_usd": t.cost_usd,
        "cost_per_turn_usd": t.cost_usd / t.turns if t.turns else None,
        "cost_per_success_usd": t.cost_usd / successes if successes else None,
        "success_unit": "task" if has_steps and t.tasks else "turn",
        "cache_hit_pct": _pct(t.cached_tokens, t.input_tokens),
        "policy_denied_pct": _pct(t.denied, t.decisions),
        "tool_calls": int(t.tool_calls),
        "shadow_denied": int(t.shadow_denied),
        "retries": int(t.retries),
        "retries_replay_safe": int(t.retries_replay_safe),
        "retries_refused": int(t.retries_refused),
        "fallbacks": int(t.fallbacks),
        "checkpoints": int(t.checkpoints),
        "checkpoints_failed": int(t.checkpoints_failed),
        "compensations": int(t.compensations),
        "compensations_failed": int(t.compensations_failed),
        "slo": verdicts(t, slo),
        "alerts": {"count": dict(sorted(t.alert_counts.items())), "first": sorted(t.alerts, key=lambda a: a["sample"])},
    }


def slo_failed(report: dict[str, Any]) -> bool:
    return any(v["verdict"] == "fail" for wf in report["workflows"] for v in wf["slo"])


def render(reports: list[dict[str, Any]], width: int = 140) -> str:
    """Human output: one table of metrics and one of SLO verdicts, a column per (run, workflow)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=width, color_system=None, force_terminal=False, highlight=False, emoji=False)
    columns = [(r["label"], wf) for r in reports for wf in r["workflows"]]

    def money(v: float | None) -> str:
        return "-" if v is None else f"${v:.6f}"

    def num(v: float | None, unit: str = "") -> str:
        return "-" if v is None else f"{v:,.1f}{unit}"

    rows: list[tuple[str, Any]] = [
        ("turns", lambda w: f"{w['turns']:,}"),
        ("turn success", lambda w: num(w["turn_success_pct"], "%")),
        ("latency p50/p95/p99", lambda w: "/".join(num(w["latency_ms"][q]) for q in ("p50", "p95", "p99")) + " ms"),
        ("ttft p50/p95/p99", lambda w: "/".join(num(w["ttft_ms"][q]) for q in ("p50", "p95", "p99")) + " ms"),
        ("tasks", lambda w: f"{w['tasks']:,}"),
        ("task success", lambda w: num(w["task_success_pct"], "%")),
        ("task latency p95", lambda w: num(w["task_latency_ms"]["p95"], " ms")),
        ("cost per turn", lambda w: money(w["cost_per_turn_usd"])),
        ("cost per success", lambda w: money(w["cost_per_success_usd"]) + f" / {w['success_unit']}"),
        ("cache hit", lambda w: num(w["cache_hit_pct"], "%")),
        ("policy denied", lambda w: num(w["policy_denied_pct"], "%")),
        ("retries (replay-safe)", lambda w: f"{w['retries']:,} ({w['retries_replay_safe']:,})"),
        ("retries refused", lambda w: f"{w['retries_refused']:,}"),
        ("compensations (failed)", lambda w: f"{w['compensations']:,} ({w['compensations_failed']:,})"),
        ("alerts fired", lambda w: ", ".join(f"{k} x{v}" for k, v in w["alerts"]["count"].items()) or "none"),
    ]
    metrics = Table(title="simulation", show_lines=False)
    metrics.add_column("")
    for label, wf in columns:
        metrics.add_column(f"{label}\n{wf['workflow']}", justify="right")
    for title, get in rows:
        metrics.add_row(title, *(get(wf) for _, wf in columns))
    verdict_table = Table(title="SLO verdicts (margin: headroom to the bound)")
    verdict_table.add_column("run")
    verdict_table.add_column("workflow")
    verdict_table.add_column("sli")
    verdict_table.add_column("value", justify="right")
    verdict_table.add_column("bound", justify="right")
    verdict_table.add_column("margin", justify="right")
    verdict_table.add_column("verdict")

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.6g}"

    for label, wf in columns:
        for v in wf["slo"]:
            sli = v["sli"] + (f" {v['percentile']}" if "percentile" in v else "")
            cells = (fmt(v["value"]), fmt(v["bound"]), fmt(v["margin"]), v["verdict"].upper())
            verdict_table.add_row(label, wf["workflow"], sli, *cells)
    with console.capture() as capture:
        console.print(metrics)
        console.print(verdict_table)
    return capture.get()
