"""The simulator against answers known in closed form: a latency distribution reproduced, a fallback chain's
success rate, a retried step's success rate, a cost SLO flipping at its computed boundary, and determinism."""

from __future__ import annotations

import json
import math

import numpy as np

from agentspec import sim
from agentspec.sim.traffic import Traffic
from tests.sim.specs import spec


def traffic(**fields: object) -> Traffic:
    base: dict[str, object] = {"arrival_rate": 50.0, "workflows": {"w": {"turns": 10, "think_ms": 1000}}}
    base.update(fields)
    return Traffic.model_validate(base)


def wf(report: dict) -> dict:
    (only,) = report["workflows"]
    return only


def test_one_model_without_failures_reproduces_its_latency_distribution() -> None:
    t = traffic(models={"@cf/test/only": {"latency": {"p50": 400, "p95": 1300}}})
    got = wf(sim.simulate(spec(), t, sessions=10_000, seed=3))  # 100,000 turns
    assert got["turns"] == 100_000 and got["turn_success_pct"] == 100
    mu, sigma = math.log(400), (math.log(1300) - math.log(400)) / 1.6448536269514722
    z = {"p50": 0.0, "p95": 1.6448536269514722, "p99": 2.3263478740408408}
    for q, zq in z.items():
        expected = math.exp(mu + sigma * zq)
        assert abs(got["latency_ms"][q] - expected) / expected < 0.02, (q, got["latency_ms"][q], expected)
        # No tools: the first answer is the turn's whole answer, so TTFT is the same distribution.
        assert abs(got["ttft_ms"][q] - expected) / expected < 0.02


def test_a_fallback_chain_succeeds_with_one_minus_the_product_of_failure_rates() -> None:
    names = ["@cf/test/a", "@cf/test/b", "@cf/test/c"]
    fail = {"@cf/test/a": {"fail_5xx": 0.3}, "@cf/test/b": {"timeout": 0.4}, "@cf/test/c": {"busy_429": 0.5}}
    got = wf(sim.simulate(spec(names), traffic(models=fail), sessions=10_000, seed=5))
    p = 1 - 0.3 * 0.4 * 0.5
    n = got["turns"]
    sigma = math.sqrt(p * (1 - p) / n) * 100
    assert abs(got["turn_success_pct"] - p * 100) < 4 * sigma, (got["turn_success_pct"], p)
    # Every fallback is a replay-safe model retry.
    assert got["retries"] == got["retries_replay_safe"] > 0


STEP_TOOL = """
  tool flaky {
    GET "https://api.example.com/v1/{id}"
    risk low
    read_only
    args { id: string }
    timeout 5s
  }
"""


def test_n_retries_at_failure_rate_p_succeed_with_one_minus_p_to_the_n_plus_one() -> None:
    p, n = 0.5, 2
    s = spec(tools=STEP_TOOL, allow="flaky", steps=f"step get = call flaky retry {n} backoff constant 1s timeout 10s")
    t = traffic(workflows={"w": {"turns": 1, "tasks": 1.0}}, tools={"flaky": {"fail": p}})
    got = wf(sim.simulate(s, t, sessions=40_000, seed=11))
    expected = 1 - p ** (n + 1)
    sigma = math.sqrt(expected * (1 - expected) / got["tasks"]) * 100
    assert got["tasks"] == 40_000
    assert abs(got["task_success_pct"] - expected * 100) < 4 * sigma, got["task_success_pct"]
    # Expected retries: attempt 2 runs with chance p, attempt 3 with p^2; all are replay-safe (read_only).
    per_task = p + p**2
    assert abs(got["retries"] / got["tasks"] - per_task) < 0.02
    assert got["retries_replay_safe"] == got["retries"]


def test_the_retry_schedule_is_the_workflows_backoff() -> None:
    # Every attempt fails: a task spends its attempts' error time plus the backoff waits, exactly.
    s = spec(tools=STEP_TOOL, allow="flaky", steps="step get = call flaky retry 3 backoff exponential 1s timeout 10s")
    t = traffic(workflows={"w": {"turns": 1, "tasks": 1.0}}, tools={"flaky": {"fail": 1.0, "error_ms": 10}})
    got = wf(sim.simulate(s, t, sessions=200, seed=1))
    assert got["task_success_pct"] == 0
    expected = 4 * 10 + 1000 + 2000 + 4000  # 1s, 2s, 4s between the four attempts
    assert abs(got["task_latency_ms"]["p50"] - expected) / expected < 0.002


def _cost_run(bound: float) -> dict:
    s = spec(price="price in 0.6 out 2.5 per Mtok", slo=f"cost per task < ${bound!r}")
    t = traffic(
        tokens={"system": 1000, "input": 200, "output": 300},
        cache={"hit": 0.0, "hit_without_affinity": 0.0},
        workflows={"w": {"turns": 1}},
    )
    return wf(sim.simulate(s, t, sessions=500, seed=2))


def test_a_cost_slo_verdict_flips_at_the_computed_boundary() -> None:
    # One turn per session, no tools, no cache: each turn costs exactly (1200 x 0.6 + 300 x 2.5) / 1e6.
    cost = (1200 * 0.6 + 300 * 2.5) / 1e6
    above = _cost_run(float(np.nextafter(cost * (1 + 1e-9), 1)))
    below = _cost_run(cost * (1 - 1e-9))
    [v_above] = [v for v in above["slo"] if v["sli"] == "cost"]
    [v_below] = [v for v in below["slo"] if v["sli"] == "cost"]
    assert v_above["verdict"] == "pass" and v_below["verdict"] == "fail"
    assert abs(v_above["value"] - cost) < 1e-15
    assert 0 < v_above["margin"] < 1e-11 and -1e-11 < v_below["margin"] < 0
    # The runtime's monitor fires a cost alert only on the side that fails.
    assert "cost" not in above["alerts"]["count"] or above["alerts"]["count"]["cost"] == 0
    assert below["alerts"]["count"]["cost"] == 1


def test_the_same_seed_gives_the_same_output_and_another_seed_does_not() -> None:
    a = sim.simulate("specs/support_desk.agent", "specs/traffic/support_desk.toml", sessions=3000, seed=9)
    b = sim.simulate("specs/support_desk.agent", "specs/traffic/support_desk.toml", sessions=3000, seed=9)
    c = sim.simulate("specs/support_desk.agent", "specs/traffic/support_desk.toml", sessions=3000, seed=10)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert json.dumps(a, sort_keys=True) != json.dumps(c, sort_keys=True)


def test_alerts_fire_when_the_monitor_first_judges_a_crossed_slo_and_not_again_while_it_stays_crossed() -> None:
    s = spec(slo="success >= 99%  latency p95 < 10s")
    t = traffic(models={"@cf/test/only": {"fail_5xx": 1.0, "error_ms": 5}}, workflows={"w": {"turns": 2}})
    got = wf(sim.simulate(s, t, sessions=1000, seed=4))
    assert got["turn_success_pct"] == 0
    # Success is judged from the 5th sample on; every sample fails, so it fires there, once.
    assert got["alerts"]["count"] == {"success": 1}
    [alert] = got["alerts"]["first"]
    assert alert["sli"] == "success" and alert["sample"] == 5 and alert["value"] == 0
    assert alert["at_s"] > 0
    assert {v["sli"]: v["verdict"] for v in got["slo"]} == {"latency": "pass", "success": "fail"}


SAGA_TOOLS = """
  tool reserve {
    POST "https://api.example.com/v1/reservations"
    risk low
    args { order_id: string }
    returns { reservation_id: string }
    idempotency key "{session}:{args.order_id}:reserve"
    compensate release
    timeout 2s
  }
  tool release {
    POST "https://api.example.com/v1/reservations/{reservation_id}/release"
    risk low
    args { reservation_id: string }
    idempotency key "{session}:{args.reservation_id}:release"
    timeout 2s
  }
  tool ship {
    POST "https://api.example.com/v1/shipments"
    risk low
    args { order_id: string }
    idempotency key "{session}:{args.order_id}:ship"
    timeout 2s
  }
"""
SAGA_STEPS = """
    step hold = call reserve with { order_id: "{params.order_id}" } retry 2 backoff constant 1s timeout 5s
    step send = call ship with { order_id: "{params.order_id}" } retry 4 backoff linear 1s timeout 5s
"""


def test_a_terminal_failure_rolls_back_what_finished_and_a_4xx_is_not_retried() -> None:
    s = spec(tools=SAGA_TOOLS, allow="reserve, release, ship", steps=SAGA_STEPS)
    t = traffic(workflows={"w": {"turns": 1, "tasks": 1.0}}, tools={"ship": {"fail_4xx": 1.0, "error_ms": 10}})
    got = wf(sim.simulate(s, t, sessions=500, seed=6))
    assert got["tasks"] == 500 and got["task_success_pct"] == 0
    # Every task reserved, then `send` failed for good: one compensation (release) each, no retry of `send`.
    assert got["compensations"] == 500 and got["compensations_failed"] == 0
    assert got["retries"] == 0
    ok = traffic(workflows={"w": {"turns": 1, "tasks": 1.0}})
    clean = wf(sim.simulate(s, ok, sessions=500, seed=6))
    assert clean["task_success_pct"] == 100 and clean["compensations"] == 0
