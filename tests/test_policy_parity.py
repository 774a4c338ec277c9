"""The Python evaluator of the policy tables decides exactly as the runtime's does.

`codegen/cloudflare/runtime/test/parity.json` holds policy tables and (workflow, tool) cases with the
decision each must get. This test checks the Python evaluator against it; `parity.test.ts` checks the
TypeScript evaluator, inside workerd, against the same file. `python tests/test_policy_parity.py`
rewrites the file from the Python evaluator (then read the diff, and run both sides).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agentspec.check import check
from agentspec.load import load
from agentspec.policy import evaluate_tool_call, host_allowed, tables

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "codegen" / "cloudflare" / "runtime" / "test" / "parity.json"


def _tool(url: str, host: str, risk: str = "low", read_only: bool = True) -> dict:
    return {
        "method": "GET", "url": url, "host": host, "risk": risk, "read_only": read_only, "idempotency_key": None,
        "timeout_ms": 1000, "identity": None, "secrets": [], "headers": {}, "compensate": None, "args": {},
        "returns": None,
    }  # fmt: skip


def _workflow(mode: str, tools: list[str], outbound: list[str]) -> dict:
    return {
        "class": "c", "mode": mode, "turn_risk": "low", "turn_tier": "t", "routes": {}, "tools": tools,
        "outbound": outbound, "affinity": {"header": "x-session-affinity", "ttl_ms": 1}, "checkpoint": None,
        "pii": {"classes": [], "patterns": {}}, "steps": [], "task_binding": None, "slo": {},
    }  # fmt: skip


def synthetic_policy() -> dict:
    """Hosts with ports, case, IPv6 and default ports, in both modes: where evaluators tend to differ."""
    tools = {
        "plain": _tool("https://api.example.com/v1/{id}", "api.example.com"),
        "upper": _tool("https://API.Example.com/v1", "api.example.com"),
        "ported": _tool("http://127.0.0.1:8787/x", "127.0.0.1:8787"),
        "default_port": _tool("https://pay.example.com/v1", "pay.example.com"),
        "ipv6": _tool("http://[::1]:9000/v1", "[::1]:9000"),
        "other": _tool("https://evil.example.net/", "evil.example.net"),
        # Shadow mode lets a would-be denial run only for a read-only tool within the turn tier's clearance.
        "writer": _tool("https://api.example.com/w", "api.example.com", read_only=False),
        "cleared": _tool("https://api.example.com/m", "api.example.com", risk="medium"),
        "risky": _tool("https://api.example.com/h", "api.example.com", risk="high"),
    }
    everything = list(tools)
    outbound = ["API.example.com", "127.0.0.1:8787", "pay.example.com:443", "[::1]:9000", "sub.example.com"]
    return {
        "format": 1, "spec_hash": "sha256:parity", "compiler": "agentspec", "identities": {},
        "tiers": {"t": {"models": ["m"], "timeout_ms": 1, "clearance": "medium", "price": None}},
        "agent": {"name": "parity", "version": 1, "owner": None},
        "auth": {"scheme": "bearer", "tokens_secret": "T", "admin_secret": None, "tenant_header": "x-tenant-id"},
        "limits": {"max_body_bytes": 1, "max_session_id": 1},
        "tools": tools,
        "workflows": {
            "strict": _workflow("enforce", everything, outbound),
            "watching": _workflow("shadow", everything, outbound),
            "narrow": _workflow("enforce", ["plain"], ["api.example.com:8443"]),
            "narrow_shadow": _workflow("shadow", ["plain"], []),
            "tierless_shadow": {**_workflow("shadow", ["plain"], ["api.example.com"]), "turn_tier": "missing"},
        },
    }  # fmt: skip


def fixture() -> dict:
    policies = {"synthetic": synthetic_policy()}
    for name in ("support_desk", "ops_agent", "research_assistant"):
        result = check(load(str(ROOT / "specs" / f"{name}.agent")))
        assert result.spec is not None
        policies[name] = tables(result.spec)
    cases = []
    for label, policy in policies.items():
        tools = [*policy["tools"], "no_such_tool"]
        for workflow in [*policy["workflows"], "no_such_workflow"]:
            for tool in tools:
                verdict = evaluate_tool_call(policy, workflow, tool)
                cases.append({"policy": label, "workflow": workflow, "tool": tool,
                              "decision": verdict["decision"], "rule": verdict["rule"]})  # fmt: skip
    hosts = [
        (["a.com"], "https://A.com/x", True), (["a.com:443"], "https://a.com/x", True),
        (["a.com:8443"], "https://a.com/x", False), (["a.com"], "http://a.com:8080/", True),
        (["127.0.0.1:8787"], "http://127.0.0.1:8788/", False), (["b.a.com"], "https://a.com/", False),
        (["[::1]:8787"], "http://[::1]:8787/", True), (["a.com:80"], "http://a.com/", True),
    ]  # fmt: skip
    host_cases = [{"allowed": a, "url": u, "expected": host_allowed(a, u)} for a, u, _ in hosts]
    assert [c["expected"] for c in host_cases] == [e for _, _, e in hosts]
    return {"policies": policies, "cases": cases, "hosts": host_cases}


def test_python_evaluator_matches_the_shared_fixture() -> None:
    stored = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert json.loads(json.dumps(fixture())) == stored, "run `python tests/test_policy_parity.py`, review the diff"


def test_fixture_covers_every_rule() -> None:
    stored = json.loads(FIXTURE.read_text(encoding="utf-8"))
    seen = {(c["decision"], c["rule"]) for c in stored["cases"]}
    assert seen >= {
        ("allow", "tools.allow"),
        ("deny", "tools.allowlist"),
        ("shadow_deny", "tools.allowlist"),
        ("deny", "outbound.allowlist"),
        ("shadow_deny", "outbound.allowlist"),
        ("deny", "tools.unknown"),
        ("deny", "workflow.unknown"),
        ("deny", "shadow.not_read_only"),
        ("deny", "shadow.over_clearance"),
    }


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(fixture(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE.relative_to(ROOT)}", file=sys.stderr)
