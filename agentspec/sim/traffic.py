"""Traffic models: a TOML file in, a validated, frozen `Traffic` out (or located diagnostics).

A traffic model says how a spec is used and how its dependencies behave: session arrivals and turns, the tool
calls the model asks for, per-model latency and failure rates, per-tool latency and failures, and the prompt
cache. Every field, with an example, is in docs/simulate.md; `specs/traffic/support_desk.toml` is a whole file.
`validate_against` then checks the names a traffic model uses against a checked spec (an unknown model, tool or
workflow is an error with a did-you-mean).
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentspec.diagnostics import Diagnostic, did_you_mean, error
from agentspec.model import Span


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Distribution(_Frozen):
    """A lognormal latency in ms, given by its median and 95th percentile (p95 >= p50 > 0)."""

    p50: float = Field(gt=0)
    p95: float = Field(gt=0)

    @field_validator("p95")
    @classmethod
    def _spread(cls, v: float, info: Any) -> float:
        p50 = info.data.get("p50")
        if p50 is not None and v < p50:
            raise ValueError("p95 must be at least p50")
        return v

    @property
    def mu(self) -> float:
        return math.log(self.p50)

    @property
    def sigma(self) -> float:
        # z of the 95th percentile of the standard normal.
        return (math.log(self.p95) - math.log(self.p50)) / 1.6448536269514722


Probability = float


class ModelBehaviour(_Frozen):
    latency: Distribution = Distribution(p50=800, p95=2000)
    fail_5xx: Probability = Field(default=0.0, ge=0, le=1)
    timeout: Probability = Field(default=0.0, ge=0, le=1)
    busy_429: Probability = Field(default=0.0, ge=0, le=1)
    error_ms: float = Field(default=100, ge=0)
    capacity: int | None = Field(default=None, gt=0)


class ToolBehaviour(_Frozen):
    latency: Distribution = Distribution(p50=100, p95=300)
    fail: Probability = Field(default=0.0, ge=0, le=1)
    timeout: Probability = Field(default=0.0, ge=0, le=1)
    fail_4xx: Probability = Field(default=0.0, ge=0, le=1)
    error_ms: float = Field(default=50, ge=0)


class Turns(_Frozen):
    """Turns per session: 1 + Poisson(mean - 1), at most `max`; `mean == max` gives exactly that many."""

    mean: float = Field(default=5, ge=1)
    max: int = Field(default=50, ge=1)


class WorkflowTraffic(_Frozen):
    share: float = Field(default=1.0, ge=0)
    turns: Turns = Turns()
    think_ms: float = Field(default=20_000, ge=0)
    tenants: dict[str, float] = {"default": 1.0}
    risk: dict[str, float] | None = None
    tools: dict[str, Probability] = {}
    tasks: Probability = Field(default=0.0, ge=0, le=1)
    event_wait_ms: float = Field(default=0, ge=0)

    @field_validator("turns", mode="before")
    @classmethod
    def _fixed_turns(cls, v: Any) -> Any:
        return {"mean": v, "max": v} if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("tenants", "risk")
    @classmethod
    def _weights(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None and (any(w < 0 for w in v.values()) or sum(v.values()) <= 0):
            raise ValueError("weights must be >= 0 with a positive sum")
        return v

    @field_validator("tools")
    @classmethod
    def _chances(cls, v: dict[str, float]) -> dict[str, float]:
        if any(not 0 <= p <= 1 for p in v.values()):
            raise ValueError("a tool's chance per turn must be between 0 and 1")
        return v


class Tokens(_Frozen):
    system: int = Field(default=400, ge=0)
    input: int = Field(default=120, ge=0)
    output: int = Field(default=180, ge=0)
    tool_call: int = Field(default=40, ge=0)
    tool_result: int = Field(default=150, ge=0)
    summary: int = Field(default=300, ge=0)
    infer_input: int = Field(default=300, ge=0)
    infer_output: int = Field(default=120, ge=0)


class Cache(_Frozen):
    affinity: bool = True
    hit: Probability = Field(default=0.95, ge=0, le=1)
    hit_without_affinity: Probability = Field(default=0.1, ge=0, le=1)
    cached_price_ratio: float | None = Field(default=None, ge=0, le=1)


class Traffic(_Frozen):
    sessions: int = Field(default=10_000, gt=0)
    arrival_rate: float = Field(default=2.0, gt=0)
    seed: int = 0
    tokens: Tokens = Tokens()
    cache: Cache = Cache()
    workflows: dict[str, WorkflowTraffic] = {}
    models: dict[str, ModelBehaviour] = {}
    tools: dict[str, ToolBehaviour] = {}
    default_model: ModelBehaviour = ModelBehaviour()
    default_tool: ToolBehaviour = ToolBehaviour()


class TrafficError(Exception):
    """A traffic model that cannot be used, with its located diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, str]) -> None:
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics
        self.sources = sources


def _span(path: str, text: str, loc: tuple[str | int, ...]) -> Span:
    """Where a key path sits in the TOML text: under the deepest table header that prefixes it, the line of
    the next key of the path (inline tables included), else that header's line."""
    lines = text.splitlines()
    keys = [str(k) for k in loc]
    headers: list[tuple[int, list[str]]] = [(0, [])]
    for number, line in enumerate(lines, start=1):
        header = re.match(r"^\s*\[+\s*(.*?)\s*\]+\s*(#.*)?$", line)
        if header:
            parts = [k.strip().strip('"') for k in re.findall(r'"[^"]*"|[^."]+', header.group(1)) if k.strip()]
            headers.append((number, parts))
    start, table = max((h for h in headers if keys[: len(h[1])] == h[1]), key=lambda h: (len(h[1]), h[0]))
    best = (max(start, 1), 1, len(lines[start - 1]) + 1 if start else 2)
    rest = keys[len(table) :]
    end_of_table = next((n for n, _ in headers if n > start), len(lines) + 1)
    for number in range(start + 1, end_of_table):
        line = lines[number - 1]
        for depth, key in enumerate(rest):
            m = re.search(rf'(?:^|[{{,\s])("?{re.escape(key)}"?)\s*=', line)
            if m is None:
                break
            col = m.start(1) + 1
            best = (number, col, col + len(m.group(1)))
            if depth == 0 and len(rest) > 1 and "{" not in line[m.end() :]:
                break
        if best[0] == number:
            break
    line_no, col, end = best
    offset = sum(len(x) + 1 for x in lines[: line_no - 1]) + col - 1
    return Span(
        file=path, line=line_no, column=col, end_line=line_no, end_column=end, start=offset, end=offset + end - col
    )


def _toml_error_span(path: str, text: str, message: str) -> Span:
    m = re.search(r"line (\d+), column (\d+)", message)
    line, col = (int(m.group(1)), int(m.group(2))) if m else (1, 1)
    lines = text.splitlines() or [""]
    offset = sum(len(x) + 1 for x in lines[: line - 1]) + col - 1
    return Span(file=path, line=line, column=col, end_line=line, end_column=col + 1, start=offset, end=offset + 1)


def parse(text: str, path: str = "<traffic>") -> Traffic:
    """TOML text in, a Traffic out; raises TrafficError with located diagnostics."""
    sources = {path: text}
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        span = _toml_error_span(path, text, str(exc))
        raise TrafficError([error("T0001", span, f"traffic model is not valid TOML: {exc}", "here")], sources) from exc
    try:
        return Traffic.model_validate(raw)
    except ValidationError as exc:
        diagnostics = []
        for e in exc.errors():
            loc = tuple(e["loc"])
            shown = ".".join(str(k) for k in loc)
            if e["type"] == "extra_forbidden":
                known = _known_fields(loc)
                diagnostics.append(
                    error("T0002", _span(path, text, loc), f"unknown field `{shown}`", "not a traffic field",
                          did_you_mean(str(loc[-1]), known) or "see docs/simulate.md for every field")
                )  # fmt: skip
            else:
                msg = e["msg"].replace("Value error, ", "")
                diagnostics.append(
                    error("T0003", _span(path, text, loc), f"`{shown}`: {msg[:1].lower() + msg[1:]}",
                          f"got {e.get('input')!r}", "see docs/simulate.md for the field's range")
                )  # fmt: skip
        raise TrafficError(diagnostics, sources) from None


def _known_fields(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Traffic
    for key in loc[:-1]:
        field = model.model_fields.get(str(key))
        if field is None:
            # A dict level (workflow, model or tool name): its values' model.
            continue
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        nxt = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nxt is not None:
            model = nxt
    return list(model.model_fields)


def load(path: str) -> Traffic:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        span = Span.whole(path)  # unreadable: no position in it to point at
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TrafficError(
            [error("T0001", span, f"cannot read traffic model `{path}`: {reason.lower()}")], {}
        ) from None
    return parse(text, path)


def validate_against(traffic: Traffic, policy: dict[str, Any], path: str, text: str) -> None:
    """Every workflow, model, tool and risk the traffic names must exist in the spec's policy tables."""
    models = {m for t in policy["tiers"].values() for m in t["models"]}
    diagnostics = []

    def unknown(kind: str, name: str, known: set[str], loc: tuple[str, ...]) -> None:
        diagnostics.append(
            error("T0004", _span(path, text, loc), f"{kind} `{name}` is not in the spec", f"no such {kind}",
                  did_you_mean(name, known) or f"the spec declares {', '.join(f'`{k}`' for k in sorted(known))}")
        )  # fmt: skip

    for name in traffic.models:
        if name not in models:
            unknown("model", name, models, ("models", name))
    for name in traffic.tools:
        if name not in policy["tools"]:
            unknown("tool", name, set(policy["tools"]), ("tools", name))
    for wf_name, wf in traffic.workflows.items():
        if wf_name not in policy["workflows"]:
            unknown("workflow", wf_name, set(policy["workflows"]), ("workflows", wf_name))
            continue
        for tool in wf.tools:
            if tool not in policy["tools"]:
                unknown("tool", tool, set(policy["tools"]), ("workflows", wf_name, "tools", tool))
        for risk in wf.risk or {}:
            if risk not in ("low", "medium", "high"):
                unknown("risk level", risk, {"low", "medium", "high"}, ("workflows", wf_name, "risk", risk))
    if diagnostics:
        raise TrafficError(diagnostics, {path: text})
