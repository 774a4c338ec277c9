"""The signed-heads verifier (agentspec/trace/heads.py) and `agentspec trace verify --public-key`, on chains and
head logs built here exactly as the runtime builds them (chain.ts, heads.ts; heads.test.ts checks the signature
bytes match). Each tampering case is also run through the plain hash-chain verifier, which must NOT see it:
that is what the heads add."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from agentspec.cli import main
from agentspec.signing import key_id, load_public_key, local_key, public_pem, raw_public
from agentspec.trace.heads import check_heads, entry_hash
from agentspec.trace.schema import GENESIS_HASH
from agentspec.trace.verify import canonical_json, record_hash, verify

KEY = local_key("audited")
OTHER = local_key("someone-else")


def chain(n: int, session: str = "s1", decisions: dict[int, str] | None = None) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        body = {
            "seq": seq,
            "ts": f"2026-12-02T00:00:{seq:02d}.000Z",
            "tenant": "acme",
            "session": session,
            "workflow": "desk",
            "intent": "where is my order",
            "action": f"tool.call:lookup_order#{seq}",
            "decision": (decisions or {}).get(seq, "allow"),
            "rule": "tools.allow",
            "spec_hash": "sha256:x",
            "prev_hash": prev,
        }
        body["hash"] = record_hash(body)
        prev = body["hash"]
        records.append(body)
    return records


def rehash(records: list[dict[str, Any]], start: int) -> None:
    """Re-hash records[start:] and relink them: the rewrite the hash chain alone cannot see."""
    prev = records[start - 1]["hash"] if start > 0 else GENESIS_HASH
    for r in records[start:]:
        r["prev_hash"] = prev
        r["hash"] = record_hash(r)
        prev = r["hash"]


def heads_for(records: list[dict[str, Any]], at: list[int], key=KEY, session: str = "s1") -> list[dict[str, Any]]:
    """The head log's entries for heads at the given seqs, signed and linked as heads.ts writes them."""
    out: list[dict[str, Any]] = []
    prev = GENESIS_HASH
    by_seq = {r["seq"]: r for r in records}
    for n, seq in enumerate(at, start=1):
        body = {
            "v": 1,
            "agent": "audited",
            "tenant": "acme",
            "chain": "session",
            "id": session,
            "n": n,
            "seq": seq,
            "hash": by_seq[seq]["hash"],
            "ts": f"2026-12-02T00:01:{n:02d}.000Z",
            "prev": prev,
            "key_id": key_id(key.public_key()),
        }
        sig = key.sign(canonical_json(body).encode())
        entry = {**body, "sig": base64.urlsafe_b64encode(sig).rstrip(b"=").decode()}
        prev = entry_hash(entry)
        out.append(entry)
    return out


def traces(records, heads) -> dict[str, Any]:
    return {"records": records, "turns": [], "heads": heads, "source": {"session": "s1", "tenant": "acme", "since": 0}}


def errors(problems) -> list[str]:
    return [p.message for p in problems if p.severity == "error"]


def test_intact_chain_verifies_against_its_heads() -> None:
    records = chain(6)
    check = check_heads(traces(records, heads_for(records, [2, 4, 6])), KEY.public_key())
    assert check.problems == []
    assert (check.verified, check.last_seq) == (3, 6)


def test_wrong_key_verifies_nothing() -> None:
    records = chain(4)
    check = check_heads(traces(records, heads_for(records, [2, 4])), OTHER.public_key(), "the key in `k.pem`")
    assert errors(check.problems) == ["no signed head verifies with the key in `k.pem`"]
    assert key_id(KEY.public_key()) in check.problems[0].notes[0]
    assert check.verified == 0


def test_rewrite_with_every_later_record_rehashed() -> None:
    records = chain(6)
    heads = heads_for(records, [2, 4, 6])
    records[2]["decision"] = "deny"  # seq 3
    rehash(records, 2)
    assert verify(traces(records, heads)) == []  # the hash chain alone is satisfied
    problems = check_heads(traces(records, heads), KEY.public_key()).problems
    assert errors(problems) == ["record seq 4 is not the record signed head 2 vouches for"]
    assert problems[0].index == 3
    assert problems[0].notes[1].startswith("a record in seq 3 to 4 was rewritten")
    assert "2 signed heads no longer match the chain" in problems[0].notes


def test_cut_tail() -> None:
    records = chain(6)
    heads = heads_for(records, [3, 6])
    cut = records[:4]
    assert verify(traces(cut, heads)) == []
    problems = check_heads(traces(cut, heads), KEY.public_key()).problems
    assert errors(problems) == ["the chain ends at seq 4, but signed head 2 vouches for seq 6"]
    assert problems[0].notes[0] == "records seq 5 to 6 are gone"


def test_rollback_then_growth() -> None:
    """The object went back to seq 3 and two new turns were written: a well-formed chain of 5 records."""
    old = chain(5)
    heads = heads_for(old, [2, 5])
    new = chain(5, decisions={4: "deny", 5: "deny"})  # seq 1-3 equal to the old ones, 4-5 not
    assert new[2]["hash"] == old[2]["hash"] and new[4]["hash"] != old[4]["hash"]
    # ...and the head log, told the new head, wrote it after the old one.
    body = {**{k: v for k, v in heads_for(new, [2, 5])[1].items() if k != "sig"}, "n": 3, "prev": entry_hash(heads[1])}
    body["ts"] = "2026-12-02T00:02:00.000Z"
    sig = base64.urlsafe_b64encode(KEY.sign(canonical_json(body).encode())).rstrip(b"=").decode()
    heads.append({**body, "sig": sig})
    assert verify(traces(new, heads)) == []
    problems = check_heads(traces(new, heads), KEY.public_key()).problems
    assert errors(problems) == ["record seq 5 is not the record signed head 2 vouches for"]
    # A rollback that the chain has not grown past shows as a cut tail instead:
    problems = check_heads(traces(old[:3], heads[:2]), KEY.public_key()).problems
    assert errors(problems) == ["the chain ends at seq 3, but signed head 2 vouches for seq 5"]


def test_head_going_back_is_a_rollback() -> None:
    records = chain(5)
    heads = heads_for(records, [4, 2])  # the log was told seq 4, then seq 2
    problems = check_heads(traces(records, heads), KEY.public_key()).problems
    assert errors(problems) == ["the chain went back from seq 4 to seq 2"]


def test_removed_or_altered_head_entries() -> None:
    records = chain(6)
    heads = heads_for(records, [2, 4, 6])
    problems = check_heads(traces(records, [heads[0], heads[2]]), KEY.public_key()).problems
    assert errors(problems) == ["signed head 2 is missing from the head log"]
    forged = [heads[0], {**heads[1], "seq": 5, "hash": records[4]["hash"]}, heads[2]]
    problems = check_heads(traces(records, forged), KEY.public_key()).problems
    assert "signed head 2 (seq 5) does not verify: its contents or signature were altered" in errors(problems)


def test_head_of_another_session() -> None:
    records = chain(3)
    theirs = heads_for(chain(3, session="s2"), [3], session="s2")
    problems = check_heads(traces(records, theirs), KEY.public_key()).problems
    assert errors(problems) == ["signed head 1 is of session `s2` of tenant `acme`, not of this chain"]


def test_unsigned_tail_is_a_warning_and_no_heads_an_error() -> None:
    records = chain(5)
    problems = check_heads(traces(records, heads_for(records, [3])), KEY.public_key()).problems
    assert [(p.severity, p.message) for p in problems] == [
        ("warning", "records seq 4 to 5 are not covered by a signed head yet")
    ]
    assert errors(check_heads(traces(records, []), KEY.public_key()).problems) == [
        "no signed heads: nothing vouches for this chain beyond its own hashes"
    ]


def test_malformed_heads_never_crash() -> None:
    records = chain(2)
    junk: list[Any] = [None, 3, "x", {}, {"v": 1}, {**heads_for(records, [2])[0], "sig": "!!"}, {"n": True}]
    problems = check_heads(traces(records, junk), KEY.public_key()).problems
    assert problems and all(p.severity == "error" for p in problems)


@pytest.mark.parametrize("form", ["pem", "hex", "b64url"])
def test_public_key_forms(form: str) -> None:
    raw = raw_public(KEY.public_key())
    text = {
        "pem": public_pem(KEY),
        "hex": raw.hex(),
        "b64url": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
    }[form]
    assert raw_public(load_public_key(text)) == raw


def test_cli_verify_public_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = chain(4)
    good = tmp_path / "t.json"
    good.write_text(json.dumps(traces(records, heads_for(records, [4]))))
    key = tmp_path / "audit.pub.pem"
    key.write_text(public_pem(KEY))
    assert main(["trace", "verify", str(good), "--public-key", str(key)]) == 0
    assert f"signed heads: 1 verified with key {key_id(KEY.public_key())}, the last at seq 4" in capsys.readouterr().out
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps(traces(records[:2], heads_for(records, [4]))))
    assert main(["trace", "verify", str(cut)]) == 0  # without the key, the cut is invisible
    capsys.readouterr()
    assert main(["trace", "verify", str(cut), "--public-key", str(key), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["heads"] == {"verified": 1, "last_seq": 4, "key_id": key_id(KEY.public_key())}
    assert [p["seq"] for p in out["problems"]] == [4]
    wrong = tmp_path / "other.pem"
    wrong.write_text(public_pem(OTHER))
    assert main(["trace", "verify", str(good), "--public-key", str(wrong)]) == 1
    assert "no signed head verifies with the public key in" in capsys.readouterr().out
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    assert main(["trace", "verify", str(good), "--public-key", str(bad)]) == 2
    assert "holds no Ed25519 public key" in capsys.readouterr().err
    assert main(["trace", "verify", str(good), "--public-key", str(tmp_path / "missing.pem")]) == 2
