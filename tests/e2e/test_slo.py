"""SLO monitoring end to end: turns feed the workflow's monitor object, which keeps a rolling window of
SLIs in its SQLite and fires the declared alert once per crossing, as a POST to the workflow's webhook
(the ToolStub here) and as an `alert:<sli>` record in the chain of the session whose turn crossed it.

Each scenario runs on its own workflow of specs/slo.agent, so each starts from an empty window.
"""

from __future__ import annotations

from .conftest import Runtime
from .stubs import Cue, ModelStub, ToolStub

MODEL = "@cf/test/slo-primary"
HOOK = "/hooks/slo"


def _turns(rt: Runtime, workflow: str, prefix: str, count: int, start: int = 0) -> list[dict]:
    """`count` turns of `workflow`, one fresh session each (so every prompt is the same size)."""
    out = []
    for i in range(start, start + count):
        r = rt.turn(f"{prefix}-{i}", workflow, "hello there")
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


def _alerts(bodies: list[dict]) -> list[tuple[str, dict]]:
    return [(b["session_id"], d) for b in bodies for d in b["decisions"] if d["action"].startswith("alert:")]


def test_cache_hit_drop_fires_once(slo_watch: Runtime, model_stub: ModelStub, tool_stub: ToolStub) -> None:
    model_stub.cached_tokens = 100  # of ~127 prompt tokens: a ~79% baseline
    baseline = _turns(slo_watch, "cache", "cache", 20)
    assert _alerts(baseline) == []
    assert tool_stub.calls(HOOK) == []

    model_stub.cached_tokens = 20  # ~16%: a drop of ~80% of the baseline once the recent samples are all low
    dropped = _turns(slo_watch, "cache", "cache", 10, start=20)
    alerts = _alerts(dropped)
    assert [d["action"] for _, d in alerts] == ["alert:cache_hit_drop"], alerts
    session, decision = alerts[0]
    assert decision["decision"] == "alert"
    assert decision["rule"] == "slo.cache_hit_drop"
    # it fires while the recent 10 samples still mix high and low, long before they are all low
    assert session in {f"cache-{i}" for i in range(21, 25)}, session

    hooks = tool_stub.calls(HOOK)
    assert len(hooks) == 1, [h.body for h in hooks]
    body = hooks[0].body
    assert hooks[0].method == "POST"
    assert body["type"] == "agentspec.slo_alert"
    assert (body["agent"], body["workflow"], body["sli"]) == ("slo_watch", "cache", "cache_hit_drop")
    assert body["bound"] == 20 and body["value"] >= 20
    assert body["detail"]["baseline_pct"] > 70 > body["detail"]["current_pct"]
    assert body["spec_hash"].startswith("sha256:")

    records = slo_watch.traces(session)["records"]
    alert_records = [r for r in records if r["action"] == "alert:cache_hit_drop"]
    assert len(alert_records) == 1
    assert alert_records[0]["decision"] == "alert" and alert_records[0]["workflow"] == "cache"


def test_latency_slo_crossed_by_stalled_answers(slo_watch: Runtime, model_stub: ModelStub, tool_stub: ToolStub) -> None:
    fast = _turns(slo_watch, "slow", "slow", 5)  # the fifth sample makes the window judgeable: within
    assert _alerts(fast) == []

    model_stub.cue(MODEL, Cue(text="finally", stall=1.2))
    stalled = _turns(slo_watch, "slow", "slow", 2, start=5)
    alerts = _alerts(stalled)
    assert [(s, d["action"], d["decision"]) for s, d in alerts] == [("slow-5", "alert:latency", "alert")]

    hooks = tool_stub.calls(HOOK)
    assert len(hooks) == 1  # the second stalled turn keeps it crossed: no re-fire
    body = hooks[0].body
    assert (body["workflow"], body["sli"], body["unit"]) == ("slow", "latency", "ms")
    assert body["bound"] == 1000 and body["value"] >= 1200
    assert body["detail"] == {"percentile": "p95"}
    assert any(r["action"] == "alert:latency" for r in slo_watch.traces("slow-5")["records"])


def test_healthy_traffic_never_alerts(slo_watch: Runtime, model_stub: ModelStub, tool_stub: ToolStub) -> None:
    model_stub.cached_tokens = 10_000  # capped at the prompt: every input token cached
    bodies = _turns(slo_watch, "steady", "steady", 25)
    assert _alerts(bodies) == []
    assert tool_stub.calls(HOOK) == []
    for i in (4, 24):
        assert not [r for r in slo_watch.traces(f"steady-{i}")["records"] if r["action"].startswith("alert:")]
