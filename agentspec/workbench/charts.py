"""Charts of a prototype session: the turns a `LiveAgent` ran in, one matplotlib figure out (latency and tokens
per turn). matplotlib renders a PNG that Jupyter embeds in the notebook, so the chart shows in JupyterLab and in
a static HTML export with no network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentspec.workbench.live import Turn


def turns_figure(turns: Sequence[Turn]) -> Any:
    """Latency (ms) and input/output tokens of each completed turn, side by side."""
    from matplotlib.figure import Figure

    done = [t for t in turns if t.ok and t.trace is not None]
    labels = [f"{t.session}#{t.number}" for t in done]
    xs = list(range(len(done)))
    fig = Figure(figsize=(8, 3), layout="constrained")
    latency, tokens = fig.subplots(1, 2)
    latency.bar(xs, [t.latency_ms or 0 for t in done], color="#4472c4")
    latency.set_title("latency per turn (ms)")
    tokens.bar(xs, [t.input_tokens or 0 for t in done], label="input", color="#70ad47")
    tokens.bar(
        xs, [t.output_tokens or 0 for t in done], bottom=[t.input_tokens or 0 for t in done], label="output",
        color="#ed7d31",
    )  # fmt: skip
    tokens.set_title("tokens per turn")
    tokens.legend()
    for ax in (latency, tokens):
        ax.set_xticks(xs, labels)
    return fig
