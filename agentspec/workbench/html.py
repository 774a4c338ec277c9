"""HTML for notebook displays: rows of cells in, an escaped HTML table (and plain-text columns) out.

Every spec string is user data: each cell passes through `html.escape` here, the one escaping boundary of the
workbench's HTML, so a tool URL or a diagnostic message can never inject markup into a notebook.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from typing import Any


class Raw(str):
    """Markup the workbench itself built from escaped parts: not escaped again."""


def esc(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    return html.escape(_text(value), quote=True)


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value) if value else "—"
    return str(value)


def code(value: Any) -> Raw:
    return Raw(f"<code>{esc(value)}</code>")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None) -> Raw:
    head = "".join(f"<th style='text-align:left'>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{esc(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    cap = f"<caption style='text-align:left;font-weight:bold'>{esc(caption)}</caption>" if caption else ""
    return Raw(f"<table class='agentspec'>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None) -> str:
    """The same table as aligned plain-text columns, for a terminal or the `text/plain` of a display."""
    cells = [[_text(h) for h in headers], *[[_text(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(([caption] if caption else []) + lines)


def pre(text: str) -> Raw:
    return Raw(f"<pre style='white-space:pre-wrap'>{esc(text)}</pre>")


def details(summary: str, body: str) -> Raw:
    return Raw(f"<details><summary>{esc(summary)}</summary>{esc(body)}</details>")


class Display:
    """A result that shows itself: HTML in a notebook, aligned text in a terminal or a `text/plain` output."""

    def _html(self) -> str:
        raise NotImplementedError

    def _text(self) -> str:
        raise NotImplementedError

    def _repr_html_(self) -> str:
        return self._html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self._text(), "text/html": self._html()}

    def __str__(self) -> str:
        return self._text()
