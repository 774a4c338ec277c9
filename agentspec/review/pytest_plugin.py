"""A pytest plugin: snapshot-test your own specs' meaning and compiled output with syrupy.

Enable it in a `conftest.py` of your test suite (syrupy must be installed):

    pytest_plugins = ["agentspec.review.pytest_plugin"]

    def test_support_desk_meaning(agentspec_snapshot):
        agentspec_snapshot.assert_meaning("specs/support_desk.agent")

    def test_support_desk_compiled(agentspec_snapshot):
        agentspec_snapshot.assert_compiled("specs/support_desk.agent")

The meaning snapshot is one readable `.meaning` file per test (the text `agentspec snapshot`
writes); the compiled snapshot holds every generated file by path. Update them with
`pytest --snapshot-update` and read the diff in review like code.
"""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from agentspec.emit import emit
from agentspec.review.snapshot import meaning
from agentspec.review.sources import load_side


class MeaningExtension(SingleFileSnapshotExtension):
    """One `.meaning` text file per snapshot, the same text as `agentspec snapshot` writes."""

    _write_mode = WriteMode.TEXT
    file_extension = "meaning"


class SpecSnapshot:
    """Assertions over a spec's meaning and compiled project, against syrupy snapshots."""

    def __init__(self, snapshot: SnapshotAssertion) -> None:
        self.snapshot = snapshot

    def meaning(self, path: str) -> str:
        return meaning(load_side(path).spec)

    def compiled(self, path: str) -> dict[str, str]:
        return emit(load_side(path).spec)

    def assert_meaning(self, path: str) -> None:
        assert self.meaning(path) == self.snapshot.use_extension(MeaningExtension)

    def assert_compiled(self, path: str) -> None:
        assert self.compiled(path) == self.snapshot


@pytest.fixture
def agentspec_snapshot(snapshot: SnapshotAssertion) -> SpecSnapshot:
    return SpecSnapshot(snapshot)
