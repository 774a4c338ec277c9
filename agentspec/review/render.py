"""Renderers: reviews in, text out — human (rich), Markdown for a pull-request comment, JSON, SARIF 2.1.0.

Every format lists changes most severe first (widening, mixed, narrowing, neutral), shows both
locations, the old and new values and every counterexample, and marks accepted changes with who
accepted them, why and until when. SARIF rule ids are the change codes and each result carries
the change's fingerprint, so code-review tools show a finding once and never repeat it.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from typing import Any

from agentspec import __version__
from agentspec.review.catalogue import CHANGE_CODES, SEVERITY
from agentspec.review.change import Change, Counterexample, Review

_HEADINGS = {
    "widening": "Widening: needs a security review",
    "mixed": "Mixed: widens somewhere, narrows elsewhere",
    "narrowing": "Narrowing",
    "neutral": "Neutral",
}


def _counts(review: Review) -> str:
    counts = Counter(c.classification for c in review.changes)
    parts = [f"{counts[k]} {k}" for k in SEVERITY if counts[k]]
    if review.accepted:
        parts.append(f"{len(review.accepted)} accepted")
    return ", ".join(parts) if parts else "no change of meaning"


def _example(ex: Counterexample) -> str:
    return (
        f"workflow `{ex.workflow}` calls tool `{ex.tool}` (risk `{ex.risk}`) at `{ex.url}`: "
        f"OLD `{ex.old}`, NEW `{ex.new}`"
    )


def _label(c: Change) -> str:
    """A widening's request is a counterexample to "nothing more may run"; a narrowing's is an example."""
    return "counterexample" if c.classification == "widening" else "example"


def _values(c: Change) -> str | None:
    if c.old is None and c.new is None:
        return None
    return f"`{c.old if c.old is not None else 'none'}` -> `{c.new if c.new is not None else 'none'}`"


# ───────────────────────────── Markdown ─────────────────────────────


def _md_code(text: str) -> str:
    """A Markdown code span that survives backticks inside the text."""
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_line(text: str) -> str:
    """Spec names arrive wrapped in backticks; everything else is escaped of Markdown's meaning."""
    parts = text.split("`")
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(_md_code(part))
        else:
            out.append(part.replace("|", "\\|").replace("<", "&lt;").replace("*", "\\*").replace("_", "\\_"))
    return "".join(out)


def markdown(reviews: list[Review]) -> str:
    out: list[str] = []
    for review in reviews:
        out.append(f"## agentspec review of `{review.agent}`: {review.classification}")
        out.append("")
        out.append(f"{_md_code(review.old_label)} -> {_md_code(review.new_label)}: {_counts(review)}")
        for kind in SEVERITY:
            changes = [c for c in review.changes if c.classification == kind]
            if not changes:
                continue
            out.append("")
            out.append(f"### {_HEADINGS[kind]}")
            out.append("")
            for c in changes:
                accepted = review.accepted.get(c.fingerprint)
                mark = " (accepted)" if accepted else ""
                out.append(f"- **{c.code}** {CHANGE_CODES[c.code].title}{mark}: {_md_line(c.message)}")
                values = _values(c)
                if values:
                    out.append(f"  - {_md_line(values)}")
                out.append(f"  - OLD {_md_code(str(c.old_at))}, NEW {_md_code(str(c.new_at))}")
                for ex in c.counterexamples:
                    out.append(f"  - {_label(c)}: {_md_line(_example(ex))}")
                if c.note:
                    out.append(f"  - {_md_line(c.note)}")
                if accepted:
                    out.append(
                        f"  - accepted by {_md_code(accepted.reviewer)} until {accepted.expires}: "
                        f"{_md_line(accepted.reason)}"
                    )
                out.append(f"  - fingerprint {_md_code(c.fingerprint)}")
        out.append("")
    return "\n".join(out)


# ───────────────────────────── JSON ─────────────────────────────


def _change_json(c: Change, review: Review) -> dict[str, Any]:
    accepted = review.accepted.get(c.fingerprint)
    return {
        "code": c.code,
        "title": CHANGE_CODES[c.code].title,
        "classification": c.classification,
        "fingerprint": c.fingerprint,
        "subject": list(c.subject),
        "message": c.message,
        "old": c.old,
        "new": c.new,
        "old_at": str(c.old_at) if c.old_at else None,
        "new_at": str(c.new_at) if c.new_at else None,
        "counterexamples": [ex.__dict__ for ex in c.counterexamples],
        "note": c.note,
        "accepted": accepted.__dict__ if accepted else None,
    }


def to_json(reviews: list[Review]) -> str:
    return json.dumps(
        {
            "reviews": [
                {
                    "agent": r.agent,
                    "old": r.old_label,
                    "new": r.new_label,
                    "classification": r.classification,
                    "changes": [_change_json(c, r) for c in r.changes],
                }
                for r in reviews
            ]
        },
        indent=2,
        ensure_ascii=False,
    )


# ───────────────────────────── SARIF ─────────────────────────────

_LEVEL = {"widening": "error", "mixed": "warning", "narrowing": "note", "neutral": "note"}


def to_sarif(reviews: list[Review]) -> str:
    """SARIF 2.1.0: one result per change, located on the NEW side, fingerprinted by meaning."""
    used = sorted({c.code for r in reviews for c in r.changes})
    rules = [
        {
            "id": code,
            "name": CHANGE_CODES[code].title,
            "shortDescription": {"text": CHANGE_CODES[code].title},
            "fullDescription": {"text": CHANGE_CODES[code].explanation},
            "properties": {"classification": CHANGE_CODES[code].classification},
        }
        for code in used
    ]
    results = []
    for review in reviews:
        for c in review.changes:
            where = c.new_at or c.old_at
            text = c.message
            values = _values(c)
            if values:
                text += f"\n{values}"
            text += f"\nOLD {c.old_at}"
            text += "".join(f"\n{_label(c)}: {_example(ex)}" for ex in c.counterexamples)
            if c.note:
                text += f"\n{c.note}"
            result: dict[str, Any] = {
                "ruleId": c.code,
                "ruleIndex": used.index(c.code),
                "level": _LEVEL[c.classification],
                "message": {"text": text},
                "partialFingerprints": {"agentspecChange/v1": c.fingerprint},
                "properties": {"classification": c.classification, "agent": c.agent},
            }
            if where is not None:
                result["locations"] = [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": where.file},
                            "region": {"startLine": where.line, "startColumn": where.column},
                        }
                    }
                ]
            accepted = review.accepted.get(c.fingerprint)
            if accepted:
                result["suppressions"] = [
                    {
                        "kind": "external",
                        "status": "accepted",
                        "justification": f"{accepted.reason} (by {accepted.reviewer}, until {accepted.expires})",
                    }
                ]
            results.append(result)
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "agentspec-review",
                        "version": __version__,
                        "informationUri": "https://github.com/agentspec/agentspec/blob/main/docs/review.md",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False)


# ───────────────────────────── human ─────────────────────────────

_STYLE = {"widening": "bold red", "mixed": "bold yellow", "narrowing": "green", "neutral": "dim"}


def human(reviews: list[Review], color: bool = False, width: int = 100) -> str:
    from rich.console import Console
    from rich.markup import escape

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=width, highlight=False)
    for review in reviews:
        verdict = (
            f"[{_STYLE[review.classification]}]{review.classification}[/] ({_counts(review)})"
            if review.changes
            else "no change of meaning"
        )
        sides = f"{escape(review.old_label)} -> {escape(review.new_label)}"
        console.print(f"[bold]{escape(review.agent)}[/]: {sides}: {verdict}", soft_wrap=True)
        for c in review.changes:
            accepted = review.accepted.get(c.fingerprint)
            tag = f"{c.classification}, accepted" if accepted else c.classification
            console.print(
                f"  [{_STYLE[c.classification]}]{c.code}[/] {escape(f'[{tag}]')} {escape(c.message)}", soft_wrap=True
            )
            values = _values(c)
            if values:
                console.print(f"      {escape(values)}", soft_wrap=True)
            console.print(f"      --> OLD {escape(str(c.old_at))}  NEW {escape(str(c.new_at))}", soft_wrap=True)
            for ex in c.counterexamples:
                console.print(f"      = {_label(c)}: {escape(_example(ex))}", soft_wrap=True)
            if c.note:
                console.print(f"      = {escape(c.note)}", soft_wrap=True)
            if accepted:
                console.print(
                    f"      = accepted by {escape(accepted.reviewer)} until {accepted.expires}: "
                    f"{escape(accepted.reason)}",
                    soft_wrap=True,
                )
    return buffer.getvalue()
