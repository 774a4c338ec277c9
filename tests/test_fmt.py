"""The formatter: idempotent, meaning-preserving, comment-keeping, and exact on a few golden cases."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings

from agentspec.check import check
from agentspec.fmt import format_file, format_text, quote
from agentspec.load import load, load_text
from agentspec.parse import parse
from tests.strategies import specs

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = sorted(ROOT.glob("specs/**/*.agent"))


def strip_spans(node: Any) -> Any:
    """A model dumped to plain data with every `span` removed, so texts laid out differently compare equal."""
    if hasattr(node, "model_dump"):
        node = node.model_dump()
    if isinstance(node, dict):
        return {k: strip_spans(v) for k, v in node.items() if k != "span"}
    if isinstance(node, list | tuple):
        return [strip_spans(v) for v in node]
    return node


def assert_formats_well(text: str) -> str:
    """Every property the formatter promises, checked on one input; returns the formatted text."""
    before = parse(text)
    assert before.file is not None and not before.diagnostics, before.diagnostics
    out = format_text(text)
    assert out is not None
    after = parse(out)
    assert after.file is not None and not after.diagnostics, (out, after.diagnostics)
    assert strip_spans(after.file) == strip_spans(before.file)
    assert format_text(out) == out, "not idempotent"
    assert out.endswith("\n") and not out.endswith("\n\n")
    assert not out.startswith("\n")
    kept = [c.text for c in after.comments]
    for comment in before.comments:
        assert any(comment.text in k for k in kept), f"lost {comment.text!r}"
    return out


# ───────────────────────────── properties ─────────────────────────────


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_spec_files(path: Path) -> None:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        pytest.skip("not UTF-8: the loader reports it, there is no text to format")
    result = parse(text, str(path))
    if result.file is None or any(d.severity == "error" for d in result.diagnostics):
        assert format_text(text, str(path)) is None  # specs/invalid holds files meant not to parse
    else:
        assert_formats_well(text)


def test_spec_files_found() -> None:
    assert any(p.name == "support_desk.agent" for p in SPEC_FILES)


def test_example_specs_are_already_canonical() -> None:
    for name in ("support_desk.agent", "shared/billing_tools.agent"):
        text = (ROOT / "specs" / name).read_text()
        assert format_text(text) == text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs())
# Found by this test: `secrets` and its brackets on lines of their own, comments between them and the header.
@example("library L {\nidentity\n//\nDELETE\n//\n{//\nsecrets//\n[//\n]//\n}}")
@example("library L {\n  identity w {\n    // before\n    secrets\n\n    [A, B]  // names\n    // after\n  }\n}\n")
def test_generated_specs(text: str) -> None:
    assert_formats_well(text)


def _checked_meaning(text: str) -> tuple[Any, list[tuple[str, str]]]:
    """What `check` makes of a spec: its resolved model (file names aside) and its diagnostics' codes and texts."""
    result = check(load_text(text, "meaning.agent"))
    spec = result.spec.model_dump(exclude={"files"}) if result.spec is not None else None
    return spec, sorted((d.code, d.message) for d in result.diagnostics)


@pytest.mark.parametrize("name", ["ops_agent.agent", "research_assistant.agent", "support_desk.agent"])
def test_formatting_keeps_the_checked_meaning_of_the_examples(tmp_path: Path, name: str) -> None:
    """The checked model of fmt(x) equals that of x, imports included: every file of the spec is laid out
    badly (no indentation, blank lines everywhere), formatted into a copy of the tree, and checked again."""
    before = check(load(str(ROOT / "specs" / name)))
    assert before.spec is not None
    for path in before.spec.files:
        source = Path(path)
        target = tmp_path / source.relative_to(ROOT / "specs")
        target.parent.mkdir(parents=True, exist_ok=True)
        messy = "\n\n".join(line.strip() for line in source.read_text().splitlines())
        formatted = format_text(messy)
        assert formatted is not None and formatted != messy
        target.write_text(formatted)
    after = check(load(str(tmp_path / name)))
    assert after.spec is not None, after.diagnostics
    assert after.spec.model_dump(exclude={"files"}) == before.spec.model_dump(exclude={"files"})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs())
def test_formatting_keeps_the_checked_meaning_of_generated_specs(text: str) -> None:
    formatted = format_text(text)
    assert formatted is not None
    assert _checked_meaning(formatted) == _checked_meaning(text)


def test_format_file_matches_format_text() -> None:
    text = (ROOT / "specs" / "support_desk.agent").read_text()
    result = parse(text)
    assert result.file is not None
    assert format_file(result.file, result.comments) == format_text(text)


# ───────────────────────────── unparseable input ─────────────────────────────


@pytest.mark.parametrize(
    "text",
    [
        "",
        "agent x version 1 {",
        "library x { tool t { risk extreme } }",
        'library x { tool t { GET "unterminated } }',
        'library x { tool t { GET "bad \\q escape" } }',  # parses, but with an error diagnostic
    ],
)
def test_unparseable_returns_none(text: str) -> None:
    assert format_text(text) is None


# ───────────────────────────── strings ─────────────────────────────


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        'say "hi"',
        "back\\slash",
        "tab\tnew\nline",
        "${not.a.template}",
        "é😀",
        "\u2028\u0085",
        "\ud800",
        "a//b",
    ],
)
def test_quote_round_trips(value: str) -> None:
    text = f"library x {{ tool t {{ GET {quote(value)} }} }}"
    result = parse(text)
    assert not result.diagnostics
    assert result.file is not None
    assert result.file.body.items[0].clauses[0].url.value == value  # type: ignore[union-attr]
    assert "\n" not in quote(value)


def test_escapes_are_made_canonical() -> None:
    text = 'library x { tool t { GET "\\u0041\\/\\"\\u00e9\\t" } }'
    assert format_text(text) == 'library x {\n  tool t {\n    GET "A/\\"é\\t"\n  }\n}\n'


def test_raw_tab_in_string_parses() -> None:
    assert format_text('library x { tool t { GET "a\tb" } }') == 'library x {\n  tool t {\n    GET "a\\tb"\n  }\n}\n'


# ───────────────────────────── comments ─────────────────────────────


def test_own_line_and_trailing_comments_inside_blocks() -> None:
    text = """\
library x {
  // about the tool
  tool t { // opens t
    // about GET
    GET "u"   // the endpoint
    read_only
    // before the brace
  } // closes t
}
"""
    assert (
        assert_formats_well(text)
        == """\
library x {
  // about the tool
  tool t {  // opens t
    // about GET
    GET "u"  // the endpoint
    read_only
    // before the brace
  }  // closes t
}
"""
    )


def test_comments_at_file_edges() -> None:
    text = '// head\n\n\nimport "a"   // why a\nagent x version 1 {\n}  // end of agent\n// tail\n\n// last'
    assert assert_formats_well(text) == (
        '// head\n\nimport "a"  // why a\n\nagent x version 1 {\n}  // end of agent\n// tail\n\n// last\n'
    )


def test_comment_inside_a_clause_split_over_lines_goes_above_it() -> None:
    text = """\
agent a version 1 {
  workflow w class c {
    step s = call t with {
      // why x
      x: "1", // trailing x
      y: "2"
    } retry 3
  }
}
"""
    assert (
        assert_formats_well(text)
        == """\
agent a version 1 {
  workflow w class c {
    // why x
    step s = call t with { x: "1", y: "2" } retry 3  // trailing x
  }
}
"""
    )


def test_trailing_comment_follows_the_last_construct_on_its_line() -> None:
    text = 'library x { tool t { GET "u" risk low } // after the brace\n tool u { read_only // ro\n } }'
    assert (
        assert_formats_well(text)
        == """\
library x {
  tool t {
    GET "u"
    risk low
  }  // after the brace

  tool u {
    read_only  // ro
  }
}
"""
    )


def test_two_trailing_comments_on_one_printed_line_are_both_kept() -> None:
    text = "library x { tool t { args { a: string, // one\n b: int // two\n } } }"
    out = assert_formats_well(text)
    assert "    args { a: string, b: int }  // one  // two\n" in out


# ───────────────────────────── golden layout ─────────────────────────────


def test_golden_messy_agent() -> None:
    text = """\
import "b.agent" import   "a.agent"
agent   desk
 version 3 { owner "o" auth bearer secret T admin secret A


 tenant header "x-t"  store kv s
 model tier low { primary "p" fallback "f1"   "f2" price in 0.06 out $1 per Mtok timeout 8s clears risk low }
 identity i { secrets [A,B,] }
 tool t { POST "u" risk high read_only idempotency key "{s}" timeout 2s compensate c as i
   args {a:string,b?:int,} returns {} headers {"k":"v",} max response 512KiB }
 workflow w class c { route risk high->tier low tools allow [t] outbound allow ["h",] policy shadow
   session affinity header "h" ttl 30m checkpoint every 6 turns summarize with tier low into s
   pii mask [email] before persist pii pattern card "[0-9]{16}"

   step a=call t with {x:"1",} retry 3 backoff linear timeout 5s step b = infer tier low "p" step c = sleep 1s
   step d = wait event "e" backoff constant 2s step e = call t
   slo { latency p95 < 2500ms ttft p99.9 <= 1s success >= 99.5% cost per task < $0.01
     cache hit >= 60% alert drop 10% denied <= 2% tokens per task in 3000 out 400 webhook "https://x" } } }
"""
    assert (
        assert_formats_well(text)
        == """\
import "b.agent"
import "a.agent"

agent desk version 3 {
  owner "o"
  auth bearer secret T admin secret A

  tenant header "x-t"
  store kv s

  model tier low {
    primary "p"
    fallback "f1" "f2"
    price in 0.06 out $1 per Mtok
    timeout 8s
    clears risk low
  }

  identity i {
    secrets [A, B]
  }

  tool t {
    POST "u"
    risk high
    read_only
    idempotency key "{s}"
    timeout 2s
    compensate c
    as i
    args { a: string, b?: int }
    returns {}
    headers { "k": "v" }
    max response 512KiB
  }

  workflow w class c {
    route risk high -> tier low
    tools allow [t]
    outbound allow ["h"]
    policy shadow
    session affinity header "h" ttl 30m
    checkpoint every 6 turns summarize with tier low into s
    pii mask [email] before persist
    pii pattern card "[0-9]{16}"

    step a = call t with { x: "1" } retry 3 backoff linear timeout 5s
    step b = infer tier low "p"
    step c = sleep 1s
    step d = wait event "e" backoff constant 2s
    step e = call t
    slo {
      latency p95 < 2500ms
      ttft p99.9 <= 1s
      success >= 99.5%
      cost per task < $0.01
      cache hit >= 60% alert drop 10%
      denied <= 2%
      tokens per task in 3000 out 400
      webhook "https://x"
    }
  }
}
"""
    )


def test_golden_empty_things_and_keyword_names() -> None:
    text = "library low{identity high{secrets[]}tool tier{args{}headers{}}model tier kv{}}"
    assert (
        assert_formats_well(text)
        == """\
library low {
  identity high {
    secrets []
  }

  tool tier {
    args {}
    headers {}
  }

  model tier kv {
  }
}
"""
    )


def test_blank_lines_collapse_and_vanish_next_to_braces() -> None:
    text = "library x {\n\n\n  tool t {\n\n    read_only\n\n\n\n    risk low\n\n  }\n\n\n}\n\n\n"
    assert assert_formats_well(text) == "library x {\n  tool t {\n    read_only\n\n    risk low\n  }\n}\n"


def test_values_keep_their_text() -> None:
    text = "agent a version 1.50 { model tier t { price in 0.060 out -0 per Mtok timeout 1500ms } }"
    out = assert_formats_well(text)
    assert "agent a version 1.50 {" in out
    assert "price in 0.060 out -0 per Mtok" in out
    assert "timeout 1500ms" in out


# ───────────────────────────── speed ─────────────────────────────


def test_large_spec_formats_quickly() -> None:
    tool = """\
  // tool {i}
  tool t{i} {{
    POST "https://example.com/{i}"  // endpoint
    risk high
    args {{ a: string, b?: int }}
    timeout 10s
  }}

"""
    text = "library big {\n" + "".join(tool.format(i=i) for i in range(1000)) + "}\n"  # about 8,000 lines
    started = time.perf_counter()
    out = format_text(text)
    elapsed = time.perf_counter() - started
    assert out is not None and out.count("// endpoint") == 1000
    assert elapsed < 10, f"took {elapsed:.1f}s"
