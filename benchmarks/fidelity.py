"""The simulator's fidelity against the real runtime (agentspec/sim/fidelity.py): tests/e2e/specs/fidelity.agent
served by `wrangler dev` against loopback model and tool stubs with known latency distributions and failure rates;
run 1 at one arrival rate and failure mix, calibrated from its pulled export; the simulator predicts run 2 (another
arrival rate, another failure mix); run 2 is measured. Prints predicted vs measured p95 latency, success rate and
cost per successful turn. Bar: each within 10 %. Exits 1 when one is not.

    python benchmarks/fidelity.py [--quick]     # from the repository root, in the venv; loopback only

Run 1: 2 sessions/s, primary model 500s 10 %, fallback 10 %, tool 503s 8 %. Run 2: 4 sessions/s, primary 25 %,
fallback 15 %, tool 20 %. Sessions of 3 turns, 300 ms mean think time; the model asks for the tool on half the
turns. Stub latencies are hundreds of ms so that the runtime's own overhead is small against them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from agentspec.sim.fidelity import Behaviour, Lognormal, Mix, Plan, run

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "tests" / "e2e" / "specs" / "fidelity.agent"
PRIMARY, FALLBACK = "@cf/test/primary", "@cf/test/fallback"
BAR = 0.10

BEHAVIOUR = Behaviour(
    models={PRIMARY: Lognormal(300, 450), FALLBACK: Lognormal(400, 600)},
    tool=Lognormal(150, 250),
)


def plan(quick: bool) -> Plan:
    return Plan(
        behaviour=BEHAVIOUR,
        mix1=Mix({PRIMARY: 0.10, FALLBACK: 0.10}, tool=0.08),
        mix2=Mix({PRIMARY: 0.25, FALLBACK: 0.15}, tool=0.20),
        rate1=2.0,
        rate2=4.0,
        sessions1=80 if quick else 400,
        sessions2=80 if quick else 600,
    )


def main() -> int:
    result = run(SPEC, plan("--quick" in sys.argv))
    print(result.table())
    errors = result.errors()
    ok = all(e <= BAR for e in errors.values())
    worst = max(errors, key=lambda k: errors[k])
    print(f"{'PASS' if ok else 'FAIL'}: worst {worst} off by {errors[worst] * 100:.1f}% (bar {BAR * 100:.0f}%)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
