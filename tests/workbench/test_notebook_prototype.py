"""notebooks/01-prototype.ipynb runs top to bottom in a real kernel (the venv's ipykernel, through nbclient) and
shows what it says it shows: its tagged cells' outputs and its variables are asserted on. It starts the real
runtime under `wrangler dev` and completes turns against the scripted model; whatever happens, the wrangler it
started is ended (its process group id is in WORKDIR/wrangler.pid while it runs)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from agentspec.devserver import TOOLCHAIN, toolchain_ready
from tests.notebook_run import execute

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01-prototype.ipynb"


def _cell(nb: Any, tag: str) -> Any:
    return next(c for c in nb.cells if tag in c.metadata.get("tags", []))


def _text(cell: Any, mime: str = "text/plain") -> str:
    out = []
    for o in cell.outputs:
        if o.output_type == "stream":
            out.append(o.text)
        elif o.output_type in ("execute_result", "display_data") and mime in o.data:
            out.append(o.data[mime])
    return "\n".join(out)


def _kill(pidfile: Path) -> None:
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pidfile.read_text()), signal.SIGKILL)


@pytest.mark.slow
def test_prototype_notebook_runs_and_shows_a_live_turn(tmp_path: Path) -> None:
    if not toolchain_ready():
        pytest.fail("the Node toolchain is missing: run `make node-setup`")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = _cell(nb, "parameters")
    injected = nbformat.v4.new_code_cell(
        f"SPEC_PATH = {str(ROOT / 'specs' / 'support_desk.agent')!r}\n"
        f"TOOLCHAIN = {str(TOOLCHAIN)!r}\nWORKDIR = {str(tmp_path / 'live')!r}",
        id="injected-parameters",
    )
    nb.cells.insert(nb.cells.index(params) + 1, injected)
    # After the notebook: read its variables back from the kernel.
    probe = nbformat.v4.new_code_cell(
        "import json, sys\nprint(json.dumps({'python': sys.executable, 'ok': checked.ok, 'verdict': verdict.decision,"
        " 'draft': draft.diagnostics.codes,"
        " 'turns': [[t.status, t.model, t.tier, t.input_tokens, t.output_tokens, t.cost_usd, t.output,"
        " [x['tool'] + ':' + x['outcome'] for x in t.tools]] for t in live.turns],"
        " 'persisted': pii.result.masked, 'running': live.running, 'pidfile': live.pidfile.exists()}))",
        id="probe",
    )
    nb.cells.append(probe)
    try:
        nb = execute(nb, NOTEBOOK.parent, cell_timeout=240)
    finally:
        _kill(tmp_path / "live" / "wrangler.pid")

    assert "checked 1 file: no problems" in _text(_cell(nb, "check"))
    assert "agent `support_desk` v3" in _text(_cell(nb, "check"))
    agent = _text(_cell(nb, "agent"), "text/html")
    assert "Who may call what" in agent and "billing.example.com" in agent
    assert "tools.allowlist" in _text(_cell(nb, "evaluate"))
    magic = _text(_cell(nb, "magic"))
    assert "error[E0102]: tool `lok` is not declared" in magic and "did you mean `look`?" in magic
    edit = _text(_cell(nb, "edit"))
    assert "error[E0102]: tool `lookup_ordr` is not declared" in edit
    assert edit.rstrip().endswith("checked 1 file: no problems")
    assert "policy/policy.json" in _text(_cell(nb, "files"))
    turn = _text(_cell(nb, "turn"))
    assert "model @cf/zai-org/glm-4.7-flash (tier low)" in turn
    assert "agent: Order A-100 is shipped." in turn
    assert "lookup_order  allow     tools.allow  ok" in turn
    chart = _cell(nb, "chart").outputs
    assert any("image/png" in o.get("data", {}) for o in chart), [
        (o.output_type, list(o.get("data", {}))) for o in chart
    ]
    assert "[email]" in _text(_cell(nb, "pii-result")) and "ann@example.com" not in _text(_cell(nb, "pii-result"))

    probe_out = json.loads(_text(nb.cells[-1]))
    assert probe_out["ok"] is True
    assert probe_out["verdict"] == "deny"
    assert probe_out["draft"] == ["E0102"]
    first, second = probe_out["turns"]
    assert first[:3] == [200, "@cf/zai-org/glm-4.7-flash", "low"]
    assert first[3] > 0 and first[4] > 0 and first[5] > 0  # tokens and cost come from the turn's trace
    assert first[6] == "Order A-100 is shipped." and first[7] == ["lookup_order:ok"]
    assert second[0] == 200 and second[7] == []  # no order named: no tool call
    assert probe_out["persisted"] == "I'm Ann ([email], [phone]), card [card]."
    assert probe_out["running"] is False and probe_out["pidfile"] is False  # the last cell stopped it
    assert probe_out["python"] == sys.executable  # the kernel is the venv's ipykernel, not another Python

    # A static export shows the chart with no network: the PNG is inside the HTML, not linked.
    from nbconvert import HTMLExporter

    html, _ = HTMLExporter(embed_images=True).from_notebook_node(nb)
    assert html.count("data:image/png;base64,") >= 1


def test_notebooks_are_stored_without_outputs() -> None:
    """Stored notebooks hold no outputs or execution counts, so a diff shows only what a person changed."""
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert NOTEBOOK in notebooks
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: cell `{cell.id}`"
