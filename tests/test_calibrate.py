"""`agentspec trace calibrate`: a synthetic export drawn from a known traffic model (agentspec/trace/synthetic.py)
must calibrate back to that model, within the sampling error of the export's size; the fitted file loads, and
simulating it predicts what simulating the true model predicts."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from agentspec import sim
from agentspec.check import check
from agentspec.cli import main
from agentspec.load import load
from agentspec.policy import tables
from agentspec.sim import traffic as traffic_mod
from agentspec.trace import synthetic
from agentspec.trace.calibrate import CalibrationError, calibrate

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "support_desk.agent"
LOW, LOW_FALLBACK = "@cf/zai-org/glm-4.7-flash", "@cf/google/gemma-4-26b-a4b-it"

TRUE = f"""
arrival_rate = 3.0
[tokens]
system = 300
input = 50
output = 80
tool_call = 30
tool_result = 120
[cache]
hit = 0.7
[workflows.orders]
share = 0.7
turns = {{ mean = 4, max = 12 }}
think_ms = 8000
tools = {{ lookup_order = 0.5 }}
[workflows.refunds]
share = 0.3
turns = {{ mean = 2, max = 6 }}
think_ms = 12000
tools = {{ lookup_order = 0.4, send_email = 0.3 }}
tasks = 0.5
[models."{LOW}"]
latency = {{ p50 = 250, p95 = 900 }}
fail_5xx = 0.05
busy_429 = 0.03
timeout = 0.01
error_ms = 40
[models."{LOW_FALLBACK}"]
latency = {{ p50 = 500, p95 = 1500 }}
fail_5xx = 0.02
[tools.lookup_order]
latency = {{ p50 = 80, p95 = 300 }}
fail = 0.04
fail_4xx = 0.02
error_ms = 30
[tools.send_email]
latency = {{ p50 = 150, p95 = 400 }}
fail = 0.05
"""
SESSIONS = 2500


@pytest.fixture(scope="module")
def policy() -> dict:
    spec = check(load(str(SPEC))).spec
    assert spec is not None
    return tables(spec)


@pytest.fixture(scope="module")
def truth() -> traffic_mod.Traffic:
    return traffic_mod.parse(TRUE)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory, policy: dict, truth: traffic_mod.Traffic) -> Path:
    out = tmp_path_factory.mktemp("calibrate") / "export"
    synthetic.generate(out, policy, truth, SESSIONS, seed=11)
    return out


def _close(got: float, want: float, rel: float) -> bool:
    return abs(got - want) <= rel * want


def _quantile(got: float, d: traffic_mod.Distribution, q: float, n: float) -> bool:
    """Within 4 standard errors of the lognormal's q-quantile estimated from n samples (the sample quantile's
    error is sqrt(q(1-q)) / (pdf(z_q) sqrt(n)) in log space), and 2 % for the rounding of recorded ms."""
    z = {0.5: 0.0, 0.95: 1.6448536269514722}[q]
    want = d.p50 if q == 0.5 else d.p95
    log_se = math.sqrt(q * (1 - q)) / (math.exp(-z * z / 2) / math.sqrt(2 * math.pi)) / math.sqrt(n) * d.sigma
    return abs(math.log(got / want)) <= 4 * log_se + 0.02


def _binomial(got: float, p: float, n: float) -> bool:
    """Within 4 standard errors of a rate p measured over n trials (and a floor for tiny rates)."""
    return abs(got - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-3


def test_calibration_gives_the_true_traffic_back(export: Path, truth: traffic_mod.Traffic) -> None:
    cal = calibrate(export)
    t = cal.traffic
    fitted = traffic_mod.parse(cal.toml())  # the file it writes is a valid traffic model
    assert fitted.sessions == SESSIONS
    assert _close(t["arrival_rate"], truth.arrival_rate, 0.06)
    assert t["tokens"] == {"system": 300, "input": 50, "output": 80, "tool_call": 30, "tool_result": 120}
    assert abs(t["cache"]["hit"] - 0.7) < 0.03
    for name in ("orders", "refunds"):
        want, got = truth.workflows[name], fitted.workflows[name]
        assert abs(got.share - want.share) < 0.03
        assert _close(got.turns.mean, want.turns.mean, 0.06)
        assert got.turns.max <= want.turns.max
        assert _close(got.think_ms, want.think_ms, 0.08)
        for tool, p in want.tools.items():
            assert abs(got.tools[tool] - p) < 0.03, (name, tool, got.tools)
    assert abs(fitted.workflows["refunds"].tasks - 0.5) < 0.06
    attempts = cal.summary["models"]
    for model in (LOW, LOW_FALLBACK):
        want, got = truth.models[model], fitted.models[model]
        n = attempts[model]["attempts"]
        k = attempts[model]["latency"]["n"]
        assert _quantile(got.latency.p50, want.latency, 0.5, k), (model, got.latency)
        assert _quantile(got.latency.p95, want.latency, 0.95, k), (model, got.latency)
        for kind in ("fail_5xx", "busy_429", "timeout"):
            assert _binomial(getattr(got, kind), getattr(want, kind), n), (model, kind, getattr(got, kind))
    assert fitted.models[LOW].error_ms == 40
    tool_attempts = cal.summary["tools"]
    for tool in ("lookup_order", "send_email"):
        want_t, got_t = truth.tools[tool], fitted.tools[tool]
        n = tool_attempts[tool]["attempts"]
        assert _quantile(got_t.latency.p50, want_t.latency, 0.5, n) and _quantile(
            got_t.latency.p95, want_t.latency, 0.95, n
        )
        for kind in ("fail", "fail_4xx", "timeout"):
            assert _binomial(getattr(got_t, kind), getattr(want_t, kind), n), (tool, kind, getattr(got_t, kind))


def test_the_simulator_predicts_alike_from_the_fitted_and_the_true_traffic(
    export: Path, truth: traffic_mod.Traffic
) -> None:
    fitted = traffic_mod.parse(calibrate(export).toml())
    a = sim.simulate(SPEC, truth, sessions=4000, seed=5)
    b = sim.simulate(SPEC, fitted, sessions=4000, seed=5)
    for wa, wb in zip(a["workflows"], b["workflows"], strict=True):
        assert wa["workflow"] == wb["workflow"]
        assert _close(wb["latency_ms"]["p95"], wa["latency_ms"]["p95"], 0.1), (wa["latency_ms"], wb["latency_ms"])
        assert abs(wb["turn_success_pct"] - wa["turn_success_pct"]) < 0.5


def test_without_per_attempt_records_the_turn_fields_still_calibrate(
    export: Path, tmp_path: Path, truth: traffic_mod.Traffic
) -> None:
    """An older runtime's traces: no `model_rounds`, no `attempt_log`; TTFT, `retry_log`, `attempts` and `ms`."""
    old = tmp_path / "old"
    shutil.copytree(export, old)
    for part in old.glob("traces/*/*/*.ndjson"):
        events = [json.loads(line) for line in part.open()]
        for e in events:
            e["data"].pop("model_rounds")
            for call in e["data"]["tools"]:
                for key in ("attempt_log", "latency_ms", "failure", "round"):
                    call.pop(key)
        part.write_text("".join(json.dumps(e) + "\n" for e in events))
    fitted = traffic_mod.parse(calibrate(old).toml())
    primary = fitted.models[LOW]
    measured = calibrate(old).summary["models"][LOW]
    n, k = measured["attempts"], measured["latency"]["n"]
    want = truth.models[LOW].latency
    assert _quantile(primary.latency.p50, want, 0.5, k) and _quantile(primary.latency.p95, want, 0.95, k)
    for kind in ("fail_5xx", "busy_429", "timeout"):
        assert _binomial(getattr(primary, kind), getattr(truth.models[LOW], kind), n), kind
    lookup = fitted.tools["lookup_order"]
    assert _quantile(lookup.latency.p50, truth.tools["lookup_order"].latency, 0.5, 2000)
    assert abs(lookup.fail_4xx - 0.02) < 0.01 and abs(lookup.fail - 0.04) < 0.015


def test_the_command_writes_a_traffic_file_the_simulator_takes(export: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "traffic.toml"
    assert main(["trace", "calibrate", str(export), "-o", str(out)]) == 0
    assert f"calibrated from {SESSIONS:,} sessions" in capsys.readouterr().out
    text = out.read_text()
    assert text.startswith("# Traffic fitted by `agentspec trace calibrate`")
    assert f'[models."{LOW}"]  # ' in text and "attempts" in text
    # The synthetic sessions all start within the first UTC hour of the day (about 14 minutes at 3 per second).
    assert f"# sessions started by UTC hour: 00h {SESSIONS}\n" in text
    assert calibrate(export).summary["arrivals_by_hour"] == {0: SESSIONS}
    assert main(["simulate", str(SPEC), "--traffic", str(out), "--sessions", "500", "--format", "json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["workflows"]


@pytest.mark.parametrize("damage", ["missing", "no-traces", "truncated", "no-policy"])
def test_bad_exports_are_clear_errors(export: Path, tmp_path: Path, damage: str, capsys) -> None:
    copy_ = tmp_path / "export"
    shutil.copytree(export, copy_)
    if damage == "missing":
        copy_ = tmp_path / "nowhere"
    elif damage == "no-traces":
        shutil.rmtree(copy_ / "traces")
    elif damage == "truncated":
        part = sorted(copy_.glob("traces/*/*/*.ndjson"))[0]
        part.write_bytes(part.read_bytes()[:-30])
    else:
        shutil.rmtree(copy_ / "policies")
    code = main(["trace", "calibrate", str(copy_), "-o", str(tmp_path / "t.toml")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and not (tmp_path / "t.toml").exists()
    expected = {
        "missing": "is not an export directory",
        "no-traces": "holds no traces",
        "truncated": "(a truncated file?)",
        "no-policy": "pass `--spec SPEC`",
    }[damage]
    assert expected in err, err
    if damage == "no-policy":
        assert main(["trace", "calibrate", str(copy_), "-o", str(tmp_path / "t.toml"), "--spec", str(SPEC)]) == 0
    with pytest.raises(CalibrationError):
        calibrate(tmp_path / "nowhere")
