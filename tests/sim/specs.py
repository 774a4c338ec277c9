"""Small specs for the simulator's tests, written as text so each test states what it depends on."""

from __future__ import annotations

from agentspec import model as m
from agentspec.check import check
from agentspec.load import load_text


def spec(
    models: list[str] | None = None,
    *,
    timeout: str = "60s",
    price: str = "",
    slo: str = "",
    steps: str = "",
    tools: str = "",
    allow: str = "",
    outbound: str = '"api.example.com"',
    checkpoint: str = "",
) -> m.RSpec:
    """One agent, one tier, one workflow `w`; the parts a test varies are arguments."""
    models = models or ["@cf/test/only"]
    chain = f'primary "{models[0]}"' + (" fallback " + " ".join(f'"{x}"' for x in models[1:]) if models[1:] else "")
    text = f"""
agent simtest version 1 {{
  owner "tests"
  auth bearer secret API_TOKENS
  tenant header "x-tenant-id"
  store kv summaries
  model tier low {{
    {chain}
    timeout {timeout}
    {price}
  }}
  {tools}
  workflow w class c {{
    route risk low -> tier low
    tools allow [{allow}]
    outbound allow [{outbound}]
    policy enforce
    {checkpoint}
    pii mask [email] before persist
    {steps}
    {"slo { " + slo + " }" if slo else ""}
  }}
}}
"""
    result = check(load_text(text, "simtest.agent"))
    assert result.spec is not None, [d.message for d in result.diagnostics]
    return result.spec
