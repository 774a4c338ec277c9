"""Reviews of spec changes: two checked sides in, what the change means out.

The stages, each callable on its own:

    sources         read a side (a file, or a file at a git revision) and check it
    compare         field-level changes of the resolved models, located on both sides
    counterexamples exact per (workflow, tool, host) verdicts from the two policy tables
    classify        the direction of a field's change (widening, narrowing, mixed, neutral)
    gates           version-bump finding, accepted changes, `--fail-on`
    render          human (rich), Markdown, JSON and SARIF 2.1.0
    snapshot        the committed "meaning" file of a spec
    catalogue       the change codes `agentspec explain` knows
"""

from __future__ import annotations

from agentspec.review.change import Change, Review
from agentspec.review.compare import Locator, compare
from agentspec.review.counterexamples import attach, verdicts
from agentspec.review.gates import version_finding
from agentspec.review.sources import Side, load_side, load_sides


def review(old: Side, new: Side) -> Review:
    """Every change from OLD to NEW, most severe first."""
    fields = compare(old, new)
    permissions = verdicts(old, new)
    changes = attach(fields, permissions) + permissions
    bump = version_finding(changes, old.spec, new.spec, (Locator.of(old).at("version"), Locator.of(new).at("version")))
    if bump is not None:
        changes.append(bump)
    changes.sort(key=Change.sort_key)
    return Review(new.spec.name, old.label, new.label, changes)


def review_files(old_path: str, new_path: str) -> Review:
    return review(*load_sides((old_path, None, ""), (new_path, None, "")))


__all__ = ["Change", "Review", "Side", "load_side", "review", "review_files"]
