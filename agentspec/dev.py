"""`agentspec dev SPEC`: one command from a spec to a running agent, rebuilt when the spec changes.

A spec path in; a compiled project in OUTDIR served by `wrangler dev` on loopback out, with its local
variables written (a scripted loopback model unless an OpenAI-compatible `--inference-url` is given; the tools'
hosts sent to a loopback stub, or left to their real hosts), until interrupted. When a spec file (or a file it
imports) changes, the spec is checked again: with errors, the diagnostics are printed and the last good build
keeps running; otherwise the project is recompiled in place — which keeps `.dev.vars`, `.wrangler/` and every
file of the user's (agentspec/output.py) — and the runtime restarts on the same port and the same persisted
state, so sessions and their decision chains survive the reload.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

import httpx

from agentspec.check import check
from agentspec.devserver import (
    TOOLCHAIN,
    DevServer,
    DevServerError,
    local_secrets,
    stub_origins,
    toolchain_ready,
)
from agentspec.diagnostics import Diagnostic, has_errors, render_human, summary
from agentspec.emit import emit
from agentspec.load import load
from agentspec.model import RSpec
from agentspec.output import OutputRefused, write
from agentspec.policy import spec_hash
from agentspec.workbench.scripted_model import ScriptedModel
from agentspec.workbench.tool_stub import ToolStub

DEV_TOKEN, DEV_TENANT, DEV_ADMIN_TOKEN = "dev-token", "tenant-dev", "dev-admin-token"
# The first line of a `.dev.vars` this command wrote: one without it is the user's, and is left alone.
MARKER = "# written by `agentspec dev`: edit freely, but remove this line or your edits are rewritten\n"


class DevError(Exception):
    """The first build cannot be served (the spec has errors, the output is refused, wrangler will not start)."""


@dataclass(frozen=True)
class Build:
    spec: RSpec
    sources: tuple[str, ...]  # every file the spec was read from: the ones to watch


class DevLoop:
    """The state of one `agentspec dev`: the stubs, the server, the last good build."""

    def __init__(
        self,
        spec_path: str,
        outdir: str | None = None,
        port: int = 8787,
        inference_url: str | None = None,
        tools: Literal["stub", "real"] = "stub",
        out: TextIO | None = None,
        toolchain: Path = TOOLCHAIN,
    ) -> None:
        self.spec_path = spec_path
        self.outdir = outdir
        self.port = port
        self.inference_url = inference_url
        self.tools = tools
        self.toolchain = toolchain
        self.print: Callable[[str], None] = (lambda line: print(line, file=out, flush=True)) if out else print
        self.model = ScriptedModel() if inference_url is None else None
        self.tool_stub = ToolStub() if tools == "stub" else None
        self.build: Build | None = None
        self.server: DevServer | None = None
        self._stamps: dict[str, int] = {}

    # ── building ──────────────────────────────────────────────────────────

    def _check(self) -> Build | list[Diagnostic]:
        loaded = load(self.spec_path)
        result = check(loaded)
        if has_errors(result.diagnostics) or result.spec is None:
            self.print(render_human(result.diagnostics, loaded.sources))
            self.print(summary(result.diagnostics, 1))
            return list(result.diagnostics)
        if result.spec.kind != "agent":
            raise DevError(f"`{self.spec_path}` is a library; run the agent that imports it")
        return Build(result.spec, tuple(sorted(loaded.sources)))

    @property
    def project(self) -> Path:
        assert self.build is not None
        return Path(self.outdir or f"out/{self.build.spec.name}")

    def _compile(self, build: Build, in_place: bool = False) -> None:
        self.build = build
        report = write(emit(build.spec), str(self.project), in_place=in_place)
        link = self.project / "node_modules"
        if not link.exists() and not link.is_symlink():
            link.symlink_to(self.toolchain.resolve(), target_is_directory=True)
        if report.kept:
            self.print(f"  kept your files: {', '.join(report.kept)}")
        self._write_dev_vars(build.spec)

    def _write_dev_vars(self, spec: RSpec) -> None:
        path = self.project / ".dev.vars"
        if path.exists() and not path.read_text(encoding="utf-8").startswith(MARKER):
            self.print("  .dev.vars is yours (no `agentspec dev` marker): left as it is")
            return
        values = {"INFERENCE_URL": self.model.url if self.model else str(self.inference_url)}
        if self.tool_stub is not None:
            origins = stub_origins(spec, self.tool_stub.origin)
            values["TOOL_ORIGINS"] = json.dumps(origins, sort_keys=True)
        values.update(local_secrets(spec, {DEV_TOKEN: DEV_TENANT}, DEV_ADMIN_TOKEN))
        path.write_text(MARKER + "".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")

    def _serve(self) -> None:
        state = self.project / ".wrangler" / "state"  # where a plain `npm run dev` keeps it too
        state.mkdir(parents=True, exist_ok=True)
        self.server = DevServer(self.project, state, self.project / ".wrangler" / "dev.log", toolchain=self.toolchain)
        self.server.start(timeout=90, port=self.port)

    # ── the loop ──────────────────────────────────────────────────────────

    def start(self) -> None:
        if not toolchain_ready(self.toolchain):
            raise DevError(f"no Node toolchain at `{self.toolchain}`: run `make node-setup` first")
        first = self._check()
        if not isinstance(first, Build):
            raise DevError("the spec has errors; nothing is running")
        try:
            self._compile(first)
        except OutputRefused as exc:
            raise DevError(f"refused: {exc}") from exc
        self._stamps = self._mtimes(first.sources)
        try:
            self._serve()
        except DevServerError as exc:
            raise DevError(str(exc)) from exc
        self._greet()

    def _greet(self) -> None:
        assert self.build is not None and self.server is not None
        spec = self.build.spec
        workflow = next((w.name for w in spec.workflows), "default")
        header = spec.tenant_header or "x-tenant-id"
        model = self.model.url if self.model else self.inference_url
        self.print(f"agentspec dev: `{spec.name}` v{spec.version} running at {self.server.url}")
        self.print(f"  project:  {self.project}/   (state in .wrangler/state, kept across reloads)")
        self.print(f"  model:    {model}" + ("   (scripted loopback model)" if self.model else ""))
        tools = f"loopback stub at {self.tool_stub.origin}" if self.tool_stub else "their real hosts"
        self.print(f"  tools:    {tools}")
        self.print(f"  tokens:   {DEV_TOKEN} (tenant {DEV_TENANT}), admin {DEV_ADMIN_TOKEN}")
        if spec.signing_secret:
            # The local key pair is derived from the agent's name: the public half is the same on every run.
            self.print(f"  heads:    signed; the public key is `audit.spki_pem` of {self.server.url}/v1/policy")
        body = json.dumps({"workflow": workflow, "input": "hello"})
        self.print("  try:")
        self.print(
            f"    curl -s {self.server.url}/v1/sessions/s1/turns -H 'authorization: Bearer {DEV_TOKEN}' "
            f"-H '{header}: {DEV_TENANT}' -H 'content-type: application/json' -d '{body}'"
        )
        self.print("  watching the spec; Ctrl-C stops")

    @staticmethod
    def _mtimes(paths: tuple[str, ...]) -> dict[str, int]:
        stamps = {}
        for path in paths:
            try:
                stamps[path] = os.stat(path).st_mtime_ns
            except OSError:
                stamps[path] = -1
        return stamps

    def changed(self) -> bool:
        assert self.build is not None
        return self._mtimes(self.build.sources) != self._stamps

    def reload(self) -> bool:
        """Check the spec again and, when it is good, recompile and restart; True when the new build runs."""
        assert self.build is not None
        started = time.monotonic()
        candidate = self._check()
        if not isinstance(candidate, Build):
            self._stamps = self._mtimes(self.build.sources)
            self.print("agentspec dev: the spec has errors; the last good build keeps running")
            return False
        self._stamps = self._mtimes(candidate.sources)
        previous = self.build
        if spec_hash(candidate.spec) == spec_hash(previous.spec):
            self.build = candidate
            self.print("agentspec dev: the spec's meaning did not change; nothing to reload")
            return True
        try:
            self._compile(candidate, in_place=True)
        except OutputRefused as exc:
            self.build = previous
            self.print(f"agentspec dev: refused: {exc}\nthe last good build keeps running")
            return False
        # wrangler dev watches the files it serves and rebuilds on its own; the new build is live once
        # /healthz reports the new spec hash. A restart (same port, same state) only if it does not come.
        if not self._serving(spec_hash(candidate.spec), timeout=20):
            if self.server is not None:
                self.server.stop()
            try:
                self._serve()
            except DevServerError as exc:
                self.print(f"agentspec dev: the new build does not start:\n{exc}")
                return False
        self.print(f"agentspec dev: reloaded `{candidate.spec.name}` in {time.monotonic() - started:.1f}s")
        return True

    def _serving(self, expected: str, timeout: float) -> bool:
        if self.server is None:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.server.url}/healthz", timeout=2).json().get("spec_hash") == expected:
                    return True
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        return False

    def run(self, poll: float = 0.5) -> None:
        while True:
            time.sleep(poll)
            if self.changed():
                self.reload()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        for stub in (self.model, self.tool_stub):
            if stub is not None:
                stub.close()
