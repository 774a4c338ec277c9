"""notebooks/04-operations.ipynb executed with nbclient over a synthetic export: it is stored without outputs, runs
without error, and what its cells print are the export's figures."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

from agentspec.report.synthetic import generate  # noqa: E402
from tests.notebook_run import execute  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04-operations.ipynb"


def test_the_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_the_notebook_shows_the_exports_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = tmp_path / "export"
    generate(export, 600, seed=9)
    monkeypatch.setenv("AGENTSPEC_EXPORT", str(export))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits this process's environment, AGENTSPEC_EXPORT included.
    nb = execute(nb, Path.cwd(), cell_timeout=180)
    out = {
        i: "".join(o.get("text", "") for o in c.outputs if o.output_type == "stream")
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
    }
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []

    traces = [json.loads(line) for p in sorted(export.glob("traces/*/*/*.ndjson")) for line in p.open()]
    sessions = {(t["tenant"], t["session"]) for t in traces}
    text = "\n".join(out.values())
    assert f"{len(traces)} turns, {len(sessions)} sessions" in text
    assert "chains: " in text and "0 broken, 0 not verifiable" in text
    # The review itself is displayed as HTML.
    html = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "text/html" in o.get("data", {})]
    assert html and 'id="agentspec-figures"' in html[0]["data"]["text/html"]
    # The printed drill-down slice for the first tenant: turns and nearest-rank p95 per workflow.
    tenant = sorted({t["tenant"] for t in traces})[0]
    by_wf: dict[str, list[int]] = defaultdict(list)
    for t in traces:
        if t["tenant"] == tenant:
            by_wf[t["workflow"]].append(t["data"]["latency_ms"])
    for wf, lat in by_wf.items():
        p95 = sorted(lat)[max(1, math.ceil(0.95 * len(lat))) - 1]
        assert f"{tenant:10s} {wf:10s} turns={len(lat):5d} p95={p95:6.0f} ms" in text
