"""The `agentspec` command line: argv in, an exit code out, over the library's stages.

    agentspec check FILE... [--format human|json|sarif]   0 clean (warnings allowed), 1 errors, 2 usage
    agentspec fmt FILE... [--check]                       rewrite files canonically, or report which would change
    agentspec explain CODE                                the long explanation of a diagnostic code
    agentspec compile SPEC -o OUTDIR [--force] [--target cloudflare]   a deployable project, written atomically
    agentspec dev SPEC [-o OUTDIR] [--port N]             run it locally, rebuilt and reloaded on every spec change
    agentspec trace pull --url URL --session S --tenant T [--admin-token TOKEN] [-o FILE]
                                                          a running runtime's /v1/traces, as JSON
    agentspec trace pull --all --url URL|DIR -o DIR       the fleet export, incrementally, chains verified
    agentspec trace verify FILE [--format human|json] [--public-key KEYFILE]
                                                          0 the decision chain is intact, 1 it is not, 2 unreadable
    agentspec trace replay DIR [--against SPEC] [--fail-on drift|flips] [--format human|json]
                                                          recorded decisions re-evaluated: drift, and candidate flips
    agentspec trace calibrate DIR -o traffic.toml [--spec SPEC]   the simulator's traffic model, fitted from an export
    agentspec diff OLD NEW | --base REV PATH...           what a spec change means (agentspec/review/cli.py)
    agentspec snapshot SPEC... [--check]                  the committed meaning file of a spec
    agentspec simulate SPEC [--traffic FILE] [--compare SPEC2] [--seed N] [--sessions N] [--format human|json]
                                                          0 every SLO holds in the simulation, 1 one fails or errors
    agentspec report DIR [--spec SPEC] [--previous DIR2] -o review.html
                                                          the weekly operations review of a fleet export

Heavy imports (pydantic models, lark, rich) happen inside the commands, so `--help` and
a clean `check` start fast.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from agentspec import __version__
from agentspec.review import cli as review_cli
from agentspec.targets import DEFAULT_TARGET, TARGETS

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default: appended here when the default is a value (`human`, 8787);
    an option that defaults to nothing says in its own words what happens without it (`default: standard
    output`). tests/test_cli.py walks the whole tree to keep it so."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            action.option_strings
            and action.default is not None
            and action.default != []  # a repeatable option: none unless given, said in its own words
            and action.default is not False  # a flag: off unless given (`0 in (False,)` is true, hence `is`)
            and action.default != argparse.SUPPRESS
            and "%(default)" not in text
            and "default:" not in text
        ):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"agentspec: error: {message}\n")
        # A misspelled subcommand or choice: argparse lists the choices; say which one was meant.
        wrong = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if wrong:
            from agentspec.diagnostics import did_you_mean

            hint = did_you_mean(wrong.group(1), re.findall(r"'?([\w-]+)'?", wrong.group(2)))
            if hint:
                sys.stderr.write(f"  = help: {hint}\n")
        raise SystemExit(EXIT_USAGE)


_COLOR_HELP = "color the diagnostics: auto is only on a terminal, and never with NO_COLOR set"


def _spec_files(paths: list[str]) -> list[str]:
    """The files to read: a directory stands for every `.agent` file below it, sorted, outside node_modules and
    hidden directories; a file (or a path that does not exist, which the loader reports) stands for itself."""
    out: list[str] = []
    for path in paths:
        if not os.path.isdir(path):
            out.append(path)
            continue
        found: list[str] = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d != "node_modules" and not d.startswith("."))
            found.extend(os.path.join(root, f) for f in sorted(files) if f.endswith(".agent"))
        out.extend(found or [path])  # none below it: the loader says it is a directory, not a spec
    return out


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="agentspec", description="Compile and check agentspec agent specs.")
    parser.add_argument("--version", action="version", version=f"agentspec {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    check = commands.add_parser("check", help="check spec files and report every problem")
    check.add_argument(
        "files", nargs="+", metavar="FILE", help="spec files, or directories: every .agent file below them"
    )
    check.add_argument("--format", choices=["human", "json", "sarif"], default="human", help="how to report")
    check.add_argument("--color", choices=["auto", "always", "never"], default="auto", help=_COLOR_HELP)

    fmt = commands.add_parser("fmt", help="format spec files canonically, keeping comments")
    fmt.add_argument(
        "files", nargs="+", metavar="FILE", help="spec files, or directories: every .agent file below them"
    )
    fmt.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")

    compile_ = commands.add_parser("compile", help="compile a spec into a Cloudflare Workers project")
    compile_.add_argument("spec", metavar="SPEC", help="the agent spec to compile")
    compile_.add_argument(
        "-o", "--out", required=True, metavar="OUTDIR", help="the project directory: new, empty or an earlier output"
    )
    compile_.add_argument("--force", action="store_true", help="replace a non-empty OUTDIR agentspec did not create")
    compile_.add_argument("--color", choices=["auto", "always", "never"], default="auto", help=_COLOR_HELP)
    compile_.add_argument(
        "--target", choices=sorted(TARGETS), default=DEFAULT_TARGET, help="the platform to compile for"
    )

    dev = commands.add_parser(
        "dev", help="compile a spec, run it locally under wrangler dev, and rebuild when the spec changes"
    )
    dev.add_argument("spec", metavar="SPEC", help="the agent spec to run; edits to it (and its imports) reload")
    dev.add_argument("-o", "--out", default=None, metavar="OUTDIR", help="the project directory (default: out/AGENT)")
    dev.add_argument("--port", type=int, default=8787, help="the loopback port to serve on (default: %(default)s)")
    dev.add_argument(
        "--inference-url",
        default=None,
        metavar="URL",
        help="an OpenAI-compatible endpoint (default: a scripted loopback model that ships with agentspec)",
    )
    dev.add_argument(
        "--tools",
        choices=["stub", "real"],
        default="stub",
        help="send tool calls to a loopback stub, or to the tools' real hosts (default: %(default)s)",
    )

    explain = commands.add_parser("explain", help="explain a diagnostic code")
    explain.add_argument("code", metavar="CODE", help="a diagnostic code (E0614) or a change code of `agentspec diff`")

    trace = commands.add_parser("trace", help="pull a running runtime's traces and verify their decision chain")
    trace_commands = trace.add_subparsers(dest="trace_command", required=True, parser_class=_Parser)
    pull = trace_commands.add_parser(
        "pull", help="fetch GET /v1/traces for one session (or one task) and write it as JSON"
    )
    pull.add_argument(
        "source",
        nargs="?",
        metavar="SOURCE",
        help="with --all, instead of --url: a runtime URL, an export directory or s3://BUCKET[/PREFIX]",
    )
    pull.add_argument(
        "--url",
        default=None,
        help="the runtime's base URL, e.g. http://127.0.0.1:8787; with --all also a directory or s3://BUCKET/PREFIX "
        "(default: SOURCE)",
    )
    scope = pull.add_mutually_exclusive_group(required=True)
    scope.add_argument("--session", help="a session id: its decision records and turn traces")
    scope.add_argument("--task", help="a task id: the decision records of its steps")
    scope.add_argument(
        "--all", action="store_true", help="the fleet export (runtime URL, export directory or s3://) into -o DIR"
    )
    pull.add_argument(
        "--tenant",
        default=None,
        help="the session's or task's tenant, required with --session and --task (default with --all: fleet)",
    )
    pull.add_argument("--admin-token", default=None, help="the spec's admin secret (default: $AGENTSPEC_ADMIN_TOKEN)")
    pull.add_argument(
        "--tenant-header", default="x-tenant-id", help="the HTTP header carrying the tenant: the spec's `tenant header`"
    )
    pull.add_argument("--since", type=int, default=0, help="only records after this seq")
    pull.add_argument(
        "-o",
        "--out",
        default=None,
        metavar="FILE",
        help="the file, or with --all the directory (default: standard output)",
    )
    s3 = pull.add_argument_group("s3:// sources (credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)")
    s3.add_argument("--endpoint-url", default=None, help="default: $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL")
    s3.add_argument("--region", default=None, help="default: $AWS_REGION (R2: auto)")
    s3.add_argument("--profile", default=None, help="a profile of ~/.aws/credentials (default: $AWS_PROFILE)")
    verify = trace_commands.add_parser("verify", help="verify the hash chain of a traces file")
    verify.add_argument("file", metavar="FILE", help="a traces file written by `agentspec trace pull`")
    verify.add_argument("--format", choices=["human", "json"], default="human", help="how to report")
    verify.add_argument(
        "--public-key",
        default=None,
        metavar="KEYFILE",
        help="the deployment's Ed25519 public key (PEM, or raw as hex or base64url): also check the chain against "
        "its signed heads, which shows a rewrite, a cut tail or a rollback (default: the hash chain only)",
    )
    from agentspec.trace.replay import add_parser as add_replay

    add_replay(trace_commands)  # replay: agentspec/trace/replay.py
    from agentspec.trace.calibrate import add_parser as add_calibrate

    add_calibrate(trace_commands)  # calibrate: agentspec/trace/calibrate.py
    review_cli.add_parsers(commands)  # diff, snapshot: agentspec/review/cli.py
    from agentspec.sim.cli import add_parser as add_simulate

    add_simulate(commands)
    from agentspec.report.cli import add_parser as add_report

    add_report(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help/--version (0) and usage errors (2)
        return int(exc.code or 0)
    if args.command == "check":
        return _check(_spec_files(args.files), args.format, args.color)
    if args.command == "fmt":
        return _fmt(_spec_files(args.files), args.check)
    if args.command == "explain":
        return _explain(args.code)
    if args.command == "compile":
        return _compile(args.spec, args.out, args.force, args.color, args.target)
    if args.command in ("diff", "snapshot"):
        return review_cli.run(args)
    if args.command == "dev":
        return _dev(args)
    if args.command == "simulate":
        from agentspec.sim.cli import run as run_simulate

        return run_simulate(args)
    if args.command == "trace" and args.trace_command == "pull":
        if (args.url is None) == (args.source is None) or (args.source is not None and not args.all):
            which = "both" if args.url is not None and args.source is not None else "neither"
            sys.stderr.write(
                f"agentspec: pass the source once: `--url URL`, or (with --all) as the argument ({which} given)\n"
                if args.all
                else "agentspec: pass `--url URL` (a bare SOURCE argument goes with --all)\n"
            )
            return EXIT_USAGE
        args.url = args.url or args.source
    if args.command == "trace" and args.trace_command == "pull" and args.all:
        from agentspec.trace.fleet_cli import run_pull_all

        return run_pull_all(args)
    if args.command == "trace" and args.trace_command == "replay":
        from agentspec.trace.replay import run as run_replay

        return run_replay(args)
    if args.command == "trace" and args.trace_command == "calibrate":
        from agentspec.trace.calibrate import run as run_calibrate

        return run_calibrate(args)
    if args.command == "report":
        from agentspec.report.cli import run as run_report

        return run_report(args)
    if args.command == "trace":
        if args.trace_command == "pull":
            return _trace_pull(args)
        return _trace_verify(args.file, args.format, args.public_key)
    return EXIT_USAGE  # pragma: no cover - argparse requires a command


def _use_color(choice: str, stream) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return stream.isatty()


def _check(files: list[str], fmt: str, color: str) -> int:
    from agentspec.check import check
    from agentspec.diagnostics import has_errors, summary, to_json, to_sarif
    from agentspec.load import load

    diagnostics = []
    sources: dict[str, str] = {}
    for path in files:
        loaded = load(path)
        sources.update(loaded.sources)
        diagnostics.extend(check(loaded).diagnostics)
    diagnostics = list(dict.fromkeys(diagnostics))  # a library imported twice reports once
    if fmt == "json":
        print(to_json(diagnostics))
    elif fmt == "sarif":
        print(to_sarif(diagnostics))
    else:
        if diagnostics:
            from agentspec.diagnostics import render_human

            sys.stdout.write(render_human(diagnostics, sources, color=_use_color(color, sys.stdout)))
            print()
        print(summary(diagnostics, len(files)))
    return EXIT_ERRORS if has_errors(diagnostics) else EXIT_OK


def _fmt(files: list[str], check_only: bool) -> int:
    from agentspec.diagnostics import render_human
    from agentspec.fmt import format_text
    from agentspec.load import read_text
    from agentspec.parse import parse

    status = EXIT_OK
    changed = 0
    for path in files:
        text, problem = read_text(path)
        if problem is not None or text is None:
            sys.stderr.write(render_human([problem], {}) if problem else "")
            status = EXIT_ERRORS
            continue
        formatted = format_text(text, path)
        if formatted is None:
            sys.stderr.write(render_human(parse(text, path).diagnostics, {path: text}))
            status = EXIT_ERRORS
            continue
        if formatted == text:
            continue
        changed += 1
        if check_only:
            print(f"would reformat {path}")
            status = EXIT_ERRORS
        else:
            tmp = f"{path}.agentspec-fmt.tmp"
            with open(tmp, "w", encoding="utf-8", newline="\n") as out:
                out.write(formatted)
            os.replace(tmp, path)  # atomic: an interrupted fmt never leaves half a file
            print(f"formatted {path}")
    if check_only:
        print(f"{_count(changed, 'file')} would be reformatted, {len(files) - changed} already formatted")
    return status


def _compile(spec_path: str, outdir: str, force: bool, color: str, target: str = DEFAULT_TARGET) -> int:
    from agentspec.check import check
    from agentspec.diagnostics import has_errors, render_human, summary
    from agentspec.emit import OutputRefused, emit, write
    from agentspec.gcpause import paused
    from agentspec.load import load
    from agentspec.policy import spec_hash

    with paused():  # a large spec is a million live objects; see agentspec/gcpause.py
        loaded = load(spec_path)
        result = check(loaded)
    if result.diagnostics:
        sys.stderr.write(render_human(result.diagnostics, loaded.sources, color=_use_color(color, sys.stderr)))
        sys.stderr.write("\n")
    if has_errors(result.diagnostics) or result.spec is None:
        sys.stderr.write(summary(result.diagnostics, 1) + "; nothing written\n")
        return EXIT_ERRORS
    if result.spec.kind != "agent":
        sys.stderr.write(f"agentspec: `{spec_path}` is a library; compile the agent that imports it\n")
        return EXIT_ERRORS
    with paused():
        files = emit(result.spec, target=target)
    try:
        report = write(files, outdir, force=force)
    except OutputRefused as exc:
        sys.stderr.write(f"agentspec: refused: {exc}\n")
        return EXIT_ERRORS
    except OSError as exc:
        sys.stderr.write(f"agentspec: cannot write `{outdir}`: {exc.strerror or exc}; nothing written\n")
        return EXIT_ERRORS
    workflows = [w.name for w in result.spec.workflows]
    print(f"compiled `{result.spec.name}` v{result.spec.version} -> {outdir}/ ({len(files)} files)")
    print(f"  workflows: {', '.join(workflows)}")
    print(f"  spec hash: {spec_hash(result.spec)}")
    if report.kept:
        print(f"  kept:      {', '.join(report.kept)} (yours: agentspec never touches them)")
    for label, paths in (("replaced", report.replaced), ("removed", report.removed)):
        for path in paths:
            print(f"  {label}:  {path} (--force)")
    print("  run it:    cd " + outdir + " && npm ci && cp .dev.vars.example .dev.vars && npm run dev")
    return EXIT_OK


def _dev(args: argparse.Namespace) -> int:
    from agentspec.dev import DevError, DevLoop

    loop = DevLoop(args.spec, args.out, port=args.port, inference_url=args.inference_url, tools=args.tools)
    try:
        loop.start()
        loop.run()
    except DevError as exc:
        sys.stderr.write(f"agentspec: {exc}\n")
        return EXIT_ERRORS
    except KeyboardInterrupt:
        print("agentspec dev: stopped")
    finally:
        loop.stop()
    return EXIT_OK


def _explain(code: str) -> int:
    from agentspec.codes import CODES
    from agentspec.diagnostics import did_you_mean

    entry = CODES.get(code.upper())
    if entry is None and (reviewed := review_cli.explain(code)) is not None:  # R codes: agentspec/review/catalogue.py
        return reviewed
    if entry is None:
        hint = did_you_mean(code.upper(), CODES) or f"known codes are {', '.join(CODES)}"
        sys.stderr.write(f"agentspec: unknown diagnostic code `{code}`" + (f"; {hint}" if hint else "") + "\n")
        return EXIT_USAGE
    print(f"{entry.code}: {entry.title}\n\n{entry.explanation}")
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _trace_pull(args: argparse.Namespace) -> int:
    import json

    from agentspec.trace import TraceError, pull
    from agentspec.trace.verify import printable

    if args.tenant is None:
        sys.stderr.write("agentspec: pass `--tenant` with `--session` or `--task`\n")
        return EXIT_USAGE
    token = args.admin_token or os.environ.get("AGENTSPEC_ADMIN_TOKEN")
    if not token:
        sys.stderr.write("agentspec: no admin token; pass `--admin-token` or set AGENTSPEC_ADMIN_TOKEN\n")
        return EXIT_USAGE
    try:
        traces = pull(
            args.url,
            args.session,
            args.tenant,
            token,
            task=args.task,
            since=args.since,
            tenant_header=args.tenant_header,
        )
    except TraceError as exc:
        sys.stderr.write(f"agentspec: {exc}\n")
        return EXIT_ERRORS
    # Non-ASCII as is, unless a lone surrogate needs its `\u` escape to be written (and read back) at all.
    text = json.dumps(traces, indent=2, ensure_ascii=False) + "\n"
    if printable(text) != text:
        text = json.dumps(traces, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        sys.stderr.write(f"agentspec: cannot write `{args.out}`: {exc.strerror or exc}\n")
        return EXIT_ERRORS
    what = f"session `{args.session}`" if args.task is None else f"task `{args.task}`"
    records, turns = len(traces["records"]), len(traces["turns"])
    print(f"pulled {_count(records, 'record')} and {_count(turns, 'turn')} of {what} -> {args.out}")
    return EXIT_OK


def _trace_verify(path: str, fmt: str, key_path: str | None = None) -> int:
    import json

    from agentspec.signing import PublicKeyError, load_public_key
    from agentspec.trace import load, render, verify
    from agentspec.trace.heads import HeadCheck, check_heads, summary
    from agentspec.trace.schema import SchemaError

    key = None
    if key_path is not None:
        try:
            with open(key_path, encoding="utf-8") as f:
                key = load_public_key(f.read())
        except OSError as exc:
            sys.stderr.write(f"agentspec: cannot read `{key_path}`: {exc.strerror or exc}\n")
            return EXIT_USAGE
        except (PublicKeyError, UnicodeDecodeError) as exc:
            sys.stderr.write(f"agentspec: `{key_path}` holds no Ed25519 public key: {exc}\n")
            return EXIT_USAGE
    try:
        traces = load(path)
    except OSError as exc:
        sys.stderr.write(f"agentspec: cannot read `{path}`: {exc.strerror or exc}\n")
        return EXIT_USAGE
    except SchemaError as exc:
        sys.stderr.write(f"agentspec: `{path}` is not a traces file: {exc}\n")
        return EXIT_USAGE
    problems = verify(traces)
    heads: HeadCheck | None = None
    if key is not None:
        heads = check_heads(traces, key, f"the public key in `{key_path}`")
        problems = sorted(
            [*problems, *heads.problems],
            key=lambda p: (p.seq if p.seq is not None else -1, p.index if p.index is not None else -1),
        )
    if fmt == "json":
        print(
            json.dumps(
                {
                    "ok": not any(p.severity == "error" for p in problems),
                    "records": len(traces["records"]),
                    **(
                        {"heads": {"verified": heads.verified, "last_seq": heads.last_seq, "key_id": heads.key_id}}
                        if heads is not None
                        else {}
                    ),
                    "problems": [p.as_json() for p in problems],
                },
                indent=2,
            )
        )
    else:
        sys.stdout.write(render(problems, path, traces["records"]))
        if heads is not None and summary(heads):
            print(summary(heads))
    return EXIT_ERRORS if any(p.severity == "error" for p in problems) else EXIT_OK


def run() -> None:
    """Console-script entry point."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = EXIT_OK
    sys.exit(code)


if __name__ == "__main__":
    run()
