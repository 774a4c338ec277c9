"""Serve a compiled project locally: `wrangler dev` (the top level of wrangler.jsonc) on a loopback port, offline.

A generated project directory in (with its `.dev.vars` written), a running Worker at `url`
out, its Durable Object, KV and Workflow state persisted under `state` so a restart finds
it again; `stop()` ends the whole process group. The end-to-end tests, the load benchmark
and a notebook replaying traces against a live runtime all start one the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from agentspec.emit import CODEGEN
from agentspec.model import RSpec
from agentspec.signing import local_key, private_secret, public_pem

# The one toolchain install every generated project shares (codegen/cloudflare/package.json).
TOOLCHAIN = CODEGEN / "node_modules"

# Keep wrangler quiet and offline: no metrics, no Cloudflare requests, no banner, no colours; and no local
# trace collector: wrangler dev otherwise stores a span row (one SQLite commit) for every SQL statement, RPC and
# fetch a request makes, in a store that grows without bound, which costs workerd more CPU per turn than the
# runtime itself. The runtime's own traces are its decision and trace records (`/v1/traces`).
QUIET = {
    "WRANGLER_SEND_METRICS": "false",
    "CLOUDFLARE_CF_FETCH_ENABLED": "false",
    "WRANGLER_HIDE_BANNER": "true",
    "X_LOCAL_OBSERVABILITY": "false",
    "NO_COLOR": "1",
    "CI": "true",
}


class DevServerError(RuntimeError):
    """wrangler dev exited, or did not answer `/healthz` in time; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_secrets(spec: RSpec, tokens: dict[str, str], admin_token: str) -> dict[str, str]:
    """Every secret a compiled spec reads, for a local run: its token map (token -> tenant), its admin token,
    `value-of-NAME` for each identity secret, so a tool stub can tell which secret a tool was sent, and its signing
    key when it signs chain heads."""
    if spec.tokens_secret is None:
        raise ValueError(f"`{spec.name}` is a library: it has no token map to serve")
    secrets = {spec.tokens_secret: json.dumps(tokens)}
    if spec.admin_secret:
        secrets[spec.admin_secret] = admin_token
    for _, held in spec.identities:
        for secret in held:
            secrets[secret] = f"value-of-{secret}"
    if spec.signing_secret:
        # The agent's local key pair (public by construction: derived from its name), so heads signed before a
        # restart or a reload still verify; `local_public_key` is its public half.
        secrets[spec.signing_secret] = private_secret(local_key(spec.name))
    return secrets


def local_public_key(spec: RSpec) -> str:
    """The PEM public key that verifies the heads a local run of `spec` signs (see `local_secrets`)."""
    return public_pem(local_key(spec.name))


def stub_origins(spec: RSpec, origin: str) -> dict[str, str]:
    """TOOL_ORIGINS that send every tool host, and every SLO webhook host, of a compiled spec to one loopback
    stub (docs/runtime.md): what the tests, the workbench's live loop and `agentspec dev` all write."""
    origins = {t.host: origin for t in spec.tools}
    for wf in spec.workflows:
        if wf.slo.webhook:
            origins[httpx.URL(wf.slo.webhook).host] = origin
    return origins


def write_dev_vars(project: Path, values: dict[str, str]) -> None:
    """The project's `.dev.vars`, which wrangler dev reads its variables and secrets from."""
    (project / ".dev.vars").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def toolchain_ready(toolchain: Path = TOOLCHAIN) -> bool:
    return (toolchain / ".bin" / "node").exists() and (toolchain / ".bin" / "wrangler").exists()


class DevServer:
    def __init__(
        self, project: Path, state: Path, log: Path, toolchain: Path = TOOLCHAIN, env: dict[str, str] | None = None
    ) -> None:
        self.project = project
        self.extra_env = env or {}  # over QUIET, e.g. X_LOCAL_OBSERVABILITY=true to measure the collector
        self.state = state
        self.log = log
        self.toolchain = toolchain
        self.process: subprocess.Popen | None = None
        self.port = 0
        link = project / "node_modules"
        if not link.exists() and not link.is_symlink():
            link.symlink_to(toolchain)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0, port: int | None = None) -> None:
        self.port = port or free_port()
        bin_dir = self.toolchain / ".bin"
        env = {**os.environ, **QUIET, **self.extra_env, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        argv = [
            str(bin_dir / "wrangler"), "dev", "--ip", "127.0.0.1", "--port", str(self.port),
            # Each server its own inspector port, so several can run side by side.
            "--inspector-port", str(free_port()), "--persist-to", str(self.state), "--log-level", "warn",
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=self.project,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() ends workerd too
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DevServerError(f"wrangler dev exited early:\n{self._tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise DevServerError(f"wrangler dev did not answer within {timeout}s:\n{self._tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        self.process = None

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no log)"
