"""`agentspec simulate` through `main([...])`: output formats, the SLO exit code, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentspec.cli import main

SPEC = "specs/support_desk.agent"
TRAFFIC = "specs/traffic/support_desk.toml"


def test_json_output_has_every_workflow_and_exit_follows_the_slo_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", SPEC, "--traffic", TRAFFIC, "--sessions", "2000", "--seed", "1", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert {w["workflow"] for w in report["workflows"]} == {"orders", "refunds"}
    failed = any(v["verdict"] == "fail" for w in report["workflows"] for v in w["slo"])
    assert code == (1 if failed else 0)
    assert report["sessions"] == 2000 and report["seed"] == 1


def test_a_failing_slo_exits_1_and_a_holding_one_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slow = tmp_path / "slow.toml"
    slow.write_text(
        '[workflows.orders]\nturns = 3\n[models."@cf/zai-org/glm-4.7-flash"]\nlatency = { p50 = 3000, p95 = 5000 }\n'
    )
    assert main(["simulate", SPEC, "--traffic", str(slow), "--sessions", "500", "--format", "json"]) == 1
    capsys.readouterr()
    calm = tmp_path / "calm.toml"
    calm.write_text(
        "[cache]\nhit = 1.0\n[workflows.orders]\nturns = 3\nthink_ms = 1000\n"
        '[models."@cf/zai-org/glm-4.7-flash"]\nlatency = { p50 = 100, p95 = 200 }\n'
    )
    code = main(["simulate", SPEC, "--traffic", str(calm), "--sessions", "500"])
    out = capsys.readouterr().out
    assert "every declared SLO holds" in out, out
    assert code == 0


def test_human_output_compares_two_versions_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    main(["simulate", SPEC, "--traffic", TRAFFIC, "--sessions", "500", "--compare", SPEC])
    out = capsys.readouterr().out
    assert "A: support_desk v3" in out and "B: support_desk v3" in out
    assert "SLO verdicts" in out and "latency p95" in out


@pytest.mark.parametrize(
    ("text", "message", "where"),
    [
        ("arrival_rate = -2\n", "`arrival_rate`: input should be greater than 0", "bad.toml:1:1"),
        ('[models."@cf/nope/model"]\nfail_5xx = 0.1\n', "model `@cf/nope/model` is not in the spec", "bad.toml:1:"),
        ("[workflows.orders]\ntools = { lookup_ordr = 0.5 }\n", "tool `lookup_ordr` is not in the spec", "bad.toml:2:"),
        ("[workflows.orders]\nturn = 3\n", "unknown field `workflows.orders.turn`", "bad.toml:2:1"),
        ("[tools.lookup_order]\nfail = 1.5\n", "`tools.lookup_order.fail`: input should be less than or equal to 1",
         "bad.toml:2:1"),
        ("sessions = [\n", "traffic model is not valid TOML", "bad.toml:"),
    ],
)  # fmt: skip
def test_a_bad_traffic_model_is_a_located_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str, where: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    code = main(["simulate", SPEC, "--traffic", str(bad)])
    err = capsys.readouterr().err
    assert code == 1
    assert message in err, err
    assert where.replace("bad.toml", str(bad)) in err, err
    assert "Traceback" not in err and "^" in err


def test_did_you_mean_for_a_misspelled_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[workflows.orders]\ntools = { lookup_ordr = 0.5 }\n")
    main(["simulate", SPEC, "--traffic", str(bad)])
    assert "did you mean `lookup_order`?" in capsys.readouterr().err


def test_a_spec_with_errors_is_rendered_as_diagnostics(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "specs/invalid/E0102-misspelled-tool.agent"])
    err = capsys.readouterr().err
    assert code == 1
    assert "error[E0102]" in err and "-->" in err and "nothing was simulated" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["--sessions", "0"], ["--sessions", "many"], ["--seed", "-1"], ["--format", "xml"]])
def test_bad_arguments_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", SPEC, *argv]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_missing_files_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", SPEC, "--traffic", str(tmp_path / "none.toml")]) == 1
    assert "cannot read traffic model" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "none.agent")]) == 1
    assert "Traceback" not in capsys.readouterr().err
