"""Bad input at the front door, over HTTP against the running runtime.

Every refusal is a 4xx with a `{"error": {"code", "message"}}` JSON body and a JSON content type;
none is a 500, none echoes a stack trace, and none reaches the model.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from .conftest import Runtime

LIMIT = 64 * 1024  # limits.max_body_bytes of every compiled spec (policy.json)
TRACE = re.compile(r"\n\s+at |\bat \S+ \(|\b\w*Error: |\.ts:\d+|\.js:\d+|node_modules")


JSON_TYPE = "application/json; charset=utf-8"


def sid() -> str:
    return f"bad-{uuid.uuid4().hex[:12]}"


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == JSON_TYPE, r.headers
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    if code is not None:
        assert error["code"] == code, body
    assert not TRACE.search(r.text), f"stack trace text in the body: {r.text}"
    return error


@pytest.fixture
def client(playground: Runtime) -> Iterator[httpx.Client]:
    with playground.client() as c:
        yield c


@pytest.fixture(autouse=True)
def _never_reaches_the_model(playground: Runtime) -> Iterator[None]:
    yield
    assert playground.model.requests == [], "bad input reached the model"


def post_turn(
    runtime: Runtime,
    c: httpx.Client,
    content: bytes | str | Iterator[bytes],
    session: str | None = None,
    content_type: str | None = "application/json",
    **headers: str,
) -> httpx.Response:
    h = dict(runtime.headers())
    if content_type is not None:
        h["content-type"] = content_type
    h.update(headers)
    return c.post(f"/v1/sessions/{session or sid()}/turns", content=content, headers=h)


# ── bodies ───────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "raw",
    [
        b'{"workflow": "chat", "input": ',
        b"not json",
        b"",
        b"{'workflow': 'chat'}",
        b'{"workflow": "chat", "input": "hi"} trailing',
    ],
)
def test_malformed_json_is_400_invalid_json(playground: Runtime, client: httpx.Client, raw: bytes) -> None:
    assert_error(post_turn(playground, client, raw), 400, "invalid_json")


def test_invalid_utf8_is_400_invalid_json(playground: Runtime, client: httpx.Client) -> None:
    raw = b'{"workflow": "chat", "input": "\xff\xfe"}'
    assert_error(post_turn(playground, client, raw), 400, "invalid_json")


@pytest.mark.parametrize("raw", ['[{"workflow": "chat", "input": "hi"}]', '"chat"', "42", "null", "true"])
def test_a_body_that_is_not_an_object_is_400(playground: Runtime, client: httpx.Client, raw: str) -> None:
    assert_error(post_turn(playground, client, raw), 400, "invalid_body")


@pytest.mark.parametrize("depth", [10_000])
def test_deeply_nested_json_is_400_not_a_crash(playground: Runtime, client: httpx.Client, depth: int) -> None:
    nested_object = ('{"a":' * depth + "1" + "}" * depth).encode()
    nested_array = ("[" * depth + "]" * depth).encode()
    assert len(nested_object) < LIMIT
    assert_error(post_turn(playground, client, nested_object), 400)
    assert_error(post_turn(playground, client, nested_array), 400)


def _oversize() -> bytes:
    body = json.dumps({"workflow": "chat", "input": "x" * (LIMIT + 1)}).encode()
    assert len(body) > LIMIT
    return body


def test_oversize_body_with_content_length_is_413(playground: Runtime, client: httpx.Client) -> None:
    body = _oversize()
    r = post_turn(playground, client, body)
    assert r.request.headers["content-length"] == str(len(body))
    assert_error(r, 413, "body_too_large")


def test_oversize_chunked_body_without_content_length_is_413(playground: Runtime, client: httpx.Client) -> None:
    body = _oversize()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    r = post_turn(playground, client, chunks())
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert_error(r, 413, "body_too_large")


def test_a_body_just_under_the_limit_is_read(playground: Runtime, client: httpx.Client) -> None:
    # Under the byte limit but over the input limit (32,000 characters): read, then refused as a field.
    body = json.dumps({"workflow": "chat", "input": "x" * 40_000}).encode()
    assert len(body) < LIMIT
    assert_error(post_turn(playground, client, body), 400, "invalid_field")


def test_a_non_json_content_type_is_415(playground: Runtime, client: httpx.Client) -> None:
    r = post_turn(playground, client, "workflow=chat&input=hi", content_type="application/x-www-form-urlencoded")
    assert_error(r, 415, "unsupported_media_type")


# ── fields ───────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "body",
    [
        {"workflow": "chat", "input": 5},
        {"workflow": None, "input": "hi"},
        {"workflow": "chat", "input": ["hi"]},
        {"workflow": "chat", "input": {"text": "hi"}},
        {"workflow": 7, "input": "hi"},
        {"workflow": "chat", "input": ""},
        {"workflow": "chat"},
        {"input": "hi"},
        {},
    ],
)
def test_wrong_field_types_are_400(playground: Runtime, client: httpx.Client, body: dict) -> None:
    assert_error(post_turn(playground, client, json.dumps(body)), 400, "invalid_field")


def test_unknown_workflow_is_404(playground: Runtime, client: httpx.Client) -> None:
    for name in ["nope", "constructor", "__proto__", "toString"]:
        r = post_turn(playground, client, json.dumps({"workflow": name, "input": "hi"}))
        assert_error(r, 404, "unknown_workflow")


def test_unknown_task_workflow_is_404(playground: Runtime, client: httpx.Client) -> None:
    r = client.post("/v1/tasks", json={"workflow": "nope", "params": {}}, headers=playground.headers())
    assert_error(r, 404, "unknown_workflow")


# ── session ids and headers ──────────────────────────────────────────────────


@pytest.mark.parametrize(
    "session",
    [
        "a" * 129,  # longer than limits.max_session_id (128)
        "has%20space",  # decoded: a space
        "semi;colon",
        "%F0%9F%98%80",  # an emoji
        "a%2Fb",  # decoded: a slash
        "-leading-dash",
        "%E0%A4%A",  # a malformed %-escape
        "%",
    ],
)
def test_bad_session_ids_are_400(playground: Runtime, client: httpx.Client, session: str) -> None:
    r = post_turn(playground, client, json.dumps({"workflow": "chat", "input": "hi"}), session=session)
    assert_error(r, 400, "invalid_session_id")


def test_a_session_id_of_exactly_128_characters_is_accepted(playground: Runtime, client: httpx.Client) -> None:
    session = "s" * 128
    r = post_turn(playground, client, json.dumps({"workflow": "watch", "input": "hi"}), session=session)
    assert r.status_code == 200, r.text
    assert r.json()["session_id"] == session
    playground.model.reset()  # this one reached the model on purpose


def test_answers_and_errors_share_one_content_type(playground: Runtime, client: httpx.Client) -> None:
    turn = post_turn(playground, client, json.dumps({"workflow": "watch", "input": "hi"}), session=sid())
    health = client.get("/healthz")
    policy = client.get("/v1/policy", headers=playground.headers())
    assert [r.status_code for r in (turn, health, policy)] == [200, 200, 200]
    assert {r.headers["content-type"] for r in (turn, health, policy)} == {JSON_TYPE}
    playground.model.reset()  # the turn reached the model on purpose


def test_a_bad_session_id_on_traces_is_400(playground: Runtime, client: httpx.Client) -> None:
    h = playground.admin_headers()
    assert_error(client.get("/v1/traces", params={"session": "x" * 129}, headers=h), 400, "invalid_session_id")
    assert_error(client.get("/v1/traces", headers=h), 400, "invalid_session_id")
    assert_error(client.get("/v1/traces", params={"session": "ok", "since": "-1"}, headers=h), 400, "invalid_since")
    assert_error(client.get("/v1/traces", params={"session": "ok", "since": "abc"}, headers=h), 400, "invalid_since")


def test_an_overlong_affinity_header_is_400(playground: Runtime, client: httpx.Client) -> None:
    r = post_turn(
        playground, client, json.dumps({"workflow": "chat", "input": "hi"}), **{"x-session-affinity": "k" * 257}
    )
    assert_error(r, 400, "invalid_affinity")


# ── routes and methods ───────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/"),
        ("GET", "/v1"),
        ("GET", "/v1/nothing"),
        ("POST", "/v1/sessions/s1/turns/extra"),
        ("POST", "/v1/sessions//turns"),
        ("GET", "/v1/sessions/s1"),
        ("GET", "/healthz/"),
        ("GET", "/v1/tasks/bad!id"),
    ],
)
def test_unknown_routes_are_404(playground: Runtime, client: httpx.Client, method: str, path: str) -> None:
    r = client.request(method, path, headers=playground.headers())
    assert_error(r, 404, "not_found")


@pytest.mark.parametrize(
    "method,path,allow",
    [
        ("GET", "/v1/sessions/s1/turns", "POST"),
        ("PUT", "/v1/sessions/s1/turns", "POST"),
        ("DELETE", "/v1/sessions/s1/turns", "POST"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/v1/policy", "GET"),
        ("POST", "/v1/traces", "GET"),
        ("GET", "/v1/tasks", "POST"),
        ("POST", "/v1/tasks/chat-123", "GET"),
    ],
)
def test_wrong_methods_are_405_with_allow(
    playground: Runtime, client: httpx.Client, method: str, path: str, allow: str
) -> None:
    r = client.request(method, path, headers=playground.headers())
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == allow
