"""The README's commands are right for every example spec: the quickstart's `agentspec` lines parse with the real
command line, the offline ones run (in-process) with each of `specs/*.agent` in place of the support desk, and the
table of example specs says what each spec really declares (tenant header, secrets, traffic model).

The lines that need a running runtime (`dev`, `trace pull`, `report` ...) are parsed here and run end to end in
tests/e2e/test_newcomer.py (the generated README, `agentspec dev`) and tests/e2e/test_fleet.py.
"""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import pytest

from agentspec.check import check
from agentspec.cli import _parser, main
from agentspec.load import load

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLES = sorted((ROOT / "specs").glob("*.agent"))
SUPPORT = "specs/support_desk.agent"
# Run offline here; every other subcommand is only parsed.
RUNS = {"check", "fmt", "explain", "snapshot", "simulate", "compile", "diff"}


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _commands(text: str) -> list[list[str]]:
    """The `agentspec` command lines of a section's ```sh blocks, split as a shell would (comments dropped)."""
    out = []
    for body in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["agentspec"]:
                out.append(words[1:])
    return out


def _table() -> dict[str, list[str]]:
    """The example-spec table: spec path -> its other cells, backticks dropped."""
    rows = re.findall(r"^\| `(specs/[\w/]+\.agent)` \|(.*)\|$", _section("Quickstart"), flags=re.M)
    return {spec: [c.strip().replace("`", "") for c in rest.split("|")] for spec, rest in rows}


def _for(argv: list[str], spec: Path, traffic: str, tmp: Path) -> list[str]:
    """A quickstart line for `spec`: its path for the support desk's, its traffic model (or none), globs expanded."""
    out: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--traffic":
            value = next(words)
            if traffic != "none":
                out += [word, traffic]
            assert value == "specs/traffic/support_desk.toml"
            continue
        word = word.replace(SUPPORT, spec.relative_to(ROOT).as_posix())
        word = re.sub(r"^(OLD|NEW)\.agent$", spec.relative_to(ROOT).as_posix(), word)  # a spec against itself
        word = word.replace("out/support_desk", str(tmp / "out" / spec.stem))
        out += sorted(glob.glob(word)) or [word] if "*" in word else [word]
    return out


def test_the_table_lists_every_example_spec_as_it_is() -> None:
    table = _table()
    assert sorted(table) == [p.relative_to(ROOT).as_posix() for p in EXAMPLES]
    for path, (header, secrets, traffic) in table.items():
        spec = check(load(path)).spec
        assert spec is not None, path
        assert header == (spec.tenant_header or "x-tenant-id"), path
        assert secrets == f"{spec.tokens_secret} / {spec.admin_secret}", path
        stem = Path(path).stem
        expected = f"specs/traffic/{stem}.toml" if (ROOT / "specs" / "traffic" / f"{stem}.toml").exists() else "none"
        assert traffic == expected, path


def test_every_readme_command_parses() -> None:
    lines = _commands(README)
    assert len(lines) >= 18  # the quickstart and the run by hand
    for argv in lines:
        try:
            _parser().parse_args(argv)
        except SystemExit as exc:  # argparse's way of refusing a line
            pytest.fail(f"`agentspec {shlex.join(argv)}` does not parse (exit {exc.code})")


def test_the_trace_pull_lines_send_the_support_desks_tenant_header() -> None:
    header = _table()[SUPPORT][0]
    pulls = [a for a in _commands(README) if a[:2] == ["trace", "pull"] and "--session" in a]
    assert len(pulls) == 2
    for argv in pulls:
        assert argv[argv.index("--tenant-header") + 1] == header


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_the_quickstart_runs_for_every_example_spec(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traffic = _table()[spec.relative_to(ROOT).as_posix()][2]
    ran = set()
    for argv in _commands(_section("Quickstart")):
        if argv[0] not in RUNS or "--base" in argv:  # --base needs a git remote's revision: parsed only
            continue
        line = _for(argv, spec, traffic, tmp_path)
        code = main(line)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        if line[:2] == ["check", "specs/invalid/E0201-refund-without-idempotency.agent"]:
            assert code == 1 and "error[E0201]" in out  # "see a diagnostic"
        elif line[0] == "simulate":
            # Exit 1 is an SLO failing in the simulation, which is what it is for; said in the last line.
            assert code in (0, 1), err
            assert out.strip().splitlines()[-1] in (
                "every declared SLO holds in the simulation",
                "an SLO fails in the simulation",
            )
        else:
            assert code == 0, f"`agentspec {shlex.join(line)}` exited {code}:\n{out}{err}"
        ran.add(line[0])
    assert ran == RUNS
    assert (tmp_path / "out" / spec.stem / "wrangler.jsonc").is_file()
