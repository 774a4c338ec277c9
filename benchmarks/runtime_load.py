"""Turn throughput and latency of a generated runtime against a hand-written baseline Worker.

    python benchmarks/runtime_load.py                 # 16 sessions x 25 turns, concurrency 16, 6 repetitions
    python benchmarks/runtime_load.py --reps 5 --turns 40
    python benchmarks/runtime_load.py --generated /tmp/copy   # an already-compiled (e.g. edited) project instead

Both sides run under the same `wrangler dev` (same wrangler, same flags, state persisted under
`--state-dir`: /dev/shm by default, so this VM's disk flushes stay out of the comparison) on loopback ports,
and call the same model stub: a raw-asyncio OpenAI-compatible `/v1/chat/completions` endpoint in its own
process that answers at once with a fixed body.

  generated  the spec's compiled project (default tests/e2e/specs/playground.agent, workflow `watch`):
             auth -> session Durable Object -> PII masking, routing decision (hash-chained record) -> model call
             with the session's history -> one SQLite commit (messages, record, turn trace). `watch` has no SLO
             and no checkpoint, so no monitor hop and no summarizer call.
  baseline   benchmarks/baseline/: Worker -> Durable Object by session name -> one fetch -> JSON answer

Two phases, each with fresh sessions warmed up by a few turns, sides interleaved (G B, B G, G B, ...):

  throughput  closed loop: every session is one coroutine sending its turns one after another (no 409s), all
              sessions at once, through one httpx.AsyncClient limited to `concurrency` connections. The box is
              saturated, so latency here is queueing: concurrency / throughput. Its p99 is printed, not judged.
  latency     open loop: turns arrive at a fixed rate, the same for both sides (`--latency-load` x the
              baseline's median throughput, default 0.5), round-robin over the sessions; a turn's latency counts
              from its scheduled arrival, so a stall that delays later turns is charged to them too.

A third phase prices the fleet export (`--no-export-off` skips it):

  export      the compiled project with the export off (`export-off`: its queue removed from `wrangler.jsonc`;
              without `EXPORT_QUEUE` nothing is kept or sent, and no consumer runs) against it as compiled.
              Each repetition runs a closed loop on each side in turn (the order alternating), then an open loop
              on both at once (each side at half the latency phase's rate, so the machine carries the same
              load): side by side, a slow moment of this machine falls on both. Every window warms fresh
              sessions up, then counts `--export-seconds` after `--export-settle` seconds it does not count:
              the export sends 10 s after a commit and its consumer writes 1 s after that, so a window counts the
              sends and writes of the turns before it, as a running deployment does, and none of another
              window's. (The sequential phases above cannot: a throughput run lasts about 1.5 s, less than the
              export's lag, so its sends and writes land in the next side's run.) The closed loop is not run
              side by side: there the one load generator would share its turns between the sides, evening out
              their throughput. `--export-aa` runs export-off against a copy of itself: the method's resolution.

Bars (medians over the repetitions; exit status 1 if one fails):
  1. throughput ratio generated / baseline >= 0.8 (throughput phase);
  2. added p99 latency (generated p99 - baseline p99) < 5 ms (latency phase, same arrival rate);
  3. the export costs at most 5% (export phase): throughput on / off >= 0.95 (closed loop, the median of the
     per-repetition ratios) and p99 on / off <= 1.05 (open loop, the median of the per-repetition ratios).

wrangler dev runs as agentspec.devserver starts it for the tests: offline, and without wrangler's local trace
collector (X_LOCAL_OBSERVABILITY=false), which would otherwise store a span row for every SQL statement, RPC
and fetch (see QUIET in agentspec/devserver.py). `--local-observability` turns it back on for both sides.

Traffic goes only to 127.0.0.1; every run is bounded in requests and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from agentspec.devserver import TOOLCHAIN, DevServer, DevServerError, free_port, local_secrets, write_dev_vars

ROOT = Path(__file__).resolve().parent.parent
BASELINE = Path(__file__).resolve().parent / "baseline"
DEFAULT_SPEC = ROOT / "tests" / "e2e" / "specs" / "playground.agent"

TOKEN, TENANT, ADMIN = "bench-token", "bench", "bench-admin-token"
RATIO_BAR = 0.8
P99_BAR_MS = 5.0
EXPORT_COST_BAR = 0.05
CLK_TCK = os.sysconf("SC_CLK_TCK")


def client_transport(concurrency: int) -> httpx.AsyncHTTPTransport:
    """httpx writes a request's head and body separately; without TCP_NODELAY, Nagle holds the body back until
    the peer's delayed ACK (~40 ms on Linux loopback), which caps a keep-alive connection near 25 req/s."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncHTTPTransport(limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])


# ── the model stub: raw asyncio HTTP/1.1 with keep-alive, one fixed answer ──────────────────────────────

_ANSWER = json.dumps(
    {
        "id": "cmpl-bench",
        "object": "chat.completion",
        "model": "stub",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 0}},
    }
).encode()


def _response(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: keep-alive\r\n\r\n"
    ).encode() + body


async def _serve_stub(port: int) -> None:
    answer = _response("200 OK", _ANSWER)
    missing = _response("404 Not Found", b'{"error":{"message":"not found"}}')
    count = {"completions": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                parts = lines[0].split(b" ")
                method, path = parts[0], parts[1] if len(parts) > 1 else b"/"
                length, chunked, close = 0, False, False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"transfer-encoding":
                        chunked = b"chunked" in value.lower()
                    elif name == b"connection":
                        close = b"close" in value.lower()
                if chunked:
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                        await reader.readexactly(size + 2)
                        if size == 0:
                            break
                elif length:
                    await reader.readexactly(length)
                if method == b"POST" and path.endswith(b"/chat/completions"):
                    count["completions"] += 1
                    writer.write(answer)
                elif path == b"/_stats":
                    writer.write(_response("200 OK", json.dumps(count).encode()))
                else:
                    writer.write(missing)
                if writer.transport.get_write_buffer_size() > 65536:
                    await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


class Stub:
    """The model stub in its own process (the load generator's GIL and event loop stay out of its way)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-stub", str(self.port)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the model stub did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def completions(self) -> int:
        return httpx.get(f"http://127.0.0.1:{self.port}/_stats", timeout=5).json()["completions"]

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=5)


# ── CPU accounting (to show who uses the 2 cores) ────────────────────────────────────────────────────


def _group_processes(pgid: int) -> Iterator[tuple[str, str, list[str]]]:
    """(pid, command name, /proc/PID/stat fields after the name) of every live process in a process group."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            yield entry, stat[stat.index("(") + 1 : stat.rindex(")")], fields


def _group_cpu(pgid: int) -> dict[str, float]:
    """CPU seconds (user + system) of every live process in a process group, by command name."""
    out: dict[str, float] = {}
    for _, comm, fields in _group_processes(pgid):
        out[comm] = out.get(comm, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def _group_memory_mib(pgid: int) -> tuple[float, float]:
    """Resident and peak resident memory (MiB) of the workerd processes in a process group, summed."""
    rss = peak = 0.0
    for pid, comm, _ in _group_processes(pgid):
        if comm != "workerd":
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss += int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        peak += int(fields.get("VmHWM", "0 kB").split()[0]) / 1024
    return rss, peak


def _machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:7]) - values[3] - values[4]) / CLK_TCK  # user..softirq, minus idle and iowait; no steal


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


# ── the two Workers under wrangler dev ───────────────────────────────────────────────────────────────


class Worker:
    """One side of the comparison: a project served by agentspec's DevServer, with its CPU accounted."""

    def __init__(
        self, label: str, project: Path, dev_vars: dict[str, str], work: Path, env: dict[str, str] | None = None
    ) -> None:
        self.label = label
        self.project = project
        write_dev_vars(project, dev_vars)
        self.server = DevServer(project, work / f"{label}-state", work / f"{label}-wrangler.log", env=env)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, timeout: float = 90.0) -> None:
        try:
            self.server.start(timeout)
        except DevServerError as exc:
            raise RuntimeError(f"{self.label}: {exc}") from None

    def cpu(self) -> dict[str, float]:
        return _group_cpu(self.server.process.pid) if self.server.process else {}

    def memory_mib(self) -> tuple[float, float]:
        return _group_memory_mib(self.server.process.pid) if self.server.process else (0.0, 0.0)

    def stop(self) -> None:
        self.server.stop()


def generated_project(spec_path: Path, work: Path) -> tuple[Path, dict[str, str]]:
    """Compile the spec into `work`; return the project and the secrets its `.dev.vars` needs."""
    from agentspec.check import check
    from agentspec.emit import emit, write
    from agentspec.load import load

    result = check(load(str(spec_path)))
    if result.spec is None:
        raise SystemExit("the spec does not check: " + "; ".join(d.message for d in result.diagnostics))
    spec = result.spec
    project = work / "generated"
    write(emit(spec), str(project))
    return project, spec_secrets(spec)


def copy_project(project: Path, out: Path) -> Path:
    """A copy of a project to run on its own: without its local state, installed packages or secrets (each
    Worker writes its own `.dev.vars`)."""
    shutil.copytree(
        project, out, symlinks=True, ignore=shutil.ignore_patterns(".wrangler", "node_modules", ".dev.vars")
    )
    return out


def generated_vars(stub: Stub, secrets: dict[str, str]) -> dict[str, str]:
    """The generated project's `.dev.vars`: the model and the tools' origin both at the stub, and its secrets."""
    origins = json.dumps({"api.example.com": f"http://127.0.0.1:{stub.port}"})
    return {"INFERENCE_URL": stub.url, "TOOL_ORIGINS": origins, **secrets}


def export_off_copy(project: Path, work: Path) -> Path:
    """A copy of a compiled project with the fleet export off: the top level's `queues` removed (the local run
    reads only the top level). The runtime keeps nothing without `EXPORT_QUEUE`, and no consumer is started."""
    out = copy_project(project, work / "export-off")
    config = out / "wrangler.jsonc"
    lines = config.read_text().splitlines()
    head = [line for line in lines if line.startswith("//")]  # the generated file's comments are its header only
    data = json.loads("\n".join(line for line in lines if not line.startswith("//")))
    if data.pop("queues", None) is None:
        raise SystemExit(f"{config}: no `queues` at the top level, so the export is already off")
    config.write_text("\n".join(head) + "\n" + json.dumps(data, indent=2) + "\n")
    return out


def spec_secrets(spec) -> dict[str, str]:
    return local_secrets(spec, {TOKEN: TENANT}, ADMIN)


# ── load ─────────────────────────────────────────────────────────────────────────────────────────────


HEADERS = {"authorization": f"Bearer {TOKEN}", "x-tenant-id": TENANT, "content-type": "application/json"}


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-th percentile."""
    data = sorted(values)
    return data[min(len(data) - 1, max(0, round(q / 100 * len(data) + 0.5) - 1))]


def turn_body(workflow: str, session: int, n: int) -> str:
    return json.dumps({"workflow": workflow, "input": f"turn {n} of session {session}: is item 42 ready?"})


@dataclass
class Run:
    side: str
    turns: int
    seconds: float
    latencies_ms: list[float]
    errors: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    model_calls: int = 0
    worker_cpu_ms: float = 0.0  # CPU of the wrangler process group (workerd, node, esbuild) per turn sent

    @property
    def throughput(self) -> float:
        return self.turns / self.seconds

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


async def drive(
    url: str, workflow: str, prefix: str, sessions: int, warmup: int, turns: int, concurrency: int, deadline_s: float
) -> tuple[float, list[float], dict[str, int]]:
    """Warm `sessions` fresh sessions up with `warmup` turns each, then time `turns` more turns each."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=HEADERS, transport=client_transport(concurrency), timeout=30.0
    ) as client:

        async def session(i: int, count: int, record: bool) -> None:
            path = f"/v1/sessions/{prefix}-s{i}/turns"
            for t in range(count):
                body = turn_body(workflow, i, t)
                async with gate:
                    t0 = time.perf_counter()
                    try:
                        r = await client.post(path, content=body)
                        status = str(r.status_code)
                    except httpx.HTTPError as e:
                        status = type(e).__name__
                    ms = (time.perf_counter() - t0) * 1000
                if status != "200":
                    errors[status] = errors.get(status, 0) + 1
                elif record:
                    latencies.append(ms)

        await asyncio.wait_for(asyncio.gather(*(session(i, warmup, False) for i in range(sessions))), deadline_s)
        warm_errors = dict(errors)
        errors.clear()
        if warm_errors:
            errors.update({f"warm-up {k}": v for k, v in warm_errors.items()})
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(session(i, turns, True) for i in range(sessions))), deadline_s)
        elapsed = time.perf_counter() - t0
    return elapsed, latencies, errors


async def drive_open(
    url: str, workflow: str, prefix: str, sessions: int, warmup: int, turns: int, rate: float, deadline_s: float
) -> tuple[float, list[float], dict[str, int]]:
    """Warm `sessions` fresh sessions up, then send `turns` x `sessions` turns at `rate` per second, round-robin
    over the sessions. A session sends its next turn only after its previous one answered (no 409s); the turn's
    latency counts from its scheduled arrival all the same (no coordinated omission)."""
    await drive(url, workflow, prefix, sessions, warmup, 0, sessions, deadline_s)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    total = sessions * turns
    async with httpx.AsyncClient(
        base_url=url, headers=HEADERS, transport=client_transport(sessions), timeout=30.0
    ) as client:
        start = time.perf_counter() + 0.05

        async def session(i: int) -> None:
            path = f"/v1/sessions/{prefix}-s{i}/turns"
            for k in range(i, total, sessions):  # this session's arrivals: every `sessions`-th slot
                due = start + k / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                body = turn_body(workflow, i, k)
                try:
                    r = await client.post(path, content=body)
                    status = str(r.status_code)
                except httpx.HTTPError as e:
                    status = type(e).__name__
                if status != "200":
                    errors[status] = errors.get(status, 0) + 1
                else:
                    latencies.append((time.perf_counter() - due) * 1000)

        await asyncio.wait_for(asyncio.gather(*(session(i) for i in range(sessions))), deadline_s)
        elapsed = time.perf_counter() - start
    return elapsed, latencies, errors


def measure(
    worker: Worker, stub: Stub, workflow: str, prefix: str, args: argparse.Namespace, rate: float | None = None
) -> Run:
    cpu0, self0, calls0 = worker.cpu(), _self_cpu(), stub.completions()
    stub_cpu0 = sum(_group_cpu(stub.process.pid).values())
    busy0 = _machine_busy()
    turns = args.turns if rate is None else args.latency_turns
    shape = (worker.url, workflow, prefix, args.sessions, args.warmup, turns)
    load = drive(*shape, args.concurrency, args.deadline) if rate is None else drive_open(*shape, rate, args.deadline)
    elapsed, lat, errors = asyncio.run(load)
    cpu1 = worker.cpu()
    cpu = {k: cpu1.get(k, 0.0) - cpu0.get(k, 0.0) for k in cpu1}
    cpu["stub"] = sum(_group_cpu(stub.process.pid).values()) - stub_cpu0
    cpu["loadgen"] = _self_cpu() - self0
    cpu["OTHER PROCESSES"] = max(0.0, _machine_busy() - busy0 - sum(cpu.values()))
    calls = stub.completions() - calls0
    sent = args.sessions * (args.warmup + turns)
    worker_ms = sum(cpu1.get(k, 0.0) - cpu0.get(k, 0.0) for k in cpu1) * 1000 / sent
    return Run(worker.label, len(lat), elapsed, lat, errors, cpu, calls, worker_ms)


# ── the export phase: the export on against off ──────────────────────────────────────────────────────


@dataclass
class Window:
    """One side's figures over one counted window of the export phase."""

    seconds: float
    turns: int = 0
    answered: int = 0  # turns answered 200 from the end of the warm-up on, settle included
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    cpu_ms: float = 0.0  # CPU of the side's wrangler process group per turn answered after the warm-up

    @property
    def throughput(self) -> float:
        return self.turns / self.seconds

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


async def _load_windows(
    sides: list[Worker], workflow: str, prefix: str, args: argparse.Namespace, rate: float | None
) -> list[Window]:
    """Warm fresh sessions up on every side (one, or several), then load them all at once: closed loop when
    `rate` is None, else `rate` turns/s per side (the sides' arrivals spread over an interval). Turns that arrive
    (open loop) or end (closed loop) in the first `export_settle` seconds are answered but not counted: they cover
    the export's lag (a send 10 s after a commit, a write 1 s after that), so a window counts the sends and writes
    of turns before it, as a running deployment does, and none of another window's."""
    await asyncio.gather(
        *(
            drive(w.url, workflow, f"{prefix}{i}", args.sessions, args.warmup, 0, args.sessions, args.deadline)
            for i, w in enumerate(sides)
        )
    )
    windows = [Window(seconds=args.export_seconds) for _ in sides]
    cpu0 = [w.cpu() for w in sides]
    start = time.perf_counter() + 0.05
    counted, end = start + args.export_settle, start + args.export_settle + args.export_seconds

    async def side(i: int, url: str) -> None:
        window = windows[i]

        def tally(status: str, latency_ms: float | None = None) -> None:
            if status != "200":
                window.errors[status] = window.errors.get(status, 0) + 1
                return
            window.turns += 1
            if latency_ms is not None:
                window.latencies_ms.append(latency_ms)

        limit = args.sessions if rate is not None else args.concurrency
        async with httpx.AsyncClient(
            base_url=url, headers=HEADERS, transport=client_transport(limit), timeout=30.0
        ) as client:

            async def post(session: int, n: int) -> str:
                try:
                    r = await client.post(
                        f"/v1/sessions/{prefix}{i}-s{session}/turns", content=turn_body(workflow, session, n)
                    )
                    status = str(r.status_code)
                except httpx.HTTPError as e:
                    status = type(e).__name__
                window.answered += status == "200"
                return status

            async def closed(session: int) -> None:
                n = 0
                while time.perf_counter() < end:
                    t0 = time.perf_counter()
                    status = await post(session, n)
                    n += 1
                    if counted <= (t1 := time.perf_counter()) < end:
                        tally(status, (t1 - t0) * 1000)

            async def opened(session: int) -> None:
                assert rate is not None
                offset = i / (len(sides) * rate)
                for k in range(session, round((args.export_settle + args.export_seconds) * rate), args.sessions):
                    due = start + offset + k / rate
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    status = await post(session, k)
                    if due >= counted:
                        tally(status, (time.perf_counter() - due) * 1000)

            await asyncio.gather(*((closed if rate is None else opened)(s) for s in range(args.sessions)))

    await asyncio.wait_for(asyncio.gather(*(side(i, w.url) for i, w in enumerate(sides))), args.deadline)
    for w, c0, window in zip(sides, cpu0, windows, strict=True):
        c1 = w.cpu()
        window.cpu_ms = sum(c1.get(k, 0.0) - c0.get(k, 0.0) for k in c1) * 1000 / max(1, window.answered)
    return windows


def export_phase(sides: list[Worker], args: argparse.Namespace, rate: float) -> dict[str, list[list[Window]]]:
    """`args.export_reps` repetitions of a closed-loop window on each side in turn (the order alternating) and
    an open-loop window at `rate` per side with both sides at once. Returns, for "closed" and "open", each
    repetition's windows by side."""
    out: dict[str, list[list[Window]]] = {"closed": [], "open": []}
    for rep in range(args.export_reps):
        order = sides if rep % 2 == 0 else sides[::-1]
        closed = {
            w.label: asyncio.run(_load_windows([w], args.workflow, f"xc{rep}{w.label}-", args, None))[0] for w in order
        }
        out["closed"].append([closed[w.label] for w in sides])
        out["open"].append(asyncio.run(_load_windows(sides, args.workflow, f"xo{rep}-", args, rate)))
        for kind, windows in (("closed", out["closed"][-1]), ("open", out["open"][-1])):
            figures = "   ".join(
                f"{w.label:10} {win.throughput:6.1f}/s p50 {win.pct(50):6.2f} p99 {win.pct(99):7.2f} "
                f"cpu {win.cpu_ms:5.2f} ms/turn" + (f" ERRORS {win.errors}" if win.errors else "")
                for w, win in zip(sides, windows, strict=True)
            )
            print(f"{rep + 1:>3} {kind:6}  {figures}", flush=True)
    return out


# ── stub ceiling ─────────────────────────────────────────────────────────────────────────────────────


async def _raw_ceiling(port: int, concurrency: int, seconds: float) -> tuple[int, float]:
    """A raw keep-alive asyncio client against the stub for `seconds`: the stub's own ceiling."""
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 400}]}).encode()
    req = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    done = [0]
    stop = time.perf_counter() + seconds

    async def conn() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop:
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            done[0] += 1
        writer.close()

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(conn() for _ in range(concurrency))), seconds + 30)
    return done[0], time.perf_counter() - t0


async def _httpx_ceiling(url: str, concurrency: int, seconds: float) -> tuple[int, float]:
    """The load generator's own ceiling: the same httpx client setup as `drive`, against the stub."""
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 400}]})
    done = [0]
    async with httpx.AsyncClient(transport=client_transport(concurrency), timeout=10) as client:
        await client.post(f"{url}/chat/completions", content=body)
        stop = time.perf_counter() + seconds

        async def loop() -> None:
            while time.perf_counter() < stop:
                (
                    await client.post(
                        f"{url}/chat/completions", content=body, headers={"content-type": "application/json"}
                    )
                ).raise_for_status()
                done[0] += 1

        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(loop() for _ in range(concurrency))), seconds + 30)
        return done[0], time.perf_counter() - t0


# ── report ───────────────────────────────────────────────────────────────────────────────────────────


def _cpu_text(run: Run) -> str:
    parts = [
        f"{k} {v / run.seconds * 100:.0f}%" for k, v in sorted(run.cpu.items(), key=lambda kv: -kv[1]) if v > 0.005
    ]
    return ", ".join(parts)


def _phase(sides: list[Worker], stub: Stub, args: argparse.Namespace, tag: str, rate: float | None):
    """`args.reps` interleaved repetitions of one phase (closed loop when `rate` is None), each printed. Each
    repetition runs the sides in another order (rotated, and reversed every other time), so no side always
    follows the same one."""
    runs: dict[str, list[Run]] = {w.label: [] for w in sides}
    for rep in range(args.reps):
        order = sides[rep % len(sides) :] + sides[: rep % len(sides)]
        for w in order if rep % 2 == 0 else order[::-1]:
            workflow = "baseline" if w.label == "baseline" else args.workflow
            run = measure(w, stub, workflow, f"{tag}{rep}", args, rate)
            runs[w.label].append(run)
            err = f"  ERRORS {run.errors}" if run.errors else ""
            print(
                f"{rep + 1:>3} {w.label:9} {run.throughput:8.1f} {run.pct(50):7.2f} {run.pct(99):7.2f} "
                f"{max(run.latencies_ms, default=0.0):7.2f} {run.model_calls:>11} {run.worker_cpu_ms:11.2f}  "
                f"{_cpu_text(run)}{err}",
                flush=True,
            )
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    ap.add_argument("--workflow", default="watch")
    ap.add_argument("--generated", type=Path, help="use this compiled project (copied) instead of compiling --spec")
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument("--turns", type=int, default=25, help="measured turns per session")
    ap.add_argument("--warmup", type=int, default=15, help="warm-up turns per session, not measured")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument(
        "--latency-load", type=float, default=0.3, help="latency phase arrival rate, x the baseline's throughput"
    )
    ap.add_argument("--latency-turns", type=int, default=60, help="measured turns per session, latency phase")
    ap.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None,
        help="where both sides persist their state (default: /dev/shm, a tmpfs, when there is one)",
    )
    ap.add_argument(
        "--local-observability", action="store_true", help="keep wrangler's local trace collector on (both sides)"
    )
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds allowed per timed phase")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--no-export-off", action="store_true", help="skip the export phase (and the export's cost bar)")
    ap.add_argument("--export-reps", type=int, default=6, help="repetitions of the export phase")
    ap.add_argument("--export-seconds", type=float, default=12.0, help="counted seconds per export-phase window")
    ap.add_argument("--export-settle", type=float, default=12.0, help="seconds not counted before each window")
    ap.add_argument(
        "--export-aa", action="store_true", help="export phase: export-off against a copy of itself (resolution)"
    )
    ap.add_argument("--serve-stub", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_stub:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_stub(args.serve_stub))
        return 0
    if not (TOOLCHAIN / ".bin" / "wrangler").exists():
        raise SystemExit("the Node toolchain is missing: run `npm --prefix codegen/cloudflare ci`")

    ncpu = os.cpu_count()
    print(
        f"runtime_load: {args.sessions} sessions x {args.turns} turns (+{args.warmup} warm-up), "
        f"concurrency {args.concurrency}, {args.reps} repetitions per side and phase, interleaved; wrangler's "
        f"local trace collector {'ON' if args.local_observability else 'off'}"
    )
    print(
        f"NOTE: this machine has {ncpu} cores, shared by the load generator (Python/httpx), workerd (+ the "
        "wrangler node process) and the model stub. Absolute numbers are those of this box, not of Cloudflare; "
        "the ratio is the meaningful part, and it is pessimistic for the heavier side when workerd must share a "
        "core."
    )
    print(
        f"load average at start: {' '.join(Path('/proc/loadavg').read_text().split()[:3])} (other work on this "
        "machine shows up below as OTHER PROCESSES, in % of one core)"
    )
    work = Path(tempfile.mkdtemp(prefix="agentspec-load-", dir=args.state_dir))
    stub = Stub()
    workers: list[Worker] = []
    started: list[Worker] = []
    try:
        # 1. the stub alone
        n, s = asyncio.run(_raw_ceiling(stub.port, args.concurrency, 3.0))
        raw = n / s
        n2, s2 = asyncio.run(_httpx_ceiling(stub.url, args.concurrency, 3.0))
        hx = n2 / s2
        print(
            f"\nmodel stub alone (raw-asyncio server in its own process, keep-alive, concurrency {args.concurrency}):"
        )
        print(f"  raw asyncio client : {raw:8.0f} req/s  ({n} requests in {s:.2f} s)")
        print(f"  httpx AsyncClient  : {hx:8.0f} req/s  ({n2} requests in {s2:.2f} s)  <- load generator ceiling")

        # 2. the two Workers
        dev = {"INFERENCE_URL": stub.url}
        if args.generated:
            project = copy_project(args.generated, work / "generated")
            from agentspec.check import check
            from agentspec.load import load

            secrets = spec_secrets(check(load(str(args.spec))).spec)
        else:
            project, secrets = generated_project(args.spec, work)
        wrangler_env = {"X_LOCAL_OBSERVABILITY": "true"} if args.local_observability else None
        gen_vars = generated_vars(stub, secrets)
        gen = Worker("generated", project, gen_vars, work, wrangler_env)
        base = Worker("baseline", copy_project(BASELINE, work / "baseline"), dev, work, wrangler_env)
        workers = [gen, base]
        pair: list[Worker] = []  # the export phase's sides: on, off
        if not args.no_export_off:
            off = Worker("export-off", export_off_copy(project, work), gen_vars, work, wrangler_env)
            on = gen
            if args.export_aa:
                copy = copy_project(off.project, work / "export-off-2")
                on = Worker("export-off-2", copy, gen_vars, work, wrangler_env)
            pair = [on, off]
        started = workers + [w for w in pair if w not in workers]
        for w in started:
            t0 = time.monotonic()
            w.start()
            print(f"{w.label:9}: wrangler dev on {w.url} (ready in {time.monotonic() - t0:.1f} s) from {w.project}")

        # 3. throughput: closed loop, interleaved repetitions
        header = (
            f"{'rep':>3} {'side':9} {'turns/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
            f"{'model calls':>11} {'cpu ms/turn':>11}  cpu (% of one core)"
        )
        print(f"\nthroughput phase: closed loop, concurrency {args.concurrency}\n{header}")
        runs = _phase(workers, stub, args, "t", None)
        base_tput = statistics.median(r.throughput for r in runs["baseline"])

        # 4. latency: open loop at the same fixed arrival rate for both sides
        rate = args.latency_load * base_tput
        print(
            f"\nlatency phase: open loop, {rate:.0f} turns/s arriving for both sides "
            f"({args.latency_load:g} x the baseline's median throughput)\n{header}"
        )
        lat_runs = _phase(workers, stub, args, "l", rate)

        # 5. the export: on against off
        export: dict[str, list[list[Window]]] = {}
        if pair:
            print(
                f"\nexport phase: {pair[0].label} against {pair[1].label}, {args.export_reps} repetitions of a "
                f"closed loop on each in turn (concurrency {args.concurrency}) and an open loop on both at once "
                f"({rate / 2:.0f} turns/s each), {args.export_seconds:g} s counted after {args.export_settle:g} s"
            )
            export = export_phase(pair, args, rate / 2)

        # 6. summary
        expected = args.sessions * (args.warmup + args.turns)  # per throughput run
        errors = {side: sum(sum(r.errors.values()) for r in runs[side] + lat_runs[side]) for side in runs}
        print(
            f"\nmedians over {args.reps} repetitions ({args.sessions * args.turns} measured turns per throughput run, "
            f"{args.sessions * args.latency_turns} per latency run):"
        )
        for side in runs:
            rs, ls = runs[side], lat_runs[side]
            p50, p99 = (statistics.median(r.pct(q) for r in ls) for q in (50, 99))
            print(
                f"  {side:9}: {statistics.median(r.throughput for r in rs):7.1f} turns/s (p99 "
                f"{statistics.median(r.pct(99) for r in rs):6.2f} ms saturated)   at {rate:.0f}/s: p50 "
                f"{p50:6.2f} ms  p99 {p99:6.2f} ms"
                f"   errors {errors[side]}   model calls/turn "
                f"{statistics.median(r.model_calls for r in rs) / expected:.2f}   workerd+wrangler CPU "
                f"{statistics.median(r.worker_cpu_ms for r in rs):.2f} ms/turn"
            )
        ratio = statistics.median(r.throughput for r in runs["generated"]) / base_tput
        added = statistics.median(r.pct(99) for r in lat_runs["generated"]) - statistics.median(
            r.pct(99) for r in lat_runs["baseline"]
        )
        ok_ratio = ratio >= RATIO_BAR and not errors["generated"]
        ok_p99 = added < P99_BAR_MS and not errors["generated"]
        for w in started:
            rss, peak = w.memory_mib()
            print(f"  {w.label:9}: workerd resident memory {rss:6.1f} MiB after both phases (peak {peak:.1f} MiB)")
        print(
            f"\n  throughput ratio generated/baseline = {ratio:.3f}   (bar >= {RATIO_BAR})   "
            f"{'PASS' if ok_ratio else 'FAIL'}"
        )
        print(
            f"  added p99 latency at {rate:.0f} turns/s = {added:+.2f} ms   (bar < {P99_BAR_MS:g} ms)   "
            f"{'PASS' if ok_p99 else 'FAIL'}"
        )
        ok_export = True
        if export:

            def paired(kind: str, figure: Callable[[Window], float]) -> float:
                return statistics.median(figure(on) / figure(off) for on, off in export[kind])

            tput = paired("closed", lambda w: w.throughput)
            # p99 like throughput: the median of the repetitions' ratios. A window holds ~340 turns, so its p99 is
            # its 4th-worst, and one stall of one workerd (100-200 ms, with the export off as often as on) sets
            # it: that repetition's ratio is then far off, one way or the other, and the median passes it over.
            # Pooled over the repetitions, a side's p99 is set by how many stalls fell on it (0.42 and 1.19 in two
            # runs of the same build); it is printed too, with each side's turns over 100 ms.
            p99 = paired("open", lambda w: w.pct(99))
            pooled = [
                Window(0.0, latencies_ms=[ms for ws in export["open"] for ms in ws[i].latencies_ms]) for i in (0, 1)
            ]
            stalled = [sum(ms > 100 for ms in w.latencies_ms) for w in pooled]
            cpu = paired("closed", lambda w: w.cpu_ms), paired("open", lambda w: w.cpu_ms)
            export_errors = sum(sum(w.errors.values()) for kind in export.values() for ws in kind for w in ws)
            tput_cost, p99_cost = 1 - tput, p99 - 1
            ok_export = tput_cost <= EXPORT_COST_BAR and p99_cost <= EXPORT_COST_BAR and not export_errors
            print(
                f"  {pair[0].label} / {pair[1].label}: throughput {tput:.3f} ({-tput_cost:+.1%}; median "
                f"of the {args.export_reps} per-repetition ratios), p99 at {rate / 2:.0f} turns/s each {p99:.3f} "
                f"({p99_cost:+.1%}; likewise)   "
                f"(bar: neither worse by more than {EXPORT_COST_BAR:.0%})   "
                f"{'PASS' if ok_export else 'FAIL'}"
            )
            print(
                f"    (workerd+wrangler CPU per turn {pair[0].label} / {pair[1].label}: {cpu[0]:.3f} closed loop, "
                f"{cpu[1]:.3f} open loop; errors {export_errors})"
            )
            print(
                f"    (open loop pooled: p99 {pooled[0].pct(99):.2f} / {pooled[1].pct(99):.2f} ms = "
                f"{pooled[0].pct(99) / pooled[1].pct(99):.3f} over {len(pooled[0].latencies_ms)} and "
                f"{len(pooled[1].latencies_ms)} turns; turns over 100 ms {stalled[0]} and {stalled[1]})"
            )
        print(f"\n(state and wrangler logs in {work}{'' if args.keep else ', removed on exit; --keep keeps them'})")
        return 0 if ok_ratio and ok_p99 and ok_export else 1
    finally:
        for w in started:
            w.stop()
        stub.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
