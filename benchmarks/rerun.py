"""How fast `agentspec trace replay DIR --runtime URL` reruns recorded traffic, and that it decides the same.

    python benchmarks/rerun.py                        # 40 sessions x 4 turns, --jobs 4
    python benchmarks/rerun.py --sessions 100 --turns 5 --jobs 8

Records a run of tests/e2e/specs/rerun.agent on one `wrangler dev` (a scripted loopback model: each turn one
`lookup` call, then an answer; every third turn a checkpoint), pulls the fleet export, then reruns it on a fresh
runtime of the same spec answered by the replay stub only, and prints the rerun's wall time, turns and decisions
per second, and whether every session was identical (exit 1 if not). Traffic goes only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from agentspec.check import check
from agentspec.cli import main
from agentspec.devserver import DevServer, free_port, local_secrets, stub_origins, write_dev_vars
from agentspec.emit import emit, write
from agentspec.load import load
from agentspec.trace.fleet import export_files, read_events
from agentspec.workbench.scripted_model import Cue, ScriptedModel
from agentspec.workbench.tool_stub import ToolAnswer, ToolStub

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "tests" / "e2e" / "specs" / "rerun.agent"
ADMIN = "bench-admin"
TOKENS = {"bench-token": "acme"}


def serve(workdir: Path, name: str, inference_url: str, tool_origin: str) -> DevServer:
    spec = check(load(str(SPEC))).spec
    assert spec is not None
    project = workdir / name
    write(emit(spec), str(project))
    origins = stub_origins(spec, tool_origin)
    secrets = local_secrets(spec, TOKENS, ADMIN)
    write_dev_vars(project, {"INFERENCE_URL": inference_url, "TOOL_ORIGINS": json.dumps(origins), **secrets})
    server = DevServer(project, workdir / f"{name}-state", workdir / f"{name}.log")
    server.start(120)
    return server


def respond(model: str, messages: list[dict[str, Any]]) -> Cue:
    # A turn asks for one lookup, then answers once the tool's result is in; a summary request just answers.
    return Cue(tool_calls=[("lookup", {"order_id": "A-1"})]) if messages[-1].get("role") == "user" else Cue(text="ok")


def record(url: str, sessions: int, turns: int) -> None:
    headers = {"authorization": "Bearer bench-token", "x-tenant-id": "acme"}

    def one(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            for t in range(turns):
                body = {"workflow": "desk", "input": f"where is A-1? ({t})"}
                r = c.post(f"/v1/sessions/b{i}/turns", json=body, headers=headers)
                assert r.status_code == 200, r.text

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(sessions)))


def pull(url: str, out: Path, turns: int) -> None:
    deadline = time.monotonic() + 120
    while True:
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["trace", "pull", "--all", "--url", url, "--admin-token", ADMIN, "-o", str(out)]) == 0
        have = len({e["id"] for p in export_files(out, "traces") for e in read_events(p)})
        if have >= turns:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the export holds {have} of {turns} turns after 120 s")
        time.sleep(1)


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agentspec-rerun-") as tmp:
        work = Path(tmp)
        model, tools = ScriptedModel(respond), ToolStub()
        tools.answer(
            "/v1/orders/", ToolAnswer(body={"order_id": "A-1", "email": "a@b.example", "total_cents": 5}, times=10**9)
        )
        recorder = serve(work, "recorded", model.url, tools.origin)
        try:
            started = time.monotonic()
            record(recorder.url, args.sessions, args.turns)
            print(f"recorded {args.sessions} sessions x {args.turns} turns in {time.monotonic() - started:.1f} s")
            out = work / "export"
            pull(recorder.url, out, args.sessions * args.turns)
        finally:
            recorder.stop()
            model.close()
            tools.close()
        port = free_port()
        fresh = serve(work, "fresh", f"http://127.0.0.1:{port}/v1", f"http://127.0.0.1:{port}")
        try:
            argv_ = ["trace", "replay", str(out), "--runtime", fresh.url, "--admin-token", ADMIN]
            argv_ += ["--stub-port", str(port), "--jobs", str(args.jobs), "--format", "json"]
            buffer = io.StringIO()
            started = time.monotonic()
            with contextlib.redirect_stdout(buffer):
                code = main(argv_)
            wall = time.monotonic() - started
        finally:
            fresh.stop()
    report = json.loads(buffer.getvalue())
    scopes = report["scopes"]
    decisions = sum(s["compared"] for s in scopes)
    turns = args.sessions * args.turns
    identical = sum(s["identical"] for s in scopes)
    print(
        f"rerun: {len(scopes)} sessions, {turns} turns, {decisions} decisions in {wall:.2f} s "
        f"({turns / wall:.1f} turns/s, {decisions / wall:.1f} decisions/s, --jobs {args.jobs}); "
        f"{identical} of {len(scopes)} identical (exit {code})"
    )
    return 0 if code == 0 and identical == len(scopes) else 1


if __name__ == "__main__":
    sys.exit(main_())
