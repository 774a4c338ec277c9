"""Notebook widgets over the workbench (ipywidgets, imported only here): a spec editor with live diagnostics,
a chat panel on a running agent, and a PII preview. Each wraps its widgets in `.box` and shows itself; each also
has a method the widgets call (`set_text`, `send`, `preview`), so a notebook or a test can drive it in code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w  # type: ignore[import-untyped]

from agentspec.workbench.html import esc
from agentspec.workbench.live import LiveAgent, Turn
from agentspec.workbench.views import Checked

_MONO = "<style>.agentspec-editor textarea{font-family:monospace;font-size:12px}</style>"


class _Shown:
    box: w.Box

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.box._repr_mimebundle_(**kwargs)


class SpecEditor(_Shown):
    """A spec in a text area, checked on every edit: the diagnostics (or the summary) below it, and the view
    chosen with the buttons (agent tables, policy tables, generated files). `checked` is the latest result;
    `on_check(fn)` calls `fn(checked)` after each check."""

    VIEWS = ("summary", "agent", "policy", "files")

    def __init__(self, text: str, path: str | Path = "<notebook>.agent", height: str = "360px") -> None:
        self.path = str(path)
        self.area = w.Textarea(value=text, continuous_update=True, layout=w.Layout(width="100%", height=height))
        self.area.add_class("agentspec-editor")
        self.view = w.ToggleButtons(options=self.VIEWS, value="summary")
        self.shown = w.HTML()
        self._callbacks: list[Callable[[Checked], None]] = []
        self.checked = self._check(text)
        self.box = w.VBox([w.HTML(_MONO), self.area, self.view, self.shown])
        self.area.observe(lambda change: self.set_text(change["new"]), names="value")
        self.view.observe(lambda change: self._show(), names="value")
        self._show()

    def _check(self, text: str) -> Checked:
        from agentspec.workbench import load_text

        return load_text(text, self.path)

    def set_text(self, text: str) -> Checked:
        if self.area.value != text:
            self.area.value = text  # the observer comes back here with the same text
            return self.checked
        self.checked = self._check(text)
        self._show()
        for fn in self._callbacks:
            fn(self.checked)
        return self.checked

    def on_check(self, fn: Callable[[Checked], None]) -> None:
        self._callbacks.append(fn)

    def _show(self) -> None:
        c = self.checked
        if self.view.value == "summary" or not c.ok:
            self.shown.value = c._repr_html_()
        else:
            self.shown.value = getattr(c, self.view.value)._repr_html_()


class ChatPanel(_Shown):
    """Talk to a running agent: pick a workflow and session, send a message, see each turn's answer, model and
    tier, decisions, tool calls with their outcome, tokens and cost. `send(text)` does what the button does."""

    def __init__(self, live: LiveAgent, workflow: str | None = None, session: str = "s1") -> None:
        self.live = live
        names = [wf.name for wf in live.spec.workflows]
        self.workflow = w.Dropdown(options=names, value=workflow or names[0], description="workflow")
        self.session = w.Text(value=session, description="session")
        self.message = w.Textarea(placeholder="Say something to the agent…", layout=w.Layout(width="100%"))
        self.button = w.Button(description="Send", button_style="primary")
        self.transcript = w.HTML()
        self.detail = w.HTML()
        self.turns: list[Turn] = []
        self.button.on_click(lambda _: self.send(self.message.value))
        self.box = w.VBox(
            [w.HBox([self.workflow, self.session]), self.message, self.button, self.transcript, self.detail]
        )

    def send(self, text: str) -> Turn | None:
        if not text.strip():
            return None
        turn = self.live.turn(self.session.value, self.workflow.value, text)
        self.turns.append(turn)
        self.message.value = ""
        self.transcript.value = self._transcript()
        self.detail.value = turn._repr_html_()
        return turn

    def _transcript(self) -> str:
        lines = []
        for t in self.turns:
            lines.append(f"<div><b>you</b> ({esc(t.workflow)}): {esc(t.input)}</div>")
            if t.ok:
                cost = f"${t.cost_usd:.6f}" if t.cost_usd is not None else "no price"
                lines.append(
                    f"<div style='margin-left:1em'><b>agent</b>: {esc(t.output)} "
                    f"<small>({esc(t.model)}, tier {esc(t.tier)}, {esc(t.input_tokens)}+{esc(t.output_tokens)} "
                    f"tokens, {esc(cost)})</small></div>"
                )
            else:
                lines.append(f"<div style='margin-left:1em;color:crimson'>{esc(t.headline())}</div>")
        return "<div class='agentspec-chat'>" + "".join(lines) + "</div>"
