"""How long `agentspec dev` takes to a first answered turn, and to a reloaded build after a spec edit.

    python benchmarks/dev.py            # 3 runs of specs/support_desk.agent, medians printed
    python benchmarks/dev.py --runs 5 --spec specs/ops_agent.agent

Each run starts `agentspec dev SPEC` as a user would (a subprocess, a fresh project directory, the scripted
loopback model), times until a first turn is answered, then bumps the agent's version in a copy of the spec (a change
of meaning: a new spec hash) and times until the reloaded build answers the next turn of the same session.
Bars (issue 14): first turn within 30 s, reload within 10 s. Traffic goes only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from agentspec.check import check
from agentspec.devserver import free_port
from agentspec.load import load

ROOT = Path(__file__).resolve().parents[1]


def _turn(url: str, workflow: str, header: str, timeout: float) -> float:
    """Seconds until a turn of session `s1` is answered 200, polling while the server is down."""
    started = time.monotonic()
    body = {"workflow": workflow, "input": "hello"}
    headers = {"authorization": "Bearer dev-token", header: "tenant-dev"}
    while time.monotonic() - started < timeout:
        try:
            if httpx.post(f"{url}/v1/sessions/s1/turns", json=body, headers=headers, timeout=10).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"no answered turn within {timeout}s")


def run_once(spec: Path, workdir: Path) -> tuple[float, float]:
    copy = workdir / spec.name
    shutil.copytree(spec.parent, workdir, dirs_exist_ok=True)  # imports resolve beside the copy
    resolved = check(load(str(copy))).spec
    assert resolved is not None
    workflow, header = resolved.workflows[0].name, resolved.tenant_header or "x-tenant-id"
    port = free_port()
    log = open(workdir / "dev.log", "w")  # noqa: SIM115 - closed below
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "agentspec.cli", "dev", str(copy), "-o", str(workdir / "project"), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _turn(url, workflow, header, 120)
        first = time.monotonic() - started
        before = (workdir / "dev.log").read_text().count("reloaded")
        text = copy.read_text()
        version = int(text.split(" version ", 1)[1].split()[0])
        copy.write_text(text.replace(f" version {version} ", f" version {version + 1} ", 1))  # a change of meaning
        edited = time.monotonic()
        while (workdir / "dev.log").read_text().count("reloaded") == before:
            if time.monotonic() - edited > 60:
                raise SystemExit("no reload within 60 s:\n" + (workdir / "dev.log").read_text()[-2000:])
            time.sleep(0.05)
        _turn(url, workflow, header, 60)
        reload = time.monotonic() - edited
        return first, reload
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default=str(ROOT / "specs" / "support_desk.agent"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    firsts, reloads = [], []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="agentspec-devbench-") as tmp:
            first, reload = run_once(Path(args.spec).resolve(), Path(tmp))
        firsts.append(first)
        reloads.append(reload)
        print(f"run {i + 1}: first turn {first:6.2f} s   reload to answered turn {reload:6.2f} s")
    first, reload = statistics.median(firsts), statistics.median(reloads)
    ok = first < 30 and reload < 10
    print(f"median over {args.runs}: first turn {first:.2f} s (bar < 30 s), reload {reload:.2f} s (bar < 10 s)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
