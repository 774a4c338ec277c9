"""The simulator's SLO monitor judges and alerts exactly as the runtime's (codegen/cloudflare/runtime/slo.ts).

`codegen/cloudflare/runtime/test/slo_parity.json` holds 252 generated sample sequences, each with an `slo`
table, and what the Python reference monitor (`agentspec.sim.slo.Monitor`) made of every sample: per SLI a
verdict string (one character per sample: `.` not judged, `o` within, `x` crossed) and the alerts fired, as
`[sample index, sli]`. `slo_parity.test.ts` replays every sequence through the runtime's `judge` and
`transitions` inside workerd and must get the same strings and alerts. Here: the fixture is what the reference
writes today, and the simulator's vectorized monitor (`judge_stream`, fed in uneven chunks) agrees with it.
`python tests/test_slo_parity.py` rewrites the file (then read the diff, and run both sides).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from agentspec.sim.slo import COLUMNS, SLIS, Monitor, Sample, StreamState, judge_stream

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "codegen" / "cloudflare" / "runtime" / "test" / "slo_parity.json"
SEQUENCES = 240


def _sequence(rng: np.random.Generator) -> dict[str, Any]:
    """Samples in a few regimes (so indicators cross, recover and cross again) and bounds near their values."""
    n = int(rng.integers(1, 260))
    cols: dict[str, list[Any]] = {k: [] for k in ("ok", "latency_ms", "ttft_ms", "cost_usd", "input_tokens",
                                                  "cached_tokens", "denied", "decisions")}  # fmt: skip
    phases = int(rng.integers(1, 5))
    cuts = [*sorted(rng.integers(0, n + 1, phases - 1).tolist()), n]
    pos = 0
    for cut in cuts:
        m = cut - pos
        pos = cut
        fail = float(rng.choice([0.0, 0.01, 0.05, 0.3]))
        scale = float(rng.choice([200, 800, 2000]))
        hit = float(rng.choice([0.0, 0.3, 0.8, 0.95]))
        deny = float(rng.choice([0.0, 0.05, 0.4]))
        unpriced = float(rng.choice([0.0, 0.2, 1.0]))
        # An exact regime: rates and means land exactly on bounds (cache 100/75/50/25%, a dyadic cost), so
        # `equal is within` and the drop's `>=` are exercised, not only values near a bound.
        exact = rng.random() < 0.35
        exact_hit = float(rng.choice([1.0, 0.75, 0.5, 0.25]))
        for _ in range(m):
            ok = bool(rng.random() >= fail)
            lat = int(rng.integers(1, int(scale)) if rng.random() < 0.5 else scale)  # ties on purpose
            inp = int(rng.choice([0, 100, 500, 1000])) if rng.random() < 0.2 else int(rng.integers(100, 2000))
            if exact:
                inp = 4 * int(rng.integers(25, 500))
            cols["ok"].append(ok)
            cols["latency_ms"].append(lat)
            cols["ttft_ms"].append(int(lat * rng.choice([0.25, 0.5])) if ok else 0)
            cost = 2.0**-9 if exact else round(float(rng.random()) * 0.004, 6)
            cols["cost_usd"].append(None if rng.random() < unpriced else cost)
            cols["input_tokens"].append(inp)
            if exact:
                cols["cached_tokens"].append(int(inp * exact_hit))
            else:
                cols["cached_tokens"].append(int(inp * hit * rng.random() * 2) if rng.random() < 0.9 else -5)
            decisions = int(rng.integers(0, 6))
            cols["decisions"].append(decisions)
            cols["denied"].append(int(min(decisions, rng.binomial(decisions, deny))))
    slo: dict[str, Any] = {}
    pick = rng.random(8) < 0.6
    if pick[0]:
        slo["latency_percentile"] = str(rng.choice(["p50", "p95", "p99", "p100", "p99.9"]))
        slo["latency_ms"] = int(rng.choice([200, 800, 1500, 2000]))
    if pick[1]:
        slo["ttft_percentile"] = str(rng.choice(["p50", "p95", "p90"]))
        slo["ttft_ms"] = int(rng.choice([100, 400, 1000]))
    if pick[2]:
        slo["success_pct"] = float(rng.choice([90, 95, 99, 99.5, 100]))
    if pick[3]:
        slo["cost_usd"] = float(rng.choice([0.001, 0.002, 0.0025, 2.0**-9]))
    if pick[4]:
        slo["cache_hit_pct"] = float(rng.choice([20, 50, 75, 80]))
    if pick[5]:
        slo["cache_drop_pct"] = float(rng.choice([5, 10, 25, 50]))
    if pick[6]:
        slo["denied_pct"] = float(rng.choice([1, 5, 20]))
    if not slo:
        slo["success_pct"] = 99.0
    return {"slo": slo, "samples": cols}


def _drop_edge(rng: np.random.Generator, before: float, after: float, bound: float) -> dict[str, Any]:
    """A cache-hit rate that steps from `before` to `after`: the drop equals `bound` exactly at one sample."""
    n = int(rng.integers(40, 140))
    step = int(rng.integers(20, n - 15))
    inputs = [4 * int(rng.integers(25, 500)) for _ in range(n)]
    cached = [int(x * (before if i < step else after)) for i, x in enumerate(inputs)]
    return {
        "slo": {"cache_drop_pct": bound, "cache_hit_pct": after * 100},
        "samples": {"ok": [True] * n, "latency_ms": [100] * n, "ttft_ms": [50] * n, "cost_usd": [None] * n,
                    "input_tokens": inputs, "cached_tokens": cached, "denied": [0] * n, "decisions": [1] * n},
    }  # fmt: skip


def _samples(seq: dict[str, Any]) -> list[Sample]:
    c = seq["samples"]
    return [Sample(c["ok"][i], c["latency_ms"][i], c["ttft_ms"][i], c["cost_usd"][i], c["input_tokens"][i],
                   c["cached_tokens"][i], c["denied"][i], c["decisions"][i]) for i in range(len(c["ok"]))]  # fmt: skip


def expected(seq: dict[str, Any]) -> dict[str, Any]:
    """What the reference monitor makes of a sequence: per SLI a verdict per sample, and the alerts."""
    monitor = Monitor(seq["slo"])
    verdicts = {sli: [] for sli in SLIS}
    fired: list[list[Any]] = []
    for i, sample in enumerate(_samples(seq)):
        fired.extend([i, j.sli] for j in monitor.observe(sample))
        judged = {j.sli: j.crossed for j in monitor.last}
        for sli in SLIS:
            verdicts[sli].append("." if sli not in judged else "x" if judged[sli] else "o")
    return {"verdicts": {k: "".join(v) for k, v in verdicts.items()}, "fired": fired}


def fixture() -> dict[str, Any]:
    rng = np.random.default_rng(20261201)
    sequences = []
    edges = [(1.0, 0.5, 50.0), (1.0, 0.75, 25.0), (0.5, 0.25, 50.0), (1.0, 0.5, 25.0)]
    drawn = [_sequence(rng) for _ in range(SEQUENCES)]
    drawn += [_drop_edge(rng, *edges[i % len(edges)]) for i in range(12)]
    for seq in drawn:
        seq.update(expected(seq))
        sequences.append(seq)
    return {"window": 100, "sequences": sequences}


def test_the_fixture_is_what_the_reference_monitor_writes() -> None:
    stored = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert json.loads(json.dumps(fixture())) == stored, "run `python tests/test_slo_parity.py`, review the diff"


def test_the_fixture_exercises_every_alert_and_re_arming() -> None:
    stored = json.loads(FIXTURE.read_text(encoding="utf-8"))["sequences"]
    assert len(stored) >= 200
    fired = {sli for s in stored for _, sli in s["fired"]}
    assert fired == set(SLIS)
    # Some alert fires twice in one sequence: it re-armed in between.
    assert any(len(s["fired"]) > len({sli for _, sli in s["fired"]}) for s in stored)
    assert sum(len(s["samples"]["ok"]) for s in stored) > 20_000


def test_judgements_land_exactly_on_their_bounds() -> None:
    # `equal is within` and the drop's `>=` only show when a value equals its bound; the fixture has such cases.
    stored = json.loads(FIXTURE.read_text(encoding="utf-8"))["sequences"]
    on_bound: set[str] = set()
    for seq in stored:
        monitor = Monitor(seq["slo"])
        for sample in _samples(seq):
            monitor.observe(sample)
            on_bound |= {j.sli for j in monitor.last if j.value == j.bound}
    assert on_bound >= {"latency", "cost", "cache_hit", "cache_hit_drop"}


def test_the_simulators_stream_monitor_agrees_with_the_reference_on_every_sequence() -> None:
    stored = json.loads(FIXTURE.read_text(encoding="utf-8"))["sequences"]
    rng = np.random.default_rng(7)
    differ = []
    for n, seq in enumerate(stored):
        c = seq["samples"]
        cols = {
            "ok": np.array(c["ok"], float),
            "latency_ms": np.array(c["latency_ms"], float),
            "ttft_ms": np.array(c["ttft_ms"], float),
            "cost_usd": np.array([0.0 if v is None else v for v in c["cost_usd"]]),
            "priced": np.array([v is not None for v in c["cost_usd"]], float),
            "input_tokens": np.array(c["input_tokens"], float),
            "cached_tokens": np.array(c["cached_tokens"], float),
            "denied": np.array(c["denied"], float),
            "decisions": np.array(c["decisions"], float),
        }
        state = StreamState()
        verdicts = {sli: [""] * len(c["ok"]) for sli in SLIS}
        fired = []
        pos = 0
        while pos < len(c["ok"]):
            end = min(len(c["ok"]), pos + int(rng.integers(1, 120)))
            got = judge_stream({k: cols[k][pos:end] for k in COLUMNS}, seq["slo"], state)
            for sli in SLIS:
                if sli in got.judged:
                    marks = np.where(got.judged[sli], np.where(got.crossed[sli], "x", "o"), ".")
                    verdicts[sli][pos:end] = marks.tolist()
                else:
                    verdicts[sli][pos:end] = ["."] * (end - pos)
            fired += [[pos + int(i), sli] for sli, idx in got.fired.items() for i in idx]
            pos = end
        if {k: "".join(v) for k, v in verdicts.items()} != seq["verdicts"] or sorted(fired) != sorted(seq["fired"]):
            differ.append(n)
    assert differ == []


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(fixture(), separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE.relative_to(ROOT)}", file=sys.stderr)
