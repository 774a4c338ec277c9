"""How fast the simulator runs and how much memory it holds: sessions in, sessions/s and peak memory out.

    .venv/bin/python benchmarks/simulate.py            # the bars below
    .venv/bin/python benchmarks/simulate.py --quick    # 10,000 and 100,000 sessions only

Each size runs in a fresh process (so its peak resident memory is its own), after a small untimed warm-up
run, and is timed as the median of 3 runs (1 at 1,000,000 sessions). It simulates specs/support_desk.agent
with every session in the `orders` workflow, 10 turns each, one tool call in two turns. Bars: 100,000
sessions x 10 turns in under 10 s; time per session flat within 1.5x from 10,000 to 1,000,000 sessions;
peak memory at 1,000,000 sessions under 1 GiB.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

TRAFFIC = {
    "arrival_rate": 20.0,
    "workflows": {"orders": {"turns": 10, "think_ms": 5000, "tools": {"lookup_order": 0.5}}},
    "models": {"@cf/zai-org/glm-4.7-flash": {"latency": {"p50": 400, "p95": 900}, "fail_5xx": 0.01}},
}


def one(sessions: int) -> dict[str, float]:
    """Run in this process: wall time of the simulation and this process's peak resident memory."""
    import resource

    from agentspec import sim
    from agentspec.sim.traffic import Traffic

    spec = sim.checked("specs/support_desk.agent")
    traffic = Traffic.model_validate(TRAFFIC)
    # A small untimed run first: first calls (imports inside numpy, caches) are a fixed cost, not a per-session one.
    sim.simulate(spec, traffic, sessions=200, seed=0)
    # The median of 3 runs below 1,000,000 sessions: a short run is at the mercy of a busy machine.
    times = []
    for _ in range(3 if sessions < 1_000_000 else 1):
        started = time.perf_counter()
        report = sim.simulate(spec, traffic, sessions=sessions, seed=1)
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    turns = sum(w["turns"] for w in report["workflows"])
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"sessions": sessions, "turns": turns, "seconds": seconds, "peak_mib": peak_mib}


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(one(int(sys.argv[2]))))
        return 0
    sizes = [10_000, 100_000] if "--quick" in sys.argv else [10_000, 100_000, 1_000_000]
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout))
    print(f"{'sessions':>10} {'turns':>11} {'seconds':>8} {'sessions/s':>11} {'us/session':>11} {'peak MiB':>9}")
    for r in rows:
        rate = r["sessions"] / r["seconds"]
        print(f"{r['sessions']:>10,} {r['turns']:>11,} {r['seconds']:>8.2f} {rate:>11,.0f} "
              f"{1e6 / rate:>11.1f} {r['peak_mib']:>9.0f}")  # fmt: skip
    per = [r["seconds"] / r["sessions"] for r in rows]
    ratio = max(per) / min(per)
    at_100k = next(r for r in rows if r["sessions"] == 100_000)
    print(f"100,000 sessions x 10 turns: {at_100k['seconds']:.2f} s (bar: < 10 s)")
    over = ", ".join(f"{r['sessions']:,}" for r in rows)
    print(f"time per session, max/min over {over} sessions: {ratio:.2f}x (bar: <= 1.5x)")
    last = rows[-1]
    print(f"peak memory at {last['sessions']:,} sessions: {last['peak_mib']:.0f} MiB (bar: < 1024 MiB)")
    ok = at_100k["seconds"] < 10 and ratio <= 1.5 and last["peak_mib"] < 1024
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
