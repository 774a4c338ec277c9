"""Retrieval and artifacts, measured locally in workerd (issue 15).

    python benchmarks/retrieval.py                    # 10,000 documents, 300 keyword queries, the 200 KB prompt
    python benchmarks/retrieval.py --docs 2000 --queries 100 --skip-prompt

Part 1, the keyword index: a Worker made for the benchmark (a copy of the runtime's retrieval.ts behind one Durable
Object, served by `wrangler dev` as the tests serve a project) is loaded with N synthetic documents (about 1 KB of
words each, a Zipf-like vocabulary, seeded) through the index's bulk path (`addMany`), then answers keyword
queries of one to three words, one at a time. Printed: query latency p50 and p99 measured at the client (a request
to the Worker, its RPC to the object, the FTS5 query), the same for a no-op request to the object (the transport's
share), hits per query, and the index's size (the object's SQLite database: documents, FTS5 tables).

Part 2, the prompt: tests/e2e/specs/retrieval.agent compiled twice, with and without its `artifact in` clause,
each running one turn in which the model fetches a 200 KB document; printed are the input tokens the scripted
model counts (100 + characters / 4 of the messages) for the request that carries the tool's result, before
(raw body) and after (projection and reference).

Loopback only; bounded. On a loaded machine latencies are noise: compare medians.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from agentspec.check import check
from agentspec.devserver import DevServer, local_secrets, stub_origins, write_dev_vars
from agentspec.emit import emit, write
from agentspec.load import load_text
from agentspec.targets.cloudflare import COMPATIBILITY_DATE
from agentspec.workbench.scripted_model import Cue, ScriptedModel, tool_results
from agentspec.workbench.tool_stub import ToolAnswer, ToolStub

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "codegen" / "cloudflare" / "runtime"
SPEC = ROOT / "tests" / "e2e" / "specs" / "retrieval.agent"

BENCH_WORKER = """// The benchmark's Worker: the runtime's retrieval index behind one Durable Object, nothing else.
import { DurableObject } from "cloudflare:workers";
import { RetrievalIndex, type IndexDoc } from "./runtime/retrieval";
import type { Policy } from "./runtime/policy";

const policy = { indexes: { bench: { store: "artifacts", keyword: true } }, tiers: {} } as unknown as Policy;

export class Bench extends DurableObject {
  private readonly index = new RetrievalIndex({ sql: this.ctx.storage.sql, env: {}, policy });
  load(docs: IndexDoc[]): number { return this.index.addMany("bench", docs); }
  search(query: string, top: number) { return this.index.search("bench", "t", query, top, "keyword"); }
  stats() { return this.index.stats("bench"); }
  noop(): number { return 0; }
}

type Env = { BENCH: DurableObjectNamespace<Bench> };

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const index = env.BENCH.getByName("bench");
    if (url.pathname === "/healthz") return Response.json({ ok: true });
    if (url.pathname === "/noop") return Response.json(await index.noop());
    if (url.pathname === "/load") return Response.json(await index.load(await request.json()));
    if (url.pathname === "/stats") return Response.json(await index.stats());
    const q = url.searchParams.get("q") ?? "";
    return Response.json(await index.search(q, Number(url.searchParams.get("top") ?? "10")));
  },
};
"""


def bench_project(work: Path) -> Path:
    project = work / "bench"
    (project / "src" / "runtime").mkdir(parents=True)
    for path in RUNTIME.glob("*.ts"):
        shutil.copy(path, project / "src" / "runtime" / path.name)
    (project / "src" / "index.ts").write_text(BENCH_WORKER)
    config = {
        "name": "agentspec-retrieval-bench",
        "main": "src/index.ts",
        "compatibility_date": COMPATIBILITY_DATE,
        "compatibility_flags": ["nodejs_compat"],
        "send_metrics": False,
        "durable_objects": {"bindings": [{"name": "BENCH", "class_name": "Bench"}]},
        "migrations": [{"tag": "v1", "new_sqlite_classes": ["Bench"]}],
    }
    (project / "wrangler.jsonc").write_text(json.dumps(config, indent=2))
    return project


def vocabulary(rng: random.Random, size: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words)


def zipf_pick(rng: random.Random, words: list[str], weights: list[float], k: int) -> list[str]:
    return rng.choices(words, weights=weights, k=k)


def documents(n: int, seed: int) -> tuple[list[dict[str, str]], list[str]]:
    rng = random.Random(seed)
    words = vocabulary(rng, 20_000)
    weights = [1 / (rank + 1) for rank in range(len(words))]
    docs = []
    for i in range(n):
        body = " ".join(zipf_pick(rng, words, weights, 150))
        docs.append({"ref": f"sha256:{i:064x}", "title": " ".join(zipf_pick(rng, words, weights, 4)),
                     "tool": "fetch_document", "text": body})  # fmt: skip
    return docs, words


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def keyword_index(work: Path, n_docs: int, n_queries: int, seed: int) -> None:
    project = bench_project(work)
    server = DevServer(project, work / "bench-state", work / "bench.log")
    server.start(timeout=90)
    try:
        docs, words = documents(n_docs, seed)
        with httpx.Client(base_url=server.url, timeout=120) as c:
            t0 = time.perf_counter()
            for start in range(0, len(docs), 500):
                r = c.post("/load", json=docs[start : start + 500])
                r.raise_for_status()
            load_s = time.perf_counter() - t0
            stats = c.get("/stats").json()
            rng = random.Random(seed + 1)
            # Queries of one to three words drawn from the middle of the vocabulary: neither every document's
            # stop-word nor a word no document has.
            middle = words[50:5000]
            queries = [" ".join(rng.sample(middle, rng.randint(1, 3))) for _ in range(n_queries)]
            for q in queries[:20]:  # warm-up: the object's first calls, the isolate's JIT
                c.get("/search", params={"q": q})
            latencies, hits = [], []
            for q in queries:
                t = time.perf_counter()
                r = c.get("/search", params={"q": q, "top": 10})
                latencies.append((time.perf_counter() - t) * 1000)
                hits.append(len(r.json()))
            noops = []
            for _ in range(n_queries):
                t = time.perf_counter()
                c.get("/noop")
                noops.append((time.perf_counter() - t) * 1000)
    finally:
        server.stop()
    print(
        f"keyword index: {stats['docs']:,} documents ({stats['bytes'] / 1e6:.1f} MB of text), loaded in {load_s:.1f} s"
    )
    print(f"  index size (the object's SQLite database): {stats['database_bytes'] / 1e6:.1f} MB")
    print(f"  {len(latencies)} queries, top 10: p50 {pct(latencies, 0.5):.2f} ms, p99 {pct(latencies, 0.99):.2f} ms "
          f"(client side); hits per query median {statistics.median(hits):.0f}")  # fmt: skip
    print(
        f"  the transport alone (a no-op RPC to the object): p50 {pct(noops, 0.5):.2f} ms, "
        f"p99 {pct(noops, 0.99):.2f} ms"
    )


def prompt_tokens(work: Path, size: int) -> None:
    text = SPEC.read_text()
    variants = {
        "before (raw body)": text.replace("    artifact in artifacts field text show [url, title]\n", "").replace(
            "    stores write [artifacts]\n", ""
        ),
        "after (projection + reference)": text,
    }
    body = ("Combustion, torque and gearing are measured on a test bench. " * (size // 60 + 1))[:size]
    results: dict[str, tuple[int, int]] = {}
    model, tools = ScriptedModel(), ToolStub()
    try:
        for name, spec_text in variants.items():
            result = check(load_text(spec_text, str(SPEC)))
            assert result.spec is not None, [d.message for d in result.diagnostics]
            project = work / f"prompt-{len(results)}"
            write(emit(result.spec), str(project))
            secrets = local_secrets(result.spec, {"token-acme": "acme"}, "admin")
            origins = stub_origins(result.spec, tools.origin)
            write_dev_vars(project, {"INFERENCE_URL": model.url, "TOOL_ORIGINS": json.dumps(origins), **secrets})
            server = DevServer(project, work / f"prompt-{len(results)}-state", work / f"prompt-{len(results)}.log")
            server.start(timeout=90)
            try:
                model.reset()
                tools.reset()
                tools.answer("/v1/extract", ToolAnswer(body={"url": "https://papers.example.com/p", "title": "P",
                                                              "text": body}))  # fmt: skip
                model.cue("@cf/test/low-primary", Cue(tool_calls=[("fetch_document", {"url": "https://p.example/p"})]),
                          Cue(text="done"))  # fmt: skip
                headers = {"authorization": "Bearer token-acme", "x-tenant-id": "acme"}
                turn = {"workflow": "research", "input": "fetch"}
                r = httpx.post(f"{server.url}/v1/sessions/s1/turns", json=turn, headers=headers, timeout=60)
                r.raise_for_status()
                chats = [s.body for s in model.requests if s.path.endswith("/chat/completions")]
                messages = chats[-1]["messages"]
                (read,) = tool_results(messages)
                tokens = 100 + sum(len(str(m.get("content") or "")) // 4 for m in messages)
                results[name] = (tokens, len(json.dumps(read)))
            finally:
                server.stop()
    finally:
        model.close()
        tools.close()
    print(f"prompt for a {size / 1000:.0f} KB tool result (input tokens of the model request that carries it):")
    for name, (tokens, chars) in results.items():
        print(f"  {name:32} {tokens:>8,} tokens   (tool message {chars:,} characters)")
    (before, _), (after, _) = results.values()
    print(f"  kept out of the prompt: {before - after:,} tokens ({(before - after) / before:.1%})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--prompt-bytes", type=int, default=200_000)
    parser.add_argument("--skip-prompt", action="store_true")
    parser.add_argument("--skip-index", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agentspec-retrieval-") as tmp:
        work = Path(tmp)
        if not args.skip_index:
            keyword_index(work, args.docs, args.queries, args.seed)
        if not args.skip_prompt:
            prompt_tokens(work, args.prompt_bytes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
