"""Verification of a chain against its signed heads: a traces file (records and the head log's `heads`, as
`GET /v1/traces` answers for a spec with `audit sign with secret`) and an Ed25519 public key in, located
problems out.

The hash chain alone shows an altered record, but not a chain rewritten with every later record re-hashed, nor a
cut tail, nor an object rolled back to an older state: each of those is again a well-formed chain. The runtime's
head log (runtime `heads.ts`, a Durable Object apart from the session's) keeps a signed entry for each head the
chain had, each entry linked to the one before by hash. So here: every head must verify under the key; the
entries must link with none missing; and every head must still be in the chain, its record at `seq` carrying
exactly the signed `hash`. A head beyond the chain's end is a cut tail (or a rollback); a head whose record
hashes otherwise is a rewrite (or a rollback the chain has grown past again).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agentspec.signing import key_id
from agentspec.trace.schema import GENESIS_HASH
from agentspec.trace.verify import Problem, _short, canonical_json, printable

# A head's fields and their types; `sig` is not signed, every other one is.
_FIELDS: dict[str, type] = {
    "v": int,
    "agent": str,
    "tenant": str,
    "chain": str,
    "id": str,
    "n": int,
    "seq": int,
    "hash": str,
    "ts": str,
    "prev": str,
    "key_id": str,
    "sig": str,
}

_HELP_KEY = (
    "check that the key is this deployment's (`GET /v1/policy` serves it as `audit.spki_pem`; compare its "
    "key id with the one you were given out of band)"
)


@dataclass(frozen=True)
class HeadCheck:
    """What the heads said: the problems, and how many heads verified under the key (for the summary)."""

    problems: list[Problem]
    verified: int
    last_seq: int | None
    key_id: str


def body_of(head: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in head.items() if k != "sig"}


def entry_hash(head: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a head's body: what the next head of its chain carries as `prev`."""
    return hashlib.sha256(printable(canonical_json(body_of(head))).encode("utf-8")).hexdigest()


def _decode_sig(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _malformed(index: int, head: Any) -> str | None:
    if not isinstance(head, Mapping):
        return "it is not a JSON object"
    for name, kind in _FIELDS.items():
        value = head.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"field `{name}` is missing or not a{'n integer' if kind is int else ' string'}"
    if head["v"] != 1:
        return f"version {head['v']} is not one this verifier reads"
    return None


def _signed(head: Mapping[str, Any], key: Ed25519PublicKey) -> bool:
    sig = _decode_sig(head["sig"])
    if sig is None or len(sig) != 64:
        return False
    try:
        key.verify(sig, printable(canonical_json(body_of(head))).encode("utf-8"))
    except InvalidSignature:
        return False
    return True


def _scope(traces: Mapping[str, Any], records: Sequence[Any]) -> tuple[str | None, str | None, str | None]:
    """The tenant, chain kind and id the traces are of: from where they were pulled, else from the records."""
    raw = traces.get("source")
    source: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    first: Mapping[str, Any] = next((r for r in records if isinstance(r, Mapping)), {})

    def text(*values: Any) -> str | None:
        return next((v for v in values if isinstance(v, str)), None)

    tenant = text(source.get("tenant"), first.get("tenant"))
    if isinstance(source.get("task"), str):
        return tenant, "task", source["task"]
    kind = "session" if isinstance(source.get("session"), str) else None
    return tenant, kind, text(source.get("session"), first.get("session"))


def check_heads(traces: Mapping[str, Any], key: Ed25519PublicKey, key_name: str = "the public key") -> HeadCheck:
    """Every problem the signed heads in `traces` show about its chain, under `key`."""
    records: Sequence[Any] = traces.get("records") if isinstance(traces.get("records"), list) else []  # type: ignore[assignment]
    raw_heads = traces.get("heads")
    heads: Sequence[Any] = raw_heads if isinstance(raw_heads, list) else []
    kid = key_id(key)
    problems: list[Problem] = []
    if not heads:
        problems.append(
            Problem(
                "no signed heads: nothing vouches for this chain beyond its own hashes",
                help="pull the traces with `agentspec trace pull` from a runtime whose spec says "
                "`audit sign with secret NAME`; a chain without heads may have been rewritten or cut unseen",
            )
        )
        return HeadCheck(problems, 0, None, kid)

    # 1. Shape and signature: only a head that verifies under the key is evidence of anything.
    good: list[Mapping[str, Any]] = []
    forged: list[tuple[int, Mapping[str, Any]]] = []
    for index, head in enumerate(heads):
        why = _malformed(index, head)
        if why is not None:
            problems.append(Problem(f"signed head heads[{index}] is malformed: {why}", index=index, field="heads"))
        elif _signed(head, key):
            good.append(head)
        else:
            forged.append((index, head))
    if forged and not good:
        named = sorted({h["key_id"] for _, h in forged})
        problems.append(
            Problem(
                f"no signed head verifies with {key_name}",
                field="heads",
                notes=(
                    f"the key's id is {kid}; the heads name key id {', '.join(named)}",
                    f"{len(forged)} head{'s' if len(forged) != 1 else ''} checked",
                ),
                help=_HELP_KEY,
            )
        )
        return HeadCheck(problems, 0, None, kid)
    for index, head in forged:
        problems.append(
            Problem(
                f"signed head {head['n']} (seq {head['seq']}) does not verify: its contents or signature were altered",
                seq=head["seq"],
                index=index,
                field="heads",
                notes=(f"it names key id {head['key_id']}; the key's id is {kid}",),
                help="the head log was written to by something other than the runtime; trust no head but verified ones",
            )
        )

    # 2. Scope: a head of another session (or tenant) proves nothing about this one.
    tenant, kind, chain_id = _scope(traces, records)
    mine: list[Mapping[str, Any]] = []
    for head in good:
        other = (
            (tenant is not None and head["tenant"] != tenant)
            or (kind is not None and head["chain"] != kind)
            or (chain_id is not None and head["id"] != chain_id)
        )
        if other:
            problems.append(
                Problem(
                    f"signed head {head['n']} is of {head['chain']} `{head['id']}` of tenant `{head['tenant']}`, "
                    "not of this chain",
                    seq=head["seq"],
                    field="heads",
                    help="a head was copied in from another chain",
                )
            )
        else:
            mine.append(head)
    mine.sort(key=lambda h: h["n"])

    # 3. The head log's own links: numbered from 1 without gaps, each `prev` the hash of the entry before.
    expected_n, expected_prev = 1, GENESIS_HASH
    for head in mine:
        if head["n"] != expected_n:
            first, last = expected_n, head["n"] - 1
            what = f"head {first}" if first == last else f"heads {first} to {last}"
            problems.append(
                Problem(
                    f"signed {what} {'is' if first == last else 'are'} missing from the head log",
                    seq=head["seq"],
                    field="heads",
                    notes=(f"head {head['n']} follows head {expected_n - 1}",) if expected_n > 1 else (),
                    help="entries were removed from the head log, or the traces were pulled incompletely",
                )
            )
        elif head["prev"] != expected_prev:
            problems.append(
                Problem(
                    f"signed head {head['n']} does not link to head {head['n'] - 1}",
                    seq=head["seq"],
                    field="heads",
                    notes=(f"its `prev` is {_short(head['prev'])}, expected {_short(expected_prev)}",),
                    help="the head log was reordered or an entry replaced",
                )
            )
        expected_n, expected_prev = head["n"] + 1, entry_hash(head)

    # 4. The chain against its heads.
    by_seq: dict[int, tuple[int, Mapping[str, Any]]] = {}
    for index, r in enumerate(records):
        if isinstance(r, Mapping) and isinstance(r.get("seq"), int) and not isinstance(r.get("seq"), bool):
            by_seq.setdefault(r["seq"], (index, r))
    top = max(by_seq, default=0)
    source = traces.get("source")
    since = source.get("since", 0) if isinstance(source, Mapping) else 0
    since = since if isinstance(since, int) and not isinstance(since, bool) and since >= 0 else 0
    checkable = [h for h in mine if h["seq"] > since]

    for before, after in pairwise(mine):
        if after["seq"] < before["seq"]:
            problems.append(
                Problem(
                    f"the chain went back from seq {before['seq']} to seq {after['seq']}",
                    seq=after["seq"],
                    field="seq",
                    notes=(
                        f"signed head {before['n']} ({before['ts']}) is at seq {before['seq']}, "
                        f"head {after['n']} ({after['ts']}) at seq {after['seq']}",
                    ),
                    help="a chain only grows: the object holding it was rolled back to an older state",
                )
            )

    beyond = [h for h in checkable if h["seq"] > top]
    if beyond:
        far = max(beyond, key=lambda h: (h["seq"], h["n"]))
        cut = f"records seq {top + 1} to {far['seq']}" if far["seq"] > top + 1 else f"record seq {far['seq']}"
        problems.append(
            Problem(
                f"the chain ends at seq {top}, but signed head {far['n']} vouches for seq {far['seq']}",
                seq=far["seq"],
                field="seq",
                notes=(
                    f"{cut} {'are' if far['seq'] > top + 1 else 'is'} gone",
                    f"head {far['n']} ({far['ts']}) signed hash {_short(far['hash'])} at seq {far['seq']}",
                ),
                help="the chain's tail was cut, or the session's object was rolled back to an older state",
            )
        )

    mismatched = [h for h in checkable if h["seq"] in by_seq and by_seq[h["seq"]][1].get("hash") != h["hash"]]
    if mismatched:
        # The rewrite is at or before the earliest head the chain no longer matches, after the last that matches.
        first_bad = min(mismatched, key=lambda h: h["seq"])
        matching = [
            h["seq"]
            for h in checkable
            if h["seq"] < first_bad["seq"] and h["seq"] in by_seq and by_seq[h["seq"]][1].get("hash") == h["hash"]
        ]
        low = max(matching, default=since) + 1
        index, record = by_seq[first_bad["seq"]]
        span = f"seq {low}" if low == first_bad["seq"] else f"seq {low} to {first_bad['seq']}"
        problems.append(
            Problem(
                f"record seq {first_bad['seq']} is not the record signed head {first_bad['n']} vouches for",
                seq=first_bad["seq"],
                index=index,
                field="hash",
                notes=(
                    f"its hash is {_short(record.get('hash'))}; head {first_bad['n']} ({first_bad['ts']}) "
                    f"signed {_short(first_bad['hash'])}",
                    f"a record in {span} was rewritten (every later record re-hashed to match), or the object was "
                    "rolled back and the chain grew again",
                    *([f"{len(mismatched)} signed heads no longer match the chain"] if len(mismatched) > 1 else []),
                ),
                help=f"compare records {span} with an earlier copy of the traces; none of them can be trusted",
            )
        )

    missing = [h for h in checkable if h["seq"] <= top and h["seq"] not in by_seq]
    for head in missing:
        problems.append(
            Problem(
                f"record seq {head['seq']}, which signed head {head['n']} vouches for, is missing",
                seq=head["seq"],
                field="seq",
                help="a removed record breaks the chain; pull the traces again and compare",
            )
        )

    last = max((h["seq"] for h in mine), default=None)
    if last is not None and top > last and not beyond:
        low = max(last, since) + 1
        problems.append(
            Problem(
                f"records seq {low} to {top} are not covered by a signed head yet"
                if low < top
                else f"record seq {top} is not covered by a signed head yet",
                seq=low,
                field="seq",
                notes=(f"the last signed head is at seq {last}",),
                help="heads are signed just after each commit: pull again in a moment; a tail that stays unsigned "
                "was written without the signing key (or its heads were removed from the head log)",
                severity="warning",
            )
        )
    if since > 0 and not checkable:
        problems.append(
            Problem(
                f"no signed head is after seq {since}, where these traces start",
                field="seq",
                help="pull from seq 0 to check the whole chain against its heads",
                severity="warning",
            )
        )
    verified = len(mine)
    return HeadCheck(problems, verified, last, kid)


def summary(check: HeadCheck) -> str:
    if check.verified == 0:
        return ""
    at = f", the last at seq {check.last_seq}" if check.last_seq is not None else ""
    return f"signed heads: {check.verified} verified with key {check.key_id}{at}"
