"""The fast parse path (agentspec/lalr.py) builds exactly what Lark's parser and `ToModel.transform` build.

`parse` runs the fused lexer-parser loop first and Lark's own pipeline only when the loop refuses the
text. Both must give the same model, spans included, on every text: the specs in the repository,
the benchmark's generated specs, hypothesis-drawn specs full of awkward spellings, and broken texts
(where the loop must refuse, so the syntax error is Lark's, word for word).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lark.exceptions import UnexpectedInput
from pydantic import BaseModel
from strategies import specs

from agentspec import lalr
from agentspec.parse import Bracketed, ToModel, parse, parser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from gen_spec import generate  # noqa: E402

CORPUS = sorted(p for p in ROOT.rglob("*.agent") if "node_modules" not in p.parts and ".venv" not in p.parts)


def shape(value: Any) -> Any:
    """Everything a node holds, as plain data: its type, each field, and a bracketed list's own span
    (which tuple equality would not compare)."""
    if isinstance(value, BaseModel):
        assert value.model_fields_set == set(type(value).model_fields)  # each node sets every field
        return (type(value).__name__, {k: shape(v) for k, v in value.__dict__.items()}, value.model_fields_set)
    if isinstance(value, Bracketed):
        return ("Bracketed", shape(value.span), [shape(v) for v in value])
    if isinstance(value, tuple):
        return ("tuple", [shape(v) for v in value])
    assert value is None or type(value) in (str, int, float, bool), type(value)
    return value


def slow(text: str, path: str = "x.agent") -> tuple[Any, list[Any]] | None:
    """Lark's parse tree, then `ToModel.transform`: the path `parse` falls back on."""
    try:
        tree = parser().parse(text)
    except UnexpectedInput:
        return None
    transformer = ToModel(path)
    return transformer.transform(tree), transformer.diagnostics


def fast(text: str, path: str = "x.agent") -> tuple[Any, list[Any]] | None:
    transformer = ToModel(path)
    spec = lalr.run(parser(), text, transformer)
    return None if spec is None else (spec, transformer.diagnostics)


def same(text: str) -> None:
    a, b = slow(text), fast(text)
    assert (a is None) == (b is None), "one path parsed the text and the other did not"
    if a is not None and b is not None:
        assert shape(a[0]) == shape(b[0])
        assert a[1] == b[1]


def test_corpus_is_large() -> None:
    assert len(CORPUS) > 40  # the test reads the repository's specs; a wrong glob would make it vacuous


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_specs(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", errors="replace")  # one of them is not UTF-8 on purpose
    same(text)
    if slow(text) is not None:
        assert fast(text) is not None  # the fast path really is the one taken


def test_generated_spec() -> None:
    text = generate(200)
    same(text)
    result = fast(text)
    assert result is not None
    assert len(result[0].body.items) > 200


@given(specs())
def test_drawn_specs(text: str) -> None:
    same(text)
    assert fast(text) is not None


@given(specs(), st.data())
def test_broken_specs(text: str, data: st.DataObject) -> None:
    """A cut, a deleted character or a stray one: both paths still agree, and `parse` gives Lark's error."""
    at = data.draw(st.integers(0, len(text)))
    edit = data.draw(st.sampled_from(["cut", "delete", "insert"]))
    if edit == "cut":
        broken = text[:at]
    elif edit == "delete":
        broken = text[:at] + text[at + 1 :]
    else:
        broken = text[:at] + data.draw(st.sampled_from(list('{}[](),:=<>?"$-%@x9 \n'))) + text[at:]
    same(broken)
    if slow(broken) is None:
        result = parse(broken, "x.agent")
        assert result.file is None and len(result.diagnostics) == 1


def test_string_escape_diagnostic_on_fast_path() -> None:
    text = 'agent a version 1 {\n  owner "bad \\q escape"\n}\n'
    result = fast(text)
    assert result is not None
    assert [d.code for d in result[1]] == ["E0004"]
    assert [d.code for d in parse(text).diagnostics] == ["E0004"]
