"""Security property 6 for the trace tools: `agentspec trace pull` and `verify` never crash on any record content.

A traces file, or a runtime's answer, is untrusted input: any JSON (wrong types, missing fields, lone surrogates,
a forged seq of 10**18), or bytes that are not UTF-8, is reported as problems or a clear error with an exit code,
never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentspec.cli import main
from agentspec.trace import GENESIS_HASH, TraceError, pull, record_hash, verify
from agentspec.trace.schema import STRING_FIELDS

# Every code point, lone surrogates included (json.loads makes them from `\ud800` escapes).
text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=6)
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | text
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3))
fields = st.sampled_from(["seq", *STRING_FIELDS])
records = st.dictionaries(fields, values | st.integers(0, 4) | st.sampled_from(["", GENESIS_HASH]), max_size=13)
views = st.dictionaries(st.sampled_from(["seq", "action", "decision", "rule"]), values | st.integers(0, 4))
turns = st.dictionaries(st.sampled_from(["turn", "decisions"]), values | st.lists(views | values, max_size=3))
traces = st.fixed_dictionaries(
    {"records": st.lists(records | values, max_size=5)},
    optional={
        "turns": st.lists(turns | values, max_size=3),
        "source": values | st.fixed_dictionaries({"since": values}),
    },
)
BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@BOUNDED
@given(traces)
def test_verify_reports_problems_on_any_content_and_never_raises(drawn: dict) -> None:
    problems = verify(drawn)
    json.dumps([p.as_json() for p in problems])  # and the problems themselves serialize


@BOUNDED
@given(traces)
def test_the_verify_cli_answers_any_file_with_an_exit_code(
    tmp_path_factory: pytest.TempPathFactory, drawn: dict
) -> None:
    path = tmp_path_factory.mktemp("t") / "traces.json"
    path.write_text(json.dumps(drawn), encoding="utf-8")  # ASCII: lone surrogates stay `\u` escapes
    for fmt in ("human", "json"):
        assert main(["trace", "verify", str(path), "--format", fmt]) in (0, 1)


def test_a_file_that_is_not_utf8_is_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "traces.json"
    path.write_bytes(b'{"records": ["\xff\xfe"]}')
    assert main(["trace", "verify", str(path)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_a_forged_huge_seq_is_one_problem_not_an_endless_list() -> None:
    body = {"seq": 10**18, **{f: "x" for f in STRING_FIELDS if f != "hash"}}
    problems = verify({"records": [{**body, "hash": record_hash(body)}]})
    assert any("records seq 1 to seq 999999999999999999 are missing" in p.message for p in problems)
    assert len(problems) < 10


def test_a_lone_surrogate_hashes_as_the_runtimes_text_encoder_writes_it() -> None:
    """TextEncoder writes a lone surrogate as U+FFFD; a surrogate pair is one code point either way."""
    body = {"seq": 1, **{f: "x" for f in STRING_FIELDS if f != "hash"}}
    assert record_hash({**body, "intent": "a\ud800"}) == record_hash({**body, "intent": "a\ufffd"})
    assert record_hash({**body, "intent": "\ud83d\ude00"}) == record_hash({**body, "intent": "😀"})


@BOUNDED
@given(st.binary(max_size=64) | values.map(lambda v: json.dumps({"records": [v], "turns": v}).encode()))
def test_pull_answers_traces_or_a_trace_error_for_any_body(body: bytes) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    try:
        got = pull("http://runtime.test", "s-1", "acme", "token", transport=transport)
    except TraceError:
        return
    verify(got)


def test_pulled_traces_with_a_lone_surrogate_are_written_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"seq": 1, **{f: "x" for f in STRING_FIELDS if f not in ("hash", "prev_hash")}, "prev_hash": GENESIS_HASH}
    body["intent"] = "bad \ud800 é"
    answer = json.dumps({"records": [{**body, "hash": record_hash(body)}], "turns": []})
    real_client = httpx.Client
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text=answer))
    monkeypatch.setattr(httpx, "Client", lambda **kw: real_client(**{**kw, "transport": transport}))
    out = tmp_path / "pulled.json"
    args = ["trace", "pull", "--url", "http://runtime.test", "--session", "s-1", "--tenant", "acme"]
    assert main([*args, "--admin-token", "t", "-o", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["records"][0]["intent"] == "bad \ud800 é"
    assert main(["trace", "verify", str(out)]) == 0, capsys.readouterr()
