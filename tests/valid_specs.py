"""Hypothesis strategies for *valid* specs: drawn choices in, the text of an agent the checker should accept out.

Names are adversarial within what the grammar allows: the language's own keywords (contextual),
JavaScript keywords and near-misses of `Object.prototype` members (`constructor_`, `__proto__x`),
case variants, a lone `_`, and names as long as the platform's limits allow. Values sit at their
edges (`1ms` timeouts, `retry 0`, zero-token SLOs). The property tests keep only the drawn specs
the checker accepts, and require those to build.
"""

from __future__ import annotations

from hypothesis import strategies as st

from agentspec.targets import cloudflare
from tests.strategies import KEYWORDS

JS_WORDS = ["then", "default", "class", "function", "delete", "new", "length", "name", "prototype", "arguments"]
NEAR_MISSES = ["constructor_", "__proto__x", "toString2", "valueOf_", "hasOwnProperty_", "_", "__", "A", "a1"]
_NAME = st.one_of(
    st.sampled_from([*KEYWORDS, *JS_WORDS, *NEAR_MISSES]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,14}", fullmatch=True),
)
# A workflow name, prefixed by a worker name, stays within Cloudflare's 64 characters.
_LONG = st.integers(1, cloudflare.WORKFLOW_NAME_MAX - 8).map(lambda n: "w" * n)


def _distinct(names: list[str]) -> list[str]:
    """Names made distinct after case folding, since generated bindings and classes fold case."""
    out: list[str] = []
    for name in names:
        candidate = name
        while any(candidate.lower().replace("_", "") == o.lower().replace("_", "") for o in out):
            candidate += "x"
        out.append(candidate)
    return out


@st.composite
def valid_specs(draw: st.DrawFn) -> str:
    agent = draw(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True))
    tool_names = _distinct(draw(st.lists(_NAME, min_size=1, max_size=3)))
    arg_names = _distinct(draw(st.lists(_NAME, min_size=1, max_size=3)))
    field = draw(_NAME)
    tools = []
    for i, tool in enumerate(tool_names):
        writes = draw(st.booleans())
        arg_block = ", ".join(f"{a}: string" for a in arg_names)
        key = f'idempotency key "{{session}}:{{args.{arg_names[0]}}}"' if writes else "read_only"
        method = draw(st.sampled_from(["POST", "PUT", "PATCH", "DELETE"])) if writes else "GET"
        timeout = draw(st.sampled_from(["1ms", "2s", "10m"]))
        tools.append(
            f'  tool {tool} {{\n    {method} "https://api{i}.example.com/v1/{{{arg_names[0]}}}"\n'
            f"    risk {draw(st.sampled_from(['low', 'medium', 'high']))}\n    {key}\n"
            f"    timeout {timeout}\n    args {{ {arg_block} }}\n    returns {{ {field}: string }}\n  }}\n"
        )
    workflow = draw(st.one_of(_NAME, _LONG))
    if len(cloudflare.workflow_resource_name(agent, workflow)) > cloudflare.WORKFLOW_NAME_MAX:
        workflow = workflow[: cloudflare.WORKFLOW_NAME_MAX - len(cloudflare.worker_name(agent)) - 1]
    workflow = workflow[: cloudflare.INSTANCE_ID_MAX - cloudflare.INSTANCE_ID_SUFFIX] or "w"
    step_names = _distinct(draw(st.lists(_NAME.filter(lambda n: n != "params"), min_size=1, max_size=3)))
    steps = []
    for j, step in enumerate(step_names):
        kind = draw(st.sampled_from(["call", "infer", "sleep", "wait"]))
        tool = tool_names[j % len(tool_names)]
        if kind == "call":
            args = ", ".join(f'{a}: "{{params.{a}}}"' for a in arg_names)
            retry = draw(st.integers(0, 5))
            steps.append(f"    step {step} = call {tool} with {{ {args} }} retry {retry} backoff linear 1ms timeout 5s")
        elif kind == "infer":
            steps.append(f'    step {step} = infer tier top "about {{params.{arg_names[0]}}}"')
        elif kind == "sleep":
            steps.append(f"    step {step} = sleep {draw(st.sampled_from(['1ms', '1s', '365d']))}")
        else:
            event = draw(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True))
            steps.append(f'    step {step} = wait event "{event}" timeout 1h')
    hosts = ", ".join(f'"api{i}.example.com"' for i in range(len(tool_names)))
    return (
        f"agent {agent} version {draw(st.integers(1, 99))} {{\n"
        '  auth bearer secret API_TOKENS admin secret ADMIN_TOKEN\n  tenant header "x-tenant-id"\n'
        f"  store kv {draw(_NAME)}\n"
        '  model tier top {\n    primary "@cf/zai-org/glm-4.7-flash"\n    clears risk high\n  }\n'
        + "".join(tools)
        + f"  workflow {workflow} class task {{\n    route risk low -> tier top\n"
        f"    tools allow [{', '.join(tool_names)}]\n    outbound allow [{hosts}]\n"
        f"    policy {draw(st.sampled_from(['enforce', 'shadow']))}\n    pii mask [email, card] before persist\n"
        + "\n".join(steps)
        + "\n  }\n}\n"
    )
