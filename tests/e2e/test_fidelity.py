"""The simulator's fidelity, the suite's smaller version of benchmarks/fidelity.py: the real runtime against
loopback stubs with known latencies and failure rates; run 1 calibrates, the simulator predicts run 2 (twice the
arrival rate, a harsher failure mix), run 2 is measured. Bar here: within 15 % on p95 latency, success rate and
cost per successful turn (the benchmark's bar, over more turns, is 10 %)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentspec.sim.fidelity import Behaviour, Lognormal, Mix, Plan, run

SPEC = Path(__file__).resolve().parent / "specs" / "fidelity.agent"
PRIMARY, FALLBACK = "@cf/test/primary", "@cf/test/fallback"


@pytest.mark.slow
def test_the_simulator_predicts_a_second_run_from_the_first(tmp_path: Path) -> None:
    plan = Plan(
        behaviour=Behaviour(
            models={PRIMARY: Lognormal(300, 450), FALLBACK: Lognormal(400, 600)}, tool=Lognormal(150, 250)
        ),
        mix1=Mix({PRIMARY: 0.10, FALLBACK: 0.10}, tool=0.08),
        mix2=Mix({PRIMARY: 0.25, FALLBACK: 0.15}, tool=0.20),
        rate1=3.0,
        rate2=6.0,
        sessions1=60,
        sessions2=70,
        simulated=20_000,
    )
    result = run(SPEC, plan, tmp_path, log=lambda _: None)
    # The calibration saw what the stubs do: two models, the tool on about half the turns, 3 turns a session.
    cal = result.calibrated
    assert set(cal["models"]) == {PRIMARY, FALLBACK}
    assert abs(cal["workflows"]["orders"]["tools"]["lookup"] - 0.5) < 0.12
    assert cal["workflows"]["orders"]["turns"] == {"mean": 3.0, "max": 3}
    assert abs(cal["models"][PRIMARY]["latency"]["p50"] - 300) < 60
    assert result.runs["r2"].turns == 3 * 70
    errors = result.errors()
    assert all(e <= 0.15 for e in errors.values()), result.table()
