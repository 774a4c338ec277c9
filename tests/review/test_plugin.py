"""The pytest plugin, used as a team would: in this suite on the example specs, and in a fresh suite via pytester."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported for real by `pytest_plugins`, so pytest can rewrite its asserts
    from agentspec.review.pytest_plugin import SpecSnapshot

pytest_plugins = ["pytester", "agentspec.review.pytest_plugin"]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_support_desk_meaning(agentspec_snapshot: SpecSnapshot) -> None:
    agentspec_snapshot.assert_meaning("specs/support_desk.agent")


def test_ops_agent_meaning(agentspec_snapshot: SpecSnapshot) -> None:
    agentspec_snapshot.assert_meaning("specs/ops_agent.agent")


def test_meaning_ignores_formatting(agentspec_snapshot: SpecSnapshot) -> None:
    same = Path(__file__).parent / "same"
    base = agentspec_snapshot.meaning("tests/review/pairs/base.agent")
    assert agentspec_snapshot.meaning(str(same / "reordered.agent")) == base
    assert agentspec_snapshot.meaning(str(same / "reformatted.agent")) == base
    assert agentspec_snapshot.meaning("tests/review/pairs/outbound_widened/new.agent") != base


def test_a_team_suite_catches_a_meaning_change(pytester: pytest.Pytester) -> None:
    """A fresh suite: first run writes snapshots, second passes, a widened spec fails until updated."""
    spec = pytester.path / "shop.agent"
    shutil.copy(ROOT / "tests/review/pairs/base.agent", spec)
    pytester.makeconftest('pytest_plugins = ["agentspec.review.pytest_plugin"]\n')
    pytester.makepyfile(
        test_shop="""
def test_meaning(agentspec_snapshot):
    agentspec_snapshot.assert_meaning("shop.agent")

def test_compiled(agentspec_snapshot):
    agentspec_snapshot.assert_compiled("shop.agent")
"""
    )
    pytester.runpytest_subprocess("--snapshot-update", "-p", "no:cacheprovider").assert_outcomes(passed=2)
    written = list((pytester.path / "__snapshots__").rglob("*.meaning"))
    assert len(written) == 1 and "workflow help (class support)" in written[0].read_text()
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
    shutil.copy(ROOT / "tests/review/pairs/outbound_widened/new.agent", spec)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*billing.example.com*"])
