"""`agentspec report DIR [--spec SPEC] [--previous DIR2] -o review.html`: an export directory in, the weekly
operations review (one self-contained HTML file) out. Exit 0 written, 1 bad input (the message names the file),
2 usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def add_parser(commands: Any) -> None:
    """Register `report` on the CLI's subcommands."""
    report = commands.add_parser("report", help="the operations review of a fleet export, as one HTML file")
    report.add_argument("export", metavar="DIR", help="an export directory (`agentspec trace pull --all`)")
    report.add_argument(
        "--spec",
        default=None,
        metavar="SPEC",
        help="judge each workflow against its SLOs (default: none, no judgement)",
    )
    report.add_argument(
        "--previous", default=None, metavar="DIR2", help="the previous period's export (default: none, no comparison)"
    )
    report.add_argument("-o", "--out", required=True, metavar="FILE", help="the HTML file to write")


def run(args: argparse.Namespace) -> int:
    from agentspec.report.engine import ReportInputError, open_export
    from agentspec.report.figures import compute
    from agentspec.report.html import Review, render
    from agentspec.report.slo import evaluate
    from agentspec.trace.fleet import ExportError, chains_of

    spec = None
    if args.spec is not None:
        spec = _checked_spec(args.spec)
        if spec is None:
            return EXIT_ERRORS
    try:
        export = open_export(args.export)
        figures = compute(export)
        chains = chains_of(Path(args.export))
        slo = evaluate(export, spec) if spec is not None else None
        previous = compute(open_export(args.previous)) if args.previous is not None else None
    except (ReportInputError, ExportError) as exc:
        sys.stderr.write(f"agentspec: {exc}\n")
        return EXIT_ERRORS
    html = render(Review(args.export, figures, chains, slo, previous, args.previous))
    try:
        Path(args.out).write_text(html, encoding="utf-8")
    except OSError as exc:
        sys.stderr.write(f"agentspec: cannot write `{args.out}`: {exc.strerror or exc}\n")
        return EXIT_ERRORS
    broken = sum(1 for c in chains if c.verified and not c.ok)
    unverified = sum(1 for c in chains if not c.verified)
    turns = sum(int(r["turns"]) for r in figures.rows("latency") if r["region"] == "(all)")
    print(
        f"review of {turns} turns in {len(figures.rows('outcomes'))} workflows -> {args.out}"
        f" ({len(chains)} chains: {broken} broken, {unverified} not verifiable)"
    )
    return EXIT_OK


def _checked_spec(path: str) -> Any:
    """The resolved spec, or None after printing why it does not check."""
    from agentspec.check import check
    from agentspec.diagnostics import has_errors, render_human
    from agentspec.load import load

    loaded = load(path)
    result = check(loaded)
    if result.spec is None or has_errors(result.diagnostics):
        errors = [d for d in result.diagnostics if d.severity == "error"]
        sys.stderr.write(render_human(errors, loaded.sources))
        sys.stderr.write(f"\nagentspec: the spec `{path}` does not check; fix it or leave out `--spec`\n")
        return None
    return result.spec
