"""The fleet export end to end: specs/support_desk.agent running in workerd with its Queue and R2 bucket, mixed
traffic (two workflows, two tenants, denials, model fallbacks, tool failures and retries, tasks that retry,
complete and compensate), `agentspec trace pull --all`, then `agentspec report`: its figures must equal figures
computed here, independently, from the per-session `/v1/traces` answers and `/v1/tasks`.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from agentspec.cli import main
from agentspec.targets.cloudflare import export_resource_name
from agentspec.trace.fleet import export_files, read_events

from .conftest import ADMIN, ROOT, Runtime
from .stubs import Cue, ModelStub, ToolAnswer, ToolStub

LOW = "@cf/zai-org/glm-4.7-flash"
LOW_FALLBACK = "@cf/google/gemma-4-26b-a4b-it"
ORDER = {"order_id": "o-1", "status": "paid", "total_cents": 1200}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, model_stub: ModelStub, tool_stub: ToolStub) -> Iterator[Runtime]:
    """support_desk in a runtime of its own: the export holds this module's traffic only."""
    runtime = Runtime(ROOT / "specs" / "support_desk.agent", tmp_path_factory.mktemp("fleet"), model_stub, tool_stub)
    runtime.start(120)
    try:
        yield runtime
    finally:
        runtime.stop()


def _wrangler_without(project: Path, binding: str) -> None:
    """Drop one export binding from the local (top-level) configuration of a compiled project's wrangler.jsonc."""
    path = project / "wrangler.jsonc"
    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("//"))
    config = json.loads(text)
    config["r2_buckets"] = [b for b in config["r2_buckets"] if b["binding"] != binding]
    if binding == "EXPORT_QUEUE":
        config.pop("queues")
    path.write_text(json.dumps(config, indent=2))


def turn(rt: Runtime, session: str, workflow: str, tenant: str, *cues: Cue) -> dict:
    rt.model.cue(LOW, *cues)  # none: the stub's default answer, with its `cached_tokens`
    r = rt.turn(session, workflow, f"question in {session}", tenant=tenant)
    assert r.status_code == 200, r.text
    return r.json()


def drive(rt: Runtime) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Mixed traffic; answers the (tenant, session) pairs and the (tenant, task id) pairs it made."""
    model, tools = rt.model, rt.tools
    tools.answer("/v1/orders/", ToolAnswer(body=ORDER, times=10_000))
    sessions: list[tuple[str, str]] = []
    ask = Cue(tool_calls=[("lookup_order", {"order_id": "o-1"})])
    for i, tenant in enumerate(["acme", "globex", "acme"]):
        sid = f"orders-{i}"
        sessions.append((tenant, sid))
        model.cached_tokens = 40 * i  # some cache hits, differing by session
        turn(rt, sid, "orders", tenant)
        turn(rt, sid, "orders", tenant, ask, Cue(text="your order is paid"))
        # A denial: `issue_refund` is not in the orders workflow's allowlist.
        turn(
            rt,
            sid,
            "orders",
            tenant,
            Cue(tool_calls=[("issue_refund", {"order_id": "o-1", "amount_cents": 5})]),
            Cue(text="I cannot refund here"),
        )
    model.cached_tokens = 0
    # A model fallback: the primary answers 500, the fallback serves the turn.
    rt.model.cue(LOW, Cue(status=500))
    r = rt.turn("orders-0", "orders", "again", tenant="acme")
    assert r.status_code == 200 and r.json()["model"] == LOW_FALLBACK, r.text
    # A tool failure retried (replay-safe: read-only) and recovered, then one that stays failed.
    tools.answer("/v1/orders/", ToolAnswer(status=503), ToolAnswer(body=ORDER, times=10_000))
    turn(rt, "orders-1", "orders", "globex", ask, Cue(text="paid"))
    tools.answer("/v1/orders/", ToolAnswer(status=503, times=10_000))
    turn(rt, "orders-2", "orders", "acme", ask, Cue(text="the order service is down"))
    # A different affinity key mid-session: a turn that is not local.
    with rt.client() as c:
        r = c.post(
            "/v1/sessions/orders-2/turns",
            json={"workflow": "orders", "input": "hi"},
            headers={**rt.headers("acme"), "x-session-affinity": "elsewhere"},
        )
        assert r.status_code == 200, r.text
    tools.answer("/v1/orders/", ToolAnswer(body=ORDER, times=10_000))
    sessions.append(("globex", "refunds-chat"))
    turn(rt, "refunds-chat", "refunds", "globex")
    turn(rt, "refunds-chat", "refunds", "globex", ask, Cue(text="found it"))

    # Tasks: one straight, one whose first step retries, one whose last step fails and is compensated.
    tools.answer("/v1/refunds", ToolAnswer(body={"refund_id": "rf-1", "status": "issued"}, times=10_000))
    tools.answer("/v1/refunds/rf-1/cancel", ToolAnswer(body={"refund_id": "rf-1", "status": "cancelled"}, times=99))
    tools.answer("/v1/messages", ToolAnswer(body={"message_id": "m-1"}, times=10_000))
    tasks: list[tuple[str, str]] = []

    def task(tenant: str) -> str:
        with rt.client() as c:
            r = c.post(
                "/v1/tasks",
                json={"workflow": "refunds", "params": {"order_id": "o-1", "email": "a@b.example"}},
                headers=rt.headers(tenant),
            )
        assert r.status_code == 202, r.text
        tasks.append((tenant, r.json()["task_id"]))
        return r.json()["task_id"]

    assert rt.wait_task(task("acme"))["status"] == "complete"
    tools.answer("/v1/orders/", ToolAnswer(status=503), ToolAnswer(body=ORDER, times=10_000))
    assert rt.wait_task(task("globex"), tenant="globex")["status"] == "complete"
    tools.answer("/v1/messages", ToolAnswer(status=400, body={"error": "bad address"}, times=10_000))
    failed = task("acme")
    assert rt.wait_task(failed, timeout=90)["status"] == "errored"
    deadline = time.monotonic() + 30
    while not any(s["status"] == "compensated" for s in rt.wait_task(failed)["steps"]):
        assert time.monotonic() < deadline, "the refund was not compensated"
        time.sleep(0.25)
    return sessions, tasks


def task_view(rt: Runtime, tenant: str, task_id: str) -> dict:
    return rt.wait_task(task_id, tenant=tenant)


def task_traces(rt: Runtime, tenant: str, task_id: str) -> dict:
    with rt.client() as c:
        r = c.get("/v1/traces", params={"task": task_id}, headers=rt.admin_headers(tenant))
    assert r.status_code == 200, r.text
    return r.json()


def pull_until_complete(rt: Runtime, out: Path, sessions, tasks) -> None:
    """Pull until the export holds every turn and record the runtime answers (the queue batches each second)."""
    turns = sum(len(rt.traces(s, tenant=t)["turns"]) for t, s in sessions)
    records = sum(len(rt.traces(s, tenant=t)["records"]) for t, s in sessions)
    records += sum(len(task_traces(rt, t, k)["records"]) for t, k in tasks)
    deadline = time.monotonic() + 60
    while True:
        assert main(["trace", "pull", "--all", "--url", rt.url, "--admin-token", ADMIN, "-o", str(out)]) == 0
        have_turns = len({e["id"] for p in export_files(out, "traces") for e in read_events(p)})
        have_records = len({e["id"] for p in export_files(out, "decisions") for e in read_events(p)})
        if have_turns >= turns and have_records >= records:
            assert (have_turns, have_records) == (turns, records)
            return
        assert time.monotonic() < deadline, f"export has {have_turns}/{turns} turns, {have_records}/{records} records"
        time.sleep(1)


def figures_of(html: str) -> dict:
    return json.loads(html.split('id="agentspec-figures">', 1)[1].split("</script>", 1)[0])


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered))) - 1]


def test_the_review_equals_the_per_session_traces(fleet: Runtime, tmp_path: Path, capsys) -> None:
    sessions, tasks = drive(fleet)
    out = tmp_path / "export"
    pull_until_complete(fleet, out, sessions, tasks)
    review = tmp_path / "review.html"
    spec = ROOT / "specs" / "support_desk.agent"
    assert main(["report", str(out), "--spec", str(spec), "-o", str(review)]) == 0
    data = figures_of(review.read_text())
    tables = data["tables"]

    # Independent figures, from /v1/traces and /v1/tasks.
    per_session = {(t, s): fleet.traces(s, tenant=t) for t, s in sessions}
    turns = [dict(tr, _session=s) for (t, s), body in per_session.items() for tr in body["turns"]]
    records = [r for body in per_session.values() for r in body["records"]]
    records += [r for t, k in tasks for r in task_traces(fleet, t, k)["records"]]
    views = [task_view(fleet, t, k) for t, k in tasks]
    by_wf: dict[str, list[dict]] = defaultdict(list)
    for tr in turns:
        by_wf[tr["workflow"]].append(tr)

    latency = {r["workflow"]: r for r in tables["latency"] if r["region"] == "(all)"}
    for wf, trs in by_wf.items():
        assert latency[wf]["turns"] == len(trs)
        assert latency[wf]["p95"] == nearest_rank([t["latency_ms"] for t in trs], 0.95)
        assert latency[wf]["p50"] == nearest_rank([t["latency_ms"] for t in trs], 0.5)

    cache = {(r["workflow"], r["prompt_family"]): r for r in tables["cache"]}
    for wf, trs in by_wf.items():
        inp = sum(t["gen_ai.usage.input_tokens"] for t in trs)
        hit = sum(min(t["gen_ai.usage.cache_read.input_tokens"], t["gen_ai.usage.input_tokens"]) for t in trs)
        assert cache[(wf, f"{wf}.turn")]["hit_pct"] == pytest.approx(100 * hit / inp)
    assert cache[("orders", "orders.turn")]["cached_tokens"] > 0

    tool_calls = [r for r in records if r["action"].startswith("tool.call:")]
    denied = {r["workflow"]: r for r in tables["denied"]}
    for wf in {r["workflow"] for r in tool_calls}:
        mine = [r for r in tool_calls if r["workflow"] == wf]
        assert denied[wf]["tool_calls"] == len(mine)
        assert denied[wf]["denied"] == sum(r["decision"] in ("deny", "shadow_deny") for r in mine)
    assert denied["orders"]["denied"] == 3

    # Locality by tenant: follow-up turns served with the previous turn's affinity key and colo.
    by_tenant: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (tenant, _s), body in per_session.items():
        ordered = sorted(body["turns"], key=lambda t: t["turn"])
        for a, b in pairwise(ordered):
            by_tenant[tenant][0] += 1
            by_tenant[tenant][1] += a["affinity"] == b["affinity"] and a["region"] == b["region"]
    locality = {r["value"]: r for r in tables["locality"] if r["dimension"] == "tenant"}
    for tenant, (followups, local) in by_tenant.items():
        assert (locality[tenant]["followups"], locality[tenant]["local"]) == (followups, local)
    assert locality["acme"]["local"] < locality["acme"]["followups"]  # the "elsewhere" affinity turn

    # Retries: turn tool calls sent more than once, and task steps that took more than one attempt.
    retried = [c for t in turns for c in t["tools"] if c["attempts"] > 1]
    steps = [s for v in views for s in v["steps"] if (s.get("attempts") or 1) > 1]
    retries = {r["workflow"]: r for r in tables["retries"]}
    assert retries["orders"]["turn_calls"] == len([c for t in by_wf["orders"] for c in t["tools"] if c["attempts"] > 1])
    assert retries["orders"]["succeeded"] == sum(
        c["outcome"] == "ok" for t in by_wf["orders"] for c in t["tools"] if c["attempts"] > 1
    )
    assert retries["refunds"]["task_steps"] == len(steps) >= 1
    assert sum(r["retried"] for r in tables["retries"]) == len(retried) + len(steps)

    outcomes = {r["workflow"]: r for r in tables["outcomes"]}
    assert outcomes["orders"]["ok_turns"] == len(by_wf["orders"])
    assert outcomes["refunds"]["ok_tasks"] == sum(v["status"] == "complete" for v in views) == 2
    assert outcomes["refunds"]["failed_tasks"] == sum(v["status"] == "errored" for v in views) == 1
    assert outcomes["refunds"]["compensated"] == sum(s["status"] == "compensated" for v in views for s in v["steps"])
    orders_cost = sum(
        (t["cost_usd"] or 0) + ((t.get("checkpoint") or {}).get("cost_usd") or 0) for t in by_wf["orders"]
    )
    assert outcomes["orders"]["cost_usd"] == pytest.approx(orders_cost, rel=1e-9)
    assert outcomes["orders"]["cost_per_success_usd"] == pytest.approx(orders_cost / len(by_wf["orders"]), rel=1e-9)

    alerts = [r for r in records if r["action"].startswith("alert:")]
    assert sum(r["fired"] for r in tables["alerts"]) == len(alerts)

    # Every chain verified, and the review says so at the top.
    assert data["chain_counts"] == {"checked": len(sessions) + len(tasks), "broken": 0, "unverified": 0}
    assert data["chains"] == []

    # A batch delivered twice changes no figure.
    for kind in ("traces", "decisions", "tasks"):
        part = export_files(out, kind)[0]
        shutil.copyfile(part, part.with_name("part-delivered-twice.ndjson"))
    again = tmp_path / "again.html"
    assert main(["report", str(out), "--spec", str(spec), "-o", str(again)]) == 0
    assert figures_of(again.read_text())["tables"] == tables
    # A second pull fetches nothing new.
    capsys.readouterr()
    assert main(["trace", "pull", "--all", "--url", fleet.url, "--admin-token", ADMIN, "-o", str(out)]) == 0
    assert re.search(r"pulled 0 new objects", capsys.readouterr().out)


@pytest.mark.parametrize("binding", ["EXPORT_BUCKET", "EXPORT_QUEUE"])
def test_a_turn_succeeds_without_the_export(tmp_path_factory, model_stub, tool_stub, binding: str) -> None:
    """Without the bucket the consumer's write fails on every batch (and is retried); without the queue every
    send is skipped. Either way turns and their traces are unaffected."""
    rt = Runtime(ROOT / "specs" / "support_desk.agent", tmp_path_factory.mktemp("noexport"), model_stub, tool_stub)
    _wrangler_without(rt.project, binding)
    rt.start(120)
    try:
        for i in range(3):
            r = rt.turn("s-1", "orders", f"hello {i}")
            assert r.status_code == 200, r.text
        assert [t["turn"] for t in rt.traces("s-1")["turns"]] == [1, 2, 3]
        with rt.client() as c:
            r = c.get("/v1/exports", headers=rt.admin_headers())
        if binding == "EXPORT_BUCKET":
            assert r.status_code == 404 and r.json()["error"]["code"] == "export_disabled"
        else:
            assert r.status_code == 200 and r.json()["objects"] == []
    finally:
        rt.stop()


def test_the_exports_route_is_for_the_admin_and_checks_its_input(fleet: Runtime) -> None:
    with fleet.client() as c:
        assert c.get("/v1/exports", headers=fleet.headers("acme")).status_code == 401
        r = c.get("/v1/exports", params={"since": "last tuesday"}, headers=fleet.admin_headers())
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_since"
        r = c.get("/v1/exports", params={"key": "../secrets"}, headers=fleet.admin_headers())
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_export"
        r = c.get("/v1/exports", params={"since": "2999-01-01T00:00:00Z"}, headers=fleet.admin_headers())
        assert r.status_code == 200 and r.json()["objects"] == []
        assert c.post("/v1/exports", headers=fleet.admin_headers()).status_code == 405


def _timed_turns(rt: Runtime, session: str, n: int) -> list[float]:
    seconds = []
    for i in range(n):
        t0 = time.perf_counter()
        r = rt.turn(session, "orders", f"hello {i}")
        seconds.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.text
    return seconds


def _exported_turns(rt: Runtime, out: Path, session: str) -> int:
    assert main(["trace", "pull", "--all", "--url", rt.url, "--admin-token", ADMIN, "-o", str(out)]) == 0
    return len({e["id"] for p in export_files(out, "traces") for e in read_events(p) if e["session"] == session})


def test_a_failing_export_bucket_neither_fails_nor_slows_a_turn(tmp_path_factory, model_stub, tool_stub) -> None:
    """The bucket itself fails, not only a missing binding: its blob store is made unwritable under the running
    runtime, so every consumer write throws and the Queue retries the batch. Turns answer as fast as with the
    healthy bucket; once it is back, the retried batches land and nothing the turns committed is lost."""
    work = tmp_path_factory.mktemp("badbucket")
    rt = Runtime(ROOT / "specs" / "support_desk.agent", work, model_stub, tool_stub)
    rt.start(120)
    out = work / "pulled"
    blobs = rt.state / "v3" / "r2" / export_resource_name(rt.spec.name) / "blobs"
    try:
        healthy = _timed_turns(rt, "healthy", 12)
        deadline = time.monotonic() + 30
        while _exported_turns(rt, out, "healthy") < 12:
            assert time.monotonic() < deadline, "the healthy bucket never got the turns"
            time.sleep(0.5)
        assert blobs.is_dir()
        blobs.rename(blobs.with_name("blobs.away"))
        blobs.write_text("")  # a file where the bucket's blob directory was: every put fails (also for root)
        broken = _timed_turns(rt, "broken", 12)
        time.sleep(12.5)  # past the linger (10 s) and the local batch timeout (1 s): the consumer has tried and failed
        assert _exported_turns(rt, out, "broken") == 0
        assert [t["turn"] for t in rt.traces("broken")["turns"]] == list(range(1, 13))
        # Unslowed: a turn never waits for the export (generous bounds, the machine may be shared).
        assert statistics.median(broken) < 2 * statistics.median(healthy) + 0.05, (healthy, broken)
        assert max(broken) < 5.0, broken
        blobs.unlink()
        blobs.with_name("blobs.away").rename(blobs)
        deadline = time.monotonic() + 30
        while _exported_turns(rt, out, "broken") < 12:
            assert time.monotonic() < deadline, "the retried batches never landed once the bucket was back"
            time.sleep(0.5)
    finally:
        rt.stop()
    log = rt.log.read_text()
    assert "BlobStore.put" in log, log[-3000:]  # the bucket's own write failed, in the consumer


def test_events_kept_by_an_object_survive_a_restart(tmp_path_factory, model_stub, tool_stub) -> None:
    """A session keeps its commits' events in its own storage until the queue has them: the runtime stopped right
    after the turns (before the alarm that sends them can fire) and started again still exports every one."""
    work = tmp_path_factory.mktemp("restart")
    rt = Runtime(ROOT / "specs" / "support_desk.agent", work, model_stub, tool_stub)
    rt.start(120)
    try:
        for i in range(3):
            assert rt.turn("kept", "orders", f"hello {i}").status_code == 200
        rt.stop()  # within the 10 s the object gathers its sends for
        rt.start(120)
        deadline = time.monotonic() + 30
        while _exported_turns(rt, work / "pulled", "kept") < 3:
            assert time.monotonic() < deadline, "the kept events never left the object after the restart"
            time.sleep(0.5)
    finally:
        rt.stop()
