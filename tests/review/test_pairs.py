"""Spec pairs under tests/review/pairs/: each case's Markdown report pinned by a snapshot, its codes by a table.

Every case is `pairs/base.agent` with one edit (its directory name says which; diff the two files to
see it). The snapshots under `__snapshots__/test_pairs/` are the pull-request comments a reviewer
would read: read them like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from agentspec.review import review_files
from agentspec.review.render import markdown

ROOT = Path(__file__).resolve().parents[2]
PAIRS = Path(__file__).parent / "pairs"
CASES = sorted(p.name for p in PAIRS.iterdir() if p.is_dir())


class MarkdownSnapshot(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "md"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # relative paths in reports keep snapshots machine-independent


def _review(case: str):  # type: ignore[no-untyped-def]
    rel = os.path.relpath(PAIRS / case, ROOT)
    return review_files(f"{rel}/old.agent", f"{rel}/new.agent")


@pytest.mark.parametrize("case", CASES)
def test_markdown_report(case: str, snapshot: SnapshotAssertion) -> None:
    assert markdown([_review(case)]) == snapshot.use_extension(MarkdownSnapshot)


# The codes each case must report, and its overall class: the classification itself, apart from wording.
EXPECTED: dict[str, tuple[str, set[str]]] = {
    "affinity": ("neutral", {"R0214"}),
    "artifacts_added": ("widening", {"R0901", "R0904", "R0906", "R0908", "R0804", "R0003"}),
    "auth_tenant_admin": ("neutral", {"R0801", "R0802", "R0803", "R0804", "R0805"}),
    "checkpoint_cadence": ("neutral", {"R0601"}),
    "clearance_lowered": ("narrowing", {"R0302"}),
    "clearance_raised": ("widening", {"R0301", "R0003"}),
    "compensation_added": ("narrowing", {"R0111"}),
    "compensation_removed": ("widening", {"R0110", "R0003"}),
    "enforce_to_shadow": ("widening", {"R0207", "R0001", "R0003"}),
    "idempotency_changed": ("neutral", {"R0109"}),
    "idempotency_removed": ("widening", {"R0107", "R0003"}),
    "model_chain": ("neutral", {"R0303"}),
    "outbound_narrowed": ("narrowing", {"R0206", "R0002"}),
    "outbound_widened": ("widening", {"R0205", "R0001", "R0003"}),
    "pii_narrowed": ("widening", {"R0501", "R0003"}),
    "pii_pattern_added": ("narrowing", {"R0502", "R0503"}),
    "pii_widened": ("narrowing", {"R0502"}),
    "price": ("neutral", {"R0304"}),
    "read_only_dropped": ("narrowing", {"R0106", "R0108"}),
    "risk_lowered": ("widening", {"R0103", "R0209", "R0003"}),
    "risk_raised": ("narrowing", {"R0104", "R0210"}),
    "routed_higher": ("narrowing", {"R0210"}),
    "routed_lower": ("widening", {"R0209", "R0003"}),
    "secrets_gained": ("widening", {"R0401", "R0003"}),
    "secrets_lost": ("narrowing", {"R0402"}),
    "shadow_to_enforce": ("narrowing", {"R0208", "R0002"}),
    "slo_loosened": ("widening", {"R0701", "R0003"}),
    "slo_tightened": ("narrowing", {"R0702"}),
    "steps": ("neutral", {"R0213"}),
    "tool_added": ("neutral", {"R0101"}),
    "tool_allowlist_narrowed": ("narrowing", {"R0204", "R0002"}),
    "tool_allowlist_widened": ("widening", {"R0203", "R0001", "R0003"}),
    "tool_contract": ("neutral", {"R0118"}),
    "tool_endpoint": ("neutral", {"R0113"}),
    "tool_removed": ("narrowing", {"R0102"}),
    "widening_with_version_bump": ("widening", {"R0203", "R0001", "R0004"}),
    "workflow_added": ("widening", {"R0201", "R0001", "R0003"}),
    "workflow_removed": ("narrowing", {"R0202", "R0002"}),
}


def test_every_case_has_expectations() -> None:
    assert set(EXPECTED) == set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_classification(case: str) -> None:
    review = _review(case)
    cls, codes = EXPECTED[case]
    assert {c.code for c in review.changes} == codes
    assert review.classification == cls


@pytest.mark.parametrize("case", [c for c in CASES if "R0001" in EXPECTED[c][1]])
def test_every_widening_of_permissions_has_a_counterexample(case: str) -> None:
    for change in _review(case).changes:
        if change.code == "R0001":
            assert change.counterexamples
            hosts = {ex.url.split("/")[2].split(":")[0] for ex in change.counterexamples}
            shown = {"unlisted.example.invalid" if h == "any other host" else h for h in change.subject[3:]}
            assert hosts == shown


def test_mixed_when_one_change_widens_and_another_narrows(tmp_path: Path) -> None:
    base = (PAIRS / "base.agent").read_text()
    new = base.replace("pii mask [email, phone]", "pii mask [email]").replace("success >= 99%", "success >= 99.9%")
    (tmp_path / "new.agent").write_text(new)
    review = review_files(str(PAIRS / "base.agent"), str(tmp_path / "new.agent"))
    assert {c.classification for c in review.changes} == {"widening", "narrowing"}
    assert review.classification == "mixed"


def test_identity_secrets_both_ways_is_mixed(tmp_path: Path) -> None:
    base = (PAIRS / "base.agent").read_text()
    old = base.replace("secrets [BILL_KEY]", "secrets [BILL_KEY, OLD_KEY]")
    new = base.replace("secrets [BILL_KEY]", "secrets [BILL_KEY, NEW_KEY]")
    (tmp_path / "old.agent").write_text(old)
    (tmp_path / "new.agent").write_text(new)
    review = review_files(str(tmp_path / "old.agent"), str(tmp_path / "new.agent"))
    # A mixed change widens too, so an unbumped version is a finding as well.
    assert [c.code for c in review.changes] == ["R0003", "R0403"]
    assert review.changes[1].classification == "mixed"


def test_price_impact_per_1000_tasks_at_the_declared_budget() -> None:
    (change,) = _review("price").changes
    # `money` runs its turns on `large`: 4000 in, 800 out per task; output price 3.00 -> 4.50 per Mtok.
    before = 1000 * (4000 * 1.00 + 800 * 3.00) / 1e6
    after = 1000 * (4000 * 1.00 + 800 * 4.50) / 1e6
    assert change.note == f"price per 1,000 tasks: `money` ${before:,.2f} -> ${after:,.2f} (+${after - before:,.2f})"


# ───────────────────────────── no change of meaning ─────────────────────────────

SAME = Path(__file__).parent / "same"


@pytest.mark.parametrize("other", ["reordered.agent", "reformatted.agent"])
def test_reorder_and_reformat_report_no_change(other: str) -> None:
    assert (SAME / other).read_text() != (PAIRS / "base.agent").read_text()
    review = review_files(str(PAIRS / "base.agent"), str(SAME / other))
    assert review.changes == []


def test_renamed_file_reports_no_change(tmp_path: Path) -> None:
    renamed = tmp_path / "elsewhere" / "renamed_shop.agent"
    renamed.parent.mkdir()
    renamed.write_text((PAIRS / "base.agent").read_text())
    assert review_files(str(PAIRS / "base.agent"), str(renamed)).changes == []


def test_fingerprints_survive_reformatting() -> None:
    widened = review_files(str(PAIRS / "base.agent"), str(PAIRS / "outbound_widened" / "new.agent"))
    from_reordered = review_files(str(SAME / "reordered.agent"), str(PAIRS / "outbound_widened" / "new.agent"))
    assert [c.fingerprint for c in widened.changes] == [c.fingerprint for c in from_reordered.changes]
    assert len({c.fingerprint for c in widened.changes}) == len(widened.changes)
