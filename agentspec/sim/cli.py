"""`agentspec simulate`: argv in, a report (rich table or JSON) and an exit code out.

    agentspec simulate SPEC [--traffic FILE] [--compare SPEC2] [--seed N] [--sessions N] [--format human|json]

Exit 0 when every declared SLO holds in the simulation, 1 when one fails (so CI can gate on it) or the spec or
traffic model has errors (rendered as located diagnostics), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"`{text}` must be at least 1")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"`{text}` must be 0 or more")
    return value


def add_parser(commands: Any) -> None:
    """Register `simulate` on the CLI's subcommands."""
    p = commands.add_parser("simulate", help="simulate a spec under a traffic model and judge its SLOs")
    p.add_argument("spec", metavar="SPEC", help="the agent spec to simulate")
    p.add_argument(
        "--traffic",
        metavar="FILE",
        default=None,
        help="a traffic model (TOML), see docs/simulate.md (default: the built-in one, every field at its default)",
    )
    p.add_argument(
        "--compare", metavar="SPEC2", default=None, help="a second spec version, run on the same seed (default: none)"
    )
    p.add_argument(
        "--compare-traffic",
        metavar="FILE",
        default=None,
        help="a second traffic model for the same spec (default: none)",
    )
    p.add_argument("--seed", type=_seed, default=None, help="default: the traffic model's `seed` (0)")
    p.add_argument("--sessions", type=_positive, default=None, help="default: the traffic model's `sessions`")
    p.add_argument("--format", choices=["human", "json"], default="human", help="how to report")


def run(args: argparse.Namespace) -> int:
    from agentspec import sim
    from agentspec.diagnostics import render_human
    from agentspec.sim.report import render, slo_failed

    try:
        if args.compare or args.compare_traffic:
            reports = sim.compare(args.spec, args.compare or args.spec, args.traffic, args.compare_traffic,
                                  sessions=args.sessions, seed=args.seed)  # fmt: skip
        else:
            reports = [sim.simulate(args.spec, args.traffic, sessions=args.sessions, seed=args.seed)]
    except (sim.SpecError, sim.TrafficError) as exc:
        sys.stderr.write(render_human(exc.diagnostics, exc.sources) + "\n")
        what = "spec" if isinstance(exc, sim.SpecError) else "traffic model"
        sys.stderr.write(f"agentspec simulate: the {what} has errors; nothing was simulated\n")
        return EXIT_ERRORS
    if args.format == "json":
        print(json.dumps(reports if len(reports) > 1 else reports[0], indent=1, sort_keys=True))
    else:
        print(render(reports))
    failed = any(slo_failed(r) for r in reports)
    if args.format == "human":
        print("an SLO fails in the simulation" if failed else "every declared SLO holds in the simulation")
    return EXIT_ERRORS if failed else EXIT_OK
