"""What signed chain heads cost a turn: the same spec compiled with and without `audit sign with secret`.

    python benchmarks/signing.py                      # 8 sessions x 30 turns per side, 3 repetitions
    python benchmarks/signing.py --turns 60 --reps 5

Spec: tests/e2e/specs/audited.agent (workflow `desk`), and the same text without its `audit` line. Both run
under `wrangler dev` as the tests start it (agentspec.devserver), against runtime_load.py's model stub (its own
process, a fixed answer at once). Per repetition and side (interleaved S U, U S, ...): fresh sessions, a few
warm-up turns, then sessions taking turns one after another, all sessions at once (closed loop). Printed: turn
latency median and p99 (client side), throughput, and the wrangler process group's CPU per turn. With signing,
each turn also makes the head log's RPC, its SQLite row and its Ed25519 signature, after the answer, so the
latency difference is the hot-path cost and the CPU difference is the whole cost.

Loopback only; bounded in turns and time. Figures on a loaded machine are noise: compare medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_load import ADMIN, TENANT, TOKEN, Stub, _group_cpu, client_transport

from agentspec.check import check
from agentspec.devserver import DevServer, local_secrets, write_dev_vars
from agentspec.emit import emit, write
from agentspec.load import load_text

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "tests" / "e2e" / "specs" / "audited.agent"


def project(text: str, work: Path, name: str, model_url: str) -> DevServer:
    result = check(load_text(text, str(SPEC)))
    assert result.spec is not None, [d.message for d in result.diagnostics]
    out = work / name
    write(emit(result.spec), str(out))
    write_dev_vars(out, {"INFERENCE_URL": model_url, **local_secrets(result.spec, {TOKEN: TENANT}, ADMIN)})
    return DevServer(out, work / f"{name}-state", work / f"{name}.log")


async def run(url: str, sessions: int, turns: int, warmup: int, concurrency: int) -> tuple[list[float], float]:
    headers = {"authorization": f"Bearer {TOKEN}", "x-tenant-id": TENANT}
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, transport=client_transport(concurrency), timeout=30) as client:

        async def one(sid: str, n: int, keep: bool) -> None:
            for i in range(n):
                t0 = time.perf_counter()
                r = await client.post(f"/v1/sessions/{sid}/turns", json={"workflow": "desk", "input": f"m{i}"},
                                      headers=headers)  # fmt: skip
                if r.status_code != 200:
                    raise RuntimeError(f"turn answered {r.status_code}: {r.text[:200]}")
                if keep:
                    latencies.append((time.perf_counter() - t0) * 1000)

        ids = [f"b-{uuid.uuid4().hex[:10]}" for _ in range(sessions)]
        await asyncio.gather(*(one(s, warmup, False) for s in ids))
        started = time.perf_counter()
        await asyncio.gather(*(one(s, turns, True) for s in ids))
        return latencies, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--turns", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    text = SPEC.read_text()
    unsigned = "\n".join(line for line in text.splitlines() if not line.strip().startswith("audit ")) + "\n"
    assert unsigned != text
    stub = Stub()
    results: dict[str, list[tuple[float, float, float, float]]] = {"signed": [], "unsigned": []}
    with tempfile.TemporaryDirectory(prefix="agentspec-signing-") as tmp:
        work = Path(tmp)
        servers = {
            "signed": project(text, work, "signed", stub.url),
            "unsigned": project(unsigned, work, "unsigned", stub.url),
        }
        try:
            for server in servers.values():
                server.start(timeout=120)
            for rep in range(args.reps):
                order = ["signed", "unsigned"] if rep % 2 == 0 else ["unsigned", "signed"]
                for side in order:
                    server = servers[side]
                    assert server.process is not None
                    cpu0 = sum(_group_cpu(server.process.pid).values())
                    lat, seconds = asyncio.run(
                        run(server.url, args.sessions, args.turns, args.warmup, args.concurrency)
                    )
                    time.sleep(1.5)  # let the heads sent after the last answers land (ANCHOR_INTERVAL_MS), counted
                    cpu = sum(_group_cpu(server.process.pid).values()) - cpu0
                    n = len(lat)
                    lat.sort()
                    results[side].append(
                        (statistics.median(lat), lat[int(0.99 * (n - 1))], n / seconds, cpu * 1000 / n)
                    )
        finally:
            for server in servers.values():
                server.stop()
            stub.stop()
    print(f"{args.sessions} sessions x {args.turns} turns, concurrency {args.concurrency}, {args.reps} repetitions")
    print(
        f"{'side':<9} {'median ms':>10} {'p99 ms':>8} {'turns/s':>8} {'CPU ms/turn':>12}   (medians over repetitions)"
    )
    for side, rows in results.items():
        med, p99, tput, cpu = (statistics.median(col) for col in zip(*rows, strict=True))
        print(f"{side:<9} {med:>10.2f} {p99:>8.2f} {tput:>8.1f} {cpu:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
