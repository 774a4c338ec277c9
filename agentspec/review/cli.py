"""The `diff`, `snapshot` and review side of `explain` subcommands: argv in, an exit code out.

    agentspec diff OLD NEW [--format human|markdown|json|sarif] [--fail-on widening|any] [--accepted FILE]
    agentspec diff --base REV PATH...      each PATH (a file, or a directory: every agent under it whose
                                           files changed) against the same path at git revision REV
    agentspec snapshot SPEC... [--check]   write SPEC's meaning file, or fail when it is out of date

Exit codes: 0 no gate tripped, 1 a gate tripped (or a snapshot is stale), 2 bad input (a side that
does not check, a missing revision, a library or non-agent file), never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def add_parsers(commands: Any) -> None:
    diff = commands.add_parser("diff", help="review what a spec change means: permissions, safety, SLOs")
    diff.add_argument("paths", nargs="+", metavar="PATH", help="OLD NEW, or with --base: files or directories")
    diff.add_argument(
        "--base",
        metavar="REV",
        help="compare each PATH with the same path at git revision REV (default: none, compare OLD with NEW)",
    )
    diff.add_argument("--format", choices=["human", "markdown", "json", "sarif"], default="human", help="how to report")
    diff.add_argument(
        "--fail-on",
        choices=["widening", "any"],
        default=None,
        help="exit 1 when such a change is open (default: none, report and exit 0)",
    )
    diff.add_argument(
        "--accepted", metavar="FILE", help="a TOML file of reviewed changes, see docs/review.md (default: none)"
    )
    diff.add_argument("-o", "--out", metavar="FILE", help="write the report here (default: standard output)")
    diff.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="color the report: auto is only on a terminal, and never with NO_COLOR set",
    )

    snapshot = commands.add_parser("snapshot", help="write (or --check) the meaning file next to each agent spec")
    snapshot.add_argument(
        "specs", nargs="+", metavar="SPEC", help="agent specs; each meaning file goes next to its spec"
    )
    snapshot.add_argument("--check", action="store_true", help="write nothing; exit 1 if a meaning file is stale")


def run(args: argparse.Namespace) -> int:
    from agentspec.review.sources import InputError

    try:
        return _diff(args) if args.command == "diff" else _snapshot(args.specs, args.check)
    except InputError as exc:
        sys.stderr.write(f"agentspec: {exc}\n")
        return EXIT_USAGE


def explain(code: str) -> int | None:
    """Print a change code's explanation; None when `code` is not a change code."""
    from agentspec.review.catalogue import explain as text

    found = text(code)
    if found is None:
        return None
    print(found)
    return EXIT_OK


# ───────────────────────────── diff ─────────────────────────────


def _diff(args: argparse.Namespace) -> int:
    from agentspec.gcpause import paused
    from agentspec.review import gates, render
    from agentspec.review.change import Review

    with paused():  # two checked sides and their review: long-lived objects, no cycles to collect
        reviews: list[Review] = _reviews(args.paths, args.base)
    if args.accepted:
        active, expired = gates.read_accepted(args.accepted)
        for review in reviews:
            gates.apply_acceptances(review, active)
        for gone in expired:
            sys.stderr.write(
                f"agentspec: acceptance of `{gone.fingerprint}` by {gone.reviewer} expired on {gone.expires}\n"
            )
    if args.format == "markdown":
        text = render.markdown(reviews)
    elif args.format == "json":
        text = render.to_json(reviews) + "\n"
    elif args.format == "sarif":
        text = render.to_sarif(reviews) + "\n"
    else:
        stream = sys.stdout if args.out is None else None
        color = args.color == "always" or (
            args.color == "auto" and stream is not None and stream.isatty() and not os.environ.get("NO_COLOR")
        )
        text = render.human(reviews, color=color) if reviews else "no agent changed\n"
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as out:
                out.write(text)
        except OSError as exc:
            sys.stderr.write(f"agentspec: cannot write `{args.out}`: {exc.strerror or exc}\n")
            return EXIT_USAGE
    else:
        sys.stdout.write(text)
    return EXIT_FAIL if args.fail_on and gates.fails(reviews, args.fail_on) else EXIT_OK


def _reviews(paths: list[str], base: str | None) -> list[Any]:
    from agentspec.review import review
    from agentspec.review.sources import InputError, load_sides

    if base is None:
        if len(paths) != 2:
            raise InputError(f"`diff` takes two files, OLD and NEW (got {len(paths)}); or use `--base REV PATH...`")
        for p in paths:
            if os.path.isdir(p):
                raise InputError(f"`{p}` is a directory; compare directories with `--base REV {p}`")
        return [review(*load_sides((paths[0], None, ""), (paths[1], None, "")))]
    return _reviews_at_base(paths, base)


def _reviews_at_base(paths: list[str], rev: str) -> list[Any]:
    from agentspec.review import review
    from agentspec.review import sources as src

    root = src.repo_root(paths[0])
    src.check_revision(root, rev)
    out = []
    with src.revision_tree(root, rev) as tree:
        for path in paths:
            for new_path, rel in _targets(path, root, rev, tree):
                label = f"{rev}:{rel}"
                out.append(review(*src.load_sides((os.path.join(tree, rel), label, tree), (new_path, None, ""))))
    return out


def _targets(path: str, root: str, rev: str, tree: str) -> list[tuple[str, str]]:
    """(working-tree path, repository-relative path) of each agent to review under `path`."""
    from agentspec.review.sources import InputError

    real_root = os.path.realpath(root)
    if not os.path.isdir(path):
        rel = os.path.relpath(os.path.realpath(path), real_root)
        if rel.startswith(".."):
            raise InputError(f"`{path}` is outside the repository `{root}`")
        if not os.path.exists(path):
            raise InputError(f"file `{path}` does not exist")
        if not os.path.exists(os.path.join(tree, rel)):
            raise InputError(f"`{rel}` does not exist at revision `{rev}`; there is nothing to compare it with")
        return [(path, rel)]
    changed = _changed_files(root, rev)
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith(".agent"):
                continue
            new_path = os.path.join(dirpath, name)
            rel = os.path.relpath(os.path.realpath(new_path), real_root)
            if not os.path.exists(os.path.join(tree, rel)):
                sys.stderr.write(f"agentspec: `{rel}` is new since `{rev}`; nothing to compare it with\n")
                continue
            if _is_agent_touching(new_path, real_root, changed) or _is_agent_touching(
                os.path.join(tree, rel), tree, changed
            ):
                found.append((new_path, rel))
    return found


def _changed_files(root: str, rev: str) -> set[str]:
    from agentspec.review.sources import _git

    tracked = _git(["diff", "--name-only", "-z", rev, "--"], root).split("\0")
    untracked = _git(["ls-files", "--others", "--exclude-standard", "-z"], root).split("\0")
    return {n for n in [*tracked, *untracked] if n}


def _is_agent_touching(path: str, base: str, changed: set[str]) -> bool:
    """Whether `path` holds an agent one of whose files (itself, its imports) changed."""
    from agentspec import model as m
    from agentspec.load import load

    loaded = load(path)
    root_file = loaded.root_file
    if root_file is None or not isinstance(root_file.body, m.Agent):
        return False
    return any(os.path.relpath(os.path.realpath(f), base) in changed for f in loaded.sources)


# ───────────────────────────── snapshot ─────────────────────────────


def _snapshot(specs: list[str], check_only: bool) -> int:
    from agentspec.review.snapshot import meaning, meaning_path
    from agentspec.review.sources import InputError, load_side

    status = EXIT_OK
    for path in specs:
        try:
            side = load_side(path)
        except InputError:
            if _is_library(path):  # pre-commit passes every staged file; a library's meaning is its agents'
                print(f"skipped {path}: a library; its meaning is in the agents that import it")
                continue
            raise
        text = meaning(side.spec)
        target = meaning_path(path)
        try:
            with open(target, encoding="utf-8") as f:
                current: str | None = f.read()
        except FileNotFoundError:
            current = None
        if current == text:
            continue
        if check_only:
            status = EXIT_FAIL
            if current is None:
                print(f"{target} is missing: run `agentspec snapshot {path}` and commit it")
            else:
                print(f"the meaning of {path} changed; run `agentspec snapshot {path}` and commit {target}:")
                sys.stdout.writelines(
                    difflib.unified_diff(current.splitlines(True), text.splitlines(True), target, f"{path} (now)")
                )
            continue
        tmp = target + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        os.replace(tmp, target)
        print(f"wrote {target}")
    return status


def _is_library(path: str) -> bool:
    from agentspec import model as m
    from agentspec.load import load

    root = load(path).root_file
    return root is not None and isinstance(root.body, m.Library)
