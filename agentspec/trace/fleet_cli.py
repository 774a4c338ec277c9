"""`agentspec trace pull --all URL|DIR|s3://BUCKET/PREFIX -o DIR` (or `--url …`): the fleet export brought up to
date in DIR, each new session's chain verified. Exit 0 every chain that could be verified is intact, 1 a chain is
broken or the export could not be read, 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def run_pull_all(args: argparse.Namespace) -> int:
    from agentspec.trace.fleet import ExportError, S3Options, pull_all

    if args.out is None:
        sys.stderr.write("agentspec: `--all` writes a directory; pass `-o DIR`\n")
        return EXIT_USAGE
    token = args.admin_token or os.environ.get("AGENTSPEC_ADMIN_TOKEN")
    try:
        result = pull_all(
            args.url,
            Path(args.out),
            tenant=args.tenant or "fleet",
            admin_token=token,
            tenant_header=args.tenant_header,
            s3=S3Options(args.endpoint_url, args.region, args.profile),
        )
    except ExportError as exc:
        sys.stderr.write(f"agentspec: {exc}\n")
        return EXIT_ERRORS
    except OSError as exc:
        sys.stderr.write(f"agentspec: cannot write `{args.out}`: {exc.strerror or exc}\n")
        return EXIT_ERRORS
    for chain in result.broken:
        first = chain.problems[0] if chain.problems else None
        why = f"{first.message} (seq {first.seq})" if first is not None else "broken"
        sys.stderr.write(f"agentspec: chain of `{chain.session}` (tenant `{chain.tenant}`) is broken: {why}\n")
    for chain in result.unverified:
        missing = ", ".join(str(s) for s in chain.missing[:10])
        sys.stderr.write(
            f"agentspec: chain of `{chain.session}` (tenant `{chain.tenant}`) not verifiable yet: "
            f"seq {missing} missing\n"
        )
    for key in result.unconverted:
        sys.stderr.write(f"agentspec: `{key}` could not be converted for analysis; `agentspec report` reads it as is\n")
    print(
        f"pulled {len(result.fetched)} new objects ({result.skipped} already here) -> {args.out}; "
        f"{len(result.chains)} chains checked, {len(result.broken)} broken, {len(result.unverified)} not verifiable"
    )
    return EXIT_ERRORS if result.broken else EXIT_OK
