"""A synthetic fleet export, for tests and benchmarks: a seed and a size in, an export directory out, laid out and
shaped exactly as the runtime writes it (export.ts), with valid hash chains per session.

Sessions of a few turns each are spread over workflows, tenants, regions and models; some turns fall back to a
second model, some tool calls are denied or retried. Deterministic for a seed.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentspec.trace.schema import GENESIS_HASH, decision_id
from agentspec.trace.verify import record_hash

WORKFLOWS = ("orders", "refunds", "returns")
TENANTS = ("acme", "globex", "initech", "umbrella")
REGIONS = ("AMS", "DFW", "FRA", "SIN")
MODELS = ("@cf/zai-org/glm-4.7-flash", "@cf/google/gemma-4-26b-a4b-it", "@cf/moonshotai/kimi-k2.6")
FAMILIES = {
    "@cf/zai-org/glm-4.7-flash": "glm",
    "@cf/google/gemma-4-26b-a4b-it": "gemma",
    "@cf/moonshotai/kimi-k2.6": "kimi",
}


def _event(kind: str, id_: str, ts: str, workflow: str, tenant: str, session: str, seq: int, data: Any) -> str:
    return json.dumps(
        {
            "schema": 1,
            "kind": kind,
            "id": id_,
            "ts": ts,
            "workflow": workflow,
            "tenant": tenant,
            "session": session,
            "seq": seq,
            "data": data,
        },
        separators=(",", ":"),
    )


def _session(rng: random.Random, n: int, start: datetime, turns: int) -> Iterator[tuple[str, str, str, str]]:
    """(kind, workflow, dt, line) for every event of one session."""
    workflow, tenant = rng.choice(WORKFLOWS), rng.choice(TENANTS)
    session, region = f"s-{n}", rng.choice(REGIONS)
    prev = GENESIS_HASH
    seq = 0
    for turn in range(1, turns + 1):
        at = start + timedelta(seconds=turn * 7)
        ts = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        dt = ts[:10]
        served = region if rng.random() > 0.05 else rng.choice(REGIONS)
        fallback = rng.random() < 0.04
        model = MODELS[1] if fallback else MODELS[0]
        decisions = [("model.route:low", "allow", "route.risk.low")]
        if fallback:
            decisions.append((f"model.fallback:{model}", "allow", "model.fallback"))
        tools = []
        if rng.random() < 0.3:
            denied = rng.random() < 0.1
            attempts = 2 if not denied and rng.random() < 0.1 else 1
            ok = not denied and rng.random() > 0.05
            decisions.append(
                (
                    "tool.call:lookup_order",
                    "deny" if denied else "allow",
                    "tools.allowlist" if denied else "tools.allow",
                )
            )
            if not denied:
                decisions.append(
                    ("tool.result:lookup_order", "ok" if ok else "failed", "tool.ok" if ok else "tool.status")
                )
            tools.append(
                {
                    "tool": "lookup_order",
                    "decision": "deny" if denied else "allow",
                    "outcome": "denied" if denied else "ok" if ok else "failed",
                    "attempts": attempts,
                }
            )
        refs = []
        for action, decision, rule in decisions:
            seq += 1
            record = {
                "seq": seq,
                "ts": ts,
                "tenant": tenant,
                "session": session,
                "workflow": workflow,
                "intent": "question",
                "action": action,
                "decision": decision,
                "rule": rule,
                "spec_hash": "sha256:" + "0" * 64,
                "prev_hash": prev,
            }
            record["hash"] = prev = record_hash(record)
            refs.append({"seq": seq, "action": action, "decision": decision, "rule": rule})
            yield (
                "decisions",
                workflow,
                dt,
                _event("decision", decision_id(tenant, session, seq), ts, workflow, tenant, session, seq, record),
            )
        input_tokens = rng.randint(200, 3000)
        trace = {
            "trace_id": f"t-{n}-{turn}",
            "turn": turn,
            "workflow": workflow,
            "tenant": tenant,
            "region": served,
            "affinity": session,
            "gen_ai.conversation.id": session,
            "gen_ai.response.model": model,
            "model_family": FAMILIES[model],
            "tier": "low",
            "prompt_family": f"{workflow}.turn",
            "ttft_ms": rng.randint(50, 900),
            "latency_ms": rng.randint(80, 4000),
            "rounds": 1 + len(tools),
            "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": rng.randint(10, 400),
            "gen_ai.usage.cache_read.input_tokens": rng.randint(0, input_tokens) if turn > 1 else 0,
            "cost_usd": round(input_tokens * 0.06e-6, 9),
            "retries": int(fallback),
            "retry_log": [
                {
                    "kind": "model",
                    "target": model,
                    "attempt": 2,
                    "reason": "500",
                    "replay_safe": True,
                    "performed": True,
                }
            ]
            if fallback
            else [],
            "tools": tools,
            "checkpoint": None,
            "decisions": refs,
        }
        yield (
            "traces",
            workflow,
            dt,
            _event("trace", f"trace:{trace['trace_id']}", ts, workflow, tenant, session, turn, trace),
        )


def write_parts(out: Path, events: Iterable[tuple[str, str, str, str]], *, seed: int, part_rows: int) -> Counter[str]:
    """Write `(kind, workflow, dt, line)` events as the export's Hive-style part files under `out`, at most
    `part_rows` lines a file; answers the lines written per kind."""
    buffers: dict[tuple[str, str, str], list[str]] = {}
    parts: Counter[tuple[str, str, str]] = Counter()
    counts: Counter[str] = Counter()

    def flush(key: tuple[str, str, str]) -> None:
        kind, workflow, dt = key
        path = out / kind / f"dt={dt}" / f"workflow={workflow}" / f"part-{seed:04d}-{parts[key]:05d}.ndjson"
        parts[key] += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(buffers.pop(key)) + "\n", encoding="utf-8")

    for kind, workflow, dt, line in events:
        key = (kind, workflow, dt)
        buffers.setdefault(key, []).append(line)
        counts[kind] += 1
        if len(buffers[key]) >= part_rows:
            flush(key)
    for key in list(buffers):
        flush(key)
    return counts


def generate(out: Path, turns: int, *, seed: int = 7, turns_per_session: int = 5, part_rows: int = 50_000) -> int:
    """Write about `turns` turn traces (and their decisions) under `out`; returns the number of turns written."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 24, tzinfo=UTC)

    def events() -> Iterator[tuple[str, str, str, str]]:
        written, n = 0, 0
        while written < turns:
            count = min(turns_per_session, turns - written)
            session_start = start + timedelta(seconds=(n * 604_800 // max(1, turns // turns_per_session)) % 604_800)
            yield from _session(rng, n, session_start, count)
            written += count
            n += 1

    return write_parts(out, events(), seed=seed, part_rows=part_rows)["traces"]
