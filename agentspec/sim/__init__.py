"""The simulator: a checked spec and a traffic model in, per-workflow latency, cost, success and SLO verdicts out.

    from agentspec import sim
    result = sim.simulate("specs/support_desk.agent", "specs/traffic/support_desk.toml", sessions=10_000, seed=1)
    result["workflows"][0]["slo"]

`simulate` takes paths or already loaded objects; `compare` runs two specs (or two traffic models) on the same
seed. The stages are `traffic.load`, `engine.Simulator.run` and `report.workflow_report`; docs/simulate.md has
the traffic fields and what each figure means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentspec import model as m
from agentspec.sim import policy_view, report
from agentspec.sim.engine import Simulator
from agentspec.sim.traffic import Traffic, TrafficError, validate_against
from agentspec.sim.traffic import load as load_traffic
from agentspec.sim.traffic import parse as parse_traffic

__all__ = ["SpecError", "Traffic", "TrafficError", "compare", "load_traffic", "parse_traffic", "simulate"]


class SpecError(Exception):
    """A spec that does not check cleanly: its diagnostics and sources, for rendering."""

    def __init__(self, diagnostics: list[Any], sources: dict[str, str]) -> None:
        super().__init__(f"{len(diagnostics)} problem(s) in the spec")
        self.diagnostics = diagnostics
        self.sources = sources


def checked(spec: str | Path | m.RSpec) -> m.RSpec:
    """A checked spec from a path, or the spec itself; raises SpecError when it has errors."""
    if isinstance(spec, m.RSpec):
        return spec
    from agentspec.check import check
    from agentspec.diagnostics import has_errors
    from agentspec.load import load

    loaded = load(str(spec))
    result = check(loaded)
    if result.spec is None or has_errors(result.diagnostics):
        errors = [d for d in result.diagnostics if d.severity == "error"]
        raise SpecError(errors, loaded.sources)
    return result.spec


def _traffic(traffic: str | Path | Traffic | None) -> tuple[Traffic, str, str]:
    if traffic is None:
        return Traffic(), "<default traffic>", ""
    if isinstance(traffic, Traffic):
        return traffic, "<traffic>", ""
    text_path = str(traffic)
    t = load_traffic(text_path)
    return t, text_path, Path(text_path).read_text(encoding="utf-8")


def simulate(
    spec: str | Path | m.RSpec,
    traffic: str | Path | Traffic | None = None,
    *,
    sessions: int | None = None,
    seed: int | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """One simulation run as a JSON-able report (see report.py for every field)."""
    rspec = checked(spec)
    t, path, text = _traffic(traffic)
    tables = policy_view.tables(rspec)
    validate_against(t, tables, path, text)
    sim = Simulator(tables, t, seed)
    n = sessions if sessions is not None else t.sessions
    tallies = sim.run(n)
    workflows = [
        report.workflow_report(name, tallies[name], sim.slo[name], bool(tables["workflows"][name]["steps"]))
        for name in sim.names
    ]
    return {
        "label": label or f"{rspec.name} v{rspec.version}",
        "agent": rspec.name,
        "version": rspec.version,
        "spec_hash": tables["spec_hash"],
        "traffic": path,
        "sessions": n,
        "seed": sim.seed,
        "workflows": workflows,
    }


def compare(
    a: str | Path | m.RSpec,
    b: str | Path | m.RSpec,
    traffic: str | Path | Traffic | None = None,
    traffic_b: str | Path | Traffic | None = None,
    *,
    sessions: int | None = None,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Two runs on the same seed: two spec versions under one traffic model, or one spec under two."""
    first = simulate(a, traffic, sessions=sessions, seed=seed)
    second = simulate(b, traffic_b if traffic_b is not None else traffic, sessions=sessions, seed=seed)
    if first["label"] == second["label"]:
        first["label"], second["label"] = f"A: {first['label']}", f"B: {second['label']}"
    return [first, second]
