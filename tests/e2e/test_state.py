"""Checkpoints and PII, over HTTP against the running runtime, read back from what workerd persisted.

The session object's SQLite database and the KV store live under the runtime's `--persist-to` directory;
the tests open them with sqlite3 (read-only) and scan every persisted byte for the raw personal data.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from .conftest import Runtime, persisted_rows, sqlite_rows
from .stubs import Cue, ToolAnswer

LOW = "@cf/test/low-primary"
EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 0134"
CARD = "4111 1111 1111 1111"
RAW = [EMAIL, PHONE, "415 555 0134", CARD, CARD.replace(" ", "-"), CARD.replace(" ", "")]


def session_db(runtime: Runtime, tenant: str, session: str) -> Path:
    """The session object's SQLite file: the one whose decision records belong to (tenant, session)."""
    for db, rows in persisted_rows(runtime, "SELECT body FROM records ORDER BY seq LIMIT 1"):
        if rows and (json.loads(rows[0][0])["tenant"], json.loads(rows[0][0])["session"]) == (tenant, session):
            return db
    raise AssertionError(f"no persisted session object for {tenant}/{session} under {runtime.state}")


def kv_values(runtime: Runtime) -> list[bytes]:
    """Every KV value blob persisted by the runtime."""
    kv = runtime.state / "v3" / "kv"
    return [p.read_bytes() for p in kv.rglob("*") if p.is_file() and "blobs" in p.parts]


def persisted_bytes(runtime: Runtime) -> bytes:
    return b"".join(p.read_bytes() for p in runtime.state.rglob("*") if p.is_file())


def is_summarize(seen) -> bool:
    first = seen.body["messages"][0]
    return first["role"] == "system" and first["content"].startswith("Summarize this conversation")


def test_checkpoint_summarizes_stores_and_trims(playground: Runtime) -> None:
    sid = f"ckpt-{uuid.uuid4().hex[:8]}"
    playground.tools.answer("/v1/notes", ToolAnswer(body={"note_id": "p-1", "echo": f"mail {EMAIL}"}))
    playground.model.cue(
        LOW,
        Cue(tool_calls=[("write_note", {"note_id": "p-1", "text": f"reach me at {EMAIL} or {PHONE}"})]),
        Cue(text=f"Noted. I will write to {EMAIL}."),
        Cue(text=f"Your card {CARD} is on file."),
        Cue(text=f"Customer {EMAIL}, phone {PHONE}, card {CARD.replace(' ', '-')}, wants a refund."),
        Cue(text="third answer"),
    )
    first = playground.turn(sid, "chat", f"I am {EMAIL}, call {PHONE}")
    assert first.status_code == 200, first.text
    assert not any(d["action"].startswith("checkpoint:") for d in first.json()["decisions"])
    second = playground.turn(sid, "chat", f"charge card {CARD}")
    assert second.status_code == 200, second.text
    ckpt = [d for d in second.json()["decisions"] if d["action"] == "checkpoint:SUMMARIES"]
    assert [(d["decision"], d["rule"]) for d in ckpt] == [("allow", "checkpoint.every")]

    # The summarizer tier (low) got one summarize request, over the masked history.
    summarize = [s for s in playground.model.requests if is_summarize(s)]
    assert [s.body["model"] for s in summarize] == [LOW]
    history = summarize[0].body["messages"][-1]["content"]
    assert "[email]" in history and "[card]" in history
    assert not any(raw in history for raw in RAW)

    db = session_db(playground, "acme", sid)
    assert sqlite_rows(db, "SELECT COUNT(*) FROM messages") == [(0,)]  # trimmed
    assert sqlite_rows(db, "SELECT turn FROM turns ORDER BY turn") == [(1,), (2,)]
    meta = dict(sqlite_rows(db, "SELECT key, value FROM meta"))
    assert meta["checkpoint_turn"] == "2"
    assert meta["summary"] == "Customer [email], phone [phone], card [card], wants a refund."
    stored = [json.loads(v) for v in kv_values(playground) if sid.encode() in v]
    assert stored == [
        {
            "session": sid,
            "tenant": "acme",
            "turn": 2,
            "summary": meta["summary"],
            "spec_hash": playground.traces(sid)["records"][0]["spec_hash"],
        }
    ]

    # The next turn starts from the summary, not from the trimmed messages.
    third = playground.turn(sid, "chat", "and now?")
    assert third.status_code == 200, third.text
    prompt = playground.model.requests[-1].body["messages"]
    assert prompt[1] == {"role": "system", "content": f"Summary of the conversation so far: {meta['summary']}"}
    assert [m["role"] for m in prompt[2:]] == ["user"] and prompt[2]["content"] == "and now?"
    assert sqlite_rows(db, "SELECT turn, role FROM messages ORDER BY id") == [(3, "user"), (3, "assistant")]

    # Nothing persisted anywhere (messages, summaries, decision and trace records, KV) holds the raw data.
    everything = persisted_bytes(playground)
    assert sid.encode() in everything  # the scan does see this session's state
    for raw in RAW:
        assert raw.encode() not in everything, raw
    pulled = json.dumps(playground.traces(sid))
    assert "[email]" in pulled and not any(raw in pulled for raw in RAW)


def test_a_summarizer_outage_keeps_the_history_for_the_next_turn(playground: Runtime) -> None:
    sid = f"ckpt-down-{uuid.uuid4().hex[:8]}"
    playground.model.cue(
        LOW, Cue(text="one"), Cue(text="two"), Cue(status=500), Cue(text="three"), Cue(text="summary of three turns")
    )
    playground.model.cue("@cf/test/low-fallback", Cue(status=500))
    playground.model.cue("@cf/test/low-last", Cue(status=503))
    assert playground.turn(sid, "chat", "first").status_code == 200
    second = playground.turn(sid, "chat", "second")
    assert second.status_code == 200, second.text  # the answer is not lost to the summarizer's outage
    failed = [d for d in second.json()["decisions"] if d["action"] == "checkpoint:SUMMARIES"]
    assert [(d["decision"], d["rule"]) for d in failed] == [("failed", "model.unavailable")]
    db = session_db(playground, "acme", sid)
    assert sqlite_rows(db, "SELECT COUNT(*) FROM messages") == [(4,)]
    third = playground.turn(sid, "chat", "third")
    assert third.status_code == 200, third.text
    assert [d["decision"] for d in third.json()["decisions"] if d["action"] == "checkpoint:SUMMARIES"] == ["allow"]
    assert sqlite_rows(db, "SELECT COUNT(*) FROM messages") == [(0,)]
    meta = dict(sqlite_rows(db, "SELECT key, value FROM meta"))
    assert (meta["summary"], meta["checkpoint_turn"]) == ("summary of three turns", "3")
