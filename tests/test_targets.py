"""The target boundary: `compile --target`, and the Cloudflare module as the one source of names and limits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agentspec.check import check
from agentspec.cli import main
from agentspec.load import load, load_text
from agentspec.targets import TARGETS, cloudflare

ROOT = Path(__file__).resolve().parent.parent


def _jsonc(text: str) -> dict:
    return json.loads("\n".join(line for line in text.splitlines() if not line.startswith("//")))


def test_compile_for_the_cloudflare_target_names_things_as_the_target_module_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    spec = str(ROOT / "specs" / "ops_agent.agent")
    assert main(["compile", spec, "-o", str(out), "--target", "cloudflare"]) == 0
    config = _jsonc((out / "wrangler.jsonc").read_text())
    resolved = check(load(spec)).spec
    assert resolved is not None
    tasks = [w.name for w in resolved.workflows if w.steps]
    assert tasks
    assert [w["name"] for w in config["workflows"]] == [
        cloudflare.workflow_resource_name(resolved.name, t) for t in tasks
    ]
    assert [w["binding"] for w in config["workflows"]] == [cloudflare.workflow_binding(t) for t in tasks]
    assert config["name"] == cloudflare.worker_name(resolved.name)
    assert config["compatibility_date"] == cloudflare.COMPATIBILITY_DATE


def test_an_unknown_target_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(ROOT / "specs" / "support_desk.agent")
    assert main(["compile", spec, "-o", str(tmp_path / "out"), "--target", "lambda"]) == 2
    assert "invalid choice: 'lambda'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert sorted(TARGETS) == ["cloudflare"]


_TASK = """\
agent a version 1 {{
  auth bearer secret T
  tenant header "x-tenant-id"
  model tier low {{ primary "@cf/zai-org/glm-4.7-flash" }}
  workflow {name} class task {{
    pii mask [email] before persist
    step wait_a_bit = sleep 1s
  }}
}}
"""


@pytest.mark.parametrize("extra", [0, 1])
def test_the_platform_pass_holds_workflow_names_to_the_target_limit(extra: int) -> None:
    name = "w" * (cloudflare.INSTANCE_ID_MAX - cloudflare.INSTANCE_ID_SUFFIX + extra)
    result = check(load_text(_TASK.format(name=name), "limit.agent"))
    assert [d.code for d in result.diagnostics] == (["E0603"] if extra else [])
    if not extra:
        # The longest accepted name still makes a valid instance id once the runtime adds `-` and 32 hex digits
        # (a UUID without its dashes, or a keyed id's sha256 prefix).
        instance = f"{name}-{'0' * 32}"
        assert len(instance) == cloudflare.INSTANCE_ID_MAX
        assert re.fullmatch(r"[a-zA-Z0-9_][a-zA-Z0-9-_]*", instance)
