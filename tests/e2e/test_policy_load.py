"""A compiled project whose policy.json does not fit the schema stops at start, naming the field.

The tables are checked once, when the Worker's module loads (runtime/load.ts); a corrupted table
must keep `/healthz` from ever answering 200, and the log must say which field is wrong.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from agentspec.devserver import DevServerError

from .conftest import SPECS, Runtime
from .stubs import ModelStub, ToolStub

pytestmark = pytest.mark.slow


def test_malformed_policy_json_stops_the_worker_at_start(
    tmp_path: Path, model_stub: ModelStub, tool_stub: ToolStub
) -> None:
    runtime = Runtime(SPECS / "playground.agent", tmp_path, model_stub, tool_stub)
    tables_file = runtime.project / "policy" / "policy.json"
    tables = json.loads(tables_file.read_text())
    workflow = sorted(tables["workflows"])[0]
    tables["workflows"][workflow]["mode"] = "off"
    tables_file.write_text(json.dumps(tables, indent=2))
    try:
        with pytest.raises(DevServerError) as failed:
            runtime.server.start(timeout=90)
        if runtime.server.process is not None:  # still running, serving errors: /healthz never came up
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"{runtime.url}/healthz", timeout=5).raise_for_status()
    finally:
        runtime.stop()
        shutil.rmtree(runtime.project / ".wrangler", ignore_errors=True)
    log = runtime.log.read_text(errors="replace")
    expected = f'policy.json: workflows.{workflow}.mode: expected "enforce" | "shadow", got "off"'
    assert expected in log, str(failed.value)
