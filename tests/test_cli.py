"""The command line, called in-process as `main(argv) -> int`: exit codes, formats, `explain`.

Exit codes: 0 clean (warnings allowed), 1 errors, 2 usage. `fmt` is tested in test_fmt.py.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from argparse import Action
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentspec.cli import _parser, main
from agentspec.codes import CODES

ROOT = Path(__file__).resolve().parent.parent
VALID = sorted((ROOT / "specs").glob("*.agent")) + sorted((ROOT / "specs" / "shared").glob("*.agent"))
INVALID = sorted((ROOT / "specs" / "invalid").glob("*.agent"))
HEADER = re.compile(r"^(error|warning)\[[EW]\d{4}\]: \S", re.MULTILINE)


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("NO_COLOR", raising=False)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ───────────────────────────── check ─────────────────────────────


@pytest.mark.parametrize("spec", VALID, ids=lambda p: _rel(p))
def test_check_valid_spec(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "check", _rel(spec))
    assert (code, out, err) == (0, "checked 1 file: no problems\n", "")


@pytest.mark.parametrize("spec", INVALID, ids=lambda p: p.stem)
def test_check_invalid_spec(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "check", "--color", "never", _rel(spec))
    warning_only = spec.name.startswith("W")  # W0501/W0502 specs compile: only warnings, exit 0
    assert code == (0 if warning_only else 1)
    assert HEADER.search(out), out
    assert f"--> {_rel(spec)}:" in out or "--> specs/invalid/lib/" in out
    assert out.rstrip().splitlines()[-1].startswith("checked 1 file: ")
    assert ("error" in out.splitlines()[-1]) is not warning_only
    assert "\x1b[" not in out
    assert err == ""


def test_check_several_files_reports_all(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        "check",
        "specs/support_desk.agent",
        "specs/invalid/E0201-refund-without-idempotency.agent",
        "specs/invalid/E0304-refunds-in-shadow-mode.agent",
    )
    assert code == 1
    assert "error[E0201]" in out and "error[E0304]" in out
    assert out.rstrip().endswith("checked 3 files: 2 errors")


def test_check_warnings_only_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        "check",
        "specs/invalid/W0501-latency-slo-too-tight.agent",
        "specs/invalid/W0502-cost-slo-below-tier-price.agent",
    )
    assert code == 0
    assert out.rstrip().endswith("checked 2 files: 2 warnings")


def test_check_color_always(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "check", "--color", "always", "specs/invalid/E0304-refunds-in-shadow-mode.agent")
    assert code == 1
    assert "\x1b[" in out


# ───────────────────────────── machine formats ─────────────────────────────


def test_format_json(capsys: pytest.CaptureFixture[str]) -> None:
    spec = "specs/invalid/E0102-misspelled-tool.agent"
    code, out, _ = _run(capsys, "check", "--format", "json", spec)
    assert code == 1
    [item] = json.loads(out)["diagnostics"]
    assert (item["code"], item["file"], item["line"], item["column"]) == ("E0102", spec, 17, 18)
    assert item["help"] == "did you mean `issue_refund`?"


def test_format_json_clean(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "check", "--format", "json", "specs/support_desk.agent")
    assert code == 0
    assert json.loads(out) == {"diagnostics": []}


def test_format_sarif(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "check", "--format", "sarif", *(_rel(p) for p in INVALID))
    assert code == 1
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    [run] = log["runs"]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert {r["ruleId"] for r in run["results"]} == set(rule_ids)
    assert all(r["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1 for r in run["results"])


def test_format_sarif_warnings_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "check", "--format", "sarif", "specs/invalid/W0502-cost-slo-below-tier-price.agent")
    assert code == 0
    [result] = json.loads(out)["runs"][0]["results"]
    assert (result["ruleId"], result["level"]) == ("W0502", "warning")


# ───────────────────────────── files that are not specs ─────────────────────────────


def _assert_located_e0003(code: int, out: str, err: str, path: str, line: int = 1, column: int = 1) -> None:
    assert code == 1
    assert "error[E0003]" in out
    assert f"--> {path}:{line}:{column}" in out
    assert "Traceback" not in out + err


def _assert_unreadable_e0003(code: int, out: str, err: str, path: str) -> None:
    """A file that cannot be read at all is named alone: no `:1:1` it was never read to."""
    assert code == 1
    assert "error[E0003]" in out
    assert f"--> {path}\n" in out and f"{path}:1:1" not in out
    assert "Traceback" not in out + err


def test_check_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A directory stands for every `.agent` below it; one with none is reported as a directory, as before."""
    code, out, _ = _run(capsys, "check", "specs")
    below = sorted(str(p) for p in Path("specs").rglob("*.agent"))
    assert code == 1 and f"checked {len(below)} files:" in out  # specs/invalid is below it
    code, out, _ = _run(capsys, "check", "specs/shared")
    assert (code, out.strip().splitlines()[-1]) == (0, "checked 2 files: no problems")
    (tmp_path / "empty").mkdir()
    code, out, err = _run(capsys, "check", str(tmp_path / "empty"))
    _assert_unreadable_e0003(code, out, err, str(tmp_path / "empty"))
    assert "is a directory, not a spec file" in out


def test_misspelled_subcommand_gets_a_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "chek", "specs/support_desk.agent")
    assert code == 2 and "= help: did you mean `check`?" in err


def test_fmt_check_prints_a_summary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    messy = tmp_path / "messy.agent"
    messy.write_text(Path("specs/support_desk.agent").read_text().replace("  tenant header", "      tenant header"))
    code, out, _ = _run(capsys, "fmt", "--check", "specs/support_desk.agent", str(messy))
    assert code == 1
    assert out.splitlines() == [f"would reformat {messy}", "1 file would be reformatted, 1 already formatted"]


def test_check_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "check", "specs/no_such_agent.agent")
    _assert_unreadable_e0003(code, out, err, "specs/no_such_agent.agent")
    assert "does not exist" in out


def test_check_binary_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    binary = tmp_path / "logo.agent"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    code, out, err = _run(capsys, "check", str(binary))
    _assert_located_e0003(code, out, err, str(binary))
    assert "not valid UTF-8: byte 0x89" in out


def test_check_nul_bytes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Valid UTF-8 but not text the language knows: a located E0002, not a crash.
    binary = tmp_path / "zeros.agent"
    binary.write_bytes(b"\x00\x00\x00\x00")
    code, out, err = _run(capsys, "check", str(binary))
    assert code == 1
    assert "error[E0002]: unexpected character `\\x00`" in out
    assert f"--> {binary}:1:1" in out
    assert "Traceback" not in out + err


def _unreadable(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A path that cannot be read as a spec, and the words that must say why."""
    import builtins

    import agentspec.load

    if kind == "missing":
        return str(tmp_path / "gone.agent"), "does not exist"
    if kind == "directory":
        (tmp_path / "dir.agent").mkdir()
        return str(tmp_path / "dir.agent"), "is a directory, not a spec file"
    path = tmp_path / "locked.agent"
    path.write_text((ROOT / "specs" / "support_desk.agent").read_text())
    real_open = builtins.open

    def refuse(file: object, *args: object, **kwargs: object) -> object:
        # The tests run as root in CI, where a chmod 000 file is still readable: refuse it here instead.
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(agentspec.load, "open", refuse, raising=False)  # load.read_text's `open`
    return str(path), "cannot be read: Permission denied"


# diff exits 2 on a side that does not check (bad input); the others exit 1.
UNREADABLE_COMMANDS = [
    pytest.param(["check"], 1, id="check"),
    pytest.param(["fmt"], 1, id="fmt"),
    pytest.param(["compile", "-o", "OUT"], 1, id="compile"),
    pytest.param(["simulate"], 1, id="simulate"),
    pytest.param(["diff", "specs/support_desk.agent"], 2, id="diff"),
]


@pytest.mark.parametrize("kind", ["missing", "directory", "permission"])
@pytest.mark.parametrize(("command", "exit_code"), UNREADABLE_COMMANDS)
def test_an_unreadable_path_is_named_without_a_location(
    command: list[str],
    exit_code: int,
    kind: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, reason = _unreadable(kind, tmp_path, monkeypatch)
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in command] + [path]
    code, out, err = _run(capsys, *argv)
    shown = out + err
    assert code == exit_code, shown
    if command[0] == "diff" and kind == "directory":  # diff takes directories with --base, and says so
        assert f"`{path}` is a directory; compare directories with `--base REV" in err
        return
    assert "error[E0003]" in shown and reason in shown, shown
    assert f"--> {path}\n" in shown and f"{path}:1:1" not in shown, shown
    assert "Traceback" not in shown
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("command", "exit_code"), UNREADABLE_COMMANDS)
def test_non_utf8_content_points_at_the_first_bad_byte(
    command: list[str], exit_code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Here there is a position, and a real one: line 3, column 5, where the byte is.
    path = tmp_path / "latin1.agent"
    path.write_bytes(b"// ok\n// ok\n// o\xe9\n")
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in command] + [str(path)]
    code, out, err = _run(capsys, *argv)
    assert code == exit_code
    assert f"--> {path}:3:5" in out + err and "not valid UTF-8: byte 0xe9 at line 3, column 5" in out + err


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_an_unreadable_path_has_no_position_in_machine_formats(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "check", "--format", fmt, "specs/no_such_agent.agent")
    assert code == 1
    if fmt == "json":
        [item] = json.loads(out)["diagnostics"]
        assert (item["file"], item["line"], item["column"]) == ("specs/no_such_agent.agent", None, None)
    else:
        [result] = json.loads(out)["runs"][0]["results"]
        location = result["locations"][0]["physicalLocation"]
        assert location == {"artifactLocation": {"uri": "specs/no_such_agent.agent"}}  # no region


# ───────────────────────────── usage errors ─────────────────────────────


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="no-args"),
        pytest.param(["check"], id="check-without-files"),
        pytest.param(["check", "--strict", "specs/support_desk.agent"], id="unknown-flag"),
        pytest.param(["check", "--format", "xml", "specs/support_desk.agent"], id="unknown-format"),
        pytest.param(["compile", "specs/support_desk.agent"], id="unknown-command"),
    ],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert "usage: agentspec" in err
    assert "agentspec: error:" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    assert "check" in out and "explain" in out


# ───────────────────────────── explain ─────────────────────────────


def test_explain(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "explain", "E0201")
    assert code == 0
    assert out.startswith("E0201: retryable tool without idempotency\n\n")
    assert CODES["E0201"].explanation in out
    assert err == ""


def test_explain_is_case_insensitive(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "explain", "w0501")
    assert code == 0
    assert out.startswith("W0501: ")


@pytest.mark.parametrize("code", sorted(CODES))
def test_explain_every_code(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "explain", code)
    assert status == 0
    assert out.startswith(f"{code}: {CODES[code].title}\n")


def test_explain_near_miss_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "explain", "E201")
    assert code == 2
    assert out == ""
    assert "unknown diagnostic code `E201`" in err
    assert "did you mean `E0201`?" in err


def test_explain_unknown_code_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "explain", "E9999")
    assert code == 2
    assert "unknown diagnostic code `E9999`" in err
    assert "E0001" in err  # some pointer to the codes that exist


def test_explain_unknown_code_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "explain", "E9999")
    assert code == 2
    assert out == ""
    assert "unknown diagnostic code `E9999`" in err


# ───────────────────────────── as a program ─────────────────────────────


def test_python_dash_m() -> None:
    # A real interpreter catches import-time errors that in-process calls would hide.
    proc = subprocess.run(
        [sys.executable, "-m", "agentspec", "check", "specs/support_desk.agent"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "checked 1 file: no problems\n"
    assert proc.stderr == ""


def _options(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser, Action]]:
    """Every argument of every (sub)command, depth first, with the parser that owns it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{path} {name}")
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, parser, action


def test_every_option_has_help_with_its_default() -> None:
    parser = _parser()
    seen, missing = 0, []
    for path, owner, action in _options(parser, "agentspec"):
        seen += 1
        name = "/".join(action.option_strings) or action.dest
        text = owner._get_formatter()._expand_help(action) if action.help else ""
        if not text.strip():
            missing.append(f"{path} {name}: no help")
            continue
        takes_value = action.nargs != 0  # store_true/store_false flags take none: off unless given
        # One of a required group (`trace pull --session|--task|--all`) has no default: one must be given.
        chosen = any(g.required and action in g._group_actions for g in owner._mutually_exclusive_groups)
        if action.option_strings and takes_value and not action.required and not chosen:
            if action.default not in (None, []) and f"(default: {action.default})" not in text:
                missing.append(f"{path} {name}: help does not show its default {action.default!r}: {text!r}")
            elif action.default in (None, []) and "default" not in text:
                missing.append(f"{path} {name}: help does not say what happens without it: {text!r}")
    assert seen >= 45  # the whole tree was walked: check, fmt, compile, dev, trace, diff, simulate, report...
    assert missing == []


def test_defaults_appear_in_rendered_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "pull", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "`tenant header` (default: x-tenant-id)" in out and "(default: 0)" in out
    assert "(default: $AGENTSPEC_ADMIN_TOKEN)" in out and "(default: standard output)" in out
    assert main(["dev", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("(default: 8787)") == 1 and "(default: stub)" in out  # written once, not appended twice
