"""Long tasks (Cloudflare Workflows) over HTTP: `POST /v1/tasks`, `GET /v1/tasks/{id}`.

Steps run in order inside workerd's local Workflows engine; the tools are the loopback ToolStub,
which honours Idempotency-Key and counts real side effects. tests/e2e/specs/tasks.agent is a saga:
verify -> hold (undo: release) -> pay (undo: refund) -> send -> notify, with 100 ms retry delays.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from .conftest import Runtime, persisted_rows
from .stubs import ToolAnswer, ToolStub

ORDER = {"order_id": "o-1", "total_cents": 4200}


def start(rt: Runtime, workflow: str, params: object, tenant: str = "acme") -> httpx.Response:
    with rt.client() as c:
        return c.post("/v1/tasks", json={"workflow": workflow, "params": params}, headers=rt.headers(tenant))


def start_ok(rt: Runtime, workflow: str, params: dict, tenant: str = "acme") -> str:
    r = start(rt, workflow, params, tenant)
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    assert task_id.startswith(f"{workflow}-")
    return task_id


def paths(tools: ToolStub) -> list[str]:
    return [f"{r.method} {r.path}" for r in tools.requests]


def wait_for(predicate, timeout: float = 15.0) -> None:
    """Some effects (rollbacks) may land just after the status flips: poll, bounded."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def cue_saga(tools: ToolStub, ship: tuple[ToolAnswer, ...] = (ToolAnswer(body={"shipment_id": "s-1"}),)) -> None:
    tools.answer("/v1/orders/", ToolAnswer(body=ORDER))
    tools.answer("/v1/reservations", ToolAnswer(body={"reservation_id": "r-1"}))
    tools.answer("/v1/reservations/r-1/release", ToolAnswer(body={"reservation_id": "r-1"}))
    tools.answer("/v1/charges", ToolAnswer(body={"charge_id": "c-1"}))
    tools.answer("/v1/charges/c-1/refund", ToolAnswer(body={"charge_id": "c-1"}))
    tools.answer("/v1/shipments", *ship)


# ── the happy path ───────────────────────────────────────────────────────────


def test_task_runs_its_steps_in_order_and_reports_them(tasks: Runtime) -> None:
    cue_saga(tasks.tools)
    task_id = start_ok(tasks, "fulfil", {"order_id": "o-1"})
    body = tasks.wait_task(task_id)
    assert body["status"] == "complete", body
    assert body["task_id"] == task_id
    assert paths(tasks.tools) == [
        "GET /v1/orders/o-1",
        "POST /v1/reservations",
        "POST /v1/charges",
        "POST /v1/shipments",
    ]
    assert [s["name"] for s in body["steps"]] == ["verify", "hold", "pay", "send", "notify"]
    assert {s["status"] for s in body["steps"]} == {"complete"}
    results = body["output"]["results"]
    assert body["output"]["workflow"] == "fulfil"
    assert results["send"] == {"shipment_id": "s-1"}
    assert results["notify"]["text"] == "reply from @cf/test/low-primary"
    # An infer step's usage rides along (the stub answers 20 completion tokens; tier `low` has no price).
    notify = results["notify"]
    assert notify["input_tokens"] > 100 and notify["output_tokens"] == 20 and notify["cached_tokens"] == 0
    assert notify["cost_usd"] is None
    # Nothing was compensated on success.
    assert not tasks.tools.calls("/v1/reservations/r-1/release")
    assert not tasks.tools.calls("/v1/charges/c-1/refund")


def test_step_results_flow_into_later_arguments(tasks: Runtime) -> None:
    cue_saga(tasks.tools)
    task_id = start_ok(tasks, "fulfil", {"order_id": "o-1"})
    assert tasks.wait_task(task_id)["status"] == "complete"
    charge = tasks.tools.calls("/v1/charges")[0].body
    assert charge == {"order_id": "o-1", "amount_cents": 4200}  # an int stays an int
    ship = tasks.tools.calls("/v1/shipments")[0].body
    assert ship == {"order_id": "o-1", "reservation_id": "r-1", "charge_id": "c-1"}
    prompt = tasks.model.requests[-1].body["messages"][-1]["content"]
    assert prompt == "Order o-1 shipped as s-1"


def test_support_refund_uses_the_verified_order(support: Runtime) -> None:
    """specs/support_desk.agent: `{verify.order_id}` is the lookup's answer, not the caller's input."""
    tools = support.tools
    tools.answer("/v1/orders/", ToolAnswer(body={"order_id": "A-100", "status": "delivered", "total_cents": 1999}))
    tools.answer("/v1/refunds", ToolAnswer(body={"refund_id": "rf-9", "status": "issued"}))
    tools.answer("/v1/messages", ToolAnswer(body={"message_id": "m-1"}))
    task_id = start_ok(support, "refunds", {"order_id": "a-100", "email": "ann@example.com"})
    body = support.wait_task(task_id)
    assert body["status"] == "complete", body
    assert paths(tools) == ["GET /v1/orders/a-100", "POST /v1/refunds", "POST /v1/messages"]
    refund = tools.calls("/v1/refunds")[0]
    assert refund.body == {"order_id": "A-100", "amount_cents": 1999}
    assert refund.headers["idempotency-key"] == support.idempotency_key(
        "issue_refund", {"session": task_id, "args.order_id": "A-100"}
    )
    assert refund.headers["authorization"] == "Bearer value-of-BILLING_API_KEY"
    mail = tools.calls("/v1/messages")[0].body
    assert mail["subject"] == "Refund rf-9"
    assert mail["to"] == "ann@example.com"
    assert mail["body"] == "reply from @cf/zai-org/glm-4.7-flash"
    assert [s["name"] for s in body["steps"]] == ["verify", "refund", "notify", "confirm"]


# ── retries and idempotency ──────────────────────────────────────────────────


def test_a_failing_tool_is_retried_and_acts_once(tasks: Runtime) -> None:
    cue_saga(tasks.tools, ship=(ToolAnswer(status=500, times=2), ToolAnswer(body={"shipment_id": "s-1"})))
    task_id = start_ok(tasks, "fulfil", {"order_id": "o-1"})
    body = tasks.wait_task(task_id)
    assert body["status"] == "complete", body
    ships = tasks.tools.calls("/v1/shipments")
    ship_key = tasks.idempotency_key("ship", {"session": task_id, "args.order_id": "o-1"})
    assert [r.headers.get("idempotency-key") for r in ships] == [ship_key] * 3
    assert tasks.tools.effects[ship_key] == 1
    # Earlier steps are not re-run by the retry of a later one.
    assert len(tasks.tools.calls("/v1/charges")) == 1
    assert tasks.tools.effects[tasks.idempotency_key("charge", {"session": task_id, "args.order_id": "o-1"})] == 1
    send = next(s for s in body["steps"] if s["name"] == "send")
    assert send["status"] == "complete"
    assert send["attempts"] == 3


# ── failure and rollback ─────────────────────────────────────────────────────


def _rolled_back(tasks: Runtime, task_id: str, ships: int) -> dict:
    body = tasks.wait_task(task_id)
    assert body["status"] == "errored", body
    tools = tasks.tools
    wait_for(lambda: tools.calls("/v1/reservations/r-1/release"))
    assert len(tools.calls("/v1/shipments")) == ships
    # Compensations ran in reverse order: refund the charge, then release the hold; nothing after.
    assert paths(tools)[-2:] == ["POST /v1/charges/c-1/refund", "POST /v1/reservations/r-1/release"]
    assert paths(tools)[: 3 + ships] == [
        "GET /v1/orders/o-1",
        "POST /v1/reservations",
        "POST /v1/charges",
        *["POST /v1/shipments"] * ships,
    ]
    assert tools.effects[tasks.idempotency_key("refund", {"session": task_id, "args.charge_id": "c-1"})] == 1
    assert tools.effects[tasks.idempotency_key("release", {"session": task_id, "args.reservation_id": "r-1"})] == 1
    assert not tasks.model.requests  # `notify` never ran
    return tasks.wait_task(task_id)


def test_a_terminal_failure_compensates_earlier_steps_in_reverse(tasks: Runtime) -> None:
    cue_saga(tasks.tools, ship=(ToolAnswer(status=422, body={"error": "address rejected"}),))
    task_id = start_ok(tasks, "fulfil", {"order_id": "o-1"})
    body = _rolled_back(tasks, task_id, ships=1)  # a 4xx is not retried
    # The reason survives into `instance.status().error` (not the engine's generic NonRetryableError text).
    assert body["error"]["message"] == "step `send`: tool `ship`: HTTP 422"
    assert body["output"] is None
    steps = {s["name"]: s for s in body["steps"]}
    assert steps["hold"]["status"] == "compensated" and steps["hold"]["compensation"] == "release"
    assert steps["pay"]["status"] == "compensated" and steps["pay"]["compensation"] == "refund"
    assert steps["send"]["status"] == "failed"
    assert "HTTP 422" in steps["send"]["error"]
    assert "notify" not in steps
    time.sleep(0.5)  # no late duplicates
    assert len(tasks.tools.calls("/v1/charges/c-1/refund")) == 1
    assert len(tasks.tools.calls("/v1/reservations/r-1/release")) == 1


def test_exhausted_retries_fail_the_task_and_roll_back(tasks: Runtime) -> None:
    cue_saga(tasks.tools, ship=(ToolAnswer(status=503),))
    task_id = start_ok(tasks, "fulfil", {"order_id": "o-1"})
    body = _rolled_back(tasks, task_id, ships=4)  # the first try and 3 retries
    assert body["error"]["message"] == "step `send`: tool `ship`: HTTP 503"
    assert tasks.tools.effects.get(tasks.idempotency_key("ship", {"session": task_id, "args.order_id": "o-1"}), 0) == 0
    send = next(s for s in body["steps"] if s["name"] == "send")
    assert (send["status"], send["attempts"]) == ("failed", 4)


def test_a_failing_compensation_is_retried_and_the_rest_still_run(tasks: Runtime) -> None:
    cue_saga(tasks.tools, ship=(ToolAnswer(status=422),))
    tasks.tools.answer("/v1/charges/c-1/refund", ToolAnswer(status=500), ToolAnswer(body={"charge_id": "c-1"}))
    task_id = start_ok(tasks, "fulfil", {"order_id": "o-1"})
    _rolled_back(tasks, task_id, ships=1)
    refunds = tasks.tools.calls("/v1/charges/c-1/refund")
    assert [r.headers["idempotency-key"] for r in refunds] == [
        tasks.idempotency_key("refund", {"session": task_id, "args.charge_id": "c-1"})
    ] * 2
    steps = {s["name"]: s for s in tasks.wait_task(task_id)["steps"]}
    assert steps["pay"]["status"] == "compensated"
    assert steps["hold"]["status"] == "compensated"


def test_a_failing_first_step_has_nothing_to_compensate(tasks: Runtime) -> None:
    cue_saga(tasks.tools)
    tasks.tools.answer("/v1/orders/", ToolAnswer(status=404, body={"error": "no such order"}))
    task_id = start_ok(tasks, "fulfil", {"order_id": "o-404"})
    body = tasks.wait_task(task_id)
    assert body["status"] == "errored", body
    assert body["error"]["message"] == "step `verify`: tool `lookup`: HTTP 404"
    time.sleep(0.5)
    assert paths(tasks.tools) == ["GET /v1/orders/o-404"]
    assert [(s["name"], s["status"]) for s in body["steps"]] == [("verify", "failed")]


def test_a_failed_step_with_nothing_to_undo_is_not_compensated(tasks: Runtime) -> None:
    """`pay` fails: `hold` is released; `pay` itself returned no charge, so there is nothing to refund."""
    cue_saga(tasks.tools)
    tasks.tools.answer("/v1/charges", ToolAnswer(status=402, body={"error": "card declined"}))
    task_id = start_ok(tasks, "fulfil", {"order_id": "o-1"})
    body = tasks.wait_task(task_id)
    assert body["status"] == "errored", body
    wait_for(lambda: tasks.tools.calls("/v1/reservations/r-1/release"))
    assert body["error"]["message"] == "step `pay`: tool `charge`: HTTP 402"
    assert paths(tasks.tools) == [
        "GET /v1/orders/o-1",
        "POST /v1/reservations",
        "POST /v1/charges",
        "POST /v1/reservations/r-1/release",
    ]
    steps = {s["name"]: s for s in tasks.wait_task(task_id)["steps"]}
    assert steps["hold"]["status"] == "compensated"
    assert steps["pay"]["status"] == "failed"
    assert "send" not in steps


# ── the contract's errors ────────────────────────────────────────────────────


def test_another_tenant_cannot_read_a_task(tasks: Runtime) -> None:
    cue_saga(tasks.tools)
    task_id = start_ok(tasks, "fulfil", {"order_id": "o-1"})
    with tasks.client() as c:
        r = c.get(f"/v1/tasks/{task_id}", headers=tasks.headers("globex"))
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "unknown_task"
    assert tasks.wait_task(task_id)["status"] == "complete"


def test_unknown_task_ids_are_404(tasks: Runtime) -> None:
    with tasks.client() as c:
        for task_id in ("fulfil-00000000-0000-0000-0000-000000000000", "nosuchworkflow-1", "chat-1"):
            r = c.get(f"/v1/tasks/{task_id}", headers=tasks.headers())
            assert r.status_code == 404, (task_id, r.text)
            assert r.json()["error"]["code"] == "unknown_task"


def test_a_workflow_without_steps_is_not_a_task(tasks: Runtime) -> None:
    r = start(tasks, "chat", {})
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_a_task"
    r = start(tasks, "nosuch", {})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_workflow"


def test_params_must_be_an_object(tasks: Runtime) -> None:
    for params in ("o-1", [1, 2], 3):
        r = start(tasks, "fulfil", params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"]["code"] == "invalid_field"
    assert not tasks.tools.requests  # nothing started


def test_tasks_need_a_token(tasks: Runtime) -> None:
    with tasks.client() as c:
        r = c.post("/v1/tasks", json={"workflow": "fulfil", "params": {}})
    assert r.status_code == 401


# ── events and unlisted compensations ───────────────────────────────────────


def send_event(rt: Runtime, task_id: str, body: object, tenant: str = "acme") -> httpx.Response:
    with rt.client() as c:
        return c.post(f"/v1/tasks/{task_id}/events", json=body, headers=rt.headers(tenant))


def test_a_waiting_task_takes_its_event_and_uses_the_payload(tasks: Runtime) -> None:
    cue_saga(tasks.tools)
    task_id = start_ok(tasks, "approve", {"order_id": "o-1"})
    wait_for(lambda: "POST /v1/reservations" in paths(tasks.tools))
    time.sleep(0.3)
    assert tasks.wait_task(task_id, until=("waiting", "running"))["status"] in ("waiting", "running")
    assert "POST /v1/shipments" not in paths(tasks.tools)  # held until the approval comes

    assert (
        send_event(tasks, task_id, {"type": "payment.approved", "payload": {"charge_id": "c-9"}}, "globex").status_code
        == 404
    )  # another tenant cannot reach the task
    r = send_event(tasks, task_id, {"type": "payment.approved", "payload": {"charge_id": "c-9"}})
    assert r.status_code == 202, r.text
    body = tasks.wait_task(task_id)
    assert body["status"] == "complete", body
    [ship] = tasks.tools.calls("/v1/shipments")
    assert ship.body == {"order_id": "o-1", "reservation_id": "r-1", "charge_id": "c-9"}


def test_bad_events_are_refused(tasks: Runtime) -> None:
    cue_saga(tasks.tools)
    task_id = start_ok(tasks, "approve", {"order_id": "o-1"})
    assert send_event(tasks, task_id, {"type": "bad type!"}).status_code == 400
    assert send_event(tasks, task_id, {"type": "payment.approved", "payload": [1]}).status_code == 400
    assert send_event(tasks, "approve-00000000-0000-4000-8000-000000000000", {"type": "x"}).status_code == 404


def test_a_compensation_missing_from_the_allowlist_still_runs(tasks: Runtime) -> None:
    cue_saga(tasks.tools, ship=(ToolAnswer(status=422, body={"error": "address"}),))
    task_id = start_ok(tasks, "approve", {"order_id": "o-1"})
    wait_for(lambda: "POST /v1/reservations" in paths(tasks.tools))
    wait_for(lambda: send_event(tasks, task_id, {"type": "payment.approved", "payload": {"charge_id": "c-9"}})
             .status_code == 202)  # fmt: skip
    body = tasks.wait_task(task_id)
    assert body["status"] == "errored", body
    wait_for(lambda: "POST /v1/reservations/r-1/release" in paths(tasks.tools))
    assert paths(tasks.tools).count("POST /v1/reservations/r-1/release") == 1
    assert any(s.get("status") == "compensated" for s in tasks.wait_task(task_id)["steps"]), body


def test_a_tasks_tool_decisions_are_chained_records(tasks: Runtime) -> None:
    from agentspec.trace.verify import verify

    cue_saga(tasks.tools, ship=(ToolAnswer(status=422, body={"error": "address"}),))
    task_id = start_ok(tasks, "fulfil", {"order_id": "o-1"})
    assert tasks.wait_task(task_id)["status"] == "errored"
    wait_for(lambda: "POST /v1/reservations/r-1/release" in paths(tasks.tools))
    with tasks.client() as c:
        r = c.get("/v1/traces", params={"task": task_id}, headers=tasks.admin_headers())
        other = c.get("/v1/traces", params={"task": task_id}, headers=tasks.admin_headers("globex"))
    assert r.status_code == 200, r.text
    assert other.status_code == 404  # another tenant's admin cannot read it
    records = r.json()["records"]
    assert {rec["session"] for rec in records} == {task_id}
    assert [(rec["action"], rec["decision"]) for rec in records] == [
        ("tool.call:lookup", "allow"),
        ("tool.call:reserve", "allow"),
        ("tool.call:charge", "allow"),
        ("tool.call:ship", "allow"),  # answered 422: not retried
        ("tool.call:refund", "allow"),  # the rollbacks, newest first, each with its outcome
        ("compensation:refund", "ok"),
        ("tool.call:release", "allow"),
        ("compensation:release", "ok"),
    ]
    assert records[-1]["intent"] == "compensate reserve with release"
    assert verify(records) == []


def test_trace_pull_fetches_a_tasks_chain(tasks: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentspec.cli import main

    from .conftest import ADMIN

    cue_saga(tasks.tools)
    task_id = start_ok(tasks, "fulfil", {"order_id": "o-1"})
    assert tasks.wait_task(task_id)["status"] == "complete"
    out = tmp_path / "task.json"
    argv = ["trace", "pull", "--url", tasks.url, "--task", task_id, "--tenant", "acme", "--admin-token", ADMIN]
    assert main([*argv, "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"pulled 4 records and 0 turns of task `{task_id}` -> {out}\n"
    pulled = json.loads(out.read_text())
    assert pulled["source"]["task"] == task_id and "session" not in pulled["source"]
    steps = ("lookup", "reserve", "charge", "ship")
    assert [r["action"] for r in pulled["records"]] == [f"tool.call:{t}" for t in steps]
    assert main(["trace", "verify", str(out)]) == 0
    assert "chain intact: 4 records" in capsys.readouterr().out
    # Another tenant's admin cannot pull it: the runtime's 404, told as an error.
    assert main([*argv[:-4], "--tenant", "globex", "--admin-token", ADMIN, "-o", str(out)]) == 1
    assert "answered 404" in capsys.readouterr().err


# ── SLOs over tasks ──────────────────────────────────────────────────────────


def _task_records(rt: Runtime, task_id: str) -> list[dict]:
    with rt.client() as c:
        r = c.get("/v1/traces", params={"task": task_id}, headers=rt.admin_headers())
        assert r.status_code == 200, r.text
        return r.json()["records"]


def test_finished_tasks_feed_the_workflow_slo(tasks: Runtime) -> None:
    """`fragile` declares `success >= 90%`: every finished task is one sample of its monitor. One success and
    four failures make five samples (the monitor's minimum) at 20% success: the fifth fires the alert, once,
    to the webhook and as a record in that task's own chain; a sixth failure, still crossed, does not re-send."""
    tools = tasks.tools
    tools.answer("/v1/orders/", ToolAnswer(body=ORDER))
    ok = start_ok(tasks, "fragile", {"order_id": "o-1"})
    assert tasks.wait_task(ok)["status"] == "complete"
    tools.answer("/v1/orders/", ToolAnswer(status=422, body={"error": "no such order"}))
    failed = []
    for i in range(5):
        task_id = start_ok(tasks, "fragile", {"order_id": f"o-{i + 2}"})
        body = tasks.wait_task(task_id)
        assert body["status"] == "errored", body
        # The task's own failure reason survives the SLO step that ran after it.
        assert body["error"]["message"] == "step `verify`: tool `lookup`: HTTP 422", body
        failed.append(task_id)
        hooks = tools.calls("/hooks/slo")
        assert len(hooks) == (0 if i < 3 else 1), (i, [h.body for h in hooks])

    body = tools.calls("/hooks/slo")[0].body
    assert (body["agent"], body["workflow"], body["sli"]) == ("tasks", "fragile", "success")
    assert (body["value"], body["bound"]) == (20, 90)
    alerts = {t: [r for r in _task_records(tasks, t) if r["action"].startswith("alert:")] for t in [ok, *failed]}
    assert [t for t, found in alerts.items() if found] == [failed[3]]
    [record] = alerts[failed[3]]
    assert (record["action"], record["decision"], record["rule"]) == ("alert:success", "alert", "slo.success")
    assert record["session"] == failed[3] and record["workflow"] == "fragile"
    from agentspec.trace.verify import verify

    assert verify(_task_records(tasks, failed[3])) == []

    # The monitor's window holds one sample per task, in order: the success with its model step's tokens,
    # then the failures, which never reached the model.
    samples = [json.loads(body) for body in _monitor_samples(tasks, "fragile")]
    assert [s["ok"] for s in samples] == [True] + [False] * 5
    assert samples[0]["input_tokens"] > 100 and samples[0]["cost_usd"] is None  # tier `low` has no price
    assert all(s["input_tokens"] == 0 for s in samples[1:])
    assert all(s["latency_ms"] > 0 and s["decisions"] == 1 and s["denied"] == 0 for s in samples)


def _monitor_samples(rt: Runtime, workflow: str) -> list[str]:
    """The sample rows of a workflow's SLO monitor, read from its persisted SQLite file."""
    query = "SELECT body FROM slo_samples WHERE workflow = ? ORDER BY id"
    for _, rows in persisted_rows(rt, query, workflow):
        if rows:
            return [r[0] for r in rows]
    raise AssertionError(f"no SLO monitor for {workflow} under {rt.state}")
