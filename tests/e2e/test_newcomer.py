"""The newcomer's path, run as written: the generated README's local-run steps (npm run dev included, with no
offline settings in the environment), a recompile into the running project that keeps the user's files and a
live session, and `agentspec dev` with a reload after a spec edit.

Each command comes from the README itself (so the documented path cannot rot without failing here); only
`npm ci` is replaced by the link to the shared toolchain the README offers as its alternative.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agentspec.cli import main
from agentspec.dev import DEV_ADMIN_TOKEN, DEV_TENANT, DEV_TOKEN, MARKER, DevLoop
from agentspec.devserver import TOOLCHAIN, free_port, toolchain_ready
from agentspec.trace import verify
from agentspec.workbench.scripted_model import ScriptedModel

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "specs" / "support_desk.agent"


def _blocks(readme: str) -> list[list[str]]:
    """The README's ```sh blocks, each as its commands (continuation lines joined, comments dropped)."""
    blocks = []
    for body in re.findall(r"```sh\n(.*?)```", readme, flags=re.S):
        joined = body.replace("\\\n", " ")
        blocks.append([re.sub(r"\s+#.*$", "", line).strip() for line in joined.splitlines() if line.strip()])
    return blocks


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    stub = ScriptedModel()
    yield stub
    stub.close()


def _npm_run_dev(project: Path, port: int) -> subprocess.Popen[bytes]:
    """`npm run dev` as a user types it: an environment with none of the offline settings the tests use."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WRANGLER_", "CLOUDFLARE_", "X_LOCAL"))}
    env["PATH"] = f"{TOOLCHAIN / '.bin'}{os.pathsep}{env.get('PATH', '')}"
    log = open(project / "npm-run-dev.log", "wb")  # noqa: SIM115 - closed with the process below
    return subprocess.Popen(
        ["npm", "run", "dev", "--", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"npm run dev did not answer in {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _sh(command: str, cwd: Path, port: int) -> str:
    done = subprocess.run(
        command.replace("127.0.0.1:8787", f"127.0.0.1:{port}"),
        shell=True,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_the_generated_readme_runs_as_written(
    tmp_path: Path, model: ScriptedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    if not toolchain_ready():
        pytest.fail("the Node toolchain is missing: run `make node-setup`")
    project = tmp_path / "support_desk"
    assert main(["compile", str(SUPPORT), "-o", str(project)]) == 0
    run, pull = _blocks((project / "README.md").read_text())[:2]
    assert run[0] == "npm ci" and run[1] == "cp .dev.vars.example .dev.vars" and run[2] == "npm run dev"
    (project / "node_modules").symlink_to(TOOLCHAIN, target_is_directory=True)  # the README's `npm ci` stand-in
    _sh(run[1], project, 0)
    dev_vars = (project / ".dev.vars").read_text()
    (project / ".dev.vars").write_text(re.sub(r"(?m)^INFERENCE_URL=.*$", f"INFERENCE_URL={model.url}", dev_vars))
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    process = _npm_run_dev(project, port)
    try:
        _wait_healthy(url, process, project / "npm-run-dev.log")
        assert json.loads(_sh(run[3], project, port))["ok"] is True  # curl /healthz
        first = json.loads(_sh(run[4], project, port))  # curl the first turn
        assert (first["session_id"], first["turn"]) == ("s1", 1)
        assert first["output"].startswith("reply from ")
    finally:
        _stop(process)
    log = (project / "npm-run-dev.log").read_text(errors="replace")
    assert "ENOTFOUND" not in log and "getaddrinfo" not in log and "Request.cf" not in log, log
    assert "WARNING" not in log, log  # e.g. a key at the top level of wrangler.jsonc missing from an environment

    # Recompile into the project: the user's .dev.vars edit, a file of theirs and the session all survive.
    (project / ".dev.vars").write_text((project / ".dev.vars").read_text() + "MY_SETTING=kept\n")
    (project / "notes.md").write_text("# my notes\n")
    theirs = {name: (project / name).read_bytes() for name in (".dev.vars", "notes.md")}
    assert main(["compile", str(SUPPORT), "-o", str(project)]) == 0
    assert "kept:      .dev.vars, .wrangler, node_modules, notes.md, npm-run-dev.log" in capsys.readouterr().out
    assert {name: (project / name).read_bytes() for name in theirs} == theirs

    process = _npm_run_dev(project, port)
    try:
        _wait_healthy(url, process, project / "npm-run-dev.log")
        second = json.loads(_sh(run[4], project, port))
        assert (second["session_id"], second["turn"]) == ("s1", 2)  # the session's state was kept
        assert shlex.split(pull[0])[:3] == ["agentspec", "trace", "pull"]
        argv = shlex.split(pull[0].replace("127.0.0.1:8787", f"127.0.0.1:{port}"))[1:]
        assert main([*argv[:-1], str(tmp_path / "s1.json")]) == 0
        assert main(["trace", "verify", str(tmp_path / "s1.json")]) == 0
    finally:
        _stop(process)
    pulled = json.loads((tmp_path / "s1.json").read_text())
    assert [t["turn"] for t in pulled["turns"]] == [1, 2]


SMALL = """\
agent devloop version 1 {
  auth bearer secret API_TOKENS admin secret ADMIN_TOKEN
  tenant header "x-tenant-id"
  model tier low { primary "@cf/test/low" clears risk low }
  workflow chat class chat {
    route risk low -> tier low
    policy enforce
    pii mask [email] before persist
  }
}
"""


def test_agentspec_dev_serves_and_reloads_on_a_spec_edit(tmp_path: Path) -> None:
    spec = tmp_path / "devloop.agent"
    spec.write_text(SMALL)
    out = io.StringIO()
    loop = DevLoop(str(spec), str(tmp_path / "project"), port=free_port(), out=out)
    try:
        loop.start()
        greeting = out.getvalue()
        assert f"running at http://127.0.0.1:{loop.port}" in greeting
        assert f"Bearer {DEV_TOKEN}" in greeting and DEV_ADMIN_TOKEN in greeting and "curl -s" in greeting
        curl = next(line.strip() for line in greeting.splitlines() if line.strip().startswith("curl"))
        first = json.loads(subprocess.run(curl, shell=True, capture_output=True, text=True, check=True).stdout)
        assert (first["turn"], first["model"]) == (1, "@cf/test/low")
        assert (tmp_path / "project" / ".dev.vars").read_text().startswith(MARKER)

        spec.write_text(SMALL.replace('"@cf/test/low"', '"@cf/test/low-v2"').replace("version 1", "version 2"))
        time.sleep(0.01)
        assert loop.changed()
        assert loop.reload()
        headers = {"authorization": f"Bearer {DEV_TOKEN}", "x-tenant-id": DEV_TENANT}
        body = {"workflow": "chat", "input": "again"}
        second = httpx.post(f"http://127.0.0.1:{loop.port}/v1/sessions/s1/turns", json=body, headers=headers).json()
        assert (second["turn"], second["model"]) == (2, "@cf/test/low-v2")  # new build, same session state

        spec.write_text(SMALL.replace("tier low {", "tier low { bogus"))
        assert loop.changed() and not loop.reload()
        assert "the last good build keeps running" in out.getvalue() and "error[" in out.getvalue()
        third = httpx.post(f"http://127.0.0.1:{loop.port}/v1/sessions/s1/turns", json=body, headers=headers).json()
        assert (third["turn"], third["model"]) == (3, "@cf/test/low-v2")
    finally:
        loop.stop()


def test_agentspec_dev_refuses_a_spec_with_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "broken.agent"
    spec.write_text(SMALL.replace("tier low {", "tier lo {"))
    assert main(["dev", str(spec), "-o", str(tmp_path / "p"), "--port", str(free_port())]) == 1
    captured = capsys.readouterr()
    assert "error[" in captured.out and "the spec has errors; nothing is running" in captured.err
    assert not (tmp_path / "p").exists()


def _logged(log: Path, line: str, timeout: float = 10) -> None:
    """wrangler writes a Worker's console lines a moment after the response: wait for one before a stop."""
    deadline = time.monotonic() + timeout
    while line not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"not logged: {line}"
        time.sleep(0.1)


def test_misconfiguration_is_named_not_disguised(tmp_path: Path) -> None:
    """No token map, no admin token, no INFERENCE_URL, an unreachable model: each said for what it is."""
    from agentspec.check import check
    from agentspec.devserver import DevServer, write_dev_vars
    from agentspec.emit import emit, write
    from agentspec.load import load

    spec_path = tmp_path / "devloop.agent"
    spec_path.write_text(SMALL)
    spec = check(load(str(spec_path))).spec
    assert spec is not None
    project = tmp_path / "project"
    write(emit(spec), str(project))
    write_dev_vars(project, {"UNRELATED": "1"})  # none of the secrets, no INFERENCE_URL
    server = DevServer(project, tmp_path / "state", tmp_path / "wrangler.log")
    headers = {"authorization": "Bearer whatever", "x-tenant-id": "t"}
    body = {"workflow": "chat", "input": "hi"}
    try:
        server.start(90)
        turn = httpx.post(f"{server.url}/v1/sessions/s1/turns", json=body, headers=headers, timeout=30)
        assert turn.status_code == 500, turn.text
        assert turn.json()["error"]["code"] == "misconfigured"
        assert "`API_TOKENS`" in turn.json()["error"]["message"]
        traces = httpx.get(f"{server.url}/v1/traces", params={"session": "s1"}, headers=headers, timeout=30)
        assert traces.status_code == 500 and "`ADMIN_TOKEN`" in traces.json()["error"]["message"]
        _logged(tmp_path / "wrangler.log", "misconfigured: secret `API_TOKENS`")
        _logged(tmp_path / "wrangler.log", "misconfigured: secret `ADMIN_TOKEN`")
        server.stop()

        write_dev_vars(project, {"API_TOKENS": json.dumps({"tok": "t"}), "ADMIN_TOKEN": "adm", "INFERENCE_URL": ""})
        server.start(90)
        ok_headers = {"authorization": "Bearer tok", "x-tenant-id": "t"}
        turn = httpx.post(f"{server.url}/v1/sessions/s1/turns", json=body, headers=ok_headers, timeout=30)
        assert turn.status_code == 500 and "set INFERENCE_URL" in turn.json()["error"]["message"], turn.text
        assert turn.json()["error"]["code"] == "misconfigured"
        _logged(tmp_path / "wrangler.log", "misconfigured: no inference backend")
        server.stop()

        dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
        write_dev_vars(project, {"API_TOKENS": json.dumps({"tok": "t"}), "ADMIN_TOKEN": "adm", "INFERENCE_URL": dead})
        server.start(90)
        turn = httpx.post(f"{server.url}/v1/sessions/s2/turns", json=body, headers=ok_headers, timeout=30)
        assert turn.status_code == 503 and turn.json()["error"]["code"] == "models_unavailable"
        port = dead.split(":")[2].split("/")[0]
        assert f"@cf/test/low: cannot reach 127.0.0.1:{port}: " in turn.json()["error"]["message"], turn.text
        # Said at the first turn: the variable to look at, since nothing answered there at all.
        assert f"nothing answers at INFERENCE_URL ({dead})" in turn.json()["error"]["message"], turn.text
        # The chain record carries each model's cause, and the chain still verifies with it.
        admin = {"authorization": "Bearer adm", "x-tenant-id": "t"}
        pulled = httpx.get(f"{server.url}/v1/traces", params={"session": "s2"}, headers=admin, timeout=30).json()
        [down] = [r for r in pulled["records"] if r["rule"] == "model.unavailable"]
        assert down["detail"].startswith(f"@cf/test/low: cannot reach 127.0.0.1:{port}: "), down
        assert all("detail" not in r for r in pulled["records"] if r is not down)
        assert [p for p in verify(pulled) if p.severity == "error"] == []
        _logged(tmp_path / "wrangler.log", f"every model failed at 127.0.0.1:{port}: @cf/test/low: cannot reach")
    finally:
        server.stop()
