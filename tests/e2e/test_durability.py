"""Turn integrity under concurrency, and session state across a runtime restart, over HTTP.

Concurrency: one session's Durable Object runs one turn at a time; a turn that arrives while another is
running answers 409 `turn_in_progress` at once (it is not queued). Whatever the interleaving, the turns
that ran are numbered 1..k without gaps or repeats, and the session's records say exactly k.

Durability: the turn counter, the conversation, checkpoint summaries and the decision chain live in the
session object's SQLite storage (`--persist-to`); stopping and starting the runtime keeps all of them, and
a turn cut off by the stop leaves neither a stuck lock nor a broken chain.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from .conftest import Runtime
from .stubs import Cue

LOW_PRIMARY = "@cf/test/low-primary"
GENESIS = "0" * 64


def sid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def record_hash(record: dict) -> str:
    rest = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(
        json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


def verify_chain(records: list[dict]) -> None:
    """The whole chain from genesis: seq 1, 2, ...; each prev_hash the previous hash; each hash its contents."""
    prev = GENESIS
    for i, r in enumerate(records, start=1):
        assert r["seq"] == i, (i, r)
        assert r["prev_hash"] == prev, (i, r)
        assert r["hash"] == record_hash(r), (i, r)
        prev = r["hash"]


def user_messages(request_body: dict) -> list[str]:
    return [m["content"] for m in request_body["messages"] if m["role"] == "user"]


# ── concurrency ──────────────────────────────────────────────────────────────


def test_concurrent_turns_on_one_session_are_serialized_without_loss(playground: Runtime) -> None:
    n = 20
    s = sid("conc")
    playground.model.cue(LOW_PRIMARY, Cue(text="slow answer", stall=0.3))
    barrier = threading.Barrier(n, timeout=20)

    def one(i: int) -> tuple[int, str, dict]:
        with httpx.Client(base_url=playground.url, timeout=30) as c:
            barrier.wait()
            # Pairs of simultaneous requests, the pairs 150 ms apart: collisions within a turn and several
            # turns in a row, so that the numbering is really tested.
            time.sleep((i % 10) * 0.15)
            r = c.post(
                f"/v1/sessions/{s}/turns",
                json={"workflow": "watch", "input": f"message {i}"},
                headers=playground.headers(),
            )
            return r.status_code, f"message {i}", r.json()

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, range(n), timeout=60))

    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 409}, statuses
    assert 409 in statuses, "20 turns overlapping a 300 ms model call, yet none was refused"
    for status, _, body in results:
        if status == 409:
            assert body["error"]["code"] == "turn_in_progress", body
    done = sorted((body["turn"], text) for status, text, body in results if status == 200)
    k = len(done)
    assert k >= 2, "requests spread over 1.35 s, 300 ms turns, yet only one ran"
    assert [t for t, _ in done] == list(range(1, k + 1)), done

    # The model saw exactly the k turns that ran, and the session's records agree.
    assert len(playground.model.requests) == k
    traces = playground.traces(s)
    assert [t["turn"] for t in traces["turns"]] == list(range(1, k + 1))
    routes = [r for r in traces["records"] if r["action"].startswith("model.route:")]
    assert len(routes) == k
    assert sorted(r["intent"] for r in routes) == sorted(text for _, text in done)
    verify_chain(traces["records"])

    # The session goes on at k + 1, and its history holds each turn that ran, once, in order.
    playground.model.reset()
    nxt = playground.turn(s, "watch", "after the rush")
    assert nxt.status_code == 200, nxt.text
    assert nxt.json()["turn"] == k + 1
    history = user_messages(playground.model.requests[-1].body)
    assert history == [text for _, text in done] + ["after the rush"]
    assert [t["turn"] for t in playground.traces(s)["turns"]] == list(range(1, k + 2))


# ── durability ───────────────────────────────────────────────────────────────


def test_sessions_and_the_decision_chain_survive_a_restart(restartable: Runtime) -> None:
    rt = restartable
    talk = sid("keep")  # `watch`: no checkpoints, the whole conversation is kept
    summed = sid("sum")  # `chat`: a checkpoint every 2 turns replaces the history by a summary
    cut = sid("cut")  # a turn cut off by the stop

    for i in range(3):
        r = rt.turn(talk, "watch", f"talk {i}")
        assert r.status_code == 200, r.text
        assert r.json()["turn"] == i + 1
    rt.model.cue(LOW_PRIMARY, Cue(text="answer one"), Cue(text="answer two"), Cue(text="SUMMARY-7f3a"))
    for i in range(2):
        r = rt.turn(summed, "chat", f"sum {i}")
        assert r.status_code == 200, r.text
    assert any(d["rule"] == "checkpoint.every" for d in r.json()["decisions"]), r.json()

    # A turn whose model call is still running when the runtime stops.
    rt.model.reset()
    rt.model.cue(LOW_PRIMARY, Cue(text="never delivered", stall=30.0))
    outcome: list[object] = []

    def cut_off() -> None:
        try:
            outcome.append(rt.turn(cut, "watch", "interrupted").status_code)
        except httpx.HTTPError as e:
            outcome.append(e)

    worker = threading.Thread(target=cut_off, daemon=True)
    worker.start()
    deadline = time.monotonic() + 15
    while not rt.model.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rt.model.requests, "the interrupted turn never reached the model"

    before = {s: rt.traces(s) for s in (talk, summed)}
    # The interrupted turn committed nothing, so its session has no records yet: 404 until its first turn.
    with rt.client() as c:
        r = c.get("/v1/traces", params={"session": cut}, headers=rt.admin_headers())
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_session", r.text
    before[cut] = {"records": [], "turns": []}
    assert [t["turn"] for t in before[talk]["turns"]] == [1, 2, 3]
    assert [t["turn"] for t in before[summed]["turns"]] == [1, 2]
    # The interrupted turn has no trace; its routing record waits, unwritten, for the turn's single commit
    # (a turn writes its records before any tool side effect, and otherwise all at once at its end).
    assert before[cut]["turns"] == [], before[cut]

    rt.stop()
    worker.join(timeout=20)
    assert outcome and outcome[0] != 200, outcome
    rt.model.reset()
    rt.start()

    # Nothing lost, nothing changed.
    for s, old in before.items():
        if s == cut:
            continue  # still nothing to compare: checked below, after its first turn
        now = rt.traces(s)
        assert now["records"] == old["records"], s
        assert now["turns"] == old["turns"], s
        verify_chain(now["records"])

    # The counter continues, the history is intact, and the chain grows from its last hash.
    r = rt.turn(talk, "watch", "talk 3")
    assert r.status_code == 200, r.text
    assert r.json()["turn"] == 4
    assert user_messages(rt.model.requests[-1].body) == ["talk 0", "talk 1", "talk 2", "talk 3"]
    assistant = [m["content"] for m in rt.model.requests[-1].body["messages"] if m["role"] == "assistant"]
    assert assistant == [f"reply from {LOW_PRIMARY}"] * 3

    r = rt.turn(summed, "chat", "sum 2")
    assert r.status_code == 200, r.text
    assert r.json()["turn"] == 3
    sent = rt.model.requests[-1].body["messages"]
    assert any("SUMMARY-7f3a" in str(m.get("content")) for m in sent), sent
    assert user_messages(rt.model.requests[-1].body)[-1] == "sum 2"
    assert not any(m.get("content") == "sum 0" for m in sent)  # trimmed by the checkpoint

    # The cut-off turn left no lock behind and was not counted.
    r = rt.turn(cut, "watch", "after the stop")
    assert r.status_code == 200, r.text
    assert r.json()["turn"] == 1

    for s, old in before.items():
        records = rt.traces(s)["records"]
        n = len(old["records"])
        assert records[:n] == old["records"], s
        assert len(records) > n, s
        if n:  # the chain grows from its last hash; the cut-off session's chain starts fresh at seq 1
            assert records[n]["prev_hash"] == old["records"][-1]["hash"], s
            assert records[n]["seq"] == old["records"][-1]["seq"] + 1, s
        else:
            assert records[0]["seq"] == 1 and records[0]["prev_hash"] == "0" * 64, s
        verify_chain(records)


def test_a_stop_during_the_checkpoint_leaves_every_counted_turn_traced(restartable: Runtime) -> None:
    """A turn is counted (turn counter, history) and traced (its `turns` record) in one commit.

    A stop while the SLO monitor or the checkpoint's model call is awaited must not leave a counted turn
    without a trace (the next turn would skip a number in /v1/traces): session.ts writes the trace record
    with the counter and completes it after the checkpoint.
    """
    rt = restartable
    s = sid("ckpt")
    rt.model.cue(LOW_PRIMARY, Cue(text="answer one"), Cue(text="answer two"), Cue(text="no summary", stall=30.0))
    assert rt.turn(s, "chat", "first").status_code == 200
    outcome: list[object] = []

    def second() -> None:  # its checkpoint (every 2 turns) stalls on the summarizer
        try:
            outcome.append(rt.turn(s, "chat", "second").status_code)
        except httpx.HTTPError as e:
            outcome.append(e)

    worker = threading.Thread(target=second, daemon=True)
    worker.start()
    deadline = time.monotonic() + 15
    while len(rt.model.requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(rt.model.requests) == 3, "the checkpoint's summarizer call never reached the model"
    rt.stop()
    worker.join(timeout=20)
    rt.model.reset()
    rt.start()

    verify_chain(rt.traces(s)["records"])
    r = rt.turn(s, "chat", "third")
    assert r.status_code == 200, r.text
    n = r.json()["turn"]
    assert [t["turn"] for t in rt.traces(s)["turns"]] == list(range(1, n + 1))
