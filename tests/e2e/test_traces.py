"""Decision records and per-turn traces, over HTTP against the running runtime, pulled and verified with
`agentspec trace pull` / `agentspec trace verify` exactly as an operator would."""

from __future__ import annotations

import json
import uuid
from itertools import pairwise
from pathlib import Path

import pytest

from agentspec.cli import main

from .conftest import ADMIN, Runtime
from .stubs import Cue, ToolAnswer

LOW = "@cf/test/low-primary"
HIGH = "@cf/test/high-primary"


def stub_usage(seen) -> tuple[int, int]:
    """The tokens the model stub reports for one request (see ModelStub._handle)."""
    prompt = 100 + sum(len(str(m.get("content") or "")) // 4 for m in seen.body["messages"])
    return prompt, 20


def pull(runtime: Runtime, sid: str, out: Path) -> dict:
    code = main(
        [
            "trace",
            "pull",
            "--url",
            runtime.url,
            "--session",
            sid,
            "--tenant",
            "acme",
            "--admin-token",
            ADMIN,
            "-o",
            str(out),
        ]
    )
    assert code == 0
    return json.loads(out.read_text())


def verify(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["trace", "verify", str(path)])
    return code, capsys.readouterr().out


def test_every_decision_is_recorded_chained_and_verifiable(
    playground: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = f"chain-{uuid.uuid4().hex[:8]}"
    playground.tools.answer("/v1/notes", ToolAnswer(body={"note_id": "c-1"}))
    playground.model.cue(
        LOW,
        Cue(tool_calls=[("write_note", {"note_id": "c-1", "text": "x"}), ("side_effect", {"effect_id": "e"})]),
        Cue(text="one"),
        Cue(text="two"),
        Cue(text="summary"),
        Cue(text="three"),
    )
    seen: list[dict] = []
    for text in ("first", "second", "third"):
        r = playground.turn(sid, "chat", text)
        assert r.status_code == 200, r.text
        seen += r.json()["decisions"]

    traces = pull(playground, sid, tmp_path / "traces.json")
    records = traces["records"]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))  # oldest first, none missing
    assert [(r["seq"], r["action"], r["decision"], r["rule"]) for r in records] == [
        (d["seq"], d["action"], d["decision"], d["rule"]) for d in seen
    ]
    assert {(r["action"], r["decision"], r["rule"]) for r in records} >= {
        ("tool.call:write_note", "allow", "tools.allow"),
        ("tool.result:write_note", "ok", "tool.ok"),
        ("tool.call:side_effect", "deny", "tools.allowlist"),
        ("checkpoint:SUMMARIES", "allow", "checkpoint.every"),
    }
    assert records[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in pairwise(records))
    code, out = verify(tmp_path / "traces.json", capsys)
    assert code == 0, out
    assert out.startswith(f"chain intact: {len(records)} records (seq 1 to {len(records)})")

    # An altered decision: the denial rewritten as an allow.
    denied = next(r for r in records if r["action"] == "tool.call:side_effect")
    altered = json.loads(json.dumps(traces))
    altered["records"][denied["seq"] - 1]["decision"] = "allow"
    (tmp_path / "altered.json").write_text(json.dumps(altered))
    code, out = verify(tmp_path / "altered.json", capsys)
    assert code == 1
    assert f"error: record seq {denied['seq']} was altered after it was written" in out
    assert f"records[{denied['seq'] - 1}], seq {denied['seq']}, field `decision`" in out

    # A removed record.
    removed = json.loads(json.dumps(traces))
    del removed["records"][2]
    (tmp_path / "removed.json").write_text(json.dumps(removed))
    code, out = verify(tmp_path / "removed.json", capsys)
    assert code == 1
    assert "error: record seq 3 is missing" in out and "between seq 2 and seq 4" in out

    # A reordered pair.
    swapped = json.loads(json.dumps(traces))
    swapped["records"][3], swapped["records"][4] = swapped["records"][4], swapped["records"][3]
    (tmp_path / "swapped.json").write_text(json.dumps(swapped))
    code, out = verify(tmp_path / "swapped.json", capsys)
    assert code == 1
    assert "error: records seq 5 and seq 4 are out of order" in out


def test_a_turn_trace_carries_its_metrics(playground: Runtime) -> None:
    sid = f"metrics-{uuid.uuid4().hex[:8]}"
    playground.model.cue(LOW, Cue(status=429))  # the primary is busy: the turn falls back
    playground.model.cue("@cf/test/low-fallback", Cue(text="from the fallback", cached_tokens=40))
    r = playground.turn(sid, "chat", "how much?")
    assert r.status_code == 200, r.text
    served = [s for s in playground.model.requests if s.body["model"] == "@cf/test/low-fallback"]
    assert len(served) == 1
    tokens_in, tokens_out = stub_usage(served[0])

    turn = playground.traces(sid)["turns"][-1]
    assert (turn["workflow"], turn["tenant"], turn["turn"], turn["trace_id"]) == (
        "chat",
        "acme",
        1,
        r.json()["trace_id"],
    )
    assert isinstance(turn["region"], str) and turn["region"]
    assert turn["gen_ai.operation.name"] == "chat"
    assert turn["gen_ai.request.model"] == LOW
    assert turn["gen_ai.response.model"] == "@cf/test/low-fallback" == r.json()["model"]
    assert turn["gen_ai.conversation.id"] == sid
    assert (turn["tier"], turn["model_family"], turn["prompt_family"]) == ("low", "low-fallback", "chat.turn")
    assert turn["gen_ai.usage.input_tokens"] == tokens_in
    assert turn["gen_ai.usage.output_tokens"] == tokens_out
    assert turn["gen_ai.usage.cache_read.input_tokens"] == 40
    # playground's tier low: price in 0.10 out 0.50 per Mtok.
    assert turn["cost_usd"] == pytest.approx((tokens_in * 0.10 + tokens_out * 0.50) / 1e6, rel=1e-12)
    assert 0 <= turn["ttft_ms"] <= turn["latency_ms"] < 10_000
    assert turn["retries"] == 1
    assert turn["retry_log"] == [
        {
            "kind": "model",
            "target": "@cf/test/low-fallback",
            "attempt": 2,
            "reason": f"{LOW}: 429",
            "replay_safe": True,
            "performed": True,
        }
    ]
    assert turn["decisions"] == r.json()["decisions"]
    assert [d["action"] for d in turn["decisions"]] == ["model.route:low", "model.fallback:@cf/test/low-fallback"]


def test_cost_uses_the_price_of_the_tier_that_served(playground: Runtime) -> None:
    sid = f"cost-{uuid.uuid4().hex[:8]}"
    r = playground.turn(sid, "payments", "wire status?")
    assert r.status_code == 200, r.text
    served = [s for s in playground.model.requests if s.body["model"] == HIGH]
    assert len(served) == 1
    tokens_in, tokens_out = stub_usage(served[0])
    turn = playground.traces(sid)["turns"][-1]
    assert (turn["tier"], turn["gen_ai.response.model"], turn["model_family"]) == ("high", HIGH, "high-primary")
    # playground's tier high: price in 1.00 out 4.00 per Mtok.
    assert turn["cost_usd"] == pytest.approx((tokens_in * 1.00 + tokens_out * 4.00) / 1e6, rel=1e-12)
    assert turn["retries"] == 0 and turn["retry_log"] == []
