"""The simulator's fidelity, measured: a spec run for real (workerd under `wrangler dev`, `LiveAgent`) against
loopback model and tool stubs with known latency distributions and failure rates, at one arrival rate; the traffic
model calibrated from that run's pulled export (`agentspec trace calibrate`); the simulator's prediction for a
second arrival rate and failure mix; then the second run, measured. `benchmarks/fidelity.py` and
tests/e2e/test_fidelity.py drive it.

What is compared, per run 2 (the one predicted):

- p95 turn latency over every turn of run 2: the runtime's own `latency_ms` of the answered ones (their traces),
  the client's time for the failed ones (which leave no trace; they are quick: every model answered an error),
  against the simulator's p95 over every turn.
- success rate: turns answered 200 over turns sent (the client's count), against the simulator's turn success.
- cost per successful turn (the workflow has no steps): the traces' `cost_usd` over answered turns.

Noise: the stubs' latencies are hundreds of ms (the runtime's own overhead, a few ms a turn on a quiet machine,
is small against them, and what there is of it inside a model or tool attempt is calibrated in); every draw is
seeded; the prediction simulates many sessions so its own sampling error is negligible; run 2 is measured over
enough turns that the p95's sampling error is a few percent. A machine loaded by other work still slows the
runtime between the two runs, which no calibration sees: `attempt_drift` reports how much the median model and
tool attempt (as the runtime timed them, loopback transport included) moved from run 1 to run 2.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agentspec.workbench.loopback import Seen
from agentspec.workbench.scripted_model import Cue, ScriptedModel
from agentspec.workbench.tool_stub import ToolStub

# A fixed-length input and answer: the prompt then grows by the same tokens every turn, as the traffic model says.
INPUT = "x" * 200
ANSWER = "y" * 80


@dataclass(frozen=True)
class Lognormal:
    p50: float
    p95: float

    def draw(self, rng: random.Random) -> float:
        sigma = (math.log(self.p95) - math.log(self.p50)) / 1.6448536269514722
        return math.exp(math.log(self.p50) + sigma * rng.gauss(0.0, 1.0))


@dataclass(frozen=True)
class Behaviour:
    """How the stubs answer: latencies (ms), the time an error takes, the chance the model asks for the tool."""

    models: dict[str, Lognormal]
    tool: Lognormal
    model_error_ms: float = 30.0
    tool_error_ms: float = 20.0
    tool_chance: float = 0.5
    tool_name: str = "lookup"


@dataclass(frozen=True)
class Mix:
    """A failure mix: each model's chance to answer 500, the tool's chance to answer 503."""

    models: dict[str, float]
    tool: float


class Stubs:
    """The loopback model and tool, drawing latencies and failures from `Behaviour` and the current `Mix`."""

    def __init__(self, behaviour: Behaviour, mix: Mix, seed: int = 0) -> None:
        self.behaviour = behaviour
        self.mix = mix
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.model = ScriptedModel(self._respond)
        stubs = self

        class Tools(ToolStub):
            def _handle(self, seen: Seen) -> tuple[int, Any, float]:
                return stubs._tool(seen)

        self.tools = Tools()

    def _u(self) -> float:
        with self.lock:
            return self.rng.random()

    def _draw(self, d: Lognormal) -> float:
        with self.lock:
            return d.draw(self.rng)

    def _respond(self, model: str, messages: list[dict[str, Any]]) -> Cue:
        b = self.behaviour
        if self._u() < self.mix.models.get(model, 0.0):
            return Cue(status=500, stall=b.model_error_ms / 1000)
        stall = self._draw(b.models[model]) / 1000
        after_tool = bool(messages) and messages[-1].get("role") == "tool"
        if not after_tool and self._u() < b.tool_chance:
            return Cue(text=None, tool_calls=[(b.tool_name, {"item_id": "i-1"})], stall=stall)
        return Cue(text=ANSWER, stall=stall)

    def _tool(self, seen: Seen) -> tuple[int, Any, float]:
        b = self.behaviour
        if self._u() < self.mix.tool:
            return 503, {"error": "unavailable"}, b.tool_error_ms / 1000
        return 200, {"item_id": "i-1", "status": "ok"}, self._draw(b.tool) / 1000

    def close(self) -> None:
        self.model.close()
        self.tools.close()


@dataclass(frozen=True)
class Sent:
    session: str
    turn: int
    status: int
    ms: float


async def _session(
    client: httpx.AsyncClient, start: float, sid: str, turns: int, think_ms: float, rng: random.Random, out: list[Sent]
) -> None:
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    for n in range(1, turns + 1):
        t = time.monotonic()
        try:
            r = await client.post(f"/v1/sessions/{sid}/turns", json={"workflow": "orders", "input": INPUT})
            status = r.status_code
        except httpx.HTTPError:
            status = 0
        out.append(Sent(sid, n, status, (time.monotonic() - t) * 1000))
        if n < turns:
            await asyncio.sleep(rng.expovariate(1000 / think_ms) if think_ms > 0 else 0)


def drive(
    url: str, headers: dict[str, str], rate: float, sessions: int, turns: int, think_ms: float, seed: int, prefix: str
) -> list[Sent]:
    """Open `sessions` sessions at Poisson arrivals of `rate` per second, each `turns` turns with exponential
    think times of mean `think_ms`; answers every turn sent, with its status and client-side time."""
    rng = random.Random(seed)
    out: list[Sent] = []

    async def main() -> None:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:
            t0 = time.monotonic() + 0.2
            starts, at = [], t0
            for _ in range(sessions):
                at += rng.expovariate(rate)
                starts.append(at)
            await asyncio.gather(
                *(
                    _session(client, s, f"{prefix}-{i:05d}", turns, think_ms, random.Random(rng.random()), out)
                    for i, s in enumerate(starts)
                )
            )

    asyncio.run(main())
    return out


@dataclass
class Measured:
    turns: int
    ok: int
    p95_ms: float | None
    cost_per_success: float | None
    wall_s: float

    @property
    def success_pct(self) -> float:
        return self.ok / self.turns * 100 if self.turns else 0.0


def _nearest_rank(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def run_traces(root: Path, prefix: str) -> list[dict[str, Any]]:
    """The turn traces of one run (its sessions' ids start with `prefix`) in a pulled export."""
    out = []
    for part in sorted(root.glob("traces/dt=*/workflow=*/*.ndjson")):
        for line in part.open(encoding="utf-8"):
            event = json.loads(line)
            if event["session"].startswith(f"{prefix}-"):
                out.append(event)
    # Each event once (a redelivered batch repeats them).
    return list({e["id"]: e["data"] for e in out}.values())


def settle(url: str, out: Path, admin_token: str, prefix: str, expected: int, timeout: float = 120.0) -> None:
    """Pull the export until it holds the `expected` traces of the run (the queue batches them to R2)."""
    from agentspec.trace.fleet import pull_all

    deadline = time.monotonic() + timeout
    while True:
        pull_all(url, out, admin_token=admin_token)
        have = len(run_traces(out, prefix))
        if have >= expected:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the export holds {have} of the {expected} traces of run `{prefix}` after {timeout}s")
        time.sleep(1.0)


def measure(sent: list[Sent], traces: list[dict[str, Any]], wall_s: float) -> Measured:
    ok = sum(s.status == 200 for s in sent)
    # Every turn counts, as the simulator's p95 counts every turn: an answered one by the runtime's own
    # `latency_ms`, a failed one (which leaves no trace) by the client's time, an upper bound of the runtime's.
    lat = [float(t["latency_ms"]) for t in traces] + [s.ms for s in sent if s.status != 200]
    costs = [float(t["cost_usd"]) for t in traces if t.get("cost_usd") is not None]
    return Measured(len(sent), ok, _nearest_rank(lat, 0.95), sum(costs) / ok if ok else None, wall_s)


@dataclass(frozen=True)
class Plan:
    """The two runs: sessions, arrival rates (sessions/s), failure mixes, and the simulation's size."""

    behaviour: Behaviour
    mix1: Mix
    mix2: Mix
    rate1: float
    rate2: float
    sessions1: int
    sessions2: int
    turns: int = 3
    think_ms: float = 300.0
    simulated: int = 40_000
    seed: int = 1


@dataclass
class Result:
    predicted: dict[str, float]
    measured: dict[str, float]
    calibrated: dict[str, Any]
    runs: dict[str, Measured] = field(default_factory=dict)

    def errors(self) -> dict[str, float]:
        return {k: abs(self.predicted[k] - self.measured[k]) / self.measured[k] for k in self.measured}

    def table(self) -> str:
        rows = [f"{'figure':24s} {'predicted':>12s} {'measured':>12s} {'error':>8s}"]
        for k, err in self.errors().items():
            rows.append(f"{k:24s} {self.predicted[k]:12.6g} {self.measured[k]:12.6g} {err * 100:7.2f}%")
        return "\n".join(rows)


def attempt_drift(root: Path) -> str:
    """The median answered model attempt and successful tool attempt of each run, as the runtime timed them: the
    part of a change between runs that is the machine (or the loopback transport), not the traffic."""
    medians = []
    for prefix in ("r1", "r2"):
        models, tools = [], []
        for t in run_traces(root, prefix):
            models += [a["latency_ms"] for r in t.get("model_rounds", []) for a in r["attempts"] if a["ok"]]
            tools += [a["latency_ms"] for c in t["tools"] for a in c.get("attempt_log", []) if a["rule"] == "ok"]
        medians.append((_nearest_rank(models, 0.5), _nearest_rank(tools, 0.5)))
    (m1, t1), (m2, t2) = medians
    return f"model {m1} -> {m2} ms, tool {t1} -> {t2} ms"


def what_if(calibrated: dict[str, Any], rate: float, mix: Mix) -> dict[str, Any]:
    """The calibrated traffic with a new arrival rate and failure mix: every model's 5xx chance and the tools'
    transient failure chance replaced, every other fitted figure kept."""
    traffic = json.loads(json.dumps(calibrated))
    traffic["arrival_rate"] = rate
    for name, entry in traffic.get("models", {}).items():
        entry["fail_5xx"] = mix.models.get(name, 0.0)
    for entry in traffic.get("tools", {}).values():
        entry["fail"] = mix.tool
    return traffic


def run(spec_path: str | Path, plan: Plan, workdir: Path | None = None, log: Any = print) -> Result:
    from agentspec import sim
    from agentspec.sim.traffic import Traffic
    from agentspec.trace.calibrate import calibrate
    from agentspec.workbench import load as load_checked
    from agentspec.workbench.live import LiveAgent

    work = workdir or Path(tempfile.mkdtemp(prefix="agentspec-fidelity-"))
    stubs = Stubs(plan.behaviour, plan.mix1, seed=plan.seed)
    checked = load_checked(str(spec_path))
    agent = LiveAgent(checked, workdir=work / "live", model=stubs.model, tools=stubs.tools)
    export = work / "export"
    try:
        agent.start(180)
        headers = agent._headers(agent.tenant)
        runs: dict[str, Measured] = {}
        t = time.monotonic()
        sent1 = drive(agent.url, headers, plan.rate1, plan.sessions1, plan.turns, plan.think_ms, plan.seed, "r1")
        wall1 = time.monotonic() - t
        ok1 = sum(s.status == 200 for s in sent1)
        settle(agent.url, export, agent.admin_token, "r1", ok1)
        runs["r1"] = measure(sent1, run_traces(export, "r1"), wall1)
        log(f"run 1: {len(sent1)} turns at {plan.rate1}/s in {wall1:.1f} s, {ok1} answered")
        calibrated = calibrate(export).traffic
        traffic = Traffic.model_validate(what_if(calibrated, plan.rate2, plan.mix2))
        report = sim.simulate(checked.spec, traffic, sessions=plan.simulated, seed=plan.seed)
        wf = report["workflows"][0]
        predicted = {
            "p95_latency_ms": float(wf["latency_ms"]["p95"]),
            "success_pct": float(wf["turn_success_pct"]),
            "cost_per_success_usd": float(wf["cost_per_success_usd"]),
        }
        stubs.mix = plan.mix2
        t = time.monotonic()
        sent2 = drive(agent.url, headers, plan.rate2, plan.sessions2, plan.turns, plan.think_ms, plan.seed + 1, "r2")
        wall2 = time.monotonic() - t
        ok2 = sum(s.status == 200 for s in sent2)
        settle(agent.url, export, agent.admin_token, "r2", ok2)
        m2 = measure(sent2, run_traces(export, "r2"), wall2)
        runs["r2"] = m2
        log(f"run 2: {len(sent2)} turns at {plan.rate2}/s in {wall2:.1f} s, {ok2} answered")
        log(f"attempt medians, run 1 -> run 2: {attempt_drift(export)}")
        measured = {
            "p95_latency_ms": float(m2.p95_ms or 0.0),
            "success_pct": m2.success_pct,
            "cost_per_success_usd": float(m2.cost_per_success or 0.0),
        }
        return Result(predicted, measured, calibrated, runs)
    finally:
        agent.close()
        stubs.close()
