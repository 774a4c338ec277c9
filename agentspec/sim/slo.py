"""The runtime's SLO monitor, in Python: samples and a workflow's `slo` table in, judgements and alerts out.

Two forms of the same semantics (codegen/cloudflare/runtime/slo.ts, docs/runtime.md "SLOs and alerts"):

- `Monitor`: one sample at a time, a line-for-line mirror of `judge` and `transitions` in slo.ts. It is the
  reference the shared fixture (`codegen/cloudflare/runtime/test/slo_parity.json`) is written from, and the
  runtime's vitest suite replays that fixture through the TypeScript functions.
- `judge_stream`: the same judgements for every prefix of a long sample stream at once (numpy), which the
  simulator uses. Sums are taken as running sums, so a mean can differ from the left fold in its last bit;
  counts and token sums are integers and exact. `tests/sim/test_slo.py` checks it against `Monitor`.

The window is the last 100 samples by arrival; level SLOs are judged once it holds 5; ceilings cross above
their bound and floors below it (equal is within); an alert fires on the transition to crossed and re-arms
when judged within again.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

WINDOW_SIZE = 100
MIN_SAMPLES = 5
DROP_RECENT = 10
DROP_MIN_BASELINE = 10

SLIS = ("latency", "ttft", "success", "denied", "cost", "cache_hit", "cache_hit_drop")
Unit = Literal["ms", "%", "usd"]
UNITS: dict[str, Unit] = {
    "latency": "ms",
    "ttft": "ms",
    "success": "%",
    "denied": "%",
    "cost": "usd",
    "cache_hit": "%",
    "cache_hit_drop": "%",
}
# Which SLIs are floors (crossed below the bound); the rest are ceilings.
FLOORS = frozenset({"success", "cache_hit"})


@dataclass(frozen=True)
class Sample:
    """What one turn, or one finished task, contributes to its workflow's SLIs (`SliSample` in slo.ts)."""

    ok: bool
    latency_ms: float
    ttft_ms: float
    cost_usd: float | None
    input_tokens: float
    cached_tokens: float
    denied: float
    decisions: float


@dataclass(frozen=True)
class Judgement:
    sli: str
    value: float
    bound: float
    crossed: bool


def slo_table(raw: dict[str, Any] | None) -> dict[str, Any]:
    """`sloTable` of slo.ts: keep the keys the monitor reads, with values of the right type."""
    out: dict[str, Any] = {}
    for key in ("latency_percentile", "ttft_percentile", "webhook"):
        if raw and isinstance(raw.get(key), str):
            out[key] = raw[key]
    for key in ("latency_ms", "ttft_ms", "success_pct", "cost_usd", "cache_hit_pct", "cache_drop_pct", "denied_pct"):
        value = raw.get(key) if raw else None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = value
    return out


_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$", re.IGNORECASE)


def parse_percentile(word: str | None) -> float | None:
    """`p95` -> 95; None when it is not a percentile in (0, 100]."""
    match = _PERCENTILE.match(word or "")
    if match is None:
        return None
    p = float(match.group(1))
    return p if 0 < p <= 100 else None


def _fmt_percentile(p: float) -> str:
    return f"p{int(p)}" if p == int(p) else f"p{p}"


def percentile(values: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil((p / 100) * len(ordered))))
    return ordered[rank - 1]


def cache_hit_rate(samples: list[Sample]) -> float | None:
    total = 0.0
    cached = 0.0
    for s in samples:
        total += max(0.0, s.input_tokens)
        cached += max(0.0, min(s.cached_tokens, s.input_tokens))
    return (cached / total) * 100 if total > 0 else None


def judge(window: list[Sample], slo: dict[str, Any]) -> list[Judgement]:
    """Every declared SLO judged over `window` (oldest first); unjudgeable ones are absent. As `judge` in slo.ts."""
    out: list[Judgement] = []
    n = len(window)

    def ceiling(sli: str, value: float | None, bound: float | None) -> None:
        if value is not None and bound is not None:
            out.append(Judgement(sli, value, bound, value > bound))

    def floor(sli: str, value: float | None, bound: float | None) -> None:
        if value is not None and bound is not None:
            out.append(Judgement(sli, value, bound, value < bound))

    if n >= MIN_SAMPLES:
        lp = parse_percentile(slo.get("latency_percentile"))
        if lp is not None:
            ceiling("latency", percentile([s.latency_ms for s in window], lp), slo.get("latency_ms"))
        tp = parse_percentile(slo.get("ttft_percentile"))
        answered = [s for s in window if s.ok]
        if tp is not None and len(answered) >= MIN_SAMPLES:
            ceiling("ttft", percentile([s.ttft_ms for s in answered], tp), slo.get("ttft_ms"))
        floor("success", (len(answered) / n) * 100, slo.get("success_pct"))
        decisions = 0.0
        denied = 0.0
        for s in window:
            decisions += max(0.0, s.decisions)
        for s in window:
            denied += max(0.0, s.denied)
        ceiling("denied", (denied / decisions) * 100 if decisions > 0 else None, slo.get("denied_pct"))
        priced = [s.cost_usd for s in window if s.cost_usd is not None]
        total = 0.0
        for c in priced:
            total += c
        ceiling("cost", total / len(priced) if len(priced) >= MIN_SAMPLES else None, slo.get("cost_usd"))
        floor("cache_hit", cache_hit_rate(window), slo.get("cache_hit_pct"))
    if slo.get("cache_drop_pct") is not None:
        earlier = window[: max(0, n - DROP_RECENT)]
        if len(earlier) >= DROP_MIN_BASELINE:
            baseline = cache_hit_rate(earlier)
            current = cache_hit_rate(window[len(earlier) :])
            if baseline is not None and current is not None and baseline > 0:
                drop = max(0.0, ((baseline - current) / baseline) * 100)
                out.append(Judgement("cache_hit_drop", drop, slo["cache_drop_pct"], drop >= slo["cache_drop_pct"]))
    return out


@dataclass
class Monitor:
    """One workflow's monitor: feed samples in arrival order, get back the SLIs each one fires."""

    slo: dict[str, Any]
    window: deque[Sample] = field(default_factory=lambda: deque(maxlen=WINDOW_SIZE))
    firing: set[str] = field(default_factory=set)
    # The judgements of the last sample observed.
    last: list[Judgement] = field(default_factory=list)

    def observe(self, sample: Sample) -> list[Judgement]:
        if not self.slo:
            return []
        self.window.append(sample)
        fire: list[Judgement] = []
        self.last = judge(list(self.window), self.slo)
        for j in self.last:
            if j.crossed and j.sli not in self.firing:
                fire.append(j)
                self.firing.add(j.sli)
            elif not j.crossed and j.sli in self.firing:
                self.firing.discard(j.sli)
        return fire


# ───────────────────────────── the stream form ─────────────────────────────

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass
class StreamState:
    """What `judge_stream` carries from one chunk of a stream to the next: the last window and alert states."""

    tail: dict[str, FloatArray] = field(default_factory=dict)
    seen: int = 0
    # +1: firing, -1: armed (judged within), 0: never judged.
    state: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SLIS, 0))


COLUMNS = ("ok", "latency_ms", "ttft_ms", "cost_usd", "priced", "input_tokens", "cached_tokens", "denied", "decisions")


@dataclass(frozen=True)
class StreamJudgement:
    """Per sample of a chunk and per SLI: whether it was judged, the value and whether it crossed; and the
    indexes (into the chunk) of the samples whose arrival fired each alert."""

    judged: dict[str, BoolArray]
    value: dict[str, FloatArray]
    crossed: dict[str, BoolArray]
    fired: dict[str, npt.NDArray[np.int64]]


def _windowed_sum(values: FloatArray, width: int, start: int) -> FloatArray:
    """Sum of `values[max(0, i - width + 1) : i + 1]` for each i >= start (running sums, exact on integers)."""
    c = np.concatenate(([0.0], np.cumsum(values)))
    i = np.arange(start, len(values))
    return c[i + 1] - c[np.maximum(0, i - width + 1)]


def _rank_value(padded: FloatArray, counts: npt.NDArray[np.int64], p: float) -> FloatArray:
    """Nearest-rank percentile per row, where each row holds `counts[i]` real values and +inf elsewhere."""
    ranks = np.minimum(counts, np.maximum(1, np.ceil((p / 100) * counts).astype(np.int64))) - 1
    kth = np.unique(ranks[counts > 0])
    if len(kth) == 0:
        return np.full(len(counts), np.nan)
    # Few distinct ranks (a full window has one): a partition is much cheaper than a sort.
    part = np.partition(padded, kth, axis=1) if len(kth) <= 16 else np.sort(padded, axis=1)
    return part[np.arange(len(counts)), np.maximum(ranks, 0)]


def judge_stream(columns: dict[str, FloatArray], slo: dict[str, Any], state: StreamState) -> StreamJudgement:
    """Judge every declared SLO after each sample of a chunk, continuing the stream `state` describes.

    `columns` holds one array per name in COLUMNS (`ok` and `priced` as 0/1, `cost_usd` 0 where unpriced).
    """
    n_new = len(columns["ok"])
    full = {k: np.concatenate((state.tail.get(k, np.zeros(0)), columns[k].astype(np.float64))) for k in COLUMNS}
    start = len(full["ok"]) - n_new  # the carried tail comes first
    w = WINDOW_SIZE
    # How many samples each judgement's window holds: the whole stream so far, up to 100.
    n = np.minimum(state.seen + np.arange(1, n_new + 1), w).astype(np.int64)
    judged: dict[str, BoolArray] = {}
    value: dict[str, FloatArray] = {}
    crossed: dict[str, BoolArray] = {}
    level = n >= MIN_SAMPLES

    def put(sli: str, ok: BoolArray, v: FloatArray, bound: float) -> None:
        judged[sli] = ok
        value[sli] = np.where(ok, v, np.nan)
        crossed[sli] = ok & ((v < bound) if sli in FLOORS else (v > bound))

    def rows(col: FloatArray) -> FloatArray:
        padded = np.concatenate((np.full(w - 1, np.inf), col))
        view = np.lib.stride_tricks.sliding_window_view(padded, w)
        return view[start : start + n_new]

    ok_sum = _windowed_sum(full["ok"], w, start)
    lp = parse_percentile(slo.get("latency_percentile"))
    if lp is not None and "latency_ms" in slo:
        # The carried tail holds at most the 99 samples before the chunk; anything older is +inf padding.
        lat = rows(full["latency_ms"])
        put("latency", level, _rank_value(lat, n, lp), slo["latency_ms"])
    tp = parse_percentile(slo.get("ttft_percentile"))
    if tp is not None and "ttft_ms" in slo:
        tt = rows(np.where(full["ok"] > 0, full["ttft_ms"], np.inf))
        answered = ok_sum.astype(np.int64)
        put("ttft", level & (answered >= MIN_SAMPLES), _rank_value(tt, answered, tp), slo["ttft_ms"])
    if "success_pct" in slo:
        put("success", level, (ok_sum / n) * 100, slo["success_pct"])
    if "denied_pct" in slo:
        dec = _windowed_sum(np.maximum(0, full["decisions"]), w, start)
        den = _windowed_sum(np.maximum(0, full["denied"]), w, start)
        with np.errstate(divide="ignore", invalid="ignore"):
            put("denied", level & (dec > 0), (den / dec) * 100, slo["denied_pct"])
    if "cost_usd" in slo:
        priced = _windowed_sum(full["priced"], w, start)
        cost = _windowed_sum(np.where(full["priced"] > 0, full["cost_usd"], 0.0), w, start)
        with np.errstate(divide="ignore", invalid="ignore"):
            put("cost", level & (priced >= MIN_SAMPLES), cost / priced, slo["cost_usd"])
    tokens = np.maximum(0, full["input_tokens"])
    cached = np.maximum(0, np.minimum(full["cached_tokens"], full["input_tokens"]))
    if "cache_hit_pct" in slo:
        t = _windowed_sum(tokens, w, start)
        c = _windowed_sum(cached, w, start)
        with np.errstate(divide="ignore", invalid="ignore"):
            put("cache_hit", level & (t > 0), (c / t) * 100, slo["cache_hit_pct"])
    if "cache_drop_pct" in slo:
        ct = np.concatenate(([0.0], np.cumsum(tokens)))
        cc = np.concatenate(([0.0], np.cumsum(cached)))
        end = np.arange(start, start + n_new) + 1  # exclusive end of each window in `full`
        begin = end - n
        split = end - DROP_RECENT
        earlier_n = n - DROP_RECENT
        with np.errstate(divide="ignore", invalid="ignore"):
            base_t = ct[np.maximum(split, 0)] - ct[np.maximum(begin, 0)]
            base = (cc[np.maximum(split, 0)] - cc[np.maximum(begin, 0)]) / base_t * 100
            cur_t = ct[end] - ct[np.maximum(split, 0)]
            cur = (cc[end] - cc[np.maximum(split, 0)]) / cur_t * 100
            drop = np.maximum(0.0, ((base - cur) / base) * 100)
        ok = (earlier_n >= DROP_MIN_BASELINE) & (base_t > 0) & (cur_t > 0) & (base > 0)
        judged["cache_hit_drop"] = ok
        value["cache_hit_drop"] = np.where(ok, drop, np.nan)
        crossed["cache_hit_drop"] = ok & (drop >= slo["cache_drop_pct"])

    fired: dict[str, npt.NDArray[np.int64]] = {}
    for sli in judged:
        event = np.where(judged[sli], np.where(crossed[sli], 1, -1), 0)
        idx = np.arange(n_new)
        last = np.maximum.accumulate(np.where(event != 0, idx, -1))
        # The state before sample i: the last event before it, else the state carried in.
        prev_idx = np.concatenate(([-1], last[:-1]))
        prev = np.where(prev_idx >= 0, event[np.maximum(prev_idx, 0)], state.state[sli])
        fired[sli] = np.flatnonzero((event == 1) & (prev != 1))
        if last[-1] >= 0:
            state.state[sli] = int(event[last[-1]])
    state.tail = {k: v[-(w - 1) :] for k, v in full.items()}
    state.seen += n_new
    return StreamJudgement(judged, value, crossed, fired)
