"""`agentspec diff` and `agentspec snapshot` through `main([...])`: gates, acceptances, git, formats, bad input."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from agentspec.cli import main
from agentspec.review import review_files

PAIRS = Path(__file__).parent / "pairs"
WIDE = PAIRS / "tool_allowlist_widened"
NARROW = PAIRS / "tool_allowlist_narrowed"
NEUTRAL = PAIRS / "model_chain"


def _diff(case: Path, *extra: str) -> int:
    return main(["diff", str(case / "old.agent"), str(case / "new.agent"), *extra])


# ───────────────────────────── --fail-on ─────────────────────────────


@pytest.mark.parametrize(
    ("case", "fail_on", "code"),
    [
        (WIDE, "widening", 1),
        (NARROW, "widening", 0),
        (NEUTRAL, "widening", 0),
        (WIDE, "any", 1),
        (NARROW, "any", 1),
        (NEUTRAL, "any", 1),
        (PAIRS / "base.agent", "any", 0),
    ],
)
def test_fail_on(case: Path, fail_on: str, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    if case.is_file():  # a spec against itself: nothing changed
        assert main(["diff", str(case), str(case), "--fail-on", fail_on]) == code
    else:
        assert _diff(case, "--fail-on", fail_on) == code


def test_without_fail_on_a_widening_is_reported_not_failed(capsys: pytest.CaptureFixture[str]) -> None:
    assert _diff(WIDE) == 0
    assert "R0203" in capsys.readouterr().out


def test_mixed_fails_on_widening(tmp_path: Path) -> None:
    base = (PAIRS / "base.agent").read_text()
    (tmp_path / "new.agent").write_text(
        base.replace("secrets [MAIL_KEY]", "secrets [MAIL_KEY, X_KEY]")
        .replace("clears risk medium", "clears risk low")
        .replace(
            "route risk low -> tier small\n    tools allow [lookup, notify]",
            "route risk low -> tier small\n    route risk medium -> tier large\n    tools allow [lookup, notify]",
        )
    )
    assert main(["diff", str(PAIRS / "base.agent"), str(tmp_path / "new.agent"), "--fail-on", "widening"]) == 1


# ───────────────────────────── accepted changes ─────────────────────────────


def _accept(tmp_path: Path, fingerprints: list[str], expires: dt.date) -> Path:
    path = tmp_path / "accepted.toml"
    path.write_text(
        "".join(
            f'[[accept]]\nfingerprint = "{fp}"\nreviewer = "alice"\nreason = "SEC-1: reviewed"\nexpires = {expires}\n\n'
            for fp in fingerprints
        )
    )
    return path


def _widening_fingerprints() -> list[str]:
    review = review_files(str(WIDE / "old.agent"), str(WIDE / "new.agent"))
    return [c.fingerprint for c in review.changes if c.classification in ("widening", "mixed")]


def test_acceptance_silences_a_known_widening_until_it_expires(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fps = _widening_fingerprints()
    today = dt.date.today()
    valid = _accept(tmp_path, fps, today + dt.timedelta(days=30))
    assert _diff(WIDE, "--fail-on", "widening", "--accepted", str(valid), "--format", "markdown") == 0
    out = capsys.readouterr().out
    assert "(accepted)" in out and "accepted by `alice`" in out
    # Accepting only some of the widenings still fails.
    partial = _accept(tmp_path, fps[:-1], today + dt.timedelta(days=30))
    assert _diff(WIDE, "--fail-on", "widening", "--accepted", str(partial)) == 1
    # Through its expiry day it holds; the day after, it silences nothing.
    last_day = _accept(tmp_path, fps, today)
    assert _diff(WIDE, "--fail-on", "widening", "--accepted", str(last_day)) == 0
    expired = _accept(tmp_path, fps, today - dt.timedelta(days=1))
    capsys.readouterr()
    assert _diff(WIDE, "--fail-on", "widening", "--accepted", str(expired)) == 1
    assert "expired on" in capsys.readouterr().err


def test_acceptance_does_not_silence_other_kinds(tmp_path: Path) -> None:
    fps = _widening_fingerprints()
    valid = _accept(tmp_path, fps, dt.date.today() + dt.timedelta(days=1))
    # Accepting every widening leaves the neutral and narrowing ones open for `--fail-on any`.
    base = (PAIRS / "base.agent").read_text()
    both = (WIDE / "new.agent").read_text().replace("success >= 99%", "success >= 99.9%")
    (tmp_path / "old.agent").write_text(base)
    (tmp_path / "new.agent").write_text(both)
    args = ["diff", str(tmp_path / "old.agent"), str(tmp_path / "new.agent"), "--accepted", str(valid)]
    assert main([*args, "--fail-on", "widening"]) == 0
    assert main([*args, "--fail-on", "any"]) == 1  # the tightened SLO is open


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[accept]]\nfingerprint = 'x'\n", "missing `reviewer`, `reason`, `expires`"),
        ("[[accept]]\nfingerprint='x'\nreviewer='a'\nreason='b'\nexpires='soon'\n", "`expires` must be a date"),
        ("accept = [", "not valid TOML"),
    ],
)
def test_bad_accepted_file(tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "accepted.toml"
    path.write_text(text)
    assert _diff(WIDE, "--accepted", str(path)) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err


def test_version_bump_removes_the_version_finding() -> None:
    codes = {c.code for c in review_files(str(WIDE / "old.agent"), str(WIDE / "new.agent")).changes}
    bumped = PAIRS / "widening_with_version_bump"
    bumped_codes = {c.code for c in review_files(str(bumped / "old.agent"), str(bumped / "new.agent")).changes}
    assert "R0003" in codes and "R0003" not in bumped_codes and "R0004" in bumped_codes


# ───────────────────────────── formats ─────────────────────────────


def test_json_lists_every_change_with_locations(capsys: pytest.CaptureFixture[str]) -> None:
    assert _diff(WIDE, "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    (review,) = data["reviews"]
    assert review["classification"] == "widening"
    first = review["changes"][0]
    assert first["code"] == "R0001" and first["counterexamples"][0]["workflow"] == "help"
    assert first["old_at"].startswith(str(WIDE / "old.agent")) and first["new_at"].startswith(str(WIDE / "new.agent"))


def test_sarif_has_stable_rule_ids_and_fingerprints(capsys: pytest.CaptureFixture[str]) -> None:
    assert _diff(WIDE, "--format", "sarif") == 0
    log = json.loads(capsys.readouterr().out)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    results = run["results"]
    assert {r["ruleId"] for r in results} == set(rule_ids)
    assert all(rule_ids[r["ruleIndex"]] == r["ruleId"] for r in results)
    fps = [r["partialFingerprints"]["agentspecChange/v1"] for r in results]
    assert len(set(fps)) == len(fps)
    assert {r["level"] for r in results} == {"error"}
    # The same change in a file moved and reformatted keeps its fingerprint.
    assert (
        main(
            [
                "diff",
                str(Path(__file__).parent / "same" / "reformatted.agent"),
                str(WIDE / "new.agent"),
                "--format",
                "sarif",
            ]
        )
        == 0
    )
    again = json.loads(capsys.readouterr().out)["runs"][0]["results"]
    assert [r["partialFingerprints"]["agentspecChange/v1"] for r in again] == fps


def test_human_output_names_both_sides(capsys: pytest.CaptureFixture[str]) -> None:
    assert _diff(WIDE, "--color", "never") == 0
    out = capsys.readouterr().out
    assert f"OLD {WIDE / 'old.agent'}:" in out and f"NEW {WIDE / 'new.agent'}:" in out
    assert "counterexample: workflow `help` calls tool `unnotify`" in out


def test_human_output_says_when_nothing_changed(capsys: pytest.CaptureFixture[str]) -> None:
    same = Path(__file__).parent / "same" / "reordered.agent"
    assert main(["diff", str(PAIRS / "base.agent"), str(same), "--fail-on", "any"]) == 0
    assert capsys.readouterr().out.endswith(": no change of meaning\n")


def test_explain_a_change_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "r0207"]) == 0
    assert capsys.readouterr().out.startswith("R0207: enforce to shadow (widening)")
    assert main(["explain", "E0001"]) == 0
    assert main(["explain", "R9999"]) == 2


# ───────────────────────────── bad input ─────────────────────────────


def test_a_side_that_does_not_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.agent"
    bad.write_text((PAIRS / "base.agent").read_text().replace("tools allow [lookup, notify]", "tools allow [lookp]"))
    assert main(["diff", str(PAIRS / "base.agent"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "does not check" in err and f"--> {bad}:" in err and "error[E0102]" in err
    assert "Traceback" not in err


def test_a_library_is_not_an_agent(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    assert main(["diff", str(PAIRS / "base.agent"), str(root / "specs/shared/billing_tools.agent")]) == 2
    assert "holds a library, not an agent" in capsys.readouterr().err


def test_a_file_that_is_not_a_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("this is not a spec\n")
    assert main(["diff", str(other), str(PAIRS / "base.agent")]) == 2
    err = capsys.readouterr().err
    assert "error[E0001]" in err and f"--> {other}:1:" in err


def test_missing_file_and_wrong_arity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(tmp_path / "gone.agent"), str(PAIRS / "base.agent")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["diff", str(PAIRS / "base.agent")]) == 2
    assert "takes two files" in capsys.readouterr().err


# ───────────────────────────── --base REV in a real repository ─────────────────────────────


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository: an agent importing a library, committed, then edited in the working tree."""
    repo = tmp_path / "repo"
    (repo / "specs" / "lib").mkdir(parents=True)
    base = (PAIRS / "base.agent").read_text()
    lookup = base[base.index("  tool lookup {") : base.index("  tool notify {")]
    (repo / "specs" / "lib" / "lookups.agent").write_text("library lookups {\n" + lookup + "}\n")
    (repo / "specs" / "shop.agent").write_text('import "lib/lookups.agent"\n\n' + base.replace(lookup, ""))
    (repo / "specs" / "other.agent").write_text(
        (Path(__file__).resolve().parents[2] / "tests/fixtures/chat_only.agent").read_text()
    )
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    return repo


def test_base_rev_for_one_file(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shop = repo / "specs" / "shop.agent"
    shop.write_text(shop.read_text().replace("tools allow [lookup, notify]", "tools allow [lookup, notify, unnotify]"))
    assert main(["diff", "--base", "HEAD", str(shop), "--format", "json", "--fail-on", "widening"]) == 1
    (review,) = json.loads(capsys.readouterr().out)["reviews"]
    assert review["old"] == "HEAD:specs/shop.agent"
    codes = {c["code"] for c in review["changes"]}
    assert {"R0001", "R0203", "R0003"} <= codes
    r0203 = next(c for c in review["changes"] if c["code"] == "R0203")
    assert r0203["old_at"].startswith("HEAD:specs/shop.agent:")
    _git(repo, "commit", "-qam", "widen")
    assert main(["diff", "--base", "HEAD", str(shop), "--fail-on", "any"]) == 0
    assert main(["diff", "--base", "HEAD~1", str(shop), "--fail-on", "widening"]) == 1


def test_base_rev_for_a_directory_follows_imports(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lib = repo / "specs" / "lib" / "lookups.agent"
    lib.write_text(lib.read_text().replace("risk low", "risk medium"))
    assert main(["diff", "--base", "HEAD", str(repo / "specs"), "--format", "json"]) == 0
    reviews = json.loads(capsys.readouterr().out)["reviews"]
    # Only the agent whose files changed (through its import) is reviewed; the library itself is not an agent.
    assert [r["agent"] for r in reviews] == ["shop"]
    change = next(c for c in reviews[0]["changes"] if c["code"] == "R0104")
    assert change["new_at"].startswith(str(lib)) and change["old_at"].startswith("HEAD:specs/lib/lookups.agent:")


def test_base_rev_with_nothing_changed(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "--base", "HEAD", str(repo / "specs"), "--fail-on", "any"]) == 0
    assert "no agent changed" in capsys.readouterr().out


def test_missing_revision(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "--base", "no-such-branch", str(repo / "specs" / "shop.agent")]) == 2
    err = capsys.readouterr().err
    assert "revision `no-such-branch` does not exist" in err and "Traceback" not in err


def test_base_side_that_does_not_check(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shop = repo / "specs" / "shop.agent"
    good = shop.read_text()
    shop.write_text(good.replace("policy enforce", "policy nonsense", 1))
    _git(repo, "commit", "-qam", "broken")
    shop.write_text(good)
    assert main(["diff", "--base", "HEAD", str(shop)]) == 2
    err = capsys.readouterr().err
    assert "`HEAD:specs/shop.agent` does not check" in err and "--> HEAD:specs/shop.agent:" in err


def test_file_new_since_the_revision(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = repo / "specs" / "fresh.agent"
    shutil.copy(repo / "specs" / "other.agent", new)
    assert main(["diff", "--base", "HEAD", str(new)]) == 2
    assert "does not exist at revision `HEAD`" in capsys.readouterr().err
    assert main(["diff", "--base", "HEAD", str(repo / "specs")]) == 0
    assert "`specs/fresh.agent` is new since `HEAD`" in capsys.readouterr().err


def test_not_a_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "shop.agent"
    shutil.copy(PAIRS / "base.agent", spec)
    assert main(["diff", "--base", "HEAD", str(spec)]) == 2
    assert "is not inside a git repository" in capsys.readouterr().err


# ───────────────────────────── snapshot ─────────────────────────────


def test_snapshot_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "shop.agent"
    shutil.copy(PAIRS / "base.agent", spec)
    assert main(["snapshot", "--check", str(spec)]) == 1
    assert "shop.meaning is missing" in capsys.readouterr().out
    assert main(["snapshot", str(spec)]) == 0
    meaning = (tmp_path / "shop.meaning").read_text()
    assert (
        "workflow help (class support)" in meaning and "    lookup -> mail.example.com, orders.example.com" in meaning
    )
    assert main(["snapshot", "--check", str(spec)]) == 0
    # Reordering and reformatting keep the meaning; a widening changes it, shown as a diff.
    shutil.copy(Path(__file__).parent / "same" / "reordered.agent", spec)
    assert main(["snapshot", "--check", str(spec)]) == 0
    shutil.copy(PAIRS / "outbound_widened" / "new.agent", spec)
    capsys.readouterr()
    assert main(["snapshot", "--check", str(spec)]) == 1
    out = capsys.readouterr().out
    assert "+  outbound allow: billing.example.com, mail.example.com, orders.example.com" in out
    assert (tmp_path / "shop.meaning").read_text() == meaning  # --check writes nothing


def test_snapshot_of_a_bad_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.agent"
    bad.write_text("agent x version 1 {")
    assert main(["snapshot", str(bad)]) == 2
    assert "error[E0001]" in capsys.readouterr().err


def test_snapshot_skips_a_library(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    assert main(["snapshot", "--check", str(root / "specs" / "shared" / "billing_tools.agent")]) == 0
    assert "a library" in capsys.readouterr().out
