"""Security property 6, over HTTP (tests/e2e/specs/playground.agent): input is normalized before it is stored.

A lone surrogate in any JSON string or key is refused (400 `invalid_unicode`) before anything is persisted;
field rules are strict and named (`since` a non-negative decimal integer); an oversize body gets a complete 413
at any size; and `agentspec trace pull` / `verify` handle what the runtime stores, non-ASCII included.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentspec.cli import main

from .conftest import ADMIN, Runtime
from .test_bad_input import LIMIT, assert_error


def sid() -> str:
    return f"norm-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ('{"workflow": "chat", "input": "hi \\ud800"}', "`input`"),
        ('{"workflow": "chat", "input": "\\udfff\\ud800 reversed pair"}', "`input`"),
        ('{"workflow": "chat", "input": "ok", "extra": {"deep": ["\\udc00"]}}', "`extra.deep.0`"),
        ('{"workflow": "chat", "input": "ok", "\\ud83d": 1}', "a key"),
    ],
)
def test_a_lone_surrogate_is_refused_before_anything_is_stored(playground: Runtime, raw: str, where: str) -> None:
    session = sid()
    with playground.client() as c:
        r = c.post(f"/v1/sessions/{session}/turns", content=raw.encode(), headers=playground.headers())
        error = assert_error(r, 400, "invalid_unicode")
        assert error["message"] == f"{where} has a lone surrogate"
        # Nothing of the session exists: no decision record, no turn.
        t = c.get("/v1/traces", params={"session": session}, headers=playground.admin_headers())
        assert_error(t, 404, "unknown_session")
    assert playground.model.requests == []


def test_a_lone_surrogate_is_refused_in_task_params_and_event_payloads(playground: Runtime) -> None:
    with playground.client() as c:
        r = c.post(
            "/v1/tasks", content=b'{"workflow": "chat", "params": {"a": "\\ud800"}}', headers=playground.headers()
        )
        assert_error(r, 400, "invalid_unicode")
        e = c.post(
            "/v1/tasks/chat-1/events",
            content=b'{"type": "t", "payload": {"x": "\\udfff"}}',
            headers=playground.headers(),
        )
        assert_error(e, 400, "invalid_unicode")


def test_a_surrogate_pair_and_any_other_unicode_are_kept(playground: Runtime) -> None:
    session = sid()
    text = "é 😀 \\ud83d\\ude00 \u2028 \\u0000"
    raw = '{"workflow": "chat", "input": "' + text + '"}'
    with playground.client() as c:
        r = c.post(f"/v1/sessions/{session}/turns", content=raw.encode(), headers=playground.headers())
    assert r.status_code == 200, r.text
    sent = playground.model.requests[-1].body["messages"][-1]["content"]
    assert sent == json.loads('"' + text + '"')


@pytest.mark.parametrize("since", ["1e3", "0x10", " 5", "+1", "", "1.0", "٣", "9" * 16])
def test_since_is_a_non_negative_decimal_integer(playground: Runtime, since: str) -> None:
    with playground.client() as c:
        r = c.get("/v1/traces", params={"session": "ok", "since": since}, headers=playground.admin_headers())
    error = assert_error(r, 400, "invalid_since")
    assert error["message"] == "`since` must be a non-negative decimal integer"


def _big(size: int) -> bytes:
    head = b'{"workflow": "chat", "input": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


@pytest.mark.parametrize("size", [2 << 20, 12 << 20])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_oversize_body_gets_a_complete_413_at_any_size(playground: Runtime, size: int, framing: str) -> None:
    body = _big(size)
    assert len(body) > LIMIT

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]

    with playground.client(timeout=120) as c:
        r = c.post(
            f"/v1/sessions/{sid()}/turns",
            content=body if framing == "content-length" else chunks(),
            headers=playground.headers() | {"content-type": "application/json"},
        )
    assert_error(r, 413, "body_too_large")
    assert playground.model.requests == []


def test_trace_pull_and_verify_handle_what_the_runtime_stores(
    playground: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = sid()
    for text in ('é 😀 \u2028 «quoted» \\ "', "\u0001\u007f tab\t"):
        assert playground.turn(session, "chat", text).status_code == 200
    out = tmp_path / "pulled.json"
    args = ["trace", "pull", "--url", playground.url, "--session", session, "--tenant", "acme"]
    assert main([*args, "--admin-token", ADMIN, "-o", str(out)]) == 0, capsys.readouterr().err
    assert main(["trace", "verify", str(out)]) == 0, capsys.readouterr().out
    assert json.loads(out.read_text(encoding="utf-8"))["records"]


def test_bad_field_types_are_named(playground: Runtime) -> None:
    with playground.client() as c:
        for body, named in (
            ({"workflow": "chat", "input": 5}, "`input`"),
            ({"workflow": ["chat"], "input": "x"}, "`workflow`"),
        ):
            r = c.post(f"/v1/sessions/{sid()}/turns", json=body, headers=playground.headers())
            assert named in assert_error(r, 400, "invalid_field")["message"]
        r = c.post("/v1/tasks", json={"workflow": "chat", "params": "x"}, headers=playground.headers())
        assert "`params`" in assert_error(r, 400, "invalid_field")["message"]
        r = c.post("/v1/tasks/chat-1/events", json={"type": "t", "payload": [1]}, headers=playground.headers())
        assert "`payload`" in assert_error(r, 400)["message"]
