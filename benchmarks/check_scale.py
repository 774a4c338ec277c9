"""How `load_text` + `check` scale with spec size, and how fast the CLI answers.

    python benchmarks/check_scale.py            # the full table and the three bars
    python benchmarks/check_scale.py --quick    # sizes up to 1,000 tools, fewer CLI runs

Bars (each printed PASS/FAIL; the exit status is 1 if any fails):
  1. linear scaling: ms per 1,000 lines at ~50k lines is within 2x of that at ~1k lines;
  2. checking the 5,000-tool spec (~50k lines) takes under 3 s;
  3. `agentspec check specs/support_desk.agent` as a subprocess, interpreter start
     included, has a median wall time under 0.5 s over 7 runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_spec import generate

from agentspec.check import check
from agentspec.load import load_text
from agentspec.parse import parser

ROOT = Path(__file__).resolve().parent.parent
SIZES = [10, 100, 500, 1000, 2500, 5000]
LARGE = 1000  # sizes from here on are repeated fewer times
RATIO_BAR = 2.0
BIG_CHECK_BAR_S = 3.0
CLI_BAR_S = 0.5
CLI_RUNS = 7


@dataclass
class Row:
    tools: int
    lines: int
    median_s: float
    cpu_s: float
    runs: int

    @property
    def ms_per_kloc(self) -> float:
        return self.median_s * 1000 / (self.lines / 1000)


def time_check(text: str, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of load_text + check over `repeats` runs; each run must be clean.

    CPU time is shown too because a shared machine inflates wall time; the bars use wall time."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = check(load_text(text, "<generated>"))
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        if result.diagnostics:
            first = result.diagnostics[0]
            raise SystemExit(f"generated spec is not clean: {first.code} {first.message}")
    return statistics.median(wall), statistics.median(cpu)


def warm_up() -> None:
    parser()  # build (or load the cached) LALR tables
    check(load_text(generate(10), "<warm-up>"))


def cli_command() -> list[str]:
    exe = shutil.which("agentspec", path=str(Path(sys.executable).parent)) or shutil.which("agentspec")
    return [exe] if exe else [sys.executable, "-m", "agentspec"]


def time_cli(runs: int) -> tuple[float, list[float], int]:
    command = [*cli_command(), "check", "specs/support_desk.agent"]
    env = {**os.environ, "NO_COLOR": "1"}
    subprocess.run(command, cwd=ROOT, capture_output=True, env=env, check=False)  # warm the OS file cache
    times, code = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, env=env, check=False)
        times.append(time.perf_counter() - start)
        code = proc.returncode
    return statistics.median(times), times, code


def verdict(ok: bool) -> str:
    return "[bold green]PASS[/]" if ok else "[bold red]FAIL[/]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="sizes up to 1,000 tools only")
    args = ap.parse_args(argv)
    sizes = [s for s in SIZES if not args.quick or s <= LARGE]
    console = Console(highlight=False)
    load1 = os.getloadavg()[0]
    console.print(
        f"load average {load1:.2f} on {os.cpu_count()} CPUs" + (" (busy: wall times inflated)" if load1 > 1 else "")
    )

    warm_up()
    rows: list[Row] = []
    table = Table(title="agentspec load_text + check, in-process (median)")
    for column in ("tools", "lines", "runs", "median s", "cpu s", "ms / 1k lines"):
        table.add_column(column, justify="right")
    for n in sizes:
        text = generate(n)
        repeats = 5 if n < LARGE else 3
        wall, cpu = time_check(text, repeats)
        row = Row(tools=n, lines=text.count("\n"), median_s=wall, cpu_s=cpu, runs=repeats)
        rows.append(row)
        table.add_row(str(n), f"{row.lines:,}", str(repeats), f"{wall:.3f}", f"{cpu:.3f}", f"{row.ms_per_kloc:.2f}")
    console.print(table)

    failed = False
    small = min(rows, key=lambda r: abs(r.lines - 1_000))
    big = max(rows, key=lambda r: r.lines)
    ratio = big.ms_per_kloc / small.ms_per_kloc
    ok = ratio <= RATIO_BAR
    failed |= not ok
    console.print(
        f"scaling: {big.ms_per_kloc:.2f} ms/kLOC at {big.lines:,} lines vs {small.ms_per_kloc:.2f} at "
        f"{small.lines:,} lines = {ratio:.2f}x (bar <= {RATIO_BAR:g}x) {verdict(ok)}"
    )
    if not args.quick:
        five_k = next(r for r in rows if r.tools == 5000)
        ok = five_k.median_s < BIG_CHECK_BAR_S
        failed |= not ok
        console.print(
            f"5,000-tool check: {five_k.median_s:.3f} s for {five_k.lines:,} lines "
            f"(bar < {BIG_CHECK_BAR_S:g} s) {verdict(ok)}"
        )

    runs = 3 if args.quick else CLI_RUNS
    median, times, code = time_cli(runs)
    ok = median < CLI_BAR_S and code == 0
    failed |= not ok
    shown = ", ".join(f"{t:.3f}" for t in sorted(times))
    console.print(
        f"CLI `agentspec check specs/support_desk.agent`: median {median:.3f} s over {runs} runs "
        f"[{shown}], exit {code} (bar < {CLI_BAR_S:g} s) {verdict(ok)}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
