"""notebooks/02-simulate.ipynb runs top to bottom in the venv's kernel, its tagged cells show what they claim,
and its static HTML export is self-contained (no network)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from tests.notebook_run import execute

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "02-simulate.ipynb"


@pytest.fixture(scope="module")
def executed() -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return execute(nb, NOTEBOOK.parent)


def _cell(nb: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if tag in c.get("metadata", {}).get("tags", []))


def _text(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _pngs(cell: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.outputs)


def test_the_stored_notebook_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_the_baseline_prints_every_workflow(executed: nbformat.NotebookNode) -> None:
    text = _text(_cell(executed, "baseline"))
    assert re.search(r"orders\s+turns\s+[\d,]+\s+p95\s+[\d.]+ ms", text), text
    assert "refunds" in text


def test_the_plots_are_pngs(executed: nbformat.NotebookNode) -> None:
    for tag in ("verdict-plot", "latency-plot", "compare"):
        assert _pngs(_cell(executed, tag)) == 1, tag


def test_the_two_versions_are_compared(executed: nbformat.NotebookNode) -> None:
    text = _text(_cell(executed, "compare"))
    costs = ast.literal_eval(text.strip().splitlines()[-1])
    assert set(costs) == {"support_desk v3", "support_desk v4"}
    # The candidate checkpoints `orders` twice as often: a different cost per turn.
    assert costs["support_desk v3"]["orders"] != costs["support_desk v4"]["orders"]


def test_run_re_simulates_with_the_widgets_values(executed: nbformat.NotebookNode) -> None:
    widgets = _cell(executed, "widgets")
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in widgets.outputs)
    hit = ast.literal_eval(_text(_cell(executed, "rerun")).strip().splitlines()[-1])
    assert hit["with affinity"] > hit["without"] + 20


def test_the_html_export_is_self_contained(executed: nbformat.NotebookNode) -> None:
    from agentspec.sim.export import html as export_html

    html = export_html(executed)
    assert html.count('src="data:image/png;base64,') >= 3
    external = re.findall(r"""(?:src|href)\s*=\s*["']?((?:[a-z]+:)?//[^"'\s>]+)""", html, re.IGNORECASE)
    assert external == [], external[:5]
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", html), "a stylesheet fetches from the network"
