"""Tier routing, the model fallback chain and session affinity, over HTTP against the running runtime.

The playground spec has two tiers, each with `timeout 3s`:
  low  = low-primary, low-fallback, low-last   (workflows `chat`, `watch`)
  high = high-primary, high-fallback           (workflow `payments`)
What the model stub received (its `model` field, its headers) is the evidence of where a turn went.

Fallback policy of the runtime (inference.ts): 429, 408, 5xx, a stall past the tier timeout, a network
error or a malformed answer moves on to the next model; any other 4xx ends the chain (the request itself
is wrong, so another model would refuse it too) and the turn answers 503 `models_unavailable`.
"""

from __future__ import annotations

import time
import uuid

from .conftest import Runtime
from .stubs import Cue, ModelStub

LOW = ["@cf/test/low-primary", "@cf/test/low-fallback", "@cf/test/low-last"]
HIGH = ["@cf/test/high-primary", "@cf/test/high-fallback"]


def sid(prefix: str = "route") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def models_called(stub: ModelStub) -> list[str]:
    return [r.body["model"] for r in stub.requests if r.path.endswith("/chat/completions")]


def model_retries(trace: dict) -> int:
    """How many model fallbacks a turn's trace record counts (a number, or a list of retry records)."""
    retries = trace["retries"]
    if isinstance(retries, int):
        return retries
    return len([r for r in retries if r.get("kind") == "model"])


def rules(decisions: list[dict]) -> list[str]:
    return [d["rule"] for d in decisions]


def assert_recorded(runtime: Runtime, session: str, decisions: list[dict], rule: str) -> dict:
    """The decision with `rule` in the response is the same record (seq, action, decision) in /v1/traces."""
    mine = [d for d in decisions if d["rule"] == rule]
    assert len(mine) == 1, decisions
    records = {r["seq"]: r for r in runtime.traces(session)["records"]}
    stored = records[mine[0]["seq"]]
    assert (stored["rule"], stored["action"], stored["decision"]) == (rule, mine[0]["action"], mine[0]["decision"])
    assert stored["session"] == session and stored["tenant"] == "acme"
    return stored


# ── routing ──────────────────────────────────────────────────────────────────


def test_low_risk_workflow_runs_on_the_low_tier_primary(playground: Runtime) -> None:
    s = sid()
    r = playground.turn(s, "chat", "where is my order?")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == LOW[0]
    assert body["output"] == f"reply from {LOW[0]}"
    assert models_called(playground.model) == [LOW[0]]
    route = [d for d in body["decisions"] if d["action"].startswith("model.route:")]
    assert [d["action"] for d in route] == ["model.route:low"]
    assert "model.fallback" not in rules(body["decisions"])


def test_high_risk_workflow_runs_on_the_high_tier_primary(playground: Runtime) -> None:
    s = sid()
    r = playground.turn(s, "payments", "send the wire")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == HIGH[0]
    assert models_called(playground.model) == [HIGH[0]]
    assert [d["rule"] for d in body["decisions"] if d["action"] == "model.route:high"] == ["route.risk.high"]


# ── fallback ─────────────────────────────────────────────────────────────────


def _falls_back(runtime: Runtime, workflow: str, tier: list[str], cue: Cue) -> tuple[dict, float, str]:
    runtime.model.cue(tier[0], cue)
    s = sid("fb")
    started = time.monotonic()
    r = runtime.turn(s, workflow, "hello")
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == tier[1]
    assert body["output"] == f"reply from {tier[1]}"
    assert models_called(runtime.model) == tier[:2]
    assert rules(body["decisions"]).count("model.fallback") == 1
    stored = assert_recorded(runtime, s, body["decisions"], "model.fallback")
    assert stored["action"] == f"model.fallback:{tier[1]}"
    assert stored["decision"] == "allow"
    trace = runtime.traces(s)["turns"]
    assert [t["turn"] for t in trace] == [1]
    # The model that answered (OpenTelemetry's gen_ai.response.model; older traces kept it in request.model).
    assert trace[0].get("gen_ai.response.model", trace[0].get("gen_ai.request.model")) == tier[1]
    assert model_retries(trace[0]) == 1
    return body, elapsed, s


def test_primary_500_falls_back_to_the_next_model(playground: Runtime) -> None:
    _falls_back(playground, "chat", LOW, Cue(status=500))


def test_primary_429_falls_back_to_the_next_model(playground: Runtime) -> None:
    _falls_back(playground, "chat", LOW, Cue(status=429))


def test_primary_408_falls_back_to_the_next_model(playground: Runtime) -> None:
    _falls_back(playground, "watch", LOW, Cue(status=408))


def test_high_tier_primary_503_falls_back_within_the_high_tier(playground: Runtime) -> None:
    _falls_back(playground, "payments", HIGH, Cue(status=503))


def test_primary_stalling_past_the_tier_timeout_falls_back(playground: Runtime) -> None:
    # The stub holds its answer 5 s; the tier gives each model 3 s.
    _, elapsed, _ = _falls_back(playground, "chat", LOW, Cue(text="too late", stall=5.0))
    assert 2.8 <= elapsed < 4.9, elapsed


def test_a_slow_primary_within_the_timeout_is_not_a_fallback(playground: Runtime) -> None:
    playground.model.cue(LOW[0], Cue(text="slow but fine", stall=1.0))
    r = playground.turn(sid(), "watch", "hello")
    assert r.status_code == 200, r.text
    assert r.json()["model"] == LOW[0]
    assert r.json()["output"] == "slow but fine"
    assert models_called(playground.model) == [LOW[0]]
    assert "model.fallback" not in rules(r.json()["decisions"])


def test_fallback_walks_the_whole_chain_in_order(playground: Runtime) -> None:
    playground.model.cue(LOW[0], Cue(status=500))
    playground.model.cue(LOW[1], Cue(status=429))
    s = sid()
    r = playground.turn(s, "watch", "hello")
    assert r.status_code == 200, r.text
    assert r.json()["model"] == LOW[2]
    assert models_called(playground.model) == LOW
    stored = assert_recorded(playground, s, r.json()["decisions"], "model.fallback")
    assert stored["action"] == f"model.fallback:{LOW[2]}"
    assert model_retries(playground.traces(s)["turns"][0]) == 2


def test_every_model_down_is_503_with_a_decision_record(playground: Runtime) -> None:
    for model in LOW:
        playground.model.cue(model, Cue(status=500))
    s = sid("down")
    r = playground.turn(s, "chat", "anyone there?")
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"]["code"] == "models_unavailable"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert models_called(playground.model) == LOW
    stored = assert_recorded(playground, s, body["decisions"], "model.unavailable")
    assert stored["decision"] == "deny"
    # A failed turn is not a turn: no trace record, and the next turn is number 1.
    assert playground.traces(s)["turns"] == []
    playground.model.reset()
    again = playground.turn(s, "chat", "now?")
    assert again.status_code == 200, again.text
    assert again.json()["turn"] == 1


def test_a_non_retryable_4xx_ends_the_chain(playground: Runtime) -> None:
    # 400 means the request itself is wrong: the fallbacks would refuse it too, so they are not tried.
    playground.model.cue(LOW[0], Cue(status=400))
    s = sid("4xx")
    r = playground.turn(s, "chat", "hello")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "models_unavailable"
    assert models_called(playground.model) == [LOW[0]]
    assert_recorded(playground, s, r.json()["decisions"], "model.unavailable")
    assert "model.fallback" not in rules(r.json()["decisions"])


# ── session affinity ─────────────────────────────────────────────────────────


def test_affinity_defaults_to_the_session_id_on_every_attempt(playground: Runtime) -> None:
    playground.model.cue(LOW[0], Cue(status=500))
    s = sid("aff")
    r = playground.turn(s, "chat", "hello")
    assert r.status_code == 200, r.text
    seen = [q.headers.get("x-session-affinity") for q in playground.model.requests]
    assert seen == [s, s]


def test_affinity_header_from_the_request_is_forwarded(playground: Runtime) -> None:
    s = sid("aff")
    r = playground.turn(s, "payments", "hello", headers={"x-session-affinity": "customer-42"})
    assert r.status_code == 200, r.text
    assert [q.headers.get("x-session-affinity") for q in playground.model.requests] == ["customer-42"]


def test_an_empty_affinity_header_falls_back_to_the_session_id(playground: Runtime) -> None:
    s = sid("aff")
    r = playground.turn(s, "watch", "hello", headers={"x-session-affinity": ""})
    assert r.status_code == 200, r.text
    assert [q.headers.get("x-session-affinity") for q in playground.model.requests] == [s]
