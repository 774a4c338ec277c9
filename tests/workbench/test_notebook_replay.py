"""notebooks/03-replay.ipynb against a runtime this test starts: specs/support_desk.agent under `wrangler dev`,
a scripted model that looks orders up and sends emails, traffic the test counts. The notebook pulls and verifies
the export, finds no drift, finds exactly the test's `send_email` calls in `refunds` flipping under a candidate
that drops the tool, calibrates, and simulates both specs on the calibrated traffic."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from agentspec import workbench as wb
from agentspec.devserver import toolchain_ready
from agentspec.trace.fleet import pull_all
from agentspec.workbench.scripted_model import last_user_text, tool_results
from tests.notebook_run import execute

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "03-replay.ipynb"
SPEC = ROOT / "specs" / "support_desk.agent"
ORDER = {"order_id": "A-100", "status": "shipped", "total_cents": 1200}


def _cell(nb: Any, tag: str) -> Any:
    return next(c for c in nb.cells if tag in c.metadata.get("tags", []))


def _text(cell: Any) -> str:
    return "\n".join(o.text for o in cell.outputs if o.output_type == "stream")


def respond(model: str, messages: list[dict]) -> wb.Cue | None:
    """Look the order up, email when asked to, refund when asked to (which `orders` does not allow)."""
    if tool_results(messages):
        return wb.Cue(text="Done.")
    text = last_user_text(messages)
    if "email" in text:
        return wb.Cue(tool_calls=[("send_email", {"to": "ann@example.com", "subject": "A-100", "body": "on its way"})])
    if "refund" in text:
        return wb.Cue(tool_calls=[("issue_refund", {"order_id": "A-100", "amount_cents": 100})])
    if re.search(r"\bA-\d+\b", text):
        return wb.Cue(tool_calls=[("lookup_order", {"order_id": "A-100"})])
    return wb.Cue(text="How can I help?")


def _candidate(tmp_path: Path) -> Path:
    folder = tmp_path / "candidate"
    shutil.copytree(SPEC.parent / "shared", folder / "shared")
    text = SPEC.read_text().replace(
        "tools allow [lookup_order, issue_refund, cancel_refund, send_email]",
        "tools allow [lookup_order, issue_refund, cancel_refund]",
    )
    text = "\n".join(line for line in text.splitlines() if "step confirm = " not in line) + "\n"
    (folder / "support_desk.agent").write_text(text)
    return folder / "support_desk.agent"


@pytest.mark.slow
def test_replay_notebook_against_a_running_runtime(tmp_path: Path) -> None:
    if not toolchain_ready():
        pytest.fail("the Node toolchain is missing: run `make node-setup`")
    model = wb.ScriptedModel(respond)
    tools = wb.ToolStub()
    tools.answer("/v1/orders/", wb.ToolAnswer(body=ORDER, times=10_000))
    tools.answer("/v1/messages", wb.ToolAnswer(body={"message_id": "m-1"}, times=10_000))
    live = wb.LiveAgent(wb.load(str(SPEC)), workdir=tmp_path / "live", model=model, tools=tools)
    try:
        live.start(180)
        emails = turns = 0
        for i in range(3):
            for text in ("Where is order A-100?", "Please refund A-100", "Thanks"):
                assert live.turn(f"orders-{i}", "orders", text).ok
                turns += 1
            for text in ("Where is order A-100?", "Send me an email about it"):
                assert live.turn(f"refunds-{i}", "refunds", text).ok
                turns += 1
            emails += 1
        # The export reaches R2 through the queue in batches: wait until it holds every turn.
        scratch = tmp_path / "settle"
        deadline = time.monotonic() + 120
        while sum(1 for p in scratch.glob("traces/*/*/*.ndjson") for _ in p.open()) < turns:
            assert time.monotonic() < deadline, "the export did not settle"
            time.sleep(1)
            pull_all(live.url, scratch, admin_token=live.admin_token)

        nb = nbformat.read(NOTEBOOK, as_version=4)
        params = _cell(nb, "parameters")
        injected = nbformat.v4.new_code_cell(
            f"RUNTIME_URL = {live.url!r}\nADMIN_TOKEN = {live.admin_token!r}\nSPEC_PATH = {str(SPEC)!r}\n"
            f"CANDIDATE_PATH = {str(_candidate(tmp_path))!r}\nEXPORT_DIR = {str(tmp_path / 'export')!r}\n"
            f"TRAFFIC_OUT = {str(tmp_path / 'traffic.toml')!r}\nSESSIONS = 2000",
            id="injected-parameters",
        )
        nb.cells.insert(nb.cells.index(params) + 1, injected)
        probe = nbformat.v4.new_code_cell(
            "import json\nprint(json.dumps({'drifted': current.drifted, 'decisions': recorded.decisions,"
            " 'flips': [[f.workflow, f.target, f.was[1], f.now[1], f.count] for f in flips.flips],"
            " 'workflows': sorted(calibration.traffic['workflows'])}))",
            id="probe",
        )
        nb.cells.append(probe)
        nb = execute(nb, NOTEBOOK.parent, cell_timeout=300)
    finally:
        live.close()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    pull = _text(_cell(nb, "pull"))
    assert "chains checked, 0 broken, 0 not verifiable" in pull and "reported policies: " in pull
    drift = _text(_cell(nb, "drift"))
    assert "0 broken" in drift and "decisions checked, 0 drifted" in drift
    flips = _text(_cell(nb, "flips"))
    assert f"refunds    send_email     allow (tools.allow) -> deny (tools.allowlist): {emails}" in flips
    assert f"{emails} of " in flips and "decisions would flip" in flips
    assert any("image/png" in o.get("data", {}) for o in _cell(nb, "flips-chart").outputs)
    calibrated = _text(_cell(nb, "calibrate"))
    assert "[workflows.orders]" in calibrated and "[workflows.refunds]" in calibrated
    assert '[models."@cf/zai-org/glm-4.7-flash"]' in calibrated and "[tools.lookup_order]" in calibrated
    assert (tmp_path / "traffic.toml").read_text() == calibrated
    simulated = _text(_cell(nb, "simulate"))
    assert re.search(r"^orders +p95 ", simulated, re.M) and re.search(r"^refunds +p95 ", simulated, re.M)
    assert any("image/png" in o.get("data", {}) for o in _cell(nb, "simulate-chart").outputs)
    out = json.loads(_text(nb.cells[-1]))
    assert out["drifted"] == 0 and out["decisions"] > 0
    assert out["flips"] == [["refunds", "send_email", "tools.allow", "tools.allowlist", emails]]
    assert out["workflows"] == ["orders", "refunds"]
