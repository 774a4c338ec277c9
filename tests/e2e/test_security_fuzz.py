"""A bounded property-based fuzz of the HTTP surface of a running runtime (tests/e2e/specs/playground.agent).

Random methods, paths (known routes with random segments, and anything else), query strings, headers (tokens,
tenants, content types, keys) and bodies (JSON objects whose fields have random types, lone-surrogate escapes,
raw bytes). Whatever comes in: never a 5xx; every error is the `{"error": {"code", "message"}}` shape; and a
refused request persists nothing (no row in any persisted SQLite database, no file in KV/R2, no model or tool
request). Bounded: FUZZ_EXAMPLES requests, each with a timeout, loopback only.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import ADMIN, TOKENS, Runtime

FUZZ_EXAMPLES = 200
TABLES = ("records", "messages", "turns", "tasks", "task_steps", "task_keys", "meta")

text = st.text(st.characters(min_codepoint=1, max_codepoint=0x10FFFF), max_size=12)
latin1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=20).map(
    str.strip
)
scalars = st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False) | text
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=6
)
known_fields = st.sampled_from(["workflow", "input", "params", "type", "payload"])
workflows = st.sampled_from(["chat", "watch", "brief", "payments", "nosuch", ""])
segment = st.one_of(
    st.sampled_from(["s1", "s1", "fuzz-1", "chat-1", "..", ".", "%2e%2e", "%", "%ff", "a%2Fb", "x" * 200]),
    text.map(lambda t: quote(t, safe="")),
    text.map(lambda t: quote(t, safe="/%:@")),
)
paths = st.one_of(
    segment.map(lambda s: f"/v1/sessions/{s}/turns"),
    st.just("/v1/tasks"),
    segment.map(lambda s: f"/v1/tasks/{s}"),
    segment.map(lambda s: f"/v1/tasks/{s}/events"),
    st.sampled_from(["/v1/traces", "/v1/policy", "/healthz", "/", "/v1", "//v1/tasks", "/v1/tasks/"]),
    segment.map(lambda s: f"/{s}"),
)
queries = st.dictionaries(
    st.sampled_from(["session", "since", "task", "x"]), text | st.sampled_from(["0", "-1", "1e3"]), max_size=3
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.sampled_from(["none", "json", "json", "surrogate", "bytes"]))
    if kind == "none":
        return None
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    obj = draw(st.dictionaries(known_fields | text, values | workflows, max_size=5))
    raw = json.dumps(obj)
    if kind == "surrogate":
        raw = raw[:-1] + (", " if obj else "") + '"s": "\\ud800"}'
    return raw.encode()


@st.composite
def requests(draw: st.DrawFn) -> dict:
    headers: dict[str, str] = {}
    # Mostly a valid caller, so most requests get past authentication to the checks behind it.
    token = draw(st.sampled_from(["token-acme"] * 4 + [ADMIN, *TOKENS, "nope", None]))
    if token is not None:
        headers["authorization"] = draw(st.sampled_from(["Bearer "] * 4 + ["bearer ", "Basic ", ""])) + token
    tenant = draw(st.sampled_from(["acme"] * 4 + ["globex", None]) | latin1)
    if tenant is not None:
        headers["x-tenant-id"] = tenant
    for name, choice in (
        ("content-type", st.sampled_from(["application/json", "text/plain", "application/json; charset=latin1"])),
        ("idempotency-key", latin1),
        ("x-session-affinity", latin1),
    ):
        if draw(st.booleans()):
            headers[name] = draw(choice)
    return {
        "method": draw(st.sampled_from(["GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])),
        "path": draw(paths),
        "params": draw(queries),
        "headers": headers,
        "content": draw(bodies()),
    }


def persisted(state: Path) -> tuple[int, ...]:
    """Row counts of every persisted table, and the number of other stored files (KV and R2 blobs)."""
    rows = 0
    for db in sorted(state.rglob("*.sqlite")):
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            for table in TABLES:
                try:
                    rows += con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                except sqlite3.Error:
                    continue
        finally:
            con.close()
    blobs = sum(1 for p in state.rglob("*") if p.is_file() and not p.name.endswith((".sqlite", "-wal", "-shm")))
    return rows, blobs


def settled(state: Path, quiet: float = 12.0, timeout: float = 90.0) -> None:
    """Wait until nothing more is being stored: the fleet export writes the earlier tests' events to R2 from its
    queue consumer after their turns, off the request path: a session's alarm sends 10 s after its commit
    (`EXPORT_LINGER_MS`), the consumer's batch waits at most a second locally. Quiet for longer than both."""
    deadline = time.monotonic() + timeout
    last, since = persisted(state), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "the persisted state never settled"
        time.sleep(0.5)
        now = persisted(state)
        if now != last:
            last, since = now, time.monotonic()


def test_the_http_surface_never_fails_open(playground: Runtime) -> None:
    settled(playground.state)
    client = httpx.Client(base_url=playground.url, timeout=20.0)
    seen_statuses: set[int] = set()

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(requests())
    def one(req: dict) -> None:
        before = persisted(playground.state)
        model_before, tools_before = len(playground.model.requests), len(playground.tools.requests)
        headers = {k: v.encode("latin-1") for k, v in req["headers"].items()}  # bytes: httpx sends str as ASCII
        r = client.request(req["method"], req["path"], params=req["params"], headers=headers,
                           content=req["content"])  # fmt: skip
        seen_statuses.add(r.status_code)
        assert r.status_code < 500, (req, r.status_code, r.text)
        if r.status_code >= 400:
            if req["method"] != "HEAD":
                error = r.json()["error"]
                assert isinstance(error["code"], str) and error["code"], r.text
                assert isinstance(error["message"], str) and error["message"], r.text
            # Refused: nothing stored, nothing sent on.
            assert persisted(playground.state) == before, (req, r.status_code, r.text)
            assert len(playground.model.requests) == model_before, req
            assert len(playground.tools.requests) == tools_before, req

    try:
        one()
    finally:
        client.close()
    # The fuzz reached past the front door's first checks, not only 401s and 404s.
    assert {400, 401, 403, 404, 405} <= seen_statuses, seen_statuses
