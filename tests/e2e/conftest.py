"""End-to-end fixtures: a compiled agent running in workerd (`wrangler dev`) on loopback.

One runtime per spec, shared by every test that needs it (session scope), with the shared
Node toolchain symlinked in. Only the model and the tools' endpoints are stubbed, by the
loopback servers in stubs.py; the runtime reaches them through its local variables
(INFERENCE_URL, TOOL_ORIGINS), exactly as `npm run dev` with a `.dev.vars` would.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from agentspec.check import check
from agentspec.devserver import (
    DevServer,
    DevServerError,
    local_secrets,
    stub_origins,
    toolchain_ready,
    write_dev_vars,
)
from agentspec.emit import emit, write
from agentspec.load import load

from .stubs import ModelStub, ToolStub

ROOT = Path(__file__).resolve().parents[2]
SPECS = Path(__file__).resolve().parent / "specs"

TOKENS = {"token-acme": "acme", "token-globex": "globex"}
ADMIN = "admin-secret-token"


def key_part(text: str) -> str:
    """One part of a runtime Idempotency-Key: percent-encoded as `encodeURIComponent` does, length-prefixed."""
    encoded = quote(text, safe="!*'()")
    return f"{len(encoded)}:{encoded}"


def sqlite_rows(db: Path, sql: str, *args: object) -> list[tuple]:
    """A query over one persisted SQLite file, opened read-only (workerd may still be writing it)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def persisted_rows(runtime: Runtime, sql: str, *args: object) -> Iterator[tuple[Path, list[tuple]]]:
    """The query's rows in each persisted SQLite file it runs on: every object's database is a file of its
    own under the state directory, named by a hash, so a test finds the one it wants by its contents."""
    for db in sorted(runtime.state.rglob("*.sqlite")):
        try:
            rows = sqlite_rows(db, sql, *args)
        except sqlite3.Error:
            continue  # another kind of database (KV metadata, another table set)
        yield db, rows


class Runtime:
    """A compiled spec served by `wrangler dev` (the top level of wrangler.jsonc), with state persisted on disk."""

    def __init__(self, spec_path: Path, workdir: Path, model: ModelStub, tools: ToolStub) -> None:
        if not toolchain_ready():
            pytest.fail("the Node toolchain is missing: run `npm --prefix codegen/cloudflare ci` (make test does)")
        loaded = load(str(spec_path))
        result = check(loaded)
        assert result.spec is not None, [d.message for d in result.diagnostics]
        self.spec = result.spec
        self.project = workdir / self.spec.name
        write(emit(self.spec), str(self.project))
        self.state = workdir / f"{self.spec.name}-state"
        self.model = model
        self.tools = tools
        secrets = local_secrets(self.spec, TOKENS, ADMIN)
        origins = stub_origins(self.spec, tools.origin)
        write_dev_vars(self.project, {"INFERENCE_URL": model.url, "TOOL_ORIGINS": json.dumps(origins), **secrets})
        self.secrets = secrets
        self.log = workdir / f"{self.spec.name}-wrangler.log"
        self.server = DevServer(self.project, self.state, self.log)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, timeout: float = 60.0) -> None:
        try:
            self.server.start(timeout)
        except DevServerError as exc:
            pytest.fail(str(exc))

    def stop(self) -> None:
        self.server.stop()

    # ── client helpers ────────────────────────────────────────────────────

    def idempotency_key(self, tool: str, values: dict[str, str], tenant: str = "acme") -> str:
        """The Idempotency-Key the runtime sends for `tool` (docs/runtime.md): agent, tenant and tool, then the
        tool's template with each placeholder (`session`, `args.NAME`...) filled from `values`, every part
        length-prefixed."""
        template = self.spec.tool(tool).idempotency_key
        assert template is not None, f"tool `{tool}` has no idempotency key"
        expanded = re.sub(r"\{([^{}]*)\}", lambda m: key_part(values[m.group(1)]), template)
        return key_part(self.spec.name) + key_part(tenant) + key_part(tool) + expanded

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def headers(self, tenant: str = "acme", token: str | None = None) -> dict[str, str]:
        token = token or next(t for t, owner in TOKENS.items() if owner == tenant)
        return {"authorization": f"Bearer {token}", self.spec.tenant_header or "x-tenant-id": tenant}

    def admin_headers(self, tenant: str = "acme") -> dict[str, str]:
        return {"authorization": f"Bearer {ADMIN}", self.spec.tenant_header or "x-tenant-id": tenant}

    def turn(self, session: str, workflow: str, text: str, tenant: str = "acme", **kw) -> httpx.Response:
        with self.client() as c:
            return c.post(
                f"/v1/sessions/{session}/turns",
                json={"workflow": workflow, "input": text},
                headers={**self.headers(tenant), **kw.pop("headers", {})},
                **kw,
            )

    def traces(self, session: str, tenant: str = "acme", since: int = 0) -> dict:
        with self.client() as c:
            r = c.get("/v1/traces", params={"session": session, "since": since}, headers=self.admin_headers(tenant))
            assert r.status_code == 200, r.text
            return r.json()

    def wait_task(
        self,
        task_id: str,
        tenant: str = "acme",
        timeout: float = 60.0,
        until: tuple[str, ...] = ("complete", "errored", "terminated"),
    ) -> dict:
        deadline = time.monotonic() + timeout
        body: dict = {}
        with self.client() as c:
            while time.monotonic() < deadline:
                r = c.get(f"/v1/tasks/{task_id}", headers=self.headers(tenant))
                assert r.status_code == 200, r.text
                body = r.json()
                if body["status"] in until:
                    return body
                time.sleep(0.25)
        raise AssertionError(f"task {task_id} still {body.get('status')} after {timeout}s: {body}")


@pytest.fixture(scope="session")
def model_stub() -> Iterator[ModelStub]:
    stub = ModelStub()
    yield stub
    stub.close()


@pytest.fixture(scope="session")
def tool_stub() -> Iterator[ToolStub]:
    stub = ToolStub()
    yield stub
    stub.close()


@pytest.fixture(autouse=True)
def _fresh_stubs(model_stub: ModelStub, tool_stub: ToolStub) -> None:
    model_stub.reset()
    tool_stub.reset()


def _runtime(spec: Path, tmp_path_factory, model_stub: ModelStub, tool_stub: ToolStub) -> Iterator[Runtime]:
    runtime = Runtime(spec, tmp_path_factory.mktemp("e2e"), model_stub, tool_stub)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()
        shutil.rmtree(runtime.project / ".wrangler", ignore_errors=True)


@pytest.fixture(scope="session")
def support(tmp_path_factory, model_stub: ModelStub, tool_stub: ToolStub) -> Iterator[Runtime]:
    """specs/support_desk.agent, running."""
    yield from _runtime(ROOT / "specs" / "support_desk.agent", tmp_path_factory, model_stub, tool_stub)


@pytest.fixture(scope="session")
def playground(tmp_path_factory, model_stub: ModelStub, tool_stub: ToolStub) -> Iterator[Runtime]:
    """tests/e2e/specs/playground.agent: small cadences and shadow mode, for the cases the examples lack."""
    yield from _runtime(SPECS / "playground.agent", tmp_path_factory, model_stub, tool_stub)


@pytest.fixture(scope="session")
def tasks(tmp_path_factory, model_stub: ModelStub, tool_stub: ToolStub) -> Iterator[Runtime]:
    """tests/e2e/specs/tasks.agent: a saga with two compensable steps and 100 ms retry delays."""
    yield from _runtime(SPECS / "tasks.agent", tmp_path_factory, model_stub, tool_stub)


@pytest.fixture(scope="session")
def slo_watch(tmp_path_factory, model_stub: ModelStub, tool_stub: ToolStub) -> Iterator[Runtime]:
    """tests/e2e/specs/slo.agent: one workflow per SLO scenario, each with its own monitor window."""
    yield from _runtime(SPECS / "slo.agent", tmp_path_factory, model_stub, tool_stub)


@pytest.fixture(scope="module")
def restartable(tmp_path_factory, model_stub: ModelStub, tool_stub: ToolStub) -> Iterator[Runtime]:
    """tests/e2e/specs/playground.agent in a runtime of its own (own state directory), for tests that stop and
    start it: restarting it never disturbs the shared `playground`."""
    yield from _runtime(SPECS / "playground.agent", tmp_path_factory, model_stub, tool_stub)
