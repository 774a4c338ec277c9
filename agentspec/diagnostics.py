"""Diagnostics and their renderers: a Diagnostic list in, human text, JSON or SARIF 2.1.0 out.

A diagnostic is code + message + labelled span + help (docs/architecture.md, "How a diagnostic reads"):
messages start lowercase, have no final period and put user names in backticks.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agentspec import __version__
from agentspec.codes import CODES
from agentspec.model import Span

Severity = Literal["error", "warning"]


class Diagnostic(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    severity: Severity
    message: str
    span: Span
    label: str = ""
    help: str | None = None
    notes: tuple[str, ...] = ()


def error(code: str, span: Span, message: str, label: str = "", help: str | None = None) -> Diagnostic:
    return Diagnostic(code=code, severity="error", message=message, span=span, label=label, help=help)


def warning(
    code: str, span: Span, message: str, label: str = "", help: str | None = None, notes: Iterable[str] = ()
) -> Diagnostic:
    return Diagnostic(
        code=code, severity="warning", message=message, span=span, label=label, help=help, notes=tuple(notes)
    )


class _Keep:
    """The default of `report`'s `help`: keep the form's own help line."""


KEEP_HELP: Any = _Keep()


def report(
    code: str,
    form: str,
    span: Span,
    *,
    help: str | None = KEEP_HELP,
    notes: Iterable[str] = (),
    **fields: object,
) -> Diagnostic:
    """A diagnostic built from the catalogue: `CODES[code].forms[form]` filled in with `fields`.

    `help` replaces the form's help line when the checker computed a better one (a did-you-mean);
    the severity follows the code's letter (E error, W warning).
    """
    template = CODES[code].forms[form]
    return Diagnostic(
        code=code,
        severity="warning" if code.startswith("W") else "error",
        message=template.message.format(**fields),
        span=span,
        label=template.label.format(**fields),
        help=(template.help.format(**fields) if template.help is not None else None) if help is KEEP_HELP else help,
        notes=tuple(notes),
    )


def form_help(code: str, form: str, **fields: object) -> str | None:
    """Only the help line of a form, for a diagnostic that picks between help lines."""
    template = CODES[code].forms[form].help
    return template.format(**fields) if template is not None else None


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """The help line for a misspelled name, or None when nothing is close."""
    close = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    return (d.span.file, d.span.start, d.span.end, d.code)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)


# ───────────────────────────── human ─────────────────────────────


def render_human(diagnostics: Iterable[Diagnostic], sources: Mapping[str, str], color: bool = False) -> str:
    """Render diagnostics like rustc/Cedar: header, location arrow, source line, caret, help.

    `sources` maps a file path to its text, for the snippet; a missing file renders without one.
    With `color`, rich styles the output for a terminal; otherwise it is plain text.
    """
    from rich.console import Console
    from rich.text import Text

    console = Console(
        color_system="standard" if color else None,
        force_terminal=color,
        no_color=not color,
        width=10_000,
        highlight=False,
        soft_wrap=True,
        emoji=False,
        markup=False,
    )
    diagnostics = sorted(diagnostics, key=sort_key)
    with console.capture() as capture:
        for i, d in enumerate(diagnostics):
            if i:
                console.print()
            console.print(_render_one(d, sources.get(d.span.file), Text))
    return capture.get()


def _render_one(d: Diagnostic, source: str | None, Text: type) -> object:
    level_style = "bold red" if d.severity == "error" else "bold yellow"
    out = Text()
    out.append(f"{d.severity}[{d.code}]", style=level_style)
    out.append(f": {d.message}\n", style="bold")
    lines = source.splitlines() if source is not None else []
    line_no = d.span.line
    gutter = " " * len(str(line_no))
    out.append(f"{gutter}--> ", style="bold blue")
    out.append(f"{d.span}\n")  # `file:line:column`, or the file alone when it has no position (unreadable)
    if 0 < line_no <= len(lines):
        text = lines[line_no - 1].replace("\t", " ")
        start = d.span.column - 1
        same_line = d.span.end_line == line_no
        width = max(1, (d.span.end_column - d.span.column) if same_line else (len(text) - start))
        out.append(f"{gutter} |\n", style="bold blue")
        out.append(f"{line_no} | ", style="bold blue")
        out.append(f"{text}\n")
        out.append(f"{gutter} | ", style="bold blue")
        out.append(" " * start + "^" * width, style=level_style)
        if d.label:
            out.append(f" {d.label}", style=level_style)
        out.append("\n")
    for note in d.notes:
        out.append(f"{gutter} = ", style="bold blue")
        out.append(f"note: {note}\n")
    if d.help:
        out.append(f"{gutter} = ", style="bold blue")
        out.append(f"help: {d.help}\n")
    out.rstrip()
    return out


def summary(diagnostics: list[Diagnostic], files: int) -> str:
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    if not diagnostics:
        return f"checked {files} file{'s' if files != 1 else ''}: no problems"
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return f"checked {files} file{'s' if files != 1 else ''}: " + ", ".join(parts)


# ───────────────────────────── machine formats ─────────────────────────────


def to_json(diagnostics: Iterable[Diagnostic]) -> str:
    items = [
        {
            "code": d.code,
            "severity": d.severity,
            "message": d.message,
            "file": d.span.file,
            # null: the file as a whole (it could not be read), not an invented 1:1
            "line": d.span.line if d.span.located else None,
            "column": d.span.column if d.span.located else None,
            "end_line": d.span.end_line if d.span.located else None,
            "end_column": d.span.end_column if d.span.located else None,
            "label": d.label,
            "help": d.help,
            "notes": list(d.notes),
        }
        for d in sorted(diagnostics, key=sort_key)
    ]
    return json.dumps({"diagnostics": items}, indent=2, ensure_ascii=False)


def _sarif_location(span: Span) -> dict[str, Any]:
    """A file and its region; a file with no position (unreadable) has no region, which SARIF allows."""
    location: dict[str, Any] = {"artifactLocation": {"uri": span.file}}
    if span.located:
        location["region"] = {
            "startLine": span.line,
            "startColumn": span.column,
            "endLine": span.end_line,
            "endColumn": span.end_column,
        }
    return location


def to_sarif(diagnostics: Iterable[Diagnostic]) -> str:
    """SARIF 2.1.0, the format code-review tools read to show findings inline."""
    diagnostics = sorted(diagnostics, key=sort_key)
    used = sorted({d.code for d in diagnostics})
    rules = [
        {
            "id": code,
            "name": CODES[code].title if code in CODES else code,
            "shortDescription": {"text": CODES[code].title if code in CODES else code},
            "fullDescription": {"text": CODES[code].explanation if code in CODES else code},
        }
        for code in used
    ]
    results = []
    for d in diagnostics:
        text = d.message + (f"\nhelp: {d.help}" if d.help else "")
        results.append(
            {
                "ruleId": d.code,
                "ruleIndex": used.index(d.code),
                "level": d.severity,
                "message": {"text": text},
                "locations": [{"physicalLocation": _sarif_location(d.span)}],
            }
        )
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "agentspec",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False)
