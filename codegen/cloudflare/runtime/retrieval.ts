// Role: a tenant's retrieval index (the object named indexObjectName(tenant, index); object.ts routes its RPCs
// here). One object per tenant and index, so no query can reach another tenant's entries: its SQLite holds the
// index's documents (already PII-masked by the workflow that kept them, artifacts.ts), a full-text table (FTS5,
// ranked by BM25) when the index says `keyword`, and when it says `semantic` the vectors of each document, made by
// the semantic tier's embedding models. Deployed, vectors go to the index's Vectorize binding, under a namespace
// derived from the tenant; without that binding (`wrangler dev`: Vectorize has no local simulation) they stay in
// this object's own vector table, searched by cosine similarity, behind the same `VectorStore` interface.
// https://www.sqlite.org/fts5.html · https://developers.cloudflare.com/vectorize/reference/client-api/

import type { RuntimeEnv } from "./env";
import { PolicyError } from "./errors";
import { retryableStatus } from "./inference";
import type { IndexSpec, Policy } from "./policy";

/** Made on first use: only an index's object needs them. */
export const INDEX_SCHEMA = `CREATE TABLE IF NOT EXISTS idx_docs (ref TEXT PRIMARY KEY, title TEXT NOT NULL,
    tool TEXT NOT NULL, bytes INTEGER NOT NULL, at INTEGER NOT NULL);
  CREATE VIRTUAL TABLE IF NOT EXISTS idx_fts USING fts5(ref UNINDEXED, title, body);
  CREATE TABLE IF NOT EXISTS idx_vectors (ref TEXT PRIMARY KEY, vec BLOB NOT NULL);`;

/** How much of a document is embedded: the embedding models read at most 512 tokens. */
const EMBED_CHARS = 2000;
/** The most results one search answers, whatever `top` asks. */
export const MAX_TOP = 20;
/** The number of results a search without `top` answers (agentspec/platform.py SEARCH_TOP). */
export const DEFAULT_TOP = 5;
/** Reciprocal rank fusion's constant, for a search that ranks by keyword and by meaning at once. */
const RRF_K = 60;

/** A document as the index keeps it: its artifact reference, a title, the tool that fetched it, its masked text. */
export interface IndexDoc {
  ref: string;
  title: string;
  tool: string;
  text: string;
}

export interface SearchHit {
  ref: string;
  score: number;
  title: string;
  snippet: string;
  /** Which ranking found it. */
  via: "keyword" | "semantic" | "both";
}

export type SearchMode = "keyword" | "semantic" | "both";

/** Where vectors live: Vectorize deployed, this object's SQLite locally. */
export interface VectorStore {
  upsert(ref: string, vector: number[]): Promise<void>;
  query(vector: number[], top: number): Promise<{ ref: string; score: number }[]>;
}

/** The part of Vectorize's binding used here, typed loosely so a project without Vectorize type-checks. */
interface VectorizeBinding {
  upsert(vectors: { id: string; values: number[]; namespace?: string }[]): Promise<unknown>;
  query(vector: number[], options: { topK: number; namespace?: string; returnMetadata?: string }):
    Promise<{ matches: { id: string; score: number }[] }>;
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** The local vector table: every vector compared with the query (one tenant's documents, so few). */
export class LocalVectors implements VectorStore {
  constructor(private readonly sql: SqlStorage) {}

  async upsert(ref: string, vector: number[]): Promise<void> {
    this.sql.exec("INSERT INTO idx_vectors (ref, vec) VALUES (?, ?) ON CONFLICT(ref) DO UPDATE SET vec = excluded.vec",
      ref, new Float32Array(vector).buffer);
  }

  async query(vector: number[], top: number): Promise<{ ref: string; score: number }[]> {
    const q = new Float32Array(vector);
    const rows = this.sql.exec<{ ref: string; vec: ArrayBuffer }>("SELECT ref, vec FROM idx_vectors").toArray();
    return rows.map((r) => ({ ref: r.ref, score: cosine(q, new Float32Array(r.vec)) }))
      .sort((a, b) => b.score - a.score || (a.ref < b.ref ? -1 : 1)).slice(0, top);
  }
}

/** Vectorize: one index per spec index, a namespace per tenant (a hash: namespaces are at most 64 bytes). */
export class VectorizeVectors implements VectorStore {
  constructor(private readonly binding: VectorizeBinding, private readonly namespace: string) {}

  async upsert(ref: string, vector: number[]): Promise<void> {
    await this.binding.upsert([{ id: ref.replace(/^sha256:/, ""), values: vector, namespace: this.namespace }]);
  }

  async query(vector: number[], top: number): Promise<{ ref: string; score: number }[]> {
    const found = await this.binding.query(vector, { topK: top, namespace: this.namespace, returnMetadata: "none" });
    return found.matches.map((m) => ({ ref: `sha256:${m.id}`, score: m.score }));
  }
}

async function tenantNamespace(tenant: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(tenant)));
  return Array.from(digest.slice(0, 24), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The FTS5 query for free text: every word quoted (so no text is read as query syntax), any of them matching. */
export function ftsQuery(text: string): string | null {
  const words = text.match(/[\p{L}\p{N}_]+/gu) ?? [];
  if (words.length === 0) return null;
  return [...new Set(words.map((w) => w.toLowerCase()))].slice(0, 32).map((w) => `"${w}"`).join(" OR ");
}

interface EmbedEnv extends RuntimeEnv {
  INFERENCE_API_KEY?: string;
}

async function embedOne(env: EmbedEnv, model: string, texts: string[], signal: AbortSignal): Promise<number[][]> {
  const base = typeof env.INFERENCE_URL === "string" && env.INFERENCE_URL !== "" ? env.INFERENCE_URL : null;
  if (base !== null) {
    // The OpenAI-compatible embeddings endpoint of the same server the chat models are on (local runs, tests).
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (env.INFERENCE_API_KEY) headers["authorization"] = `Bearer ${env.INFERENCE_API_KEY}`;
    const res = await fetch(base.replace(/\/+$/, "") + "/embeddings",
      { method: "POST", headers, body: JSON.stringify({ model, input: texts }), signal });
    if (!res.ok) {
      await res.body?.cancel();
      throw Object.assign(new Error(`HTTP ${res.status}`), { retryable: retryableStatus(res.status) });
    }
    const body = (await res.json()) as { data?: { embedding?: number[]; index?: number }[] };
    return (body.data ?? []).map((d) => d.embedding ?? []);
  }
  const ai = env.AI as { run?: (model: string, inputs: unknown) => Promise<unknown> } | undefined;
  if (typeof ai?.run !== "function") throw new PolicyError("no embeddings backend: set INFERENCE_URL or bind AI");
  // Workers AI text embeddings answer `{ shape, data: number[][] }`.
  const out = (await ai.run(model, { text: texts })) as { data?: number[][] };
  return out.data ?? [];
}

/** Embed texts with the semantic tier's models, tried in order; each answer must be of the index's dimension. */
export async function embedTexts(env: RuntimeEnv, policy: Policy, spec: IndexSpec, texts: string[]):
  Promise<{ vectors: number[][]; model: string }> {
  const semantic = spec.semantic!;
  const tier = policy.tiers[semantic.tier]!;
  const failures: string[] = [];
  for (const model of tier.models) {
    try {
      const vectors = await embedOne(env, model, texts, AbortSignal.timeout(tier.timeout_ms));
      if (vectors.length !== texts.length || vectors.some((v) => v.length !== semantic.dimensions)) {
        throw new Error(`answer is not ${texts.length} vector(s) of ${semantic.dimensions} dimensions`);
      }
      return { vectors, model };
    } catch (error) {
      failures.push(`${model}: ${error instanceof Error ? error.message : String(error)}`);
      if ((error as { retryable?: boolean }).retryable === false) break;
    }
  }
  throw new PolicyError(`every embedding model of tier \`${semantic.tier}\` failed: ${failures.join("; ")}`);
}

/** An index's object as its callers reach it over RPC (object.ts delegates to RetrievalIndex). */
export interface IndexRpc {
  indexArtifact(index: string, tenant: string, doc: IndexDoc): Promise<{ added: boolean; embedded_with: string | null }>;
  searchIndex(index: string, tenant: string, query: string, top: number, mode: SearchMode): Promise<SearchHit[]>;
}

/** What the index role needs of its object. */
export interface RetrievalHost {
  readonly sql: SqlStorage;
  readonly env: RuntimeEnv;
  readonly policy: Policy;
}

export class RetrievalIndex {
  private ready = false;

  constructor(private readonly host: RetrievalHost) {}

  private spec(index: string): IndexSpec {
    const spec = Object.prototype.hasOwnProperty.call(this.host.policy.indexes ?? {}, index)
      ? this.host.policy.indexes![index] : undefined;
    if (spec === undefined) throw new PolicyError(`index \`${index}\` is not declared`);
    if (!this.ready) {
      this.host.sql.exec(INDEX_SCHEMA);
      this.ready = true;
    }
    return spec;
  }

  private async vectors(spec: IndexSpec, tenant: string): Promise<VectorStore> {
    const binding = (this.host.env as Record<string, unknown>)[spec.semantic!.vector_binding];
    return binding ? new VectorizeVectors(binding as VectorizeBinding, await tenantNamespace(tenant))
      : new LocalVectors(this.host.sql);
  }

  /** Index one document; a document already indexed (the same reference: the same masked text) is kept. */
  async add(index: string, tenant: string, doc: IndexDoc): Promise<{ added: boolean; embedded_with: string | null }> {
    const spec = this.spec(index);
    if (this.host.sql.exec("SELECT 1 FROM idx_docs WHERE ref = ?", doc.ref).toArray().length > 0) {
      return { added: false, embedded_with: null };
    }
    let embedded: string | null = null;
    if (spec.semantic) {
      // Embedded before anything is written: an embedding outage leaves the document unindexed, not half.
      const { vectors, model } = await embedTexts(this.host.env, this.host.policy, spec,
        [`${doc.title}\n${doc.text}`.slice(0, EMBED_CHARS)]);
      await (await this.vectors(spec, tenant)).upsert(doc.ref, vectors[0]!);
      embedded = model;
    }
    this.host.sql.exec("INSERT INTO idx_docs (ref, title, tool, bytes, at) VALUES (?, ?, ?, ?, ?)",
      doc.ref, doc.title, doc.tool, new TextEncoder().encode(doc.text).length, Date.now());
    if (spec.keyword) {
      this.host.sql.exec("INSERT INTO idx_fts (ref, title, body) VALUES (?, ?, ?)", doc.ref, doc.title, doc.text);
    }
    return { added: true, embedded_with: embedded };
  }

  /** Many documents at once (the benchmark's bulk load): keyword only, one statement per document. */
  addMany(index: string, docs: IndexDoc[]): number {
    const spec = this.spec(index);
    let added = 0;
    for (const doc of docs) {
      const fresh = this.host.sql.exec("INSERT OR IGNORE INTO idx_docs (ref, title, tool, bytes, at) " +
        "VALUES (?, ?, ?, ?, ?) RETURNING ref", doc.ref, doc.title, doc.tool, new TextEncoder().encode(doc.text).length,
        Date.now()).toArray();
      if (fresh.length > 0 && spec.keyword) {
        this.host.sql.exec("INSERT INTO idx_fts (ref, title, body) VALUES (?, ?, ?)", doc.ref, doc.title, doc.text);
      }
      added += fresh.length;
    }
    return added;
  }

  private keywordHits(query: string, top: number): SearchHit[] {
    const match = ftsQuery(query);
    if (match === null) return [];
    return this.host.sql.exec<{ ref: string; title: string; snippet: string; rank: number }>(
      "SELECT ref, title, snippet(idx_fts, 2, '', '', '…', 16) AS snippet, bm25(idx_fts) AS rank FROM idx_fts " +
      "WHERE idx_fts MATCH ? ORDER BY rank LIMIT ?", match, top).toArray()
      .map((r) => ({ ref: r.ref, title: r.title, snippet: r.snippet, score: -r.rank, via: "keyword" as const }));
  }

  private async semanticHits(spec: IndexSpec, tenant: string, query: string, top: number): Promise<SearchHit[]> {
    const { vectors } = await embedTexts(this.host.env, this.host.policy, spec, [query]);
    const found = await (await this.vectors(spec, tenant)).query(vectors[0]!, top);
    const hits: SearchHit[] = [];
    for (const { ref, score } of found) {
      // Only this object's own documents: a vector store answering another tenant's would be dropped here.
      const doc = this.host.sql.exec<{ title: string; body: string | null }>(
        "SELECT d.title AS title, f.body AS body FROM idx_docs d LEFT JOIN idx_fts f ON f.ref = d.ref WHERE d.ref = ?",
        ref).toArray()[0];
      if (doc) hits.push({ ref, score, title: doc.title, snippet: (doc.body ?? "").slice(0, 160), via: "semantic" });
    }
    return hits;
  }

  /** The top results for a query, by keyword, by meaning, or both (fused by reciprocal rank). */
  async search(index: string, tenant: string, query: string, top = DEFAULT_TOP, mode: SearchMode = "both"):
    Promise<SearchHit[]> {
    const spec = this.spec(index);
    const n = Math.max(1, Math.min(MAX_TOP, Math.floor(top)));
    const useKeyword = spec.keyword && mode !== "semantic";
    const useSemantic = spec.semantic !== undefined && spec.semantic !== null && mode !== "keyword";
    const keyword = useKeyword ? this.keywordHits(query, n) : [];
    const semantic = useSemantic ? await this.semanticHits(spec, tenant, query, n) : [];
    if (!useKeyword || !useSemantic) return useKeyword ? keyword : semantic;
    const fused = new Map<string, SearchHit>();
    for (const list of [keyword, semantic]) {
      list.forEach((hit, rank) => {
        const seen = fused.get(hit.ref);
        const score = 1 / (RRF_K + rank + 1);
        if (seen) fused.set(hit.ref, { ...seen, score: seen.score + score, via: "both" });
        else fused.set(hit.ref, { ...hit, score });
      });
    }
    return [...fused.values()].sort((a, b) => b.score - a.score || (a.ref < b.ref ? -1 : 1)).slice(0, n);
  }

  /** How many documents the index holds, their bytes and the object's database size (the benchmark reads it). */
  stats(index: string): { docs: number; bytes: number; database_bytes: number } {
    this.spec(index);
    const row = this.host.sql.exec<{ docs: number; bytes: number | null }>(
      "SELECT count(*) AS docs, sum(bytes) AS bytes FROM idx_docs").toArray()[0]!;
    // The whole object's SQLite file: documents, the full-text index and vectors (and nothing else: an index's
    // object plays no other role).
    return { docs: row.docs, bytes: row.bytes ?? 0, database_bytes: this.host.sql.databaseSize };
  }
}
