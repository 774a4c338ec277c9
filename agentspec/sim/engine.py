"""The simulation: a checked spec's policy tables, a Traffic model and a seed in, per-workflow tallies out.

Sessions are simulated in chunks (`CHUNK` sessions at a time), vectorized over the sessions of a chunk and
looped over turn numbers, so memory stays flat however many sessions run. Each turn does what a runtime turn
does (docs/runtime.md, "A turn"): the turn tier's fallback chain, each model attempt cut at the tier's timeout;
the tool calls the traffic says the model asks for, each decided by the policy evaluator (a `deny` does not
run), run with the runtime's one retry of a replay-safe call; a second model round after tool calls; the prompt
cache (affinity keeps a session's prefix on one model, a fallback, a miss, a sliding history or a checkpoint
trim loses it); a checkpoint summary every N turns on the checkpoint tier. Workflows with steps run tasks with
the Workflows retry schedule (constant, linear or exponential backoff from the step's delay, each attempt cut at
the step's timeout), non-retryable failures (policy denial, 4xx) and the saga rollback of compensated steps.
Every turn and finished task becomes an SLO sample, fed in arrival order to the runtime's monitor (slo.py).
The same seed, spec, traffic and session count give the same tallies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from agentspec.sim import slo as slo_mod
from agentspec.sim.policy_view import verdict
from agentspec.sim.traffic import Distribution, ModelBehaviour, ToolBehaviour, Traffic, WorkflowTraffic

CHUNK = 10_000
MAX_TOOL_ATTEMPTS = 2  # turn_tool.ts: a transient failure of a replay-safe call is sent once more
TOOL_RETRY_DELAY_MS = 50
HISTORY_TURNS = 20  # session.ts: a prompt carries at most the last 20 turns
CHECKPOINT_SYSTEM_TOKENS = 40
ALERTS_KEPT = 20  # per SLI: the first firings, with when; the count covers all of them

F = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
I = npt.NDArray[np.int64]  # noqa: E741

# Latency histograms: log-spaced bins from 0.01 ms to 10^8 ms, 0.115% wide, so a quantile read from them is
# within 0.06% of the exact one.
_BINS_PER_DECADE = 2000
_LO, _HI = -2.0, 8.0
_NBINS = int((_HI - _LO) * _BINS_PER_DECADE)


def _hist(values: F) -> I:
    idx = np.clip(((np.log10(np.maximum(values, 1e-2)) - _LO) * _BINS_PER_DECADE).astype(np.int64), 0, _NBINS - 1)
    return np.bincount(idx, minlength=_NBINS)


def bin_edges() -> F:
    """The edges (ms) of the latency histograms' bins, one more than there are bins."""
    edges: F = 10 ** (_LO + np.arange(_NBINS + 1) / _BINS_PER_DECADE)
    return edges


def quantile(hist: I, q: float) -> float | None:
    """The nearest-rank q-quantile (0 < q <= 1) of the values counted in `hist`, at its bin's centre."""
    total = int(hist.sum())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    b = int(np.searchsorted(np.cumsum(hist), rank))
    return float(10 ** (_LO + (b + 0.5) / _BINS_PER_DECADE))


@dataclass
class Tally:
    """One workflow's running totals over the whole simulation."""

    turns: int = 0
    turns_ok: int = 0
    turn_latency: I = field(default_factory=lambda: np.zeros(_NBINS, np.int64))
    turn_ttft: I = field(default_factory=lambda: np.zeros(_NBINS, np.int64))
    tasks: int = 0
    tasks_ok: int = 0
    task_latency: I = field(default_factory=lambda: np.zeros(_NBINS, np.int64))
    cost_usd: float = 0.0  # everything billed: turns, checkpoints, infer steps
    task_cost_usd: float = 0.0
    input_tokens: float = 0.0
    cached_tokens: float = 0.0
    decisions: float = 0.0
    denied: float = 0.0
    shadow_denied: float = 0.0
    tool_calls: float = 0.0
    retries: float = 0.0
    retries_replay_safe: float = 0.0
    retries_refused: float = 0.0
    fallbacks: float = 0.0
    checkpoints: float = 0.0
    checkpoints_failed: float = 0.0
    compensations: float = 0.0
    compensations_failed: float = 0.0
    # The SLO monitor's view: every sample, and the judgement over all of them.
    samples: int = 0
    samples_ok: int = 0
    sample_latency: I = field(default_factory=lambda: np.zeros(_NBINS, np.int64))
    sample_ttft: I = field(default_factory=lambda: np.zeros(_NBINS, np.int64))
    sample_cost: float = 0.0
    sample_priced: int = 0
    sample_input: float = 0.0
    sample_cached: float = 0.0
    sample_denied: float = 0.0
    sample_decisions: float = 0.0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alert_counts: dict[str, int] = field(default_factory=dict)


class _Rng:
    def __init__(self, seed: int, chunk: int) -> None:
        self.g = np.random.default_rng([seed, chunk])

    def u(self, n: int) -> F:
        return self.g.random(n)

    def lognormal(self, d: Distribution, n: int) -> F:
        return np.exp(d.mu + d.sigma * self.g.standard_normal(n))


@dataclass
class _Chain:
    """What one model call on a tier gave, per row: answered or not, time spent, the answering model's index
    in the tier (-1: none), how many models were tried."""

    ok: B
    ms: F
    model: I
    attempts: I


class Simulator:
    """Runs a Traffic model against one spec's policy tables."""

    def __init__(self, tables: dict[str, Any], traffic: Traffic, seed: int | None = None) -> None:
        self.policy = tables
        self.traffic = traffic
        self.seed = traffic.seed if seed is None else seed
        wfs = traffic.workflows or {name: WorkflowTraffic() for name in tables["workflows"]}
        self.workflows: dict[str, WorkflowTraffic] = {k: v for k, v in wfs.items() if v.share > 0}
        total = sum(w.share for w in self.workflows.values())
        self.shares = np.array([w.share / total for w in self.workflows.values()])
        self.names = list(self.workflows)
        self.tally = {name: Tally() for name in self.names}
        self.slo = {name: slo_mod.slo_table(tables["workflows"][name].get("slo")) for name in self.names}
        self.streams = {name: slo_mod.StreamState() for name in self.names}
        self.pending: dict[str, list[dict[str, F]]] = {name: [] for name in self.names}
        self.busy = self._busy_chances()

    # ── behaviour lookups ──

    def model(self, name: str) -> ModelBehaviour:
        return self.traffic.models.get(name, self.traffic.default_model)

    def tool(self, name: str) -> ToolBehaviour:
        return self.traffic.tools.get(name, self.traffic.default_tool)

    def _busy_chances(self) -> dict[str, float]:
        """A model with a concurrency capacity answers 429 for the share of offered load above it: offered
        concurrency = calls per second on it as a primary (Little's law) x its mean latency."""
        rate: dict[str, float] = {}
        for (name, wf), share in zip(self.workflows.items(), self.shares, strict=True):
            tier = self.policy["tiers"][self.policy["workflows"][name]["turn_tier"]]
            rounds = 1 + (1 - math.prod(1 - p for p in wf.tools.values()))
            turns_per_s = self.traffic.arrival_rate * share * wf.turns.mean
            first = tier["models"][0]
            rate[first] = rate.get(first, 0.0) + turns_per_s * rounds
        busy = {}
        for name, calls in rate.items():
            b = self.model(name)
            if b.capacity is None:
                continue
            d = b.latency
            mean_s = math.exp(d.mu + d.sigma**2 / 2) / 1000
            offered = calls * mean_s
            busy[name] = max(0.0, 1 - b.capacity / offered) if offered > 0 else 0.0
        return busy

    # ── model calls ──

    def chain(self, rng: _Rng, tier_name: str, n: int) -> _Chain:
        """One model call on `tier_name` for n rows: each model in order until one answers (runInference)."""
        tier = self.policy["tiers"][tier_name]
        timeout = float(tier["timeout_ms"])
        ok = np.zeros(n, bool)
        ms = np.zeros(n)
        model = np.full(n, -1, np.int64)
        attempts = np.zeros(n, np.int64)
        pending = np.ones(n, bool)
        for i, name in enumerate(tier["models"]):
            idx = np.flatnonzero(pending)
            if len(idx) == 0:
                break
            b = self.model(name)
            k = len(idx)
            u = rng.u(k)
            busy = min(1.0, b.busy_429 + self.busy.get(name, 0.0))
            # One draw picks the failure kind: 429 busy, 5xx, a stall to the timeout, else an answer that may
            # still be cut at the timeout.
            is_busy = u < busy
            is_5xx = (~is_busy) & (u < busy + b.fail_5xx)
            stall = (~is_busy) & (~is_5xx) & (u < busy + b.fail_5xx + b.timeout)
            lat = rng.lognormal(b.latency, k)
            late = lat > timeout
            good = ~(is_busy | is_5xx | stall | late)
            spent = np.where(good, lat, np.where(is_busy | is_5xx, b.error_ms, timeout))
            ms[idx] += spent
            attempts[idx] += 1
            ok[idx[good]] = True
            model[idx[good]] = i
            pending[idx[good]] = False
        return _Chain(ok, ms, model, attempts)

    def price(self, tier_name: str, inp: F, out: F, cached: F) -> F | None:
        """`priceOf` of usage.ts: cached input at the tier's cached price when it has one (else at the
        traffic's `cached_price_ratio` of the input price, else at the full input price, as the runtime bills)."""
        price = self.policy["tiers"][tier_name].get("price")
        if not price:
            return None
        pin, pout = price["input_per_mtok"], price["output_per_mtok"]
        pc = price.get("cached_input_per_mtok")
        if pc is None and self.traffic.cache.cached_price_ratio is not None:
            pc = pin * self.traffic.cache.cached_price_ratio
        billed_in = inp * pin if pc is None else (inp - cached) * pin + cached * pc
        result: F = (billed_in + out * pout) / 1e6
        return result

    # ── the run ──

    def run(self, sessions: int) -> dict[str, Tally]:
        start_s = 0.0
        chunks = math.ceil(sessions / CHUNK)
        for c in range(chunks):
            n = min(CHUNK, sessions - c * CHUNK)
            rng = _Rng(self.seed, c)
            gaps = rng.g.exponential(1000.0 / self.traffic.arrival_rate, n)
            starts = start_s + np.cumsum(gaps)
            start_s = float(starts[-1])
            which = rng.g.choice(len(self.names), size=n, p=self.shares)
            for w, name in enumerate(self.names):
                rows = np.flatnonzero(which == w)
                if len(rows):
                    self._sessions(rng, name, starts[rows])
            horizon = start_s if c < chunks - 1 else math.inf
            for name in self.names:
                self._feed(name, horizon)
        return self.tally

    def _sessions(self, rng: _Rng, name: str, starts: F) -> None:
        wf = self.policy["workflows"][name]
        traffic = self.workflows[name]
        tally = self.tally[name]
        tok = self.traffic.tokens
        cache = self.traffic.cache
        n = len(starts)
        if traffic.turns.mean >= traffic.turns.max:
            turns = np.full(n, traffic.turns.max)
        else:
            turns = np.minimum(1 + rng.g.poisson(traffic.turns.mean - 1, n), traffic.turns.max)
        clock = starts.copy()
        history = np.zeros(n)  # tokens of stored history (the turns since the last trim)
        history_turns = np.zeros(n, np.int64)
        summary = np.zeros(n)
        since_cp = np.zeros(n, np.int64)
        cached_prefix = np.zeros(n)  # tokens of this session's prefix cached on `last_model`
        last_model = np.full(n, -2, np.int64)
        risks = traffic.risk or {wf["turn_risk"]: 1.0}
        risk_names = list(risks)
        risk_p = np.array([risks[r] for r in risk_names]) / sum(risks.values())
        tiers = [wf["routes"].get(r, wf["turn_tier"]) for r in risk_names]
        verdicts = {t: verdict(self.policy, name, t) for t in traffic.tools}
        every = (wf.get("checkpoint") or {}).get("every")
        hit_p = cache.hit if cache.affinity else cache.hit_without_affinity
        cols: dict[str, list[F]] = {k: [] for k in (*slo_mod.COLUMNS, "t")}
        for t in range(int(turns.max())):
            act = np.flatnonzero(turns > t)
            k = len(act)
            if t > 0:
                think = rng.g.exponential(traffic.think_ms, k) if traffic.think_ms > 0 else np.zeros(k)
                clock[act] += think
                expired = think > wf["affinity"]["ttl_ms"]
                for arr in (history, summary, cached_prefix):
                    arr[act[expired]] = 0
                history_turns[act[expired]] = 0
                since_cp[act[expired]] = 0
            risk_idx = rng.g.choice(len(risk_names), size=k, p=risk_p) if len(risk_names) > 1 else np.zeros(k, int)
            lat = np.zeros(k)
            ttft = np.zeros(k)
            ok = np.ones(k, bool)
            inp = np.zeros(k)
            out = np.zeros(k)
            cached = np.zeros(k)
            cost = np.zeros(k)
            priced = np.zeros(k, bool)
            decisions = np.ones(k)  # the model.route record
            denied = np.zeros(k)
            final_model = np.full(k, -1, np.int64)
            # The prompt: system, summary, the history the prompt carries, the new input.
            sliding = history_turns[act] > HISTORY_TURNS
            carried = np.where(sliding, history[act] * HISTORY_TURNS / np.maximum(history_turns[act], 1), history[act])
            prefix = tok.system + summary[act] + carried
            for r_i, tier_name in enumerate(tiers):
                sel = np.flatnonzero(risk_idx == r_i)
                if len(sel) == 0:
                    continue
                rows = act[sel]
                m = len(sel)
                first = self.chain(rng, tier_name, m)
                tally.fallbacks += float((first.attempts[first.ok] - 1).sum()) + float(
                    (first.attempts[~first.ok] - 1).sum()
                )
                tally.retries += float((first.attempts - 1).sum())
                tally.retries_replay_safe += float((first.attempts - 1).sum())
                decisions[sel] += (first.ok & (first.attempts > 1)).astype(float)
                # Cache: the session's prefix is still cached when the same model answers and the cache kept it;
                # otherwise only the shared system prompt may be.
                same = (first.model == last_model[rows]) & (rng.u(m) < hit_p)
                sys_hit = rng.u(m) < hit_p
                c1 = np.where(same, np.minimum(cached_prefix[rows], prefix[sel]), np.where(sys_hit, tok.system, 0.0))
                c1 = np.where(sliding[sel] & same, np.where(sys_hit, tok.system, 0.0), c1)
                in1 = prefix[sel] + tok.input
                lat[sel] = first.ms
                ttft[sel] = first.ms
                ok[sel] = first.ok
                used = first.ok.astype(float)
                inp[sel] += in1 * used
                cached[sel] += c1 * used
                # Tool calls the model asks for in its first answer, one after another.
                tool_round = np.zeros(m, bool)
                extra_in = np.zeros(m)
                for tool_name, chance in traffic.tools.items():
                    asks = first.ok & (rng.u(m) < chance)
                    if not asks.any():
                        continue
                    tool_round |= asks
                    na = float(asks.sum())
                    tally.tool_calls += na
                    v = verdicts[tool_name]
                    decisions[sel] += asks
                    if v == "deny":
                        denied[sel] += asks
                        extra_in += asks * 20  # the model reads `{"error": "denied by policy"}`
                        continue
                    if v == "shadow_deny":
                        tally.shadow_denied += na
                    spent, _, retried, safe_retries, refused = self._tool_turn(rng, tool_name, m)
                    lat[sel] += np.where(asks, spent, 0)
                    decisions[sel] += asks  # its tool.result record
                    tally.retries += float((retried * asks).sum())
                    tally.retries_replay_safe += float((safe_retries * asks).sum())
                    tally.retries_refused += float((refused * asks).sum())
                    extra_in += asks * tok.tool_result
                if tool_round.any():
                    second = self.chain(rng, tier_name, m)
                    second.ok |= ~tool_round
                    second.ms[~tool_round] = 0
                    tally.fallbacks += float(((second.attempts - 1) * tool_round).sum())
                    tally.retries += float(((second.attempts - 1) * tool_round).sum())
                    tally.retries_replay_safe += float(((second.attempts - 1) * tool_round).sum())
                    decisions[sel] += (tool_round & second.ok & (second.attempts > 1)).astype(float)
                    lat[sel] += second.ms
                    in2 = in1 + tok.tool_call + extra_in
                    c2 = np.where(second.model == first.model, np.where(rng.u(m) < hit_p, in1, c1), 0.0)
                    both = tool_round & second.ok
                    inp[sel] += np.where(both, in2, 0)
                    cached[sel] += np.where(both, c2, 0)
                    out[sel] += np.where(tool_round & first.ok, tok.tool_call, 0)
                    ok[sel] &= second.ok
                    final = np.where(tool_round, second.model, first.model)
                else:
                    final = first.model
                out[sel] += np.where(ok[sel], tok.output, 0)
                final_model[sel] = np.where(ok[sel], final, -1)
                p = self.price(tier_name, inp[sel], out[sel], cached[sel])
                if p is not None:
                    cost[sel] = np.where(ok[sel], p, 0)
                    priced[sel] = ok[sel]
                    # A failed turn is billed for the rounds it ran, but its sample has no price.
                    failed_cost = self.price(tier_name, inp[sel], out[sel], cached[sel])
                    assert failed_cost is not None
                    tally.cost_usd += float(failed_cost[~ok[sel]].sum())
            # A failed turn records model.unavailable (a deny the success SLI counts, not the denied one).
            decisions += ~ok
            ttft = np.where(ok, ttft, 0)
            tally.turns += k
            tally.turns_ok += int(ok.sum())
            tally.turn_latency += _hist(lat)
            tally.turn_ttft += _hist(ttft[ok])
            tally.cost_usd += float(cost.sum())
            tally.input_tokens += float(inp.sum())
            tally.cached_tokens += float(cached.sum())
            tally.decisions += float(decisions.sum())
            tally.denied += float(denied.sum())
            for key, arr in (("ok", ok.astype(float)), ("latency_ms", lat), ("ttft_ms", ttft), ("cost_usd", cost),
                             ("priced", priced.astype(float)), ("input_tokens", inp), ("cached_tokens", cached),
                             ("denied", denied), ("decisions", decisions), ("t", clock[act] + lat)):  # fmt: skip
                cols[key].append(arr)
            # After the turn: history grows, the cache holds the prompt just sent, a checkpoint may trim.
            okr = act[ok]
            history[okr] += tok.input + tok.output
            history_turns[okr] += 1
            since_cp[okr] += 1
            cached_prefix[okr] = prefix[ok] + tok.input + tok.output
            last_model[okr] = final_model[ok]
            no_cp = act[~ok]
            last_model[no_cp] = -2
            if every is not None:
                due = okr[since_cp[okr] >= every]
                if len(due):
                    cp_tier = wf["checkpoint"]["tier"]
                    res = self.chain(rng, cp_tier, len(due))
                    tally.checkpoints += float(res.ok.sum())
                    tally.checkpoints_failed += float((~res.ok).sum())
                    tally.retries += float((res.attempts - 1).sum())
                    tally.retries_replay_safe += float((res.attempts - 1).sum())
                    cin = CHECKPOINT_SYSTEM_TOKENS + summary[due] + history[due]
                    cp_cost = self.price(cp_tier, cin, np.full(len(due), float(tok.summary)), np.zeros(len(due)))
                    if cp_cost is not None:
                        tally.cost_usd += float(cp_cost[res.ok].sum())
                    done = due[res.ok]
                    history[done] = 0
                    history_turns[done] = 0
                    summary[done] = tok.summary
                    since_cp[done] = 0
                    # The trimmed prompt shares only the system prompt with what the cache holds.
                    cached_prefix[done] = tok.system
            elif t + 1 > HISTORY_TURNS and (t + 1) % HISTORY_TURNS == 0:
                trim = okr[history_turns[okr] > HISTORY_TURNS]
                history[trim] *= HISTORY_TURNS / history_turns[trim]
                history_turns[trim] = HISTORY_TURNS
            clock[act] += lat
        if wf["steps"] and traffic.tasks > 0:
            starting = rng.u(n) < traffic.tasks
            task_cols = self._tasks(rng, name, clock[starting] + traffic.think_ms)
            for key, arr in task_cols.items():
                cols[key].append(arr)
        if self.slo[name]:
            self.pending[name].append({k: np.concatenate(v) for k, v in cols.items()})
        else:
            self._count_samples(name, {k: np.concatenate(v) for k, v in cols.items()})

    def _tool_turn(self, rng: _Rng, tool_name: str, m: int) -> tuple[F, B, F, F, F]:
        """A tool call inside a turn: time spent, whether it ended ok, retries performed, replay-safe retries
        performed, retries refused (a transient failure of a call that is not replay-safe)."""
        spec = self.policy["tools"][tool_name]
        b = self.tool(tool_name)
        safe = bool(spec["read_only"] or spec.get("idempotency_key"))
        spent = np.zeros(m)
        ok = np.zeros(m, bool)
        retried = np.zeros(m)
        refused = np.zeros(m)
        pending = np.ones(m, bool)
        for attempt in range(1, MAX_TOOL_ATTEMPTS + 1):
            idx = np.flatnonzero(pending)
            if len(idx) == 0:
                break
            ms, good, transient = self._tool_attempt(rng, b, float(spec["timeout_ms"]), len(idx))
            spent[idx] += ms
            ok[idx[good]] = True
            pending[idx] = False
            again = idx[transient]
            if attempt < MAX_TOOL_ATTEMPTS and len(again):
                if safe:
                    retried[again] += 1
                    spent[again] += TOOL_RETRY_DELAY_MS * attempt
                    pending[again] = True
                else:
                    refused[again] += 1
        return spent, ok, retried, retried if safe else np.zeros(m), refused

    def _tool_attempt(self, rng: _Rng, b: ToolBehaviour, timeout: float, k: int) -> tuple[F, B, B]:
        """One tool request: time spent, ok, and whether a failure was transient (5xx, timeout) or not (4xx)."""
        u = rng.u(k)
        fail = u < b.fail
        stall = (~fail) & (u < b.fail + b.timeout)
        client = (~fail) & (~stall) & (u < b.fail + b.timeout + b.fail_4xx)
        lat = rng.lognormal(b.latency, k)
        late = lat > timeout
        good = ~(fail | stall | client | late)
        ms = np.where(good, lat, np.where(fail | client, b.error_ms, timeout))
        return ms, good, ~good & ~client

    def _tasks(self, rng: _Rng, name: str, starts: F) -> dict[str, F]:
        """Run one task per row through the workflow's steps (a Cloudflare Workflow instance each)."""
        wf = self.policy["workflows"][name]
        tally = self.tally[name]
        tok = self.traffic.tokens
        n = len(starts)
        elapsed = np.zeros(n)
        alive = np.ones(n, bool)
        decisions = np.zeros(n)
        denied = np.zeros(n)
        inp = np.zeros(n)
        out = np.zeros(n)
        cached = np.zeros(n)
        cost = np.zeros(n)
        priced = np.zeros(n, bool)
        completed: list[tuple[dict[str, Any], B]] = []  # compensated steps and which rows finished them
        failed_at: list[tuple[dict[str, Any], B]] = []
        for step in wf["steps"]:
            kind = step["kind"]
            rows = np.flatnonzero(alive)
            if len(rows) == 0:
                break
            if kind == "sleep":
                elapsed[rows] += float(step.get("duration_ms") or 0)
                continue
            if kind == "wait":
                elapsed[rows] += self.workflows[name].event_wait_ms
                continue
            limit = int(step.get("retries", 0))
            delay = float(step.get("delay_ms", 0))
            timeout = float(step.get("timeout_ms", 600_000))
            tool_name = step.get("tool")
            compensated = kind == "call" and bool(self.policy["tools"][tool_name].get("compensate"))
            if compensated:
                # The rollback's config raises the retry limit to at least 3 (docs/runtime.md, Tasks).
                pass
            v = verdict(self.policy, name, tool_name) if kind == "call" else "allow"
            step_ok = np.zeros(len(rows), bool)
            pending = np.ones(len(rows), bool)
            for attempt in range(1, limit + 2):
                idx = np.flatnonzero(pending)
                if len(idx) == 0:
                    break
                k = len(idx)
                if attempt > 1:
                    tally.retries += k
                    spec_tool = self.policy["tools"].get(tool_name) if tool_name else None
                    # A task tool call carries an Idempotency-Key built from the task id; a read-only one needs none.
                    if spec_tool is None or spec_tool["read_only"] or spec_tool.get("idempotency_key"):
                        tally.retries_replay_safe += k
                    elapsed[rows[idx]] += _backoff(step.get("backoff", "exponential"), delay, attempt - 1)
                if kind == "call":
                    decisions[rows[idx]] += 1
                    if v == "deny":
                        denied[rows[idx]] += 1
                        pending[idx] = False  # NonRetryableError: no retry
                        continue
                    ms, good, transient = self._tool_attempt(
                        rng, self.tool(tool_name), float(self.policy["tools"][tool_name]["timeout_ms"]), k
                    )
                else:  # infer
                    res = self.chain(rng, step["tier"], k)
                    ms, good, transient = res.ms, res.ok, ~res.ok
                    i_in = np.full(k, float(tok.infer_input))
                    i_out = np.full(k, float(tok.infer_output))
                    p = self.price(step["tier"], i_in, i_out, np.zeros(k))
                    inp[rows[idx[good]]] += tok.infer_input
                    out[rows[idx[good]]] += tok.infer_output
                    if p is not None:
                        cost[rows[idx[good]]] += p[good]
                        priced[rows[idx[good]]] = True
                cut = ms > timeout  # the step's own timeout fails the attempt (retried)
                good = good & ~cut
                ms = np.minimum(ms, timeout)
                transient = transient | cut
                elapsed[rows[idx]] += ms
                step_ok[idx[good]] = True
                pending[idx] = False
                pending[idx[transient & ~good]] = True
            failed = rows[~step_ok]
            alive[failed] = False
            if compensated:
                finished = np.zeros(n, bool)
                finished[rows[step_ok]] = True
                completed.append((step, finished))
                fail_mask = np.zeros(n, bool)
                fail_mask[failed] = True
                failed_at.append((step, fail_mask))
        ok = alive
        # The saga: every compensated step that finished, in reverse start order, plus the failed step's own
        # when its compensating tool's required arguments are known without its output.
        for (step, finished), (_, fail_mask) in reversed(list(zip(completed, failed_at, strict=True))):
            comp = self.policy["tools"][step["tool"]]["compensate"]
            required = {a for a, t in self.policy["tools"][comp]["args"].items() if not t.endswith("?")}
            given = {a for a, _ in step["args"]} if step.get("args") else required
            targets = (finished & ~ok) | (fail_mask if required <= given else np.zeros(n, bool))
            rows = np.flatnonzero(targets)
            if len(rows) == 0:
                continue
            limit = max(int(step.get("retries", 0)), 3)
            tally.compensations += len(rows)
            done = np.zeros(len(rows), bool)
            for attempt in range(1, limit + 2):
                idx = np.flatnonzero(~done)
                if len(idx) == 0:
                    break
                decisions[rows[idx]] += 1
                if attempt > 1:
                    elapsed[rows[idx]] += _backoff(step.get("backoff", "exponential"), float(step.get("delay_ms", 0)),
                                                   attempt - 1)  # fmt: skip
                ms, good, _ = self._tool_attempt(rng, self.tool(comp), float(self.policy["tools"][comp]["timeout_ms"]),
                                                 len(idx))  # fmt: skip
                elapsed[rows[idx]] += ms
                done[idx[good]] = True
            tally.compensations_failed += float((~done).sum())
        tally.tasks += n
        tally.tasks_ok += int(ok.sum())
        tally.task_latency += _hist(elapsed)
        tally.task_cost_usd += float(cost.sum())
        tally.cost_usd += float(cost.sum())
        tally.decisions += float(decisions.sum())
        tally.denied += float(denied.sum())
        tally.input_tokens += float(inp.sum())
        any_priced = priced
        return {"ok": ok.astype(float), "latency_ms": elapsed, "ttft_ms": elapsed, "cost_usd": cost,
                "priced": any_priced.astype(float), "input_tokens": inp, "cached_tokens": cached,
                "denied": denied, "decisions": decisions, "t": starts + elapsed}  # fmt: skip

    # ── the SLO monitor, in arrival order ──

    def _feed(self, name: str, horizon: float) -> None:
        """Judge, in arrival order, every pending sample that arrived before `horizon` (no later chunk's
        session can produce a sample before its own start)."""
        if not self.pending[name]:
            return
        merged = {k: np.concatenate([p[k] for p in self.pending[name]]) for k in self.pending[name][0]}
        ready = merged["t"] < horizon
        later = {k: v[~ready] for k, v in merged.items()}
        self.pending[name] = [later] if len(later["t"]) else []
        order = np.argsort(merged["t"][ready], kind="stable")
        now = {k: v[ready][order] for k, v in merged.items()}
        if len(now["t"]) == 0:
            return
        self._count_samples(name, now)
        judged = slo_mod.judge_stream({k: now[k] for k in slo_mod.COLUMNS}, self.slo[name], self.streams[name])
        tally = self.tally[name]
        base = tally.samples - len(now["t"])
        for sli, idx in judged.fired.items():
            if len(idx) == 0:
                continue
            tally.alert_counts[sli] = tally.alert_counts.get(sli, 0) + len(idx)
            kept = sum(a["sli"] == sli for a in tally.alerts)
            for i in idx[: max(0, ALERTS_KEPT - kept)]:
                at_s = round(float(now["t"][i]) / 1000, 3)
                value = float(judged.value[sli][i])
                tally.alerts.append({"sli": sli, "sample": int(base + i + 1), "at_s": at_s, "value": value})

    def _count_samples(self, name: str, s: dict[str, F]) -> None:
        tally = self.tally[name]
        ok = s["ok"] > 0
        tally.samples += len(ok)
        tally.samples_ok += int(ok.sum())
        tally.sample_latency += _hist(s["latency_ms"])
        tally.sample_ttft += _hist(s["ttft_ms"][ok])
        tally.sample_cost += float(s["cost_usd"][s["priced"] > 0].sum())
        tally.sample_priced += int((s["priced"] > 0).sum())
        tally.sample_input += float(np.maximum(0, s["input_tokens"]).sum())
        tally.sample_cached += float(np.maximum(0, np.minimum(s["cached_tokens"], s["input_tokens"])).sum())
        tally.sample_denied += float(s["denied"].sum())
        tally.sample_decisions += float(s["decisions"].sum())


def _backoff(kind: str, delay_ms: float, retry: int) -> float:
    """Cloudflare Workflows' wait before retry number `retry` (1 for the first): constant `delay`, linear
    `delay * retry`, exponential `delay * 2^(retry-1)`."""
    if kind == "constant":
        return delay_ms
    if kind == "linear":
        return delay_ms * retry
    return delay_ms * 2 ** (retry - 1)
