"""Names after code generation: JavaScript's own keys refused everywhere, folded names kept apart.

The checker's choice for names the runtime keeps as plain-object keys is to refuse the members of
`Object.prototype` (E0614), so the list is asked of the runtime's own node, not copied by hand.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agentspec.check import check
from agentspec.load import load_text
from agentspec.passes.names import OBJECT_PROTOTYPE

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "codegen" / "cloudflare" / "node_modules" / ".bin" / "node"

SPEC = """\
agent refunds version 1 {{
  auth bearer secret API_TOKENS admin secret ADMIN_TOKEN
  tenant header "x-tenant-id"
  {stores}
  model tier high {{ primary "@cf/zai-org/glm-4.7-flash" clears risk high }}

  tool {tool} {{
    POST "https://billing.example.com/v1/refunds"
    risk high
    args {{ {arg}: string }}
    returns {{ {field}: string }}
    idempotency key "{{session}}:{{args.{arg}}}"
  }}

  workflow {workflow} class task {{
    route risk high -> tier high
    tools allow [{tool}]
    outbound allow ["billing.example.com"]
    pii mask [email] before persist
    step {step} = call {tool} with {{ {arg}: "{{params.{param}}}" }}
  }}
  {more}
}}
"""

PLAIN = {
    "tool": "issue_refund",
    "arg": "order_id",
    "field": "refund_id",
    "workflow": "refund_flow",
    "step": "refund",
    "param": "order_id",
    "stores": "",
    "more": "",
}


def _codes(**changes: str) -> list[str]:
    result = check(load_text(SPEC.format(**{**PLAIN, **changes}), "names.agent"))
    return [d.code for d in result.diagnostics]


@pytest.mark.skipif(not NODE.exists(), reason="the toolchain's node is not installed")
def test_the_refused_names_are_the_runtimes_object_prototype() -> None:
    out = subprocess.run(
        [str(NODE), "-e", "console.log(JSON.stringify(Object.getOwnPropertyNames(Object.prototype)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert set(json.loads(out.stdout)) == OBJECT_PROTOTYPE


def test_the_plain_spec_is_clean() -> None:
    assert _codes() == []


@pytest.mark.parametrize("where", ["tool", "arg", "field", "workflow", "step", "param"])
@pytest.mark.parametrize("name", ["constructor", "__proto__", "toString", "hasOwnProperty"])
def test_a_javascript_own_name_is_refused_wherever_it_stands(where: str, name: str) -> None:
    assert "E0614" in _codes(**{where: name})


def test_workflows_whose_classes_fold_to_one_collide() -> None:
    text = SPEC.format(**PLAIN)
    workflow = text[text.index("  workflow ") : text.index("  }\n", text.index("  workflow ")) + 4]
    twin = workflow.replace("refund_flow", "refundFlow")
    result = check(load_text(text.replace(workflow, workflow + twin), "twins.agent"))
    assert [d.code for d in result.diagnostics] == ["E0613"]
    assert "RefundFlowWorkflow" in result.diagnostics[0].message


@pytest.mark.parametrize(("store", "binding"), [("ai", "AI"), ("session", "SESSION"), ("api_tokens", "API_TOKENS")])
def test_a_store_may_not_take_a_runtime_binding_or_a_secret(store: str, binding: str) -> None:
    result = check(load_text(SPEC.format(**{**PLAIN, "stores": f"store kv {store}"}), "env.agent"))
    [d] = result.diagnostics
    assert d.code == "E0613" and f"`{binding}`" in d.message
