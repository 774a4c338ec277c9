"""Artifacts and retrieval indexes in the language: parse, format, resolve, check, tables and wrangler bindings.

The invalid specs under specs/invalid/ pin one rendering per code (test_diagnostics.py); these cases cover
the other forms of each code and what a valid spec compiles to.
"""

from __future__ import annotations

import json
import re

import pytest

from agentspec.check import check
from agentspec.emit import emit
from agentspec.fmt import format_text
from agentspec.load import load_text
from agentspec.parse import parse
from agentspec.policy import spec_hash, tables

BASE = """agent docs version 1 {
  auth bearer secret T admin secret A
  tenant header "x-tenant-id"
  store r2 artifacts
  store kv summaries
  model tier fast { primary "@cf/openai/gpt-oss-20b" }
  model tier embed { primary "@cf/baai/bge-base-en-v1.5" }
  tool fetch_document {
    GET "https://fetch.example.com/v1/extract?url={url}"
    risk low read_only
    args { url: string }
    returns { url: string, title: string, text: string }
    ARTIFACT
  }
  INDEX
  workflow research class r {
    tools allow [fetch_document]
    outbound allow ["fetch.example.com"]
    WRITES
    indexes allow [library]
    pii mask [email, phone] before persist
    STEP
  }
  EXTRA
}
"""

DEFAULTS = {
    "ARTIFACT": "artifact in artifacts field text show [url, title]",
    "INDEX": "index library over artifacts { keyword semantic with tier embed }",
    "WRITES": "stores write [artifacts]",
    "STEP": 'step recall = search library "{params.topic}" top 3',
    "EXTRA": "",
}


def spec(**parts: str) -> str:
    text = BASE
    for key, default in DEFAULTS.items():
        text = text.replace(key, parts.get(key, default))
    return text


def codes(text: str) -> list[tuple[str, str]]:
    result = check(load_text(text, "t.agent"))
    return [(d.code, d.message) for d in result.diagnostics]


def test_valid_spec_checks_clean_and_compiles_to_tables() -> None:
    result = check(load_text(spec(), "t.agent"))
    assert result.diagnostics == []
    assert result.spec is not None
    t = tables(result.spec)
    assert t["tools"]["fetch_document"]["artifact"] == {
        "store": "artifacts",
        "binding": "ARTIFACTS",
        "field": "text",
        "show": ["url", "title"],
    }
    assert t["indexes"] == {
        "library": {
            "store": "artifacts",
            "keyword": True,
            "semantic": {"tier": "embed", "dimensions": 768, "vector_binding": "VEC_LIBRARY"},
        }
    }
    wf = t["workflows"]["research"]
    assert wf["writes"] == ["artifacts"] and wf["indexes"] == ["library"]
    assert wf["steps"][0] == {
        "name": "recall",
        "kind": "search",
        "index": "library",
        "query": "{params.topic}",
        "top": 3,
        "retries": 0,
        "backoff": "exponential",
        "delay_ms": 1000,
        "timeout_ms": 10000,
    }


def test_search_step_defaults_to_five_results_and_its_fields_are_readable() -> None:
    recall = 'step recall = search library "{params.topic}"'
    step = recall + '\n    step use = infer tier fast "{recall.top_snippet} {recall.count}"'
    result = check(load_text(spec(STEP=step), "t.agent"))
    assert result.spec is not None, result.diagnostics
    assert result.spec.workflows[0].steps[0].top == 5
    bad = recall + '\n    step use = infer tier fast "{recall.top_snipet}"'
    (diag,) = [d for d in check(load_text(spec(STEP=bad), "t.agent")).diagnostics if d.code == "E0604"]
    assert "top_snipet" in diag.message and diag.help == "did you mean `top_snippet`?"


def test_format_round_trip_keeps_meaning() -> None:
    text = spec()
    formatted = format_text(text, "t.agent")
    assert formatted is not None
    assert format_text(formatted, "t.agent") == formatted
    assert "    artifact in artifacts field text show [url, title]\n" in formatted
    assert "  index library over artifacts {\n    keyword\n    semantic with tier embed\n  }\n" in formatted
    assert '    step recall = search library "{params.topic}" top 3\n' in formatted
    before = check(load_text(text, "t.agent")).spec
    after = check(load_text(formatted, "t.agent")).spec
    assert before is not None and before.model_dump(exclude={"files"}) == after.model_dump(exclude={"files"})  # type: ignore[union-attr]


def test_artifact_without_field_or_show_formats_bare() -> None:
    text = spec(ARTIFACT="artifact in artifacts")
    formatted = format_text(text, "t.agent")
    assert formatted is not None and "    artifact in artifacts\n" in formatted
    result = check(load_text(text, "t.agent"))
    assert result.spec is not None
    assert tables(result.spec)["tools"]["fetch_document"]["artifact"]["field"] is None


def test_spec_without_artifacts_keeps_its_hash_and_tables() -> None:
    """Unset new fields stay out of the spec hash and policy.json: existing deployments see no change."""
    plain = spec(ARTIFACT="", INDEX="", WRITES="", STEP="").replace("    indexes allow [library]\n", "")
    result = check(load_text(plain, "t.agent"))
    assert result.spec is not None, result.diagnostics
    dumped = json.dumps(tables(result.spec))
    assert not re.search(r'"(artifact|indexes|writes)"', dumped)
    meaning = result.spec.model_dump(mode="json", exclude={"files"})
    assert meaning["indexes"] == [] and meaning["tools"][0]["artifact"] is None
    assert spec_hash(result.spec) == spec_hash(result.spec.model_copy(update={"indexes": ()}))
    with_index = check(load_text(spec(ARTIFACT=""), "t.agent")).spec
    assert with_index is not None and spec_hash(with_index) != spec_hash(result.spec)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ({"ARTIFACT": "artifact in artifacts field txt"}, ("E0102", "result field of tool `fetch_document` `txt`")),
        ({"ARTIFACT": "artifact in artifacts field text show [text]"}, ("E0101", "both kept")),
        ({"ARTIFACT": "artifact in artefacts"}, ("E0102", "store `artefacts` is not declared")),
        ({"ARTIFACT": "artifact in summaries"}, ("E0407", "KV namespace")),
        ({"WRITES": "stores write [artifacts, summaries]"}, ("E0407", "writes `summaries`")),
        ({"WRITES": "stores write [artifacts, artifacts]"}, ("E0101", "store `artifacts` is listed twice")),
        ({"WRITES": ""}, ("E0409", "does not list it in `stores write`")),
        ({"INDEX": "index library over artifacts { }"}, ("E0007", "neither `keyword` nor `semantic`")),
        ({"INDEX": "index library over artifacts { keyword keyword }"}, ("E0006", "`keyword`")),
        ({"INDEX": "index library over artifacts { semantic with tier embd }"}, ("E0102", "did you mean")),
        ({"INDEX": "index fetch_document over artifacts { keyword }"}, ("E0101", "has the name of a tool")),
        ({"INDEX": "index constructor over artifacts { keyword }"}, ("E0614", "`constructor`")),
        ({"STEP": 'step recall = search library "{params.topic}" top 0'}, ("E0602", "")),
        ({"STEP": 'step recall = search librari "{params.topic}"'}, ("E0102", "index `librari`")),
        ({"STEP": 'step recall = search library "{nothing.x}"'}, ("E0604", "")),
    ],
)
def test_each_mistake_is_reported(parts: dict[str, str], expected: tuple[str, str]) -> None:
    found = codes(spec(**parts))
    code, fragment = expected
    matching = [m for c, m in found if c == code]
    assert matching, found
    result = check(load_text(spec(**parts), "t.agent"))
    rendered = [d.message + " " + (d.help or "") for d in result.diagnostics if d.code == code]
    assert any(fragment in r for r in rendered), rendered


def test_did_you_mean_for_a_misspelled_index() -> None:
    result = check(load_text(spec(STEP='step recall = search librari "{params.topic}"'), "t.agent"))
    (diag,) = [d for d in result.diagnostics if d.code == "E0102"]
    assert diag.help == "did you mean `library`?"


def test_embedding_tier_of_mixed_dimensions() -> None:
    extra = 'model tier mixed { primary "@cf/baai/bge-base-en-v1.5" fallback "@cf/baai/bge-small-en-v1.5" }'
    text = spec(INDEX="index library over artifacts { semantic with tier mixed }", EXTRA=extra)
    assert ("E0408", "the models of tier `mixed` embed in different dimensions (384, 768)") in codes(text)
    same = 'model tier mixed { primary "@cf/baai/bge-large-en-v1.5" fallback "@cf/baai/bge-m3" }'
    text = spec(INDEX="index library over artifacts { semantic with tier mixed }", EXTRA=same)
    assert codes(text) == []


def test_embedding_tier_used_by_a_checkpoint_or_infer_step() -> None:
    step = 'step s = infer tier embed "hello"'
    assert any(c == "E0408" and "step `s`" in m for c, m in codes(spec(STEP=step)))


def test_writer_pattern_must_be_the_readers_pattern() -> None:
    reader = """workflow reader class r {
    indexes allow [library]
    pii pattern staff "EMP-[0-9]{6}"
    pii mask [email, phone, staff] before persist
  }"""
    found = codes(spec(EXTRA=reader))
    assert any(c == "E0406" and "without masking `staff`" in m for c, m in found), found
    # The writer with the same-named pattern but another regex masks something else: still E0406.
    writer_pattern = spec(EXTRA=reader).replace(
        "    pii mask [email, phone] before persist\n",
        '    pii pattern staff "EMP-[0-9]+"\n    pii mask [email, phone, staff] before persist\n',
        1,
    )
    assert any(c == "E0406" for c, _ in codes(writer_pattern))
    same = spec(EXTRA=reader).replace(
        "    pii mask [email, phone] before persist\n",
        '    pii pattern staff "EMP-[0-9]{6}"\n    pii mask [email, phone, staff] before persist\n',
        1,
    )
    assert codes(same) == []


def test_a_reader_masking_less_is_fine() -> None:
    reader = """workflow reader class r {
    indexes allow [library]
    pii mask [email] before persist
  }"""
    assert codes(spec(EXTRA=reader)) == []


def test_wrangler_binds_vectorize_deployed_only() -> None:
    result = check(load_text(spec(), "t.agent"))
    assert result.spec is not None
    text = emit(result.spec)["wrangler.jsonc"]
    config = json.loads("\n".join(line for line in text.splitlines() if not line.startswith("//")))
    assert config["env"]["production"]["vectorize"] == [{"binding": "VEC_LIBRARY", "index_name": "docs-library"}]
    assert "vectorize" not in config  # the top level is the offline one


def test_keywords_stay_names_elsewhere() -> None:
    """`keyword`, `semantic`, `search`, `artifact` and `top` are contextual: still usable as names."""
    text = (
        spec()
        .replace("show [url, title]", "show [url, title, keyword]")
        .replace(
            "returns { url: string, title: string, text: string }",
            "returns { url: string, title: string, text: string, keyword: string }",
        )
    )
    assert parse(text, "t.agent").file is not None
    assert codes(text) == []


def test_review_meaning_and_workbench_show_the_new_clauses() -> None:
    from agentspec.review.snapshot import meaning
    from agentspec.workbench.views import AgentView

    result = check(load_text(spec(), "t.agent"))
    assert result.spec is not None
    text = meaning(result.spec)
    assert "  artifact: field text kept in artifacts; the model reads title, url and a reference\n" in text
    assert "index library\n  over: artifacts\n  ranks by: keyword and semantic with tier embed\n" in text
    assert "  stores write: artifacts\n  indexes allow: library\n" in text
    assert "  step recall: search index library top 3," in text
    assert "index library" in str(AgentView(result.spec))
