"""Security properties 2, 3 and 4 for tasks, over HTTP (tests/e2e/specs/tasks.agent).

2. `POST /v1/tasks` with an `Idempotency-Key` is idempotent: a retry gets the same task (its instance id derived
   from tenant and key), another tenant's same key another task, the same key with another body a 409.
3. Params that feed a call step directly are type-checked at creation (400); undeclared ones never reach the
   tool; a step argument of the wrong type fails the step at once, not after its retries.
4. A compensation that fails for good does not strand the others: the remaining ones still run, in reverse
   order, and every outcome is in the task's chain, in `GET /v1/tasks/{id}`, and alerted to the webhook.
"""

from __future__ import annotations

import re
import uuid

import httpx

from agentspec.policy import spec_hash

from .conftest import Runtime
from .stubs import ToolAnswer
from .test_tasks import cue_saga, paths, wait_for

ORDER = {"order_id": "o-1"}
TASK_ID = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9-_]*$")


def post(rt: Runtime, body: object, key: str | None, tenant: str = "acme") -> httpx.Response:
    headers = rt.headers(tenant) | ({"idempotency-key": key} if key is not None else {})
    with rt.client() as c:
        return c.post("/v1/tasks", json=body, headers=headers)


def chain(rt: Runtime, task_id: str) -> list[tuple[str, str, str]]:
    with rt.client() as c:
        r = c.get("/v1/traces", params={"task": task_id}, headers=rt.admin_headers())
    assert r.status_code == 200, r.text
    return [(x["action"], x["decision"], x["rule"]) for x in r.json()["records"]]


# ── property 2: idempotent task creation ────────────────────────────────────


def test_a_retried_task_creation_returns_the_same_task(tasks: Runtime) -> None:
    cue_saga(tasks.tools)
    key = f"order-{uuid.uuid4()}"
    first = post(tasks, {"workflow": "fulfil", "params": {"order_id": "o-1", "note": {"a": 1, "b": 2}}}, key)
    assert first.status_code == 202, first.text
    task_id = first.json()["task_id"]
    assert task_id.startswith("fulfil-") and len(task_id) <= 64 and TASK_ID.match(task_id)
    # The same body (its keys in another order) is the same request.
    again = post(tasks, {"params": {"note": {"b": 2, "a": 1}, "order_id": "o-1"}, "workflow": "fulfil"}, key)
    assert (again.status_code, again.json()) == (202, {"task_id": task_id})
    assert tasks.wait_task(task_id)["status"] == "complete"
    assert paths(tasks.tools).count("GET /v1/orders/o-1") == 1  # one run, not two
    # Another tenant's same key is another task.
    other = post(tasks, {"workflow": "fulfil", "params": ORDER}, key, tenant="globex")
    assert other.status_code == 202, other.text
    assert other.json()["task_id"] != task_id
    tasks.wait_task(other.json()["task_id"], tenant="globex")


def test_the_same_key_with_another_body_is_refused(tasks: Runtime) -> None:
    cue_saga(tasks.tools)
    key = f"order-{uuid.uuid4()}"
    first = post(tasks, {"workflow": "fulfil", "params": ORDER}, key)
    assert first.status_code == 202, first.text
    task_id = first.json()["task_id"]
    tasks.wait_task(task_id)
    before = len(tasks.tools.requests)
    for body in ({"workflow": "fulfil", "params": {"order_id": "o-2"}}, {"workflow": "approve", "params": ORDER}):
        r = post(tasks, body, key)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "idempotency_conflict"
        assert set(r.json()["error"]) >= {"code", "message"}
    assert len(tasks.tools.requests) == before  # nothing ran
    assert tasks.wait_task(task_id)["status"] == "complete"


def test_a_workflow_name_of_31_characters_makes_task_ids_of_64(tasks: Runtime) -> None:
    """The name limit (E0603) and the ids the runtime makes agree: with and without an Idempotency-Key, a task of
    the longest allowed name gets an id of at most 64 characters that every task route takes."""
    workflow = "reconcile_the_quarterly_ledgers"
    assert len(workflow) == 31
    tasks.tools.answer("/v1/orders/o-31", ToolAnswer(body={"order_id": "o-31", "total_cents": 100}))
    for key in (None, f"ledger-{uuid.uuid4()}"):
        r = post(tasks, {"workflow": workflow, "params": {"order_id": "o-31"}}, key)
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        assert task_id.startswith(f"{workflow}-") and len(task_id) == 64 and TASK_ID.match(task_id)
        assert tasks.wait_task(task_id)["status"] == "complete"
        with tasks.client() as c:
            traces = c.get("/v1/traces", params={"task": task_id}, headers=tasks.admin_headers())
        assert traces.status_code == 200 and traces.json()["records"], traces.text


def test_a_bad_idempotency_key_is_refused(tasks: Runtime) -> None:
    for key in ("", "x" * 256, "with space"):
        r = post(tasks, {"workflow": "fulfil", "params": ORDER}, key)
        assert r.status_code == 400, (key, r.text)
        assert r.json()["error"]["code"] == "invalid_idempotency_key"
    assert not tasks.tools.requests


# ── property 3: params and arguments ────────────────────────────────────────


def test_params_that_feed_a_step_are_type_checked_at_creation(tasks: Runtime) -> None:
    cases = [
        ("fulfil", {"order_id": 5}, "`params.order_id` must be of type string"),
        ("fulfil", {}, "`params.order_id` is required"),
        ("direct", {"sku": ["k-1"]}, "`params.sku` must be of type string"),
        ("direct", {"sku": None}, "`params.sku` is required"),
    ]
    for workflow, params, message in cases:
        r = post(tasks, {"workflow": workflow, "params": params}, None)
        assert r.status_code == 400, (workflow, params, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_params" and error["message"].startswith(message), error
    assert not tasks.tools.requests


def test_undeclared_params_never_reach_the_tool_and_a_wrong_type_fails_at_once(tasks: Runtime) -> None:
    # `stock` declares no `returns`: its int `order_ref` reaches `reserve`, whose `order_id` is a string.
    tasks.tools.answer("/v1/stock/", ToolAnswer(body={"order_ref": 12345}))
    r = post(tasks, {"workflow": "direct", "params": {"sku": "k-1", "admin": "yes"}}, None)
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    body = tasks.wait_task(task_id)
    assert body["status"] == "errored", body
    assert paths(tasks.tools) == ["GET /v1/stock/k-1"]  # no `?admin=yes`, and `reserve` never sent
    steps = {s["name"]: s for s in body["steps"]}
    assert (steps["hold"]["status"], steps["hold"]["attempts"]) == ("failed", 1)  # `retry 3`, yet not retried
    assert "argument `order_id` is not of type string" in steps["hold"]["error"]
    assert ("tool.args:stock:admin", "dropped", "tool.args.undeclared") in chain(tasks, task_id)


# ── property 4: compensation never strands work ─────────────────────────────


def _failed_for_good(tasks: Runtime, refund: tuple[ToolAnswer, ...], refunds: int) -> None:
    cue_saga(tasks.tools, ship=(ToolAnswer(status=422, body={"error": "address"}),))
    tasks.tools.answer("/v1/charges/c-1/refund", *refund)
    tasks.tools.answer("/hooks/slo", ToolAnswer(body={"ok": True}))
    r = post(tasks, {"workflow": "audited", "params": ORDER}, None)
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    assert tasks.wait_task(task_id)["status"] == "errored"
    wait_for(lambda: tasks.tools.calls("/v1/reservations/r-1/release"), timeout=30)
    # The refund failed for good; the release still ran, after it (reverse order).
    undoing = [p for p in paths(tasks.tools) if not p.startswith("POST /hooks/")]  # the alert comes between
    assert undoing[-(refunds + 1) :] == ["POST /v1/charges/c-1/refund"] * refunds + [
        "POST /v1/reservations/r-1/release"
    ]
    wait_for(lambda: any(x[0] == "compensation:release" for x in chain(tasks, task_id)))
    steps = {s["name"]: s for s in tasks.wait_task(task_id)["steps"]}
    assert steps["pay"]["status"] == "compensation_failed" and steps["pay"]["compensation"] == "refund"
    assert steps["pay"]["attempts"] == refunds
    assert steps["hold"]["status"] == "compensated"
    records = chain(tasks, task_id)
    outcomes = [x for x in records if x[0].startswith(("compensation:", "alert:compensation"))]
    assert outcomes == [
        ("compensation:refund", "failed", "compensation.failed"),
        ("alert:compensation", "alert", "compensation.failed"),
        ("compensation:release", "ok", "compensation.ok"),
    ]
    alerts = [c.body for c in tasks.tools.calls("/hooks/slo") if c.body.get("type") == "agentspec.compensation_failed"]
    assert len(alerts) == 1
    assert alerts[0] | {"ts": None, "error": None} == {
        "type": "agentspec.compensation_failed", "agent": "tasks", "workflow": "audited", "task": task_id,
        "step": "pay", "compensation": "refund", "rule": "compensation.failed", "error": None,
        "spec_hash": spec_hash(tasks.spec), "ts": None,
    }  # fmt: skip


def test_a_refused_compensation_does_not_strand_the_earlier_ones(tasks: Runtime) -> None:
    _failed_for_good(tasks, (ToolAnswer(status=422, body={"error": "already settled"}),), refunds=1)


def test_a_compensation_out_of_retries_does_not_strand_the_earlier_ones(tasks: Runtime) -> None:
    # `pay` retries 3 times, so its rollback does too: 4 attempts, then it has failed for good.
    _failed_for_good(tasks, (ToolAnswer(status=503),), refunds=4)
