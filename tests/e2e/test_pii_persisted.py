"""PII never reaches disk in clear (issue 8, property 5): after a mixed run, with PII in a turn's input, a tool's
answer, the model's output and a task's params, no file under the runtime's persisted state directory (every
SQLite database and WAL, KV and R2 blobs, the Workflows engine's store) holds a raw email, phone number, card,
IBAN or IP address, nor does `GET /v1/tasks/{id}`; and a task's later steps still got the raw values.

tests/e2e/specs/pii.agent masks every built-in class in both its workflows.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import SPECS, Runtime, _runtime
from .stubs import Cue, ToolAnswer

LOW = "@cf/test/low-primary"
EMAIL, PHONE, CARD, IBAN, IP = (
    "jane.roe@example.org", "+1 415 555 2671", "4111 1111 1111 1111", "GB82WEST12345698765432", "203.0.113.77",
)  # fmt: skip
CUSTOMER = {"email": EMAIL, "phone": PHONE, "card": CARD, "iban": IBAN, "ip": IP}
NOTE = f"call {PHONE} or charge {CARD}, IBAN {IBAN}, seen from {IP}"
# Each value as written above, and its digits alone (a copy with the separators dropped is still the value).
RAW = [EMAIL, PHONE, CARD, IBAN, IP, "4155552671", "4111111111111111", "12345698765432", "jane.roe"]


@pytest.fixture(scope="module")
def pii(tmp_path_factory, model_stub, tool_stub) -> Iterator[Runtime]:
    yield from _runtime(SPECS / "pii.agent", tmp_path_factory, model_stub, tool_stub)


def leaks(data: bytes) -> list[str]:
    return [raw for raw in RAW if raw.encode() in data]


def test_a_mixed_run_leaves_no_raw_pii_on_disk(pii: Runtime) -> None:
    pii.tools.answer("/v1/customers/", ToolAnswer(body=CUSTOMER))
    pii.tools.answer("/v1/notify", ToolAnswer(body={"ticket": "t-1"}))
    # A turn: PII in the input, in the tool's answer and in the model's reply.
    pii.model.cue(LOW, Cue(tool_calls=[("customer", {"customer_id": "c-1"})]),
                  Cue(text=f"Found {EMAIL}, phone {PHONE}, card {CARD}, IBAN {IBAN}, ip {IP}"))  # fmt: skip
    r = pii.turn("s-1", "desk", f"I am {EMAIL}, call me on {PHONE}; my card is {CARD}")
    assert r.status_code == 200, r.text
    # A task: PII in its params, in a step's result, and in the model's output of its last step.
    pii.model.cue(LOW, Cue(text=f"Wrote to {EMAIL} ({PHONE})"))
    with pii.client() as c:
        r = c.post("/v1/tasks", json={"workflow": "profile", "params": {"customer_id": "c-1", "note": NOTE}},
                   headers=pii.headers())  # fmt: skip
    assert r.status_code == 202, r.text
    task = pii.wait_task(r.json()["task_id"])
    assert task["status"] == "complete", task

    # The later steps got the raw values, through the sealed results and params.
    (sent,) = pii.tools.calls("/v1/notify")
    assert sent.body == {"email": EMAIL, "note": NOTE, "ref": "c-1"}
    prompts = [m["content"] for s in pii.model.requests for m in s.body["messages"] if m["role"] == "user"]
    assert f"Write to {EMAIL} about {NOTE}" in prompts

    # Nothing raw in the task's answer, which still says what happened (masked).
    assert leaks(r.content + repr(task).encode()) == []
    assert task["output"]["results"]["fetch"]["email"] == "[email]"
    assert task["output"]["results"]["summary"]["text"] == "Wrote to [email] ([phone])"

    # Nor in any file the runtime or the engine persisted.
    files = [p for p in pii.state.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite" for p in files)
    found = {str(p.relative_to(pii.state)): leaks(p.read_bytes()) for p in files}
    assert {k: v for k, v in found.items() if v} == {}


def test_masking_sees_text_as_people_type_it(pii: Runtime) -> None:
    """Full-width digits, an internationalized email, a dotted card, Unicode spaces and dashes: all masked in the
    stored history (which the session's state answer shows) and absent from every persisted file."""
    typed = ["４１１１ １１１１ １１１１ １１１１", "josé.núñez@bücher.de", "5500.0000.0000.0004",
             "+44\u00a020\u20097946\u20140958", "4111 – 1111 — 1111 - 1111"]  # fmt: skip
    pii.model.cue(LOW, Cue(text="noted"))
    r = pii.turn("s-typed", "desk", "my details: " + "; ".join(typed))
    assert r.status_code == 200, r.text
    stored = b"".join(p.read_bytes() for p in pii.state.rglob("*") if p.is_file())
    assert b"my details: [card]; [email]; [card]; [phone]; [card]" in stored
    for value in typed:
        assert value.encode() not in stored, value
