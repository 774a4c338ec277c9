"""The review as one self-contained HTML file: figures, SLO rows, chain checks and (optionally) the previous
period's figures in, HTML text out. No script runs and nothing is fetched: charts are inline SVG, styles inline,
and the figures also ride along as JSON (`<script type="application/json" id="agentspec-figures">`) for tools.
Output is deterministic: the same export gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup, escape

from agentspec.report.figures import LATENCY_BUCKETS, Figures
from agentspec.report.slo import SloRow
from agentspec.trace.fleet import ChainCheck

#: The per-workflow headline figures compared with the previous period: (label, table, column, unit).
HEADLINES: tuple[tuple[str, str, str, str], ...] = (
    ("turns", "latency", "turns", ""),
    ("latency p95", "latency", "p95", "ms"),
    ("turn success", "outcomes", "turn_success_pct", "%"),
    ("task success", "outcomes", "task_success_pct", "%"),
    ("cost per successful task", "outcomes", "cost_per_success_usd", "USD"),
    ("denied tool calls", "denied", "denied_pct", "%"),
    ("replay-safe retry success", "retries", "success_pct", "%"),
)


@dataclass(frozen=True)
class Review:
    """Everything one review shows."""

    source: str
    figures: Figures
    chains: Sequence[ChainCheck]
    slo: Sequence[SloRow] | None
    previous: Figures | None = None
    previous_source: str | None = None


def headlines(figures: Figures) -> dict[str, dict[str, Any]]:
    """workflow -> headline label -> value (None when the period has no data for it)."""
    workflows = sorted({str(r["workflow"]) for r in figures.rows("outcomes")})
    out: dict[str, dict[str, Any]] = {}
    for w in workflows:
        out[w] = {label: figures.by_workflow(table).get(w, {}).get(column) for label, table, column, _ in HEADLINES}
    return out


def fmt(value: Any, unit: str = "") -> str:
    """A figure as the review prints it (and as the browser test reads it back)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if unit == "USD":
        return f"${float(value):.6f}"
    if not isinstance(value, float):
        return f"{value}{'%' if unit == '%' else ' ms' if unit == 'ms' else ''}"
    text = f"{value:.1f}" if unit in ("%", "ms") else f"{value:.4g}"
    return f"{text}{'%' if unit == '%' else ' ms' if unit == 'ms' else ''}"


def delta(now: Any, before: Any, unit: str) -> str:
    if now is None or before is None:
        return "–"
    change = float(now) - float(before)
    sign = "+" if change > 0 else ""
    if unit == "USD":
        return f"{sign}${change:.6f}"
    suffix = " pt" if unit == "%" else " ms" if unit == "ms" else ""
    return f"{sign}{change:.1f}{suffix}" if unit else f"{sign}{change:g}"


def bar_chart(title: str, bars: Sequence[tuple[str, float]], unit: str = "", width: int = 520) -> Markup:
    """A horizontal bar chart as inline SVG; labels and title escaped."""
    row, label_w = 22, 170
    height = 28 + row * max(1, len(bars))
    top = max((v for _, v in bars), default=0) or 1
    parts = [
        f'<svg role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
        f'<text x="0" y="14" class="t">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(bars):
        y = 22 + i * row
        w = (width - label_w - 80) * (value / top)
        parts.append(
            f'<text x="0" y="{y + 14}">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="#4a7bd0"></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 14}">{escape(fmt(value, unit))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _histogram_bars(figures: Figures, workflow: str) -> list[tuple[str, float]]:
    counts = {int(r["bucket"]): float(r["turns"]) for r in figures.rows("histogram") if r["workflow"] == workflow}
    labels = [f"≤ {b} ms" for b in LATENCY_BUCKETS] + [f"> {LATENCY_BUCKETS[-1]} ms"]
    return [(label, counts.get(i + 1, 0.0)) for i, label in enumerate(labels)]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: resources.files("agentspec.report").joinpath(name).read_text(encoding="utf-8")
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    return env


def render(review: Review) -> str:
    """The review's HTML."""
    figures = review.figures
    now = headlines(figures)
    before = headlines(review.previous) if review.previous is not None else None
    data = {
        "source": review.source,
        "tables": figures.tables,
        "slo": [r.as_json() for r in review.slo] if review.slo is not None else None,
        # Counts for every chain; details only of the ones with something to say (a fleet has many chains).
        "chain_counts": {
            "checked": len(review.chains),
            "broken": sum(1 for c in review.chains if c.verified and not c.ok),
            "unverified": sum(1 for c in review.chains if not c.verified),
        },
        "chains": [
            {
                "tenant": c.tenant,
                "session": c.session,
                "workflow": c.workflow,
                "records": c.records,
                "verified": c.verified,
                "ok": c.ok,
                "missing": list(c.missing),
                "problems": [p.as_json() for p in c.problems],
            }
            for c in review.chains
            if not c.ok
        ],
        "headlines": now,
        "previous": before,
    }
    # `</` may not appear inside a script element; JSON lets it be written `<\/`.
    figures_json = Markup(json.dumps(data, sort_keys=True, ensure_ascii=False).replace("</", "<\\/"))
    workflows = sorted(now)
    charts = {
        w: {
            "latency": bar_chart(f"{w}: turns by latency", _histogram_bars(figures, w)),
            "cache": bar_chart(
                f"{w}: cache hit by prompt family",
                [
                    (str(r["prompt_family"]), float(r["hit_pct"] or 0))
                    for r in figures.rows("cache")
                    if r["workflow"] == w
                ],
                "%",
            ),
        }
        for w in workflows
    }
    locality_chart = bar_chart(
        "session locality by workflow",
        [
            (str(r["value"]), float(r["locality_pct"] or 0))
            for r in figures.rows("locality")
            if r["dimension"] == "workflow"
        ],
        "%",
    )
    return (
        _environment()
        .get_template("review.html.j2")
        .render(
            review=review,
            figures=figures,
            workflows=workflows,
            headlines=HEADLINES,
            now=now,
            before=before,
            delta=delta,
            charts=charts,
            locality_chart=locality_chart,
            broken=[c for c in review.chains if c.verified and not c.ok],
            unverified=[c for c in review.chains if not c.verified],
            period=(figures.rows("period") or [{}])[0],
            figures_json=figures_json,
        )
    )
