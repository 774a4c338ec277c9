"""Gates: a review in, the findings CI fails on and the exit decision out.

* A widening without a `version` bump of the agent is itself a finding (R0003).
* An accepted-changes file (TOML) silences a reviewed change by fingerprint until it expires:

      [[accept]]
      fingerprint = "3f9c0a1b2c3d4e5f"
      reviewer = "alice"
      reason = "refunds need the ledger host (SEC-142)"
      expires = 2027-03-31

  An acceptance is in force through its `expires` day and not after; an expired one silences nothing.
* `--fail-on widening` fails when an open (not accepted) widening or mixed change is present,
  `--fail-on any` when any open change is.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from typing import Literal

from agentspec import model as m
from agentspec.review.change import Acceptance, Change, Location, Review
from agentspec.review.sources import InputError

FailOn = Literal["widening", "any", "never"]


def version_finding(
    changes: list[Change], old: m.RSpec, new: m.RSpec, version_at: tuple[Location, Location] | None = None
) -> Change | None:
    """R0003 when some change widens and the agent's version was not raised."""
    if not any(c.classification in ("widening", "mixed") for c in changes):
        return None
    if (new.version or 0) > (old.version or 0):
        return None
    return Change(
        code="R0003",
        agent=new.name,
        subject=("version", str(new.version)),
        message=f"agent `{new.name}` widens but stays at version `{new.version}`",
        old_at=version_at[0] if version_at else None,
        new_at=version_at[1] if version_at else None,
        note=f"bump it: `agent {new.name} version {(new.version or 0) + 1}`",
    )


def read_accepted(path: str, today: dt.date | None = None) -> tuple[dict[str, Acceptance], list[Acceptance]]:
    """The acceptances in force today (by fingerprint), and the expired ones (to report)."""
    today = today or dt.date.today()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as exc:
        raise InputError(f"accepted-changes file `{path}` does not exist") from exc
    except OSError as exc:
        raise InputError(f"accepted-changes file `{path}` cannot be read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from exc
    entries = data.get("accept", [])
    if not isinstance(entries, list):
        raise InputError(f"{path}: `accept` must be an array of tables (`[[accept]]`)")
    active: dict[str, Acceptance] = {}
    expired: list[Acceptance] = []
    for i, entry in enumerate(entries, 1):
        where = f"{path}: acceptance {i}"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: expected a table")
        missing = [k for k in ("fingerprint", "reviewer", "reason", "expires") if k not in entry]
        if missing:
            raise InputError(f"{where}: missing {', '.join(f'`{k}`' for k in missing)}")
        expires = entry["expires"]
        if not isinstance(expires, dt.date) or isinstance(expires, dt.datetime):
            raise InputError(f"{where}: `expires` must be a date such as 2027-03-31, not `{expires}`")
        for k in ("fingerprint", "reviewer", "reason"):
            if not isinstance(entry[k], str) or not entry[k].strip():
                raise InputError(f"{where}: `{k}` must be a non-empty string")
        acceptance = Acceptance(entry["fingerprint"], entry["reviewer"], entry["reason"], expires.isoformat())
        if expires >= today:
            active[acceptance.fingerprint] = acceptance
        else:
            expired.append(acceptance)
    return active, expired


def apply_acceptances(review: Review, active: dict[str, Acceptance]) -> None:
    review.accepted = {c.fingerprint: active[c.fingerprint] for c in review.changes if c.fingerprint in active}


def fails(reviews: list[Review], fail_on: FailOn) -> bool:
    """Whether the gate fails: an open change of the kind asked for is present."""
    if fail_on == "never":
        return False
    for review in reviews:
        for change in review.open_changes():
            if fail_on == "any" or change.classification in ("widening", "mixed"):
                return True
    return False
