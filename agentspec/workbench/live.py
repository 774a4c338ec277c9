"""The live prototype loop: a checked spec in, its compiled project running under `wrangler dev` out, and each
turn sent to it returned as a `Turn` (answer, model and tier, decisions, tool calls with their outcome, tokens,
cost), read from the turn's answer and its trace record (`GET /v1/traces`).

The runtime is the real one (`agentspec/devserver.py`, workerd, offline). Only the model and the tools' hosts
can be stood in for: the model is a `ScriptedModel` on loopback (the default) or any OpenAI-compatible endpoint
(`model="http://127.0.0.1:11434/v1"`); tools go to a `ToolStub` on loopback (the default, through TOOL_ORIGINS)
or to their real hosts (`tools="real"`).
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import httpx

from agentspec.devserver import TOOLCHAIN, DevServer, local_secrets, stub_origins, toolchain_ready, write_dev_vars
from agentspec.workbench.html import Display, code, esc, table, text_table
from agentspec.workbench.scripted_model import ScriptedModel
from agentspec.workbench.tool_stub import ToolStub
from agentspec.workbench.views import Checked

DEV_TOKENS = {"dev-token": "tenant-dev"}  # the tokens `.dev.vars.example` suggests (docs/runtime.md)
DEV_ADMIN = "dev-admin-token"


class Turn(Display):
    """One turn as the runtime answered it, joined with its trace record when the turn completed."""

    def __init__(
        self, session: str, workflow: str, text: str, status: int, body: dict[str, Any], trace: dict[str, Any] | None
    ) -> None:
        self.session, self.workflow, self.input = session, workflow, text
        self.status = status
        self.body = body
        self.trace = trace

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def output(self) -> str | None:
        return self.body.get("output")

    @property
    def number(self) -> int | None:
        return self.body.get("turn")

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def error(self) -> dict[str, Any] | None:
        error = self.body.get("error")
        return error if isinstance(error, dict) else None

    @property
    def decisions(self) -> list[dict[str, Any]]:
        return list(self.body.get("decisions") or [])

    def _trace(self, key: str) -> Any:
        return self.trace.get(key) if self.trace else None

    @property
    def tier(self) -> str | None:
        return self._trace("tier")

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self._trace("tools") or [])

    @property
    def input_tokens(self) -> int | None:
        return self._trace("gen_ai.usage.input_tokens")

    @property
    def output_tokens(self) -> int | None:
        return self._trace("gen_ai.usage.output_tokens")

    @property
    def cached_tokens(self) -> int | None:
        return self._trace("gen_ai.usage.cache_read.input_tokens")

    @property
    def cost_usd(self) -> float | None:
        return self._trace("cost_usd")

    @property
    def latency_ms(self) -> float | None:
        return self._trace("latency_ms")

    @property
    def ttft_ms(self) -> float | None:
        return self._trace("ttft_ms")

    def headline(self) -> str:
        if not self.ok:
            e = self.error or {}
            return f"{self.workflow}: HTTP {self.status} {e.get('code', '')}: {e.get('message', '')}".rstrip(": ")
        cost = f"${self.cost_usd:.6f}" if self.cost_usd is not None else "no price"
        return (
            f"turn {self.number} of `{self.session}` · {self.workflow} · model {self.model} (tier {self.tier}) · "
            f"{self.latency_ms} ms · tokens {self.input_tokens} in / {self.output_tokens} out "
            f"({self.cached_tokens} cached) · {cost}"
        )

    _DECISIONS = ("seq", "action", "decision", "rule")
    _TOOLS = ("tool", "decision", "rule", "outcome", "status", "attempts", "latency_ms")

    def _rows(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        decisions = [tuple(d.get(k) for k in self._DECISIONS) for d in self.decisions]
        tools = [tuple(t.get(k) for k in self._TOOLS) for t in self.tools]
        return decisions, tools

    def _text(self) -> str:
        decisions, tools = self._rows()
        parts = [self.headline(), f"you: {self.input}"]
        if self.ok:
            parts.append(f"agent: {self.output}")
        if tools:
            parts.append(text_table(self._TOOLS, tools, "tool calls"))
        if decisions:
            parts.append(text_table(self._DECISIONS, decisions, "decisions"))
        return "\n\n".join(parts)

    def _html(self) -> str:
        decisions, tools = self._rows()
        colour = "inherit" if self.ok else "crimson"
        parts = [
            f"<p style='color:{colour}'><b>{esc(self.headline())}</b></p>",
            f"<p><b>you</b>: {esc(self.input)}</p>",
        ]
        if self.ok:
            parts.append(f"<p><b>agent</b> ({code(self.model)}): {esc(self.output)}</p>")
        if tools:
            parts.append(table(self._TOOLS, tools, "tool calls"))
        if decisions:
            parts.append(table(self._DECISIONS, decisions, "decisions"))
        return "<div class='agentspec-turn'>" + "".join(parts) + "</div>"


class LiveAgent:
    """A compiled spec served by `wrangler dev` in `workdir`, with its model and tools stood in for as chosen.

    `start()` compiles, writes `.dev.vars` and waits for `/healthz`; `stop()` ends wrangler's whole process group
    and the stubs this object made (also at interpreter exit). While it runs, `workdir/wrangler.pid` holds the
    process group id, so a test (or a user) can end it from outside a dead kernel.
    """

    def __init__(
        self,
        checked: Checked,
        workdir: str | Path | None = None,
        model: str | ScriptedModel | None = None,
        api_key: str | None = None,
        tools: Literal["stub", "real"] | ToolStub = "stub",
        tokens: dict[str, str] | None = None,
        admin_token: str = DEV_ADMIN,
        secrets: dict[str, str] | None = None,
        toolchain: str | Path = TOOLCHAIN,
    ) -> None:
        self.checked = checked
        self.spec = checked.spec
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="agentspec-live-"))
        self.toolchain = Path(toolchain)
        self.tokens = dict(tokens or DEV_TOKENS)
        self.admin_token = admin_token
        self._owned: list[ScriptedModel | ToolStub] = []
        if model is None:
            model = ScriptedModel()
            self._owned.append(model)
        self.model = model
        self.inference_url = model.url if isinstance(model, ScriptedModel) else model
        self.api_key = api_key
        if tools == "stub":
            tools = ToolStub()
            self._owned.append(tools)
        self.tool_stub: ToolStub | None = tools if isinstance(tools, ToolStub) else None
        self.secrets = {**local_secrets(self.spec, self.tokens, admin_token), **(secrets or {})}
        self.project = self.workdir / self.spec.name
        self.pidfile = self.workdir / "wrangler.pid"
        self.server: DevServer | None = None
        self.turns: list[Turn] = []
        self._at_exit = False
        self._seen: dict[tuple[str, str], int] = {}  # (tenant, session) -> last decision seq pulled

    # ── lifecycle ──────────────────────────────────────────────────────────

    def tool_origins(self) -> dict[str, str]:
        """TOOL_ORIGINS for the stub: every tool host and SLO webhook host sent to it; empty for real hosts."""
        if self.tool_stub is None:
            return {}
        return stub_origins(self.spec, self.tool_stub.origin)

    def start(self, timeout: float = 90.0) -> LiveAgent:
        if not toolchain_ready(self.toolchain):
            raise RuntimeError(
                f"no Node toolchain at `{self.toolchain}`: run `make node-setup` (or pass toolchain=...)"
            )
        self.stop()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.checked.compile(self.project, force=True)
        values = {"INFERENCE_URL": self.inference_url}
        if self.api_key:
            values["INFERENCE_API_KEY"] = self.api_key
        origins = self.tool_origins()
        if origins:
            values["TOOL_ORIGINS"] = json.dumps(origins)
        write_dev_vars(self.project, {**values, **self.secrets})
        self.server = DevServer(
            self.project, self.workdir / "state", self.workdir / "wrangler.log", toolchain=self.toolchain
        )
        if not self._at_exit:
            atexit.register(self.stop)  # a kernel that exits normally leaves no wrangler behind
            self._at_exit = True
        try:
            self.server.start(timeout)
        finally:
            if self.server.process is not None:
                self.pidfile.write_text(f"{self.server.process.pid}\n")
        return self

    def stop(self) -> None:
        """End wrangler (its process group) and leave the stubs running, for a restart; `close()` ends both."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.pidfile.unlink(missing_ok=True)

    def close(self) -> None:
        self.stop()
        for stub in self._owned:
            stub.close()
        self._owned.clear()
        shutil.rmtree(self.project / ".wrangler", ignore_errors=True)

    def __enter__(self) -> LiveAgent:
        return self if self.server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.process is not None and self.server.process.poll() is None

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError("the agent is not running: call start()")
        return self.server.url

    # ── talking to it ──────────────────────────────────────────────────────

    @property
    def tenant(self) -> str:
        return next(iter(self.tokens.values()))

    def _headers(self, tenant: str, admin: bool = False) -> dict[str, str]:
        token = self.admin_token if admin else next(t for t, owner in self.tokens.items() if owner == tenant)
        return {"authorization": f"Bearer {token}", self.spec.tenant_header or "x-tenant-id": tenant}

    def turn(self, session: str, workflow: str, text: str, tenant: str | None = None, timeout: float = 60.0) -> Turn:
        """Send one turn and join the answer with its trace record (tokens, cost, tier, tool calls)."""
        tenant = tenant or self.tenant
        with httpx.Client(base_url=self.url, timeout=timeout) as client:
            r = client.post(
                f"/v1/sessions/{session}/turns",
                json={"workflow": workflow, "input": text},
                headers=self._headers(tenant),
            )
            try:
                body = r.json()
            except ValueError:
                body = {"error": {"code": "not_json", "message": r.text[:200]}}
            trace = self._trace(client, tenant, session, body.get("trace_id")) if r.status_code == 200 else None
        turn = Turn(session, workflow, text, r.status_code, body if isinstance(body, dict) else {}, trace)
        self.turns.append(turn)
        return turn

    def _trace(self, client: httpx.Client, tenant: str, session: str, trace_id: str | None) -> dict[str, Any] | None:
        if not self.spec.admin_secret or trace_id is None:
            return None  # without an admin secret the runtime serves no traces: tokens and cost stay unknown
        since = self._seen.get((tenant, session), 0)
        r = client.get(
            "/v1/traces", params={"session": session, "since": since}, headers=self._headers(tenant, admin=True)
        )
        if r.status_code != 200:
            return None
        body = r.json()
        if body["records"]:
            self._seen[(tenant, session)] = body["records"][-1]["seq"]
        return next((t for t in body["turns"] if t.get("trace_id") == trace_id), None)


def serve(checked: Checked, **options: Any) -> LiveAgent:
    """Compile and start a checked spec (options as `LiveAgent`); stop it with `.close()` or a `with` block."""
    return LiveAgent(checked, **options).start()
