"""Issue 8, property 7: tamper evidence an auditor can rely on, against the running runtime in workerd.

Someone with write access to the persisted storage edits a session's SQLite while the runtime is stopped:
rewrites a denied decision to `allow` and re-hashes every later record (and the turn traces), cuts the chain's
tail, or puts back an older copy of the session object's database. Each leaves a well-formed hash chain, so
`agentspec trace verify` alone passes (asserted: that is the hole); with the signed heads that the runtime keeps
in the tenant's head log (another object) and `--public-key`, each is found and the record named. The spec is
tests/e2e/specs/audited.agent (`audit sign with secret AUDIT_SIGNING_KEY`); the key pair is the local one
(`agentspec.devserver.local_secrets` / `local_public_key`).

On a runtime without signed heads these tests fail: `/v1/traces` has no `heads`, so `verify --public-key` reports
"no signed heads" for the untouched session too, and none of the rewrite/cut/rollback messages appear.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentspec.cli import main
from agentspec.devserver import local_public_key
from agentspec.signing import local_key, public_pem
from agentspec.trace.verify import record_hash

from .conftest import ADMIN, SPECS, Runtime, _runtime, sqlite_rows
from .stubs import Cue, ModelStub, ToolAnswer, ToolStub

LOW = "@cf/test/low-primary"


@dataclass
class Tampered:
    runtime: Runtime
    keyfile: Path
    untouched: str
    rewritten: str
    rewritten_seq: int
    cut: str
    cut_after: int
    rolled_back: str
    rolled_back_to: int


def converse(rt: Runtime, sid: str, turns: int) -> None:
    """`turns` turns; the second asks for a refund the policy denies (a `deny` record worth rewriting)."""
    rt.tools.answer("/v1/orders/A1", ToolAnswer(body={"status": "shipped"}))
    for i in range(turns):
        if i == 1:
            rt.model.cue(LOW, Cue(tool_calls=[("issue_refund", {"order_id": "A1"})]), Cue(text="I cannot refund"))
        else:
            rt.model.cue(LOW, Cue(tool_calls=[("lookup_order", {"order_id": "A1"})]), Cue(text="it has shipped"))
        r = rt.turn(sid, "desk", f"message {i}")
        assert r.status_code == 200, r.text


def anchored(rt: Runtime, sid: str, timeout: float = 15.0) -> dict:
    """The session's traces once its newest record is covered by a signed head (heads are signed just after
    each commit, off the turn's path)."""
    deadline = time.monotonic() + timeout
    traces: dict = {}
    while time.monotonic() < deadline:
        traces = rt.traces(sid)
        heads = traces.get("heads") or []
        if traces["records"] and heads and heads[-1]["seq"] == traces["records"][-1]["seq"]:
            return traces
        time.sleep(0.1)
    raise AssertionError(f"session {sid}: no signed head for its last record after {timeout}s: {traces}")


def session_db(rt: Runtime, sid: str) -> Path:
    """The SQLite file of the session's object: the one whose records are this session's."""
    for db in sorted(rt.state.rglob("*.sqlite")):
        try:
            rows = sqlite_rows(db, "SELECT body FROM records ORDER BY seq LIMIT 1")
        except sqlite3.Error:
            continue
        if rows and json.loads(rows[0][0])["session"] == sid:
            return db
    raise AssertionError(f"no persisted object holds session {sid}")


def db_files(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def rewrite(db: Path) -> int:
    """Turn the first `deny` into `allow`, re-hash and relink every later record, and make the turn traces say the
    same: a chain and traces the hash-chain verifier finds nothing wrong with. Answers the rewritten seq."""
    con = sqlite3.connect(db)
    try:
        records = [json.loads(b) for (b,) in con.execute("SELECT body FROM records ORDER BY seq")]
        target = next(r["seq"] for r in records if r["decision"] == "deny")
        prev = None
        for r in records:
            if r["seq"] == target:
                r["decision"] = "allow"
            if r["seq"] >= target:
                r["prev_hash"] = prev
                r["hash"] = record_hash(r)
                con.execute("UPDATE records SET body = ? WHERE seq = ?", (json.dumps(r), r["seq"]))
            prev = r["hash"]
        for turn, body in con.execute("SELECT turn, body FROM turns").fetchall():
            trace = json.loads(body)
            for d in trace.get("decisions", []):
                if d["seq"] == target:
                    d["decision"] = "allow"
            con.execute("UPDATE turns SET body = ? WHERE turn = ?", (json.dumps(trace), turn))
        con.commit()
        return target
    finally:
        con.close()


def cut_last_turn(db: Path) -> int:
    """Remove the last turn: its records and its trace. Answers the seq the chain now ends at."""
    con = sqlite3.connect(db)
    try:
        (turn, body) = con.execute("SELECT turn, body FROM turns ORDER BY turn DESC LIMIT 1").fetchone()
        first = min(d["seq"] for d in json.loads(body)["decisions"])
        con.execute("DELETE FROM records WHERE seq >= ?", (first,))
        con.execute("DELETE FROM turns WHERE turn = ?", (turn,))
        con.commit()
        return first - 1
    finally:
        con.close()


@pytest.fixture(scope="module")
def audited(tmp_path_factory, model_stub: ModelStub, tool_stub: ToolStub) -> Iterator[Runtime]:
    """tests/e2e/specs/audited.agent, running; its own runtime, since these tests stop it and edit its storage."""
    yield from _runtime(SPECS / "audited.agent", tmp_path_factory, model_stub, tool_stub)


@pytest.fixture(scope="module")
def tampered(audited: Runtime, tmp_path_factory) -> Tampered:
    rt = audited
    work = tmp_path_factory.mktemp("tamper")
    keyfile = work / "audit.pub.pem"
    keyfile.write_text(local_public_key(rt.spec))
    ids = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in ("untouched", "rewritten", "cut", "rolled")}
    for name in ("untouched", "rewritten", "cut"):
        converse(rt, ids[name], 3)
    converse(rt, ids["rolled"], 2)
    for s in ids.values():
        anchored(rt, s)
    rolled_to = len(rt.traces(ids["rolled"])["records"])

    # An older copy of the rolled-back session's object, taken while the runtime is stopped.
    rt.stop()
    old = session_db(rt, ids["rolled"])
    copy = work / "rolled-copy"
    copy.mkdir()
    for f in db_files(old):
        shutil.copy2(f, copy / f.name)
    rt.start()
    converse(rt, ids["rolled"], 2)
    anchored(rt, ids["rolled"])

    # The tampering, with the runtime stopped, as someone with write access to its storage would.
    rt.stop()
    seq = rewrite(session_db(rt, ids["rewritten"]))
    cut_after = cut_last_turn(session_db(rt, ids["cut"]))
    for f in db_files(old):
        f.unlink()
    for f in copy.iterdir():
        shutil.copy2(f, old.parent / f.name)
    rt.start()
    return Tampered(
        rt, keyfile, ids["untouched"], ids["rewritten"], seq, ids["cut"], cut_after, ids["rolled"], rolled_to
    )


def pull(rt: Runtime, sid: str, out: Path) -> dict:
    args = ["trace", "pull", "--url", rt.url, "--session", sid, "--tenant", "acme", "--admin-token", ADMIN]
    assert main([*args, "-o", str(out)]) == 0
    return json.loads(out.read_text())


def verify(path: Path, capsys: pytest.CaptureFixture[str], key: Path | None = None) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["trace", "verify", str(path), *(["--public-key", str(key)] if key else [])])
    return code, capsys.readouterr().out


def test_untouched_chain_verifies_and_the_key_is_served(
    tampered: Tampered, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = tampered.runtime
    traces = pull(rt, tampered.untouched, tmp_path / "t.json")
    assert traces["heads"] and traces["audit"]["key_id"] == traces["heads"][-1]["key_id"]
    code, out = verify(tmp_path / "t.json", capsys, tampered.keyfile)
    assert code == 0, out
    records = len(traces["records"])
    assert f"chain intact: {records} records" in out
    assert f"signed heads: {len(traces['heads'])} verified with key" in out and f"the last at seq {records}" in out
    # The key a client fetches is the one the heads verify with, in both forms.
    with rt.client() as c:
        audit = c.get("/v1/policy", headers=rt.headers()).json()["audit"]
        heads = c.get("/v1/heads", params={"session": tampered.untouched}, headers=rt.admin_headers())
    assert audit["spki_pem"] == local_public_key(rt.spec)
    assert audit["signing_secret"] == "AUDIT_SIGNING_KEY" and "MC4C" not in json.dumps(audit)  # no private part
    assert heads.status_code == 200 and heads.json()["heads"] == traces["heads"]
    # The head log is the tenant's: another tenant's admin view of the same session id has no heads.
    with rt.client() as c:
        other = c.get("/v1/heads", params={"session": tampered.untouched}, headers=rt.admin_headers("globex"))
    assert other.json()["heads"] == []


def test_wrong_public_key_fails(tampered: Tampered, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pull(tampered.runtime, tampered.untouched, tmp_path / "t.json")
    wrong = tmp_path / "wrong.pem"
    wrong.write_text(public_pem(local_key("not-this-agent")))
    code, out = verify(tmp_path / "t.json", capsys, wrong)
    assert code == 1, out
    assert "error: no signed head verifies with the public key in" in out


def test_rewrite_with_every_later_record_rehashed_fails(
    tampered: Tampered, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces = pull(tampered.runtime, tampered.rewritten, tmp_path / "t.json")
    rewritten = next(r for r in traces["records"] if r["seq"] == tampered.rewritten_seq)
    assert rewritten["decision"] == "allow"  # the edit is what the runtime now serves
    code, out = verify(tmp_path / "t.json", capsys)
    assert (code, "warning" in out) == (0, False), out  # the hash chain alone sees nothing
    code, out = verify(tmp_path / "t.json", capsys, tampered.keyfile)
    assert code == 1, out
    assert "is not the record signed head" in out
    # Located between the last head that still matches and the first that does not, the rewritten seq inside.
    span = re.search(r"a record in seq (\d+)(?: to (\d+))? was rewritten", out)
    assert span is not None, out
    low, high = int(span[1]), int(span[2] or span[1])
    assert low <= tampered.rewritten_seq <= high, out


def test_cut_tail_fails(tampered: Tampered, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    traces = pull(tampered.runtime, tampered.cut, tmp_path / "t.json")
    assert traces["records"][-1]["seq"] == tampered.cut_after
    code, out = verify(tmp_path / "t.json", capsys)
    assert code == 0, out
    code, out = verify(tmp_path / "t.json", capsys, tampered.keyfile)
    assert code == 1, out
    assert f"error: the chain ends at seq {tampered.cut_after}, but signed head" in out


def test_rollback_to_an_older_copy_fails(
    tampered: Tampered, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = tampered.runtime
    traces = pull(rt, tampered.rolled_back, tmp_path / "t.json")
    assert traces["records"][-1]["seq"] == tampered.rolled_back_to
    code, out = verify(tmp_path / "t.json", capsys)
    assert code == 0, out
    code, out = verify(tmp_path / "t.json", capsys, tampered.keyfile)
    assert code == 1, out
    assert f"error: the chain ends at seq {tampered.rolled_back_to}, but signed head" in out
    # The rolled-back object carries on: its chain grows again past where it was, a different chain.
    converse(rt, tampered.rolled_back, 3)
    traces = anchored(rt, tampered.rolled_back)
    (tmp_path / "t2.json").write_text(json.dumps(traces))
    code, out = verify(tmp_path / "t2.json", capsys)
    assert code == 0, out
    code, out = verify(tmp_path / "t2.json", capsys, tampered.keyfile)
    assert code == 1, out
    assert "error: the chain went back from seq" in out
    assert "is not the record signed head" in out


def test_a_task_chain_is_signed_too(tampered: Tampered, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rt = tampered.runtime
    rt.tools.answer("/v1/orders/T1", ToolAnswer(body={"status": "shipped"}))
    with rt.client() as c:
        r = c.post("/v1/tasks", json={"workflow": "check", "params": {"order_id": "T1"}}, headers=rt.headers())
    assert r.status_code == 202, r.text
    task = r.json()["task_id"]
    assert rt.wait_task(task)["status"] == "complete"
    args = ["trace", "pull", "--url", rt.url, "--task", task, "--tenant", "acme", "--admin-token", ADMIN]
    deadline = time.monotonic() + 15
    while True:
        assert main([*args, "-o", str(tmp_path / "task.json")]) == 0
        traces = json.loads((tmp_path / "task.json").read_text())
        if traces["heads"] and traces["heads"][-1]["seq"] == traces["records"][-1]["seq"]:
            break
        assert time.monotonic() < deadline, traces
        time.sleep(0.2)
    assert {h["chain"] for h in traces["heads"]} == {"task"} and traces["heads"][-1]["id"] == task
    code, out = verify(tmp_path / "task.json", capsys, tampered.keyfile)
    assert code == 0, out
    # A session's heads passed off as the task's are refused.
    session = rt.traces(tampered.untouched)
    (tmp_path / "swapped.json").write_text(json.dumps({**traces, "heads": session["heads"]}))
    code, out = verify(tmp_path / "swapped.json", capsys, tampered.keyfile)
    assert code == 1 and "not of this chain" in out, out
