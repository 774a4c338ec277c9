"""Benchmark `agentspec report` over a synthetic fleet export of 1,000,000 turn traces (agentspec/report/synthetic.py,
about 1.6 decision records per turn): time to load the export into DuckDB, compute every figure, read the chains'
verdicts and render the HTML; turns (and event rows) per second and the process's peak resident memory. What
`trace pull --all` does as the files arrive, verifying the chains and writing the Parquet analysis copy, is timed
on its own first. Bar: the whole report under 10 s. Prints PASS/FAIL; exits 1 if the bar fails.

    python benchmarks/report.py [TURNS] [--verify] [--ndjson]   # from the repository root, in the venv

`--ndjson` times the report without the analysis copy (what a directory never pulled costs), for comparison.

The export is generated once per size under $TMPDIR/agentspec-report-bench-N and reused.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agentspec.report.engine import ANALYSIS_DIR, open_export, write_analysis_copy
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
    if "--ndjson" in sys.argv:
        shutil.rmtree(root / ANALYSIS_DIR, ignore_errors=True)
        print("analysis copy: none (--ndjson): the report reads the NDJSON")
    elif not (root / ANALYSIS_DIR).is_dir() or "--verify" in sys.argv:
        shutil.rmtree(root / ANALYSIS_DIR, ignore_errors=True)
        t = time.perf_counter()
        write_analysis_copy(root)
        copy_s = time.perf_counter() - t
        copy_mib = sum(p.stat().st_size for p in (root / ANALYSIS_DIR).rglob("*.parquet")) / 2**20
        print(f"analysis copy (at pull time): {copy_mib:.0f} MiB of Parquet in {copy_s:.1f} s")
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
        rows = sum(
            export.con.execute(f"SELECT count(*) FROM {k}").fetchone()[0] for k in ("traces", "decisions", "tasks")
        )
        export.con.close()
        runs.append(phase)
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for k, v in median.items():
        print(f"  {k:8s} {v:6.2f} s")
    print(
        f"turns/s (whole report): {turns / median['total']:,.0f}; event rows/s: {rows / median['total']:,.0f} "
        f"({rows:,} rows); chains: {len(chains):,}"
    )
    print(f"html: {len(html) / 1024:.0f} KiB")
    print(f"peak resident memory: {peak_mib:,.0f} MiB")
    ok = median["total"] < BAR_S
    print(f"{'PASS' if ok else 'FAIL'}: report over {turns:,} turns in {median['total']:.2f} s (bar {BAR_S:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
