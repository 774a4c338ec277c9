"""What a review produces: changes, each with its code, both locations, values and counterexamples.

Plain frozen records, built by `compare` and `counterexamples`, read by `gates` and `render`.
A change's fingerprint hashes what it means (agent, code, subject, old and new value), never
where it is written, so moving or reformatting a spec keeps it, and an accepted change stays
accepted until it means something else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from agentspec.review.catalogue import SEVERITY, Classification, classification


@dataclass(frozen=True)
class Location:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Counterexample:
    """A request OLD and NEW decide differently: `old`/`new` are the evaluator's decisions."""

    workflow: str
    tool: str
    url: str
    risk: str
    old: str
    new: str


@dataclass(frozen=True)
class Change:
    code: str
    agent: str
    subject: tuple[str, ...]  # what changed, as (kind, name, ...): part of the fingerprint
    message: str
    old: str | None = None
    new: str | None = None
    old_at: Location | None = None
    new_at: Location | None = None
    counterexamples: tuple[Counterexample, ...] = ()
    note: str | None = None

    @property
    def classification(self) -> Classification:
        return classification(self.code)

    @property
    def fingerprint(self) -> str:
        text = "\x1f".join([self.agent, self.code, *self.subject, self.old or "", self.new or ""])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def sort_key(self) -> tuple[int, str, tuple[str, ...], str]:
        return (SEVERITY[self.classification], self.code, self.subject, self.new or "")


@dataclass(frozen=True)
class Acceptance:
    fingerprint: str
    reviewer: str
    reason: str
    expires: str  # ISO date


@dataclass
class Review:
    """The review of one agent: its changes, most severe first, and which of them are accepted."""

    agent: str
    old_label: str
    new_label: str
    changes: list[Change] = field(default_factory=list)
    accepted: dict[str, Acceptance] = field(default_factory=dict)  # fingerprint -> acceptance

    def open_changes(self) -> list[Change]:
        return [c for c in self.changes if c.fingerprint not in self.accepted]

    @property
    def classification(self) -> Classification:
        kinds = {c.classification for c in self.changes}
        if "mixed" in kinds or {"widening", "narrowing"} <= kinds:
            return "mixed"
        if "widening" in kinds:
            return "widening"
        if "narrowing" in kinds:
            return "narrowing"
        return "neutral"
