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

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from agentspec.check import check
from agentspec.load import load
from agentspec.policy import evaluate_tool_call, host_allowed, tables
from agentspec.urlhost import outbound_allowed

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


def fixture(generate: bool = True) -> dict:
    """The whole fixture; without `generate`, everything but the hypothesis-drawn requests."""
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
    if not generate:
        return {"policies": policies, "cases": cases, "hosts": host_cases}
    generated, requests = generated_requests()
    policies["generated"] = generated
    return {"policies": policies, "cases": cases, "hosts": host_cases, "requests": requests}


# ───────────── hypothesis-generated requests: odd hosts, ports, userinfo, IPv6 ─────────────

_label = st.text("abcxyzABCXYZ019-", min_size=1, max_size=6)
_dns = st.builds(lambda labels, dot: ".".join(labels) + dot, st.lists(_label, min_size=1, max_size=3),
                 st.sampled_from(["", "", "."]))  # fmt: skip
_ipv4 = st.one_of(
    st.builds(lambda a: ".".join(map(str, a)), st.lists(st.integers(0, 300), min_size=4, max_size=4)),
    st.sampled_from(["127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433", "127.0.0.1.", "1.2.3", "0x7F000001",
                     "10.0.0.256", "08.1.1.1", "a.1", "1.0x", "0x", "4294967296"]),
)  # fmt: skip
_ipv6 = st.sampled_from([
    "[::1]", "[0:0:0:0:0:0:0:1]", "[::0001]", "[::FFFF:1.2.3.4]", "[::ffff:102:304]", "[2001:DB8::1]",
    "[2001:db8:0:0:1:0:0:1]", "[2001:db8::1:0:0:1]", "[1::]", "[::]", "[1:2:3:4:5:6:7:8]", "[1:2:3:4:5:6:7:8:9]",
    "[::1::]", "[fe80::1]", "[2001:db8:0:0:0:0:2:1]",
])  # fmt: skip
_host = st.one_of(_dns, _ipv4, _ipv6, st.sampled_from(["api.example.com", "API.Example.COM", "localhost"]))
_port = st.one_of(st.just(""), st.sampled_from([":80", ":443", ":8080", ":08080", ":0", ":65535", ":65536", ":"]),
                  st.integers(1, 70000).map(lambda p: f":{p}"))  # fmt: skip
_userinfo = st.sampled_from(["", "", "", "user@", "user:pw@", ":@", "@", ":pw@", "user:@", "a@b@"])
_scheme = st.sampled_from(["https", "http", "HTTPS", "Http"])


@st.composite
def _request(draw: st.DrawFn) -> dict:
    host = draw(_host)
    port = draw(_port)
    url = f"{draw(_scheme)}://{draw(_userinfo)}{host}{port}{draw(st.sampled_from(['/', '/v1/{id}', '', '?q=1']))}"
    # Allowlist entries near the host: as written, canonical or not, with and without ports.
    entries = draw(st.lists(st.one_of(st.just(host), st.just(host + port), st.just(host.upper()), _host,
                                      st.builds(lambda h, p: h + p, _host, _port)), max_size=4))  # fmt: skip
    return {"url": url, "host": host + port, "outbound": entries, "listed": draw(st.booleans()),
            "mode": draw(st.sampled_from(["enforce", "shadow"]))}  # fmt: skip


def generated_requests(count: int = 1200) -> tuple[dict, list[dict]]:
    """`count` requests drawn by hypothesis (from a fixed seed), each its own tool and
    workflow in one policy: the tool's URL is the request's, the workflow's outbound entries are near it."""
    drawn: list[dict] = []

    @settings(max_examples=count, derandomize=False, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @seed(20261201)
    @given(_request())
    def collect(r: dict) -> None:
        drawn.append(r)

    collect()
    unique = list({json.dumps(r, sort_keys=True): r for r in drawn}.values())
    policy = synthetic_policy()
    policy["tools"], policy["workflows"] = {}, {}
    requests = []
    for i, r in enumerate(unique):
        tool, workflow = f"t{i}", f"w{i}"
        policy["tools"][tool] = _tool(r["url"], r["host"])
        policy["workflows"][workflow] = _workflow(r["mode"], [tool] if r["listed"] else [], r["outbound"])
        verdict = evaluate_tool_call(policy, workflow, tool)
        requests.append({"workflow": workflow, "tool": tool, "url": r["url"], "decision": verdict["decision"],
                         "rule": verdict["rule"], "guard": outbound_allowed(r["outbound"], r["url"])})  # fmt: skip
    return policy, requests


def test_python_evaluator_matches_the_shared_fixture() -> None:
    stored = json.loads(FIXTURE.read_text(encoding="utf-8"))
    generated = stored["policies"].pop("generated")
    requests = stored.pop("requests")
    assert json.loads(json.dumps(fixture(generate=False))) == stored, (
        "run `python tests/test_policy_parity.py`, review the diff"
    )
    # Which requests hypothesis draws depends on more than its seed (it also mines constants from the loaded
    # code), so the stored requests are the inputs, and the Python side must still decide each as stored.
    differ = []
    for r in requests:
        verdict = evaluate_tool_call(generated, r["workflow"], r["tool"])
        guard = outbound_allowed(generated["workflows"][r["workflow"]]["outbound"], r["url"])
        assert generated["tools"][r["tool"]]["url"] == r["url"]
        if (verdict["decision"], verdict["rule"], guard) != (r["decision"], r["rule"], r["guard"]):
            differ.append(r["url"])
    assert differ == []


def test_fixture_has_over_1000_generated_requests_of_every_kind() -> None:
    stored = json.loads(FIXTURE.read_text(encoding="utf-8"))
    requests = stored["requests"]
    assert len(requests) >= 1000
    urls = [r["url"] for r in requests]
    assert any("[" in u for u in urls) and any("@" in u for u in urls) and any(":0" in u for u in urls)
    assert {r["decision"] for r in requests} == {"allow", "deny", "shadow_deny"}
    assert {r["guard"] for r in requests} == {True, False}


@settings(max_examples=300)
@given(_request())
def test_the_guard_never_passes_what_the_policy_would_not_allow(r: dict) -> None:
    # With the tool listed and its own URL checked, the guard's host test and the policy's agree.
    if outbound_allowed(r["outbound"], r["url"]):
        assert host_allowed(r["outbound"], r["url"])


def test_an_ipv6_tool_host_keeps_its_brackets() -> None:
    from agentspec.load import load_text

    text = """
agent v6 version 1 {
  owner "tests"
  auth bearer secret API_TOKENS
  tenant header "x-tenant-id"
  model tier low { primary "@cf/test/m" }
  tool local { GET "http://[::1]:9000/x" risk low read_only }
  workflow w class c {
    route risk low -> tier low
    tools allow [local]
    outbound allow ["[::1]:9000"]
    policy enforce
    pii mask [email] before persist
  }
}
"""
    result = check(load_text(text, "v6.agent"))
    assert result.spec is not None, [d.message for d in result.diagnostics]
    policy = tables(result.spec)
    assert policy["tools"]["local"]["host"] == "[::1]:9000"
    assert evaluate_tool_call(policy, "w", "local")["decision"] == "allow"


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
