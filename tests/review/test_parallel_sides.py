"""`load_sides` checks two large sides at once (NEW in a forked process); the review must not tell.

The forked side comes back without its syntax model, with `compare.written` in its place: every
report (Markdown, JSON, SARIF, human) and every location must be what two `load_side` calls give.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from agentspec.review import review
from agentspec.review import sources as src
from agentspec.review.compare import Locator, written
from agentspec.review.render import human, markdown, to_json, to_sarif

ROOT = Path(__file__).resolve().parents[2]
PAIRS = Path(__file__).parent / "pairs"
CASES = sorted(p.name for p in PAIRS.iterdir() if p.is_dir())


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _pair(case: str) -> tuple[tuple[str, None, str], tuple[str, None, str]]:
    rel = os.path.relpath(PAIRS / case, ROOT)
    return (f"{rel}/old.agent", None, ""), (f"{rel}/new.agent", None, "")


def _reports(old: src.Side, new: src.Side) -> list[str]:
    result = review(old, new)
    return [markdown([result]), to_json([result]), to_sarif([result]), human([result], color=False)]


@pytest.mark.parametrize("case", CASES)
def test_forked_side_reviews_the_same(case: str) -> None:
    old, new = _pair(case)
    serial = src.load_sides(old, new, parallel=False)
    forked = src.load_sides(old, new, parallel=True)
    assert forked[1].spans is not None and forked[1].loaded.files == []  # it really came from the child
    assert forked[0].spans is None and forked[0].loaded.files  # OLD was checked here
    assert forked[1].spec == serial[1].spec and forked[1].tables == serial[1].tables
    assert _reports(*forked) == _reports(*serial)


def test_written_places_every_key_as_the_lazy_locator_does() -> None:
    _, new = _pair("tool_contract")
    side = src.load_side(new[0])
    places = written(side)
    assert len(places) > 20
    lazy = Locator(src.load_side(new[0]))
    for key, where in places.items():
        at = lazy.at(*key)
        file, line, column = where
        assert (at.file, at.line, at.column) == (side.display(file), line, column)


def test_a_side_that_does_not_check_fails_the_same_from_the_child(tmp_path: Path) -> None:
    good = f"{os.path.relpath(PAIRS, ROOT)}/base.agent"
    bad = tmp_path / "bad.agent"
    bad.write_text("agent broken version 1 {\n  tool t { risk extreme }\n}\n", encoding="utf-8")
    with pytest.raises(src.InputError) as serial:
        src.load_sides((good, None, ""), (str(bad), None, ""), parallel=False)
    with pytest.raises(src.InputError) as forked:
        src.load_sides((good, None, ""), (str(bad), None, ""), parallel=True)
    assert str(forked.value) == str(serial.value)
    assert "does not check" in str(forked.value)
    # OLD failing is reported first, as two load_side calls would, and the child is reaped.
    with pytest.raises(src.InputError) as old_first:
        src.load_sides((str(bad), None, ""), (good, None, ""), parallel=True)
    assert str(bad) in str(old_first.value)


def test_only_large_sides_fork(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = PAIRS / "base.agent"
    assert not src._worth_forking(str(small), str(small))
    monkeypatch.setattr(src, "PARALLEL_BYTES", 1)
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and t.name != src._REAPER]
    can_fork = hasattr(os, "fork") and os.cpu_count() != 1 and not others
    assert src._worth_forking(str(small), str(small)) == can_fork
    assert not src._worth_forking(str(small), str(tmp_path / "missing.agent"))


def test_a_forked_side_keeps_its_label_and_scratch_prefix(tmp_path: Path) -> None:
    """As `--base` names a side: `REV:path`, its files in a scratch directory shown as `REV:relative`."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "new.agent").write_text((PAIRS / "tool_contract" / "new.agent").read_text(), encoding="utf-8")
    old = (f"{os.path.relpath(PAIRS, ROOT)}/tool_contract/old.agent", None, "")
    new = (str(scratch / "new.agent"), "HEAD~1:new.agent", str(scratch))
    serial = src.load_sides(old, new, parallel=False)
    forked = src.load_sides(old, new, parallel=True)
    assert forked[1].label == "HEAD~1:new.agent" and forked[1].prefix == str(scratch)
    reports = _reports(*forked)
    assert reports == _reports(*serial)
    assert "HEAD~1:new.agent:" in reports[0] and str(tmp_path) not in reports[0]


def test_a_model_that_does_not_round_trip_is_checked_here(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = _pair("risk_lowered")
    serial = src.load_sides(old, new, parallel=False)

    def refuse(data: dict[str, object]) -> src.m.RSpec:
        raise ValueError("does not round-trip")

    monkeypatch.setattr(src, "_spec_of", refuse)
    forked = src.load_sides(old, new, parallel=True)
    assert forked[1].spans is None and forked[1].loaded.files  # NEW was checked in this process instead
    assert _reports(*forked) == _reports(*serial)


def test_a_child_that_dies_between_its_messages_leaves_new_to_be_checked_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child sends NEW's model, then its places: a child that dies after the first sends half a
    side, which this process must not use."""
    old, new = _pair("tool_contract")
    serial = src.load_sides(old, new, parallel=False)

    def dies(side: src.Side) -> dict[tuple[str, ...], src.Where]:
        raise RuntimeError("the child dies here")

    # `agentspec.review.compare` the attribute is the function; the child imports from the module.
    monkeypatch.setattr(sys.modules["agentspec.review.compare"], "written", dies)
    forked = src.load_sides(old, new, parallel=True)
    assert forked[1].spans is None and forked[1].loaded.files  # NEW was checked in this process instead
    assert _reports(*forked) == _reports(*serial)


def test_a_child_that_dies_before_sending_leaves_new_to_be_checked_here(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = _pair("tool_contract")
    serial = src.load_sides(old, new, parallel=False)
    real_load = src.load
    pid = os.getpid()

    def dies_in_the_child(path: str) -> src.Loaded:
        if os.getpid() != pid:
            raise RuntimeError("the child dies here")
        return real_load(path)

    monkeypatch.setattr(src, "load", dies_in_the_child)
    forked = src.load_sides(old, new, parallel=True)
    assert forked[1].spans is None and forked[1].loaded.files
    assert _reports(*forked) == _reports(*serial)


def test_new_s_tables_built_here_equal_the_child_s() -> None:
    """This process builds NEW's tables from the model the child sends: they must be the tables a
    `load_side` of NEW makes, for every pair."""
    for case in CASES:
        _, new = _pair(case)
        side = src.load_side(new[0])
        sent = src._spec_of(side.spec.model_dump())
        assert sent == side.spec
        assert src.tables_of(sent) == side.tables


def test_the_child_is_reaped_in_a_thread_that_does_not_stop_the_next_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    """The review does not wait for the kernel to tear the child down; a thread reaps it."""
    old, new = _pair("tool_contract")
    src.load_sides(old, new, parallel=True)
    reapers = [t for t in threading.enumerate() if t.name == src._REAPER]
    monkeypatch.setattr(src, "PARALLEL_BYTES", 1)
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and t.name != src._REAPER]
    if reapers and not others and hasattr(os, "fork") and os.cpu_count() != 1:
        assert src._worth_forking(old[0], new[0])  # a reaper alone does not make forking unsafe
    for t in reapers:
        t.join(timeout=30)
        assert not t.is_alive()  # waitpid returned: the child was reaped
