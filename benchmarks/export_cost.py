"""What the fleet export costs a turn in CPU, side by side: the finest figure this machine resolves.

    python benchmarks/export_cost.py                                # export off, a copy of it, as compiled
    python benchmarks/export_cost.py --variant text=/tmp/edited     # and edited copies of the compiled project

The compiled project (`--spec`, default the runtime benchmark's) runs under its own `wrangler dev` beside a copy
with the export off (`runtime_load.export_off_copy`) and a second copy of that (`off-2`, the A/A: the method's
resolution), plus any `--variant NAME=DIR` (an already-compiled, edited project). All of them at once take the
same open-loop load (`--rate` turns/s each over `--sessions` sessions), so a slow moment of this shared machine
falls on every side; runtime_load.py's export phase alternates sides instead, and its windows swing by more
than the 5% it judges. Each repetition warms fresh sessions up, lets `--settle` seconds pass uncounted (longer
than the export's lag: a send 10 s after a commit, the consumer's write 1 s after that), and counts
`--seconds`. The figure is each side's wrangler process group's CPU per answered turn, as a ratio to the mean
of the two export-off sides in the same repetition; printed: the median over the repetitions and their range.
Traffic goes only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runtime_load as rl  # the runtime benchmark's Worker, stub and load loop, shared


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, default=rl.DEFAULT_SPEC)
    ap.add_argument("--workflow", default="watch")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=DIR", help="an edited compiled copy")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rate", type=float, default=20.0, help="turns/s per side")
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=16.0, help="counted seconds per repetition")
    ap.add_argument("--settle", type=float, default=12.0, help="uncounted seconds before each count")
    ap.add_argument("--state-dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None)
    args = ap.parse_args(argv)
    variants = [v.partition("=") for v in args.variant]
    if any(not name or not sep or not Path(path).is_dir() for name, sep, path in variants):
        ap.error("--variant takes NAME=DIR, DIR a compiled project")
    load = argparse.Namespace(
        sessions=args.sessions,
        warmup=15,
        concurrency=args.sessions,
        deadline=args.settle + args.seconds + 120.0,
        export_seconds=args.seconds,
        export_settle=args.settle,
        workflow=args.workflow,
    )

    work = Path(tempfile.mkdtemp(prefix="agentspec-export-cost-", dir=args.state_dir))
    stub = rl.Stub()
    sides: list[rl.Worker] = []
    try:
        project, secrets = rl.generated_project(args.spec, work)
        env = rl.generated_vars(stub, secrets)
        off = rl.export_off_copy(project, work)
        copies = {"off": off, "off-2": rl.copy_project(off, work / "off-2"), "compiled": project}
        for name, _, path in variants:
            copies[name] = rl.copy_project(Path(path), work / f"variant-{name}")
        for name, path in copies.items():
            sides.append(rl.Worker(name, path, env, work))
            sides[-1].start()
        print(
            f"export_cost: {len(sides)} sides at once, {args.rate:g} turns/s each over {args.sessions} sessions, "
            f"{args.seconds:g} s counted after {args.settle:g} s, {args.reps} repetitions"
        )
        cpu: dict[str, list[float]] = {w.label: [] for w in sides}
        for rep in range(args.reps):
            windows = asyncio.run(rl._load_windows(sides, args.workflow, f"c{rep}-", load, args.rate))
            for w, win in zip(sides, windows, strict=True):
                if win.errors:
                    raise SystemExit(f"{w.label}: errors {win.errors}")
                cpu[w.label].append(win.cpu_ms)
            print(
                f"  {rep + 1} "
                + "   ".join(
                    f"{w.label} {win.cpu_ms:.2f} ms/turn p99 {win.pct(99):.0f} ms"
                    for w, win in zip(sides, windows, strict=True)
                )
            )
        # The reference is the mean of the two export-off sides: a side's place among the started Workers can
        # shift its figure by a few % for a whole run (off-2 0.952 of off, every repetition, in one run; 0.995
        # in another), and the mean halves that.
        reference = [(a + b) / 2 for a, b in zip(cpu["off"], cpu["off-2"], strict=True)]
        print(
            "\nCPU per turn (wrangler process group), as a ratio to the mean of `off` and `off-2` in the same "
            "repetition:"
        )
        for w in sides:
            ratios = [c / r for c, r in zip(cpu[w.label], reference, strict=True)]
            print(
                f"  {w.label:12} {statistics.median(cpu[w.label]):6.2f} ms/turn   "
                f"ratio {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
            )
        return 0
    finally:
        for w in sides:
            w.stop()
        stub.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
