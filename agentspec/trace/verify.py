"""Verification of a session's decision chain: the records of `GET /v1/traces` in (oldest first), a list of
located problems out (empty when the chain is intact).

Each record's `hash` is sha256 over the canonical JSON of the record without `hash`, exactly as the runtime's
`chain.ts` computes it; each record's `prev_hash` is the hash of the record before it (64 zeros for seq 1).
So an altered record, a removed record, a reordered pair or a forged link is found and named by its seq. The turn
traces, which repeat every decision they made, help name the altered field and show records removed at the end.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from agentspec.trace.schema import GENESIS_HASH, STRING_FIELDS

# Rules that only ever deny (in "shadow" mode: shadow_deny), and the one that only ever allows.
_DENYING_RULES = {"tools.allowlist", "outbound.allowlist", "tools.unknown", "workflow.unknown", "outbound.guard"}
_ALLOWING_RULES = {"tools.allow", "model.fallback", "checkpoint.every"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a chain, located by the record's seq (and its index in the file) and a field."""

    message: str
    seq: int | None = None
    index: int | None = None
    field: str | None = None
    notes: tuple[str, ...] = ()
    help: str | None = None
    severity: str = "error"

    def as_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "message": self.message,
            "seq": self.seq,
            "index": self.index,
            "field": self.field,
            "notes": list(self.notes),
            "help": self.help,
        }


# The longest run of missing seqs reported seq by seq; a longer one is one problem.
_MAX_LISTED_GAP = 64


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8: byte-identical to `canonicalJSON` in the runtime's chain.ts."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: Mapping[str, Any]) -> str:
    """The hash a record should carry: sha256 of the canonical JSON of every field except `hash`."""
    body = {k: v for k, v in record.items() if k != "hash"}
    text = canonical_json(body)
    # The runtime's TextEncoder writes a lone surrogate as U+FFFD; so does this, instead of failing to encode.
    # As UTF-16 code units, as JavaScript holds them: a pair joins, a lone one becomes U+FFFD (as TextEncoder does).
    data = printable(text).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` with each lone surrogate (which no output encoding can write) replaced by U+FFFD."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace") if _lone(text) else text


def _lone(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def _short(h: Any) -> str:
    return f"{h[:12]}…" if isinstance(h, str) and len(h) > 12 else repr(h)


@dataclass
class _Entry:
    index: int
    record: Mapping[str, Any]
    seq: int
    computed: str

    @property
    def intact(self) -> bool:
        return self.record["hash"] == self.computed


@dataclass
class _Context:
    """What the turn traces said about each decision, and which values the chain holds throughout."""

    views: dict[int, list[tuple[int, Mapping[str, Any]]]] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)


def _schema_problem(index: int, record: Any) -> Problem | None:
    if not isinstance(record, Mapping):
        return Problem("record is not a JSON object", index=index)
    seq = record.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return Problem(f"record has no valid `seq` ({seq!r})", index=index, field="seq")
    for name in STRING_FIELDS:
        if not isinstance(record.get(name), str):
            return Problem(f"record seq {seq} has no string field `{name}`", seq=seq, index=index, field=name)
    return None


def _context(entries: Sequence[_Entry], turns: Sequence[Any]) -> _Context:
    ctx = _Context()
    for turn in turns:
        if not isinstance(turn, Mapping):
            continue
        views = turn.get("decisions")
        number = turn.get("turn")
        # A trace file is untrusted input: anything of another shape is skipped, never a crash.
        number = number if isinstance(number, int) and not isinstance(number, bool) else 0
        for view in views if isinstance(views, list) else []:
            seq = view.get("seq") if isinstance(view, Mapping) else None
            if isinstance(seq, int) and not isinstance(seq, bool):
                ctx.views.setdefault(seq, []).append((number, view))
    for name in ("tenant", "session", "spec_hash"):
        counts = Counter(e.record[name] for e in entries)
        if counts:
            value, n = counts.most_common(1)[0]
            if n > len(entries) / 2:
                ctx.constants[name] = value
    return ctx


def _suspects(entry: _Entry, ctx: _Context, before: _Entry | None, after: _Entry | None) -> list[tuple[str, str]]:
    """Fields of an altered record that look wrong, each with the reason."""
    r = entry.record
    found: list[tuple[str, str]] = []
    for turn, view in ctx.views.get(entry.seq, []):
        for name in ("action", "decision", "rule"):
            if name in view and view[name] != r[name]:
                found.append(
                    (
                        name,
                        f"field `{name}` is `{r[name]}`, but turn {turn}'s trace recorded "
                        f"`{view[name]}` for seq {entry.seq}",
                    )
                )
    if r["rule"] in _DENYING_RULES and r["decision"] == "allow":
        found.append(("decision", f"field `decision` is `allow`, but rule `{r['rule']}` never allows"))
    if r["rule"] in _ALLOWING_RULES and r["decision"] in {"deny", "shadow_deny"}:
        found.append(("decision", f"field `decision` is `{r['decision']}`, but rule `{r['rule']}` never denies"))
    for name, value in ctx.constants.items():
        if r[name] != value:
            found.append((name, f"field `{name}` is `{r[name]}`, but every other record has `{value}`"))
    if (before is not None and r["ts"] < before.record["ts"]) or (after is not None and r["ts"] > after.record["ts"]):
        found.append(("ts", f"field `ts` ({r['ts']}) is out of order with its neighbours"))
    unique: dict[str, str] = {}
    for name, why in found:
        unique.setdefault(name, why)
    return list(unique.items())


def verify(
    traces: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    after: tuple[int, str] | None = None,
) -> list[Problem]:
    """Every problem with the chain in `traces` (a /v1/traces answer, or its `records` list), oldest first.

    The chain must start at genesis (seq 1, `prev_hash` of 64 zeros) unless `after` gives the seq and hash of
    the last record already verified, or the traces were pulled with `since` > 0 (its link is then not checked).
    """
    if isinstance(traces, Mapping):
        records: Sequence[Any] = _list(traces.get("records"))
        turns: Sequence[Any] = _list(traces.get("turns"))
        source = traces.get("source")
        pulled_since = source.get("since") if isinstance(source, Mapping) else None
        since = 0
        if isinstance(pulled_since, int) and not isinstance(pulled_since, bool) and pulled_since >= 0:
            since = pulled_since
    else:
        records, turns, since = traces, [], 0
    problems: list[Problem] = []
    entries: list[_Entry] = []
    for index, record in enumerate(records):
        bad = _schema_problem(index, record)
        if bad is not None:
            problems.append(bad)
        else:
            entries.append(_Entry(index, record, record["seq"], record_hash(record)))
    ctx = _context(entries, turns)
    start = after[0] + 1 if after is not None else since + 1

    # Order: the file must list records by increasing seq, each seq once.
    for prev, cur in pairwise(entries):
        if cur.seq == prev.seq:
            problems.append(
                Problem(
                    f"record seq {cur.seq} appears twice",
                    seq=cur.seq,
                    index=cur.index,
                    field="seq",
                    notes=(f"at records[{prev.index}] and records[{cur.index}]",),
                )
            )
        elif cur.seq < prev.seq:
            problems.append(
                Problem(
                    f"records seq {prev.seq} and seq {cur.seq} are out of order",
                    seq=cur.seq,
                    index=cur.index,
                    field="seq",
                    notes=(f"records[{prev.index}] is seq {prev.seq}, records[{cur.index}] is seq {cur.seq}",),
                    help="records are listed oldest first; a reordered pair means the log was rewritten",
                )
            )

    # Loss: every seq from the start to the highest seen (in the chain or in a turn trace) must be present.
    by_seq: dict[int, _Entry] = {}
    for e in entries:
        by_seq.setdefault(e.seq, e)
    top = max([*by_seq, *ctx.views], default=start - 1)
    # Listed one by one, except a gap too long to list (a forged seq of 10**18 must not enumerate 10**18 seqs).
    missing: list[int] = []
    bounds = [start - 1, *sorted(k for k in by_seq if k >= start), top + 1]
    for low, high in pairwise(bounds):
        if high - low - 1 > _MAX_LISTED_GAP:
            problems.append(
                Problem(
                    f"records seq {low + 1} to seq {high - 1} are missing ({high - low - 1} records)",
                    seq=low + 1,
                    field="seq",
                    help="a removed record breaks the chain; pull the traces again and compare",
                )
            )
        else:
            missing.extend(range(low + 1, high))
    for s in missing:
        lower = max((k for k in by_seq if k < s), default=None)
        upper = min((k for k in by_seq if k > s), default=None)
        where = (
            f"between seq {lower} and seq {upper}"
            if lower is not None and upper is not None
            else f"after seq {lower}, the last record"
            if lower is not None
            else f"before seq {upper}"
        )
        notes = [where]
        if upper is None:
            turns_naming = sorted({t for t, _ in ctx.views.get(s, [])})
            notes.append(f"turn {turns_naming[0]}'s trace refers to it" if turns_naming else "")
        problems.append(
            Problem(
                f"record seq {s} is missing",
                seq=s,
                field="seq",
                notes=tuple(n for n in notes if n),
                help="a removed record breaks the chain; pull the traces again and compare",
            )
        )

    # Contents and links, in seq order.
    rewritten_hash: set[int] = set()
    link_notes: dict[int, list[str]] = {}
    for s in sorted(by_seq):
        e = by_seq[s]
        before = by_seq.get(s - 1)
        if s == 1 and after is None:
            expected: str | None = GENESIS_HASH
        elif after is not None and s == after[0] + 1:
            expected = after[1]
        else:
            expected = before.record["hash"] if before is not None else None
        if expected is None or e.record["prev_hash"] == expected:
            continue
        if before is not None and not before.intact and e.record["prev_hash"] == before.computed:
            rewritten_hash.add(before.seq)  # the previous record's contents are intact: only its `hash` was changed
        elif not e.intact:
            link_notes.setdefault(s, []).append(
                f"its `prev_hash` {_short(e.record['prev_hash'])} is not the hash of the record before it"
            )
        else:
            what = "genesis (64 zeros)" if expected == GENESIS_HASH else f"seq {s - 1}'s hash {_short(expected)}"
            problems.append(
                Problem(
                    f"record seq {s} does not link to the record before it",
                    seq=s,
                    index=e.index,
                    field="prev_hash",
                    notes=(f"its `prev_hash` is {_short(e.record['prev_hash'])}, expected {what}",),
                    help="a record was forged or replaced with a recomputed hash",
                )
            )

    for s in sorted(by_seq):
        e = by_seq[s]
        if e.intact:
            continue
        if s in rewritten_hash:
            problems.append(
                Problem(
                    f"record seq {s} carries a rewritten hash",
                    seq=s,
                    index=e.index,
                    field="hash",
                    notes=(
                        f"its contents hash to {_short(e.computed)}, which seq {s + 1} links to, "
                        f"but its `hash` is {_short(e.record['hash'])}",
                    ),
                )
            )
            continue
        suspects = _suspects(e, ctx, by_seq.get(s - 1), by_seq.get(s + 1))
        notes = [why for _, why in suspects]
        notes += link_notes.get(s, [])
        notes.append(f"its contents hash to {_short(e.computed)}, but its `hash` is {_short(e.record['hash'])}")
        problems.append(
            Problem(
                f"record seq {s} was altered after it was written",
                seq=s,
                index=e.index,
                field=suspects[0][0] if suspects else "hash",
                notes=tuple(notes),
                help=f"nothing in this record can be trusted; compare seq {s} with another copy of the traces",
            )
        )

    # The turn traces are not hashed: one that disagrees with an intact record was edited.
    for s, views in sorted(ctx.views.items()):
        seen = by_seq.get(s)
        if seen is None or not seen.intact:
            continue
        e = seen
        for turn, view in views:
            for name in ("action", "decision", "rule"):
                if name in view and view[name] != e.record[name]:
                    problems.append(
                        Problem(
                            f"turn {turn}'s trace disagrees with record seq {s}",
                            seq=s,
                            index=e.index,
                            field=name,
                            notes=(f"the record says `{e.record[name]}`, the turn trace says `{view[name]}`",),
                            help="the record is hash-checked and intact; the turn trace was edited",
                            severity="warning",
                        )
                    )
    problems.sort(key=lambda p: (p.seq if p.seq is not None else -1, p.index if p.index is not None else -1))
    return problems


def render(problems: Sequence[Problem], path: str, records: Sequence[Any]) -> str:
    """Human-readable, in the compiler's diagnostic style, with a one-line summary at the end."""
    out: list[str] = []
    for p in problems:
        where = [
            f"records[{p.index}]" if p.index is not None else None,
            f"seq {p.seq}" if p.seq is not None else None,
            f"field `{p.field}`" if p.field else None,
        ]
        out.append(f"{p.severity}: {p.message}")
        out.append(f"  --> {path}: " + ", ".join(w for w in where if w))
        out.extend(f"   = note: {n}" for n in p.notes)
        if p.help:
            out.append(f"   = help: {p.help}")
        out.append("")
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    seqs = [r["seq"] for r in records if isinstance(r, Mapping) and isinstance(r.get("seq"), int)]
    if errors == 0:
        head = records[-1].get("hash", "") if records and isinstance(records[-1], Mapping) else ""
        span = f" (seq {min(seqs)} to {max(seqs)}), head {_short(head)}" if seqs else ""
        line = f"chain intact: {len(records)} record{'s' if len(records) != 1 else ''}{span}"
        if warnings:
            line += f"; {warnings} warning{'s' if warnings != 1 else ''}"
    else:
        line = (
            f"chain broken: {errors} error{'s' if errors != 1 else ''}"
            + (f", {warnings} warning{'s' if warnings != 1 else ''}" if warnings else "")
            + f" in {len(records)} records"
        )
    out.append(line)
    return printable("\n".join(out) + "\n")
