"""Benchmark `agentspec trace replay` over a synthetic export of specs/support_desk.agent with about 1,000,000
decision records (agentspec/trace/synthetic.py, under specs/traffic/support_desk.toml), replayed against the
reported policy and against a candidate that removes one tool from one allowlist. Prints records per second and
the peak resident memory of the replaying process. Bar: 1,000,000 decision records in under 5 s.

    python benchmarks/replay.py [SESSIONS]   # from the repository root, in the venv (default 96,000 sessions)

Three timings, each the median of three runs, each run in a fresh child process (its peak memory is its own):

- `cold`: the first replay of a pulled export: every decision record read by DuckDB and grouped by key. The
  chains were verified by the pull (timed once, on its own, as `trace pull --all` does it as files arrive).
- `indexed`: a later replay of the same files (another candidate, a CI re-run), which reads the keys the first
  replay kept (`.agentspec-replay.json`) instead of the records.

Decisions are grouped by (spec hash, workflow, kind, tool or tier, the tool decided, recorded decision, rule) and
each key is evaluated once: the evaluator is a pure function of the policy, the workflow and the tool (the
runtime passes no URL), so every decision of a key gets the same verdict. A million decisions are a few dozen keys.

The export is generated once per size under $TMPDIR/agentspec-replay-bench-N and reused.
"""

from __future__ import annotations

import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAR_S = 5.0

_CHILD = """
import json, resource, sys, time
from agentspec.trace import replay
root, candidate = sys.argv[1], sys.argv[2]
t = time.perf_counter()
rec = replay.load(root)
res = replay.replay(rec, replay.candidate_tables(candidate), candidate)
seconds = time.perf_counter() - t
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child of a parent that generated the export would
# report the parent's peak; VmHWM belongs to this process's own address space.
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
print(json.dumps({"s": seconds, "cpu_s": cpu, "peak_mib": peak, "decisions": rec.decisions, "outcomes": rec.outcomes,
                  "keys": len(rec.groups), "drifted": res.drifted, "flipped": res.flipped}))
"""


def _run(root: Path, candidate: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), str(candidate)], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> int:
    from agentspec.check import check
    from agentspec.load import load
    from agentspec.policy import tables
    from agentspec.sim import traffic
    from agentspec.trace import synthetic
    from agentspec.trace.fleet import check_chains, save_chains
    from agentspec.trace.replay import INDEX_FILE

    sessions = int(sys.argv[1]) if len(sys.argv) > 1 else 96_000
    root = Path(tempfile.gettempdir()) / f"agentspec-replay-bench-{sessions}"
    spec = check(load(str(ROOT / "specs" / "support_desk.agent"))).spec
    assert spec is not None
    policy = tables(spec)
    if not (root / "decisions").is_dir():
        t = time.perf_counter()
        counts = synthetic.generate(root, policy, traffic.load(str(ROOT / "specs/traffic/support_desk.toml")),
                                    sessions, seed=1)  # fmt: skip
        print(f"generated {counts['decisions']:,} decision records in {time.perf_counter() - t:.1f} s -> {root}")
        t = time.perf_counter()
        save_chains(root, check_chains(root))
        print(f"chain verification (at pull time, once): {time.perf_counter() - t:.1f} s")
    records = sum(1 for p in root.glob("decisions/*/*/*.ndjson") for _ in p.open())
    size = sum(p.stat().st_size for p in root.glob("decisions/*/*/*.ndjson"))
    print(f"export: {records:,} decision records, {size / 2**20:.0f} MiB of NDJSON")
    candidate = copy.deepcopy(policy)
    candidate["workflows"]["refunds"]["tools"].remove("send_email")
    candidate["spec_hash"] = "sha256:" + "c" * 64
    cand_path = root.parent / f"agentspec-replay-bench-{sessions}-candidate.json"
    cand_path.write_text(json.dumps(candidate))

    timings: dict[str, list[dict[str, float]]] = {"cold": [], "indexed": []}
    for _ in range(3):
        (root / INDEX_FILE).unlink(missing_ok=True)
        timings["cold"].append(_run(root, cand_path))
        timings["indexed"].append(_run(root, cand_path))
    ok = True
    for name, runs in timings.items():
        s = statistics.median(r["s"] for r in runs)
        peak = max(r["peak_mib"] for r in runs)
        last = runs[-1]
        each = ", ".join(f"{r['s']:.2f}" for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        print(
            f"{name:8s} median {s:5.2f} s ({each}; CPU {cpu:.2f} s), {records / s:,.0f} records/s, "
            f"peak {peak:,.0f} MiB; {last['decisions']:,.0f} re-evaluated in {last['keys']:.0f} keys, "
            f"{last['outcomes']:,.0f} outcomes, {last['drifted']:.0f} drifted, {last['flipped']:,.0f} flip"
        )
        ok = ok and s < BAR_S
    cold = statistics.median(r["s"] for r in timings["cold"])
    verdict = "PASS" if cold < BAR_S and records >= 1_000_000 else "FAIL"
    print(f"{verdict}: {records:,} decision records replayed cold in {cold:.2f} s (bar {BAR_S:.0f} s for 1,000,000)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
