"""Benchmark `agentspec report` over a synthetic fleet export of 1,000,000 turn traces (agentspec/report/synthetic.py,
about 1.6 decision records per turn): time to load the export into DuckDB, compute every figure, read the chains'
verdicts and render the HTML; turns per second and the process's peak resident memory. Chain verification, which
`trace pull --all` does as the files arrive, is timed on its own first. Bar: the whole
report under 10 s. Prints PASS/FAIL; exits 1 if the bar fails.

    python benchmarks/report.py [TURNS] [--verify]   # from the repository root, in the venv (default 1,000,000)

The export is generated once per size under $TMPDIR/agentspec-report-bench-N and reused.
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agentspec.report.engine import open_export
from agentspec.report.figures import compute
from agentspec.report.html import Review, render
from agentspec.report.synthetic import generate
from agentspec.trace.fleet import CHAINS_FILE, chains_of, check_chains, save_chains

BAR_S = 10.0


def main() -> int:
    sizes = [a for a in sys.argv[1:] if not a.startswith("--")]
    turns = int(sizes[0]) if sizes else 1_000_000
    root = Path(tempfile.gettempdir()) / f"agentspec-report-bench-{turns}"
    if not (root / "traces").is_dir():
        t = time.perf_counter()
        generate(root, turns, seed=1)
        print(f"generated {turns:,} turns in {time.perf_counter() - t:.1f} s -> {root}")
    size = sum(p.stat().st_size for p in root.rglob("*.ndjson"))
    print(f"export: {size / 2**20:.0f} MiB of NDJSON")
    # What `agentspec trace pull --all` does as it goes: verify every chain once, and keep the verdicts.
    # (Skipped when an earlier run's verdicts still match the files: pass --verify to time it again.)
    if "--verify" in sys.argv or not (root / CHAINS_FILE).exists():
        t = time.perf_counter()
        save_chains(root, check_chains(root))
        verify_s = time.perf_counter() - t
        records = sum(1 for p in root.glob("decisions/*/*/*.ndjson") for _ in p.open())
        print(
            f"chain verification (at pull time): {records:,} records in {verify_s:.1f} s, {records / verify_s:,.0f}/s"
        )
    runs: list[dict[str, float]] = []
    for _ in range(3):
        phase: dict[str, float] = {}
        t0 = time.perf_counter()
        export = open_export(root)
        phase["load"] = time.perf_counter() - t0
        t = time.perf_counter()
        figures = compute(export)
        phase["figures"] = time.perf_counter() - t
        t = time.perf_counter()
        chains = chains_of(root)  # what the pull verified (saved below, as `trace pull --all` does)
        phase["chains"] = time.perf_counter() - t
        t = time.perf_counter()
        html = render(Review(str(root), figures, chains, None))
        phase["render"] = time.perf_counter() - t
        phase["total"] = time.perf_counter() - t0
        export.con.close()
        runs.append(phase)
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for k, v in median.items():
        print(f"  {k:8s} {v:6.2f} s")
    print(f"turns/s (whole report): {turns / median['total']:,.0f}; chains: {len(chains):,}")
    print(f"html: {len(html) / 1024:.0f} KiB")
    print(f"peak resident memory: {peak_mib:,.0f} MiB")
    ok = median["total"] < BAR_S
    print(f"{'PASS' if ok else 'FAIL'}: report over {turns:,} turns in {median['total']:.2f} s (bar {BAR_S:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
