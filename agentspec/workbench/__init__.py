"""The workbench's library surface: a spec (a path, or text from a notebook cell) in, displays out.

    from agentspec import workbench as wb
    checked = wb.load("specs/support_desk.agent")      # or wb.load_text(text, path="specs/mine.agent")
    checked                  # diagnostics as `agentspec check` renders them, or a summary of the agent
    checked.agent            # the resolved model as tables: workflows, tiers, tools, access, steps, SLOs
    checked.policy           # the policy tables the runtime reads; .evaluate(workflow, tool, url)
    checked.files            # the generated project; checked.compile("out/x")
    live = wb.serve(checked) # the compiled agent under `wrangler dev`, on a scripted loopback model
    live.turn("s1", "orders", "Where is order A-100?")

Widgets (`SpecEditor`, `ChatPanel`, `PiiPreview`) live in `agentspec.workbench.widgets` and import ipywidgets
only when used. `%load_ext agentspec` registers the `%%agentspec` cell magic (`agentspec.workbench.magic`).
"""

from __future__ import annotations

from pathlib import Path

from agentspec.check import check
from agentspec.gcpause import paused
from agentspec.load import load as _load
from agentspec.load import load_text as _load_text
from agentspec.workbench.live import LiveAgent, Turn, serve
from agentspec.workbench.scripted_model import ANY, Cue, ScriptedModel
from agentspec.workbench.tool_stub import ToolAnswer, ToolStub
from agentspec.workbench.views import Checked, Diagnostics, SpecHasErrors

__all__ = [
    "ANY",
    "Checked",
    "Cue",
    "Diagnostics",
    "LiveAgent",
    "ScriptedModel",
    "SpecHasErrors",
    "ToolAnswer",
    "ToolStub",
    "Turn",
    "load",
    "load_text",
    "serve",
]


def load(path: str | Path) -> Checked:
    """Load a spec file (and its imports) and check it."""
    with paused():
        loaded = _load(str(path))
        return Checked(loaded, check(loaded))


def load_text(text: str, path: str | Path = "<notebook>.agent") -> Checked:
    """Check a spec held in memory. `path` names it in diagnostics, and its imports resolve from its folder."""
    with paused():
        loaded = _load_text(text, str(path))
        return Checked(loaded, check(loaded))
