"""A synthetic fleet export of one spec under a known traffic model, for replay and calibration tests and the
replay benchmark: policy tables, a `Traffic` and a seed in; an export directory out, laid out as the runtime
writes it (export.ts), every chain valid, every decision the evaluator's verdict under those tables, and the
turn traces shaped as session.ts writes them. `policies/<hex>.json` holds the tables, as `trace pull` keeps them.

Latencies, failures, turns per session, tool chances and cache hits are drawn from the traffic model, so a
calibration from this export must give that model back (tests/test_calibrate.py). Deterministic for a seed.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from agentspec.policy import evaluate_tool_call
from agentspec.report.synthetic import write_parts
from agentspec.sim.traffic import Distribution, Traffic, WorkflowTraffic
from agentspec.trace.schema import GENESIS_HASH, decision_id
from agentspec.trace.verify import record_hash

START = datetime(2026, 11, 23, tzinfo=UTC)


def _draw(rng: random.Random, d: Distribution) -> float:
    return math.exp(d.mu + d.sigma * rng.gauss(0.0, 1.0))


def _event(kind: str, id_: str, ts: str, workflow: str, tenant: str, session: str, seq: int, data: Any) -> str:
    body = {"schema": 1, "kind": kind, "id": id_, "ts": ts, "workflow": workflow, "tenant": tenant,
            "session": session, "seq": seq, "data": data}  # fmt: skip
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Chain:
    """One session's (or task's) hash chain, written as export events."""

    def __init__(self, tenant: str, session: str, workflow: str, spec_hash: str) -> None:
        self.tenant, self.session, self.workflow, self.spec_hash = tenant, session, workflow, spec_hash
        self.prev = GENESIS_HASH
        self.seq = 0

    def record(self, at: datetime, intent: str, action: str, decision: str, rule: str) -> tuple[str, dict[str, Any]]:
        self.seq += 1
        rec: dict[str, Any] = {"seq": self.seq, "ts": _iso(at), "tenant": self.tenant, "session": self.session,
                               "workflow": self.workflow, "intent": intent, "action": action, "decision": decision,
                               "rule": rule, "spec_hash": self.spec_hash, "prev_hash": self.prev}  # fmt: skip
        rec["hash"] = self.prev = record_hash(rec)
        event_id = decision_id(self.tenant, self.session, self.seq)
        line = _event("decision", event_id, rec["ts"], self.workflow, self.tenant, self.session, self.seq, rec)
        return line, rec


class _Recorder:
    """Records one turn's decisions: the chain lines to write, and the turn trace's references to them."""

    def __init__(self, chain: _Chain, at: datetime, intent: str, lines: list[str], refs: list[dict[str, Any]]):
        self.chain, self.at, self.intent, self.lines, self.refs = chain, at, intent, lines, refs

    def __call__(self, action: str, decision: str, rule: str) -> None:
        line, r = self.chain.record(self.at, self.intent, action, decision, rule)
        self.lines.append(line)
        self.refs.append({"seq": r["seq"], "action": action, "decision": decision, "rule": rule})


class _Gen:
    def __init__(self, policy: Mapping[str, Any], traffic: Traffic, seed: int) -> None:
        self.policy = policy
        self.traffic = traffic
        self.rng = random.Random(seed)
        wfs = traffic.workflows or {name: WorkflowTraffic() for name in policy["workflows"]}
        self.workflows = {k: v for k, v in wfs.items() if v.share > 0}

    def model_call(self, tier: str) -> tuple[bool, float, str, list[dict[str, Any]]]:
        """One runInference on a tier: ok, ms, the answering model, every attempt (as `model_rounds` lists them:
        model, ok, status, error, latency_ms)."""
        t = self.policy["tiers"][tier]
        ms, attempts = 0.0, list[dict[str, Any]]()
        for model in t["models"]:
            b = self.traffic.models.get(model, self.traffic.default_model)
            u = self.rng.random()
            lat = _draw(self.rng, b.latency)
            if u < b.busy_429:
                spent, status, error = b.error_ms, 429, "HTTP 429"
            elif u < b.busy_429 + b.fail_5xx:
                spent, status, error = b.error_ms, 500, "HTTP 500"
            elif u < b.busy_429 + b.fail_5xx + b.timeout or lat > t["timeout_ms"]:
                spent, status, error = float(t["timeout_ms"]), None, "timeout"
            else:
                attempts.append({"model": model, "ok": True, "status": 200, "error": None, "latency_ms": round(lat)})
                return True, ms + lat, model, attempts
            ms += spent
            attempts.append({"model": model, "ok": False, "status": status, "error": error, "latency_ms": round(spent)})
        return False, ms, "", attempts

    def tool_call(self, name: str) -> tuple[str, int | None, list[dict[str, Any]], float]:
        """outcome, status, attempt log, ms of one allowed call (one retry of a transient failure if replay-safe)."""
        spec = self.policy["tools"][name]
        b = self.traffic.tools.get(name, self.traffic.default_tool)
        safe = bool(spec["read_only"] or spec.get("idempotency_key"))
        ms, log = 0.0, list[dict[str, Any]]()
        for attempt in (1, 2):
            u = self.rng.random()
            lat = _draw(self.rng, b.latency)
            status: int | None
            if u < b.fail:
                spent, status, rule, transient = b.error_ms, 503, "tool.status", True
            elif u < b.fail + b.timeout or lat > spec["timeout_ms"]:
                spent, status, rule, transient = float(spec["timeout_ms"]), None, "tool.timeout", True
            elif u < b.fail + b.timeout + b.fail_4xx:
                spent, status, rule, transient = b.error_ms, 404, "tool.status", False
            else:
                log.append({"sent": True, "status": 200, "rule": "ok", "latency_ms": round(lat)})
                return "ok", 200, log, ms + lat
            ms += spent
            log.append({"sent": True, "status": status, "rule": rule, "latency_ms": round(spent)})
            if not (transient and safe and attempt == 1):
                return "failed", status, log, ms
            ms += 50 * attempt
        raise AssertionError("unreachable")  # pragma: no cover

    def sessions(self, n: int) -> Iterator[tuple[str, str, str, str]]:
        names = list(self.workflows)
        weights = [self.workflows[k].share for k in names]
        tenants = ["acme", "globex"]
        clock = START
        tok = self.traffic.tokens
        for i in range(n):
            clock += timedelta(seconds=self.rng.expovariate(self.traffic.arrival_rate))
            wf_name = self.rng.choices(names, weights)[0]
            wf, traffic = self.policy["workflows"][wf_name], self.workflows[wf_name]
            tenant, session = tenants[i % 2], f"s-{i}"
            chain = _Chain(tenant, session, wf_name, self.policy["spec_hash"])
            turns = (traffic.turns.max if traffic.turns.mean >= traffic.turns.max
                     else min(1 + _poisson(self.rng, traffic.turns.mean - 1), traffic.turns.max))  # fmt: skip
            at = clock
            history = 0
            last_model = ""
            tier_name = wf["turn_tier"]
            tier = self.policy["tiers"][tier_name]
            for turn in range(1, turns + 1):
                if turn > 1:
                    at += timedelta(milliseconds=self.rng.expovariate(1 / max(traffic.think_ms, 1)))
                intent = f"question {turn} in {session}"
                refs: list[dict[str, Any]] = []
                lines: list[str] = []
                rec = _Recorder(chain, at, intent, lines, refs)
                rec(f"model.route:{tier_name}", "allow", f"route.risk.{wf['turn_risk']}")
                ok, ms, model, tried = self.model_call(tier_name)
                failed = [a for a in tried if not a["ok"]]
                rounds_log = [{"round": 1, "model": model, "latency_ms": round(ms), "attempts": tried,
                               "tool_calls": []}]  # fmt: skip
                if not ok:
                    rec(f"model.call:{tier_name}", "deny", "model.unavailable")
                    for line in lines:
                        yield "decisions", wf_name, _iso(at)[:10], line
                    at += timedelta(milliseconds=ms)
                    continue
                if failed:
                    rec(f"model.fallback:{model}", "allow", "model.fallback")
                ttft, latency, rounds = ms, ms, 1
                retry_log = _retries(tried, model)
                tools = []
                asked = [t for t, p in traffic.tools.items() if self.rng.random() < p]
                for name in asked:
                    v = evaluate_tool_call(self.policy, wf_name, name)  # type: ignore[arg-type]
                    rec(f"tool.call:{name}", v["decision"], v["rule"])
                    trace = {"tool": name, "round": 1, "decision": v["decision"], "rule": v["rule"],
                             "outcome": "denied", "failure": None, "status": None, "attempts": 0, "ms": 0,
                             "latency_ms": 0, "attempt_log": [], "idempotency_key": None}  # fmt: skip
                    if v["decision"] != "deny":
                        outcome, status, log, tms = self.tool_call(name)
                        trace.update(outcome=outcome, status=status, attempts=len(log), ms=round(tms),
                                     latency_ms=round(tms), attempt_log=log,
                                     failure=None if outcome == "ok" else log[-1]["rule"])  # fmt: skip
                        latency += tms
                        rule = "tool.ok" if outcome == "ok" else "tool.status" if status else "tool.timeout"
                        rec(f"tool.result:{name}", "ok" if outcome == "ok" else "failed", rule)
                    tools.append(trace)
                if asked:
                    ok2, ms2, model2, tried2 = self.model_call(tier_name)
                    latency += ms2
                    rounds = 2
                    rounds_log[0]["tool_calls"] = [{"name": t, "args": {}, "undeclared": []} for t in asked]
                    rounds_log.append({"round": 2, "model": model2, "latency_ms": round(ms2), "attempts": tried2,
                                       "tool_calls": []})  # fmt: skip
                    retry_log += _retries(tried2, model2)
                    model = model2 or model
                    if not ok2:
                        rec(f"model.call:{tier_name}", "deny", "model.unavailable")
                        for line in lines:
                            yield "decisions", wf_name, _iso(at)[:10], line
                        at += timedelta(milliseconds=latency)
                        continue
                prompt = tok.system + history + tok.input
                inp = prompt * rounds + (tok.tool_call + tok.tool_result * len(asked) if asked else 0)
                hit = turn > 1 and model == last_model and self.rng.random() < self.traffic.cache.hit
                cached = prompt - tok.input if hit else 0
                out = tok.output + (tok.tool_call if asked else 0)
                price = tier.get("price")
                cost = ((inp * price["input_per_mtok"] + out * price["output_per_mtok"]) / 1e6) if price else None
                end = at + timedelta(milliseconds=latency)
                data = {"trace_id": f"t-{i}-{turn}", "turn": turn, "workflow": wf_name, "tenant": tenant,
                        "region": "local", "affinity": session, "gen_ai.conversation.id": session,
                        "gen_ai.request.model": tier["models"][0], "gen_ai.response.model": model,
                        "model_family": model.rsplit("/", 1)[-1].split("-")[0], "tier": tier_name,
                        "prompt_family": f"{wf_name}.turn", "ttft_ms": round(ttft), "latency_ms": round(latency),
                        "rounds": rounds, "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out,
                        "gen_ai.usage.cache_read.input_tokens": cached, "cost_usd": cost,
                        "price": price, "retries": len(retry_log), "retry_log": retry_log,
                        "model_rounds": rounds_log, "tools": tools,
                        "checkpoint": None, "decisions": refs}  # fmt: skip
                for line in lines:
                    yield "decisions", wf_name, _iso(at)[:10], line
                yield "traces", wf_name, _iso(end)[:10], _event("trace", f"trace:t-{i}-{turn}", _iso(end), wf_name,
                                                                tenant, session, turn, data)  # fmt: skip
                history += tok.input + tok.output
                last_model = model
                at = end
            if wf["steps"] and traffic.tasks > 0 and self.rng.random() < traffic.tasks:
                yield from self.task(f"task-{i}", tenant, wf_name, at)

    def task(self, task: str, tenant: str, wf_name: str, at: datetime) -> Iterator[tuple[str, str, str, str]]:
        """A task's chain: one `tool.call` per call step; a step refused for good rolls back the compensated
        steps before it (`compensate X with Y`, decided as X)."""
        wf = self.policy["workflows"][wf_name]
        chain = _Chain(tenant, task, wf_name, self.policy["spec_hash"])
        done: list[str] = []
        for step in wf["steps"]:
            if step["kind"] != "call":
                continue
            name = step["tool"]
            v = evaluate_tool_call(self.policy, wf_name, name)  # type: ignore[arg-type]
            line, _ = chain.record(at, f"call {name}", f"tool.call:{name}", v["decision"], v["rule"])
            yield "decisions", wf_name, _iso(at)[:10], line
            outcome = self.tool_call(name)[0] if v["decision"] != "deny" else "failed"
            if outcome != "ok":
                for prior in reversed(done):
                    comp = self.policy["tools"][prior]["compensate"]
                    cv = evaluate_tool_call(self.policy, wf_name, prior)  # type: ignore[arg-type]
                    intent = f"compensate {prior} with {comp}"
                    line, _ = chain.record(at, intent, f"tool.call:{comp}", cv["decision"], cv["rule"])
                    yield "decisions", wf_name, _iso(at)[:10], line
                    line, _ = chain.record(at, intent, f"compensation:{comp}", "ok", "compensation.ok")
                    yield "decisions", wf_name, _iso(at)[:10], line
                return
            if self.policy["tools"][name].get("compensate"):
                done.append(name)


def _retries(tried: list[dict[str, Any]], answered: str) -> list[dict[str, Any]]:
    """The retry records session.ts writes for a round's failed attempts (`modelRetries`)."""
    out = []
    for k, (failed, nxt) in enumerate(pairwise(tried)):
        reason = failed["status"] if failed["status"] is not None else failed["error"]
        out.append({"kind": "model", "target": nxt["model"] or answered, "attempt": k + 2,
                    "reason": f"{failed['model']}: {reason}", "replay_safe": True, "performed": True})  # fmt: skip
    return out


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: lam is a few turns.
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def generate(
    out: Path, policy: Mapping[str, Any], traffic: Traffic, sessions: int, *, seed: int = 0, part_rows: int = 50_000
) -> dict[str, int]:
    """Write the export of `sessions` sessions under `out`; answers the number of events written per kind."""
    gen = _Gen(policy, traffic, seed)
    counts = {"decisions": 0, "traces": 0} | write_parts(out, gen.sessions(sessions), seed=seed, part_rows=part_rows)
    folder = out / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{str(policy['spec_hash']).removeprefix('sha256:')}.json").write_text(
        json.dumps(policy, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return counts
