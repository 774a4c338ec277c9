// Shared helper: artifacts. A tool that declares `artifact in STORE` has its result (or one field of it) kept
// aside: PII-masked by the calling workflow's rules, then written to the store's R2 bucket content-addressed
// (`artifacts/<tenant>/<sha-256 of the masked body>`), so one document kept twice is one object and a tenant's
// artifacts sit under its own prefix. The model receives the declared projection and a reference instead of the
// body; every index over the store gets the masked document (retrieval.ts, one object per tenant and index).
// Admin reads (list, read back) go through here too, always within one tenant's prefix.
// https://developers.cloudflare.com/r2/api/workers/workers-api-reference/

import type { RuntimeEnv } from "./env";
import { PolicyError } from "./errors";
import { maskPII } from "./pii";
import type { ArtifactSpec, Policy, Workflow } from "./policy";
import type { IndexDoc } from "./retrieval";

/** What the turn's trace (and a step's record) keeps of a kept artifact. */
export interface ArtifactTrace {
  store: string;
  key: string;
  ref: string;
  /** The masked body's size in bytes. */
  bytes: number;
  /** The bytes of the result the model did not receive: its JSON minus what it read instead. */
  kept_out_bytes: number;
  /** The indexes the document went to (or failed to reach: `index: error`). */
  indexed: string[];
}

/** One index's object, as the caller reaches it (object.ts `indexArtifact`). */
export type Indexer = (index: string, doc: IndexDoc) => Promise<unknown>;

const encoder = new TextEncoder();

async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A tenant's prefix in an artifact store: the tenant id encoded, so no id can name another's prefix. */
export function tenantPrefix(tenant: string): string {
  return `artifacts/${encodeURIComponent(tenant)}/`;
}

/** The R2 key of a tenant's artifact, from its reference (`sha256:<hex>`); null for a malformed reference. */
export function artifactKey(tenant: string, ref: string): string | null {
  const hex = /^sha256:([0-9a-f]{64})$/.exec(ref)?.[1];
  return hex === undefined ? null : tenantPrefix(tenant) + hex;
}

function bucketOf(env: RuntimeEnv, binding: string): R2Bucket {
  const bucket = (env as Record<string, unknown>)[binding] as R2Bucket | undefined;
  if (!bucket) throw new PolicyError(`artifact store binding \`${binding}\` is missing from env`);
  return bucket;
}

/** The body an artifact keeps: the declared field (text as is, anything else as JSON), or the whole result. */
function bodyOf(spec: ArtifactSpec, result: Record<string, unknown>): string {
  if (spec.field === null || spec.field === undefined) return JSON.stringify(result);
  const value = result[spec.field];
  return typeof value === "string" ? value : JSON.stringify(value ?? null);
}

/** What the model reads instead of the result: the `show` fields (or all but the kept field) and the reference. */
function projection(spec: ArtifactSpec, result: Record<string, unknown>): Record<string, unknown> {
  const names = spec.show ?? Object.keys(result).filter((k) => k !== spec.field);
  const out: Record<string, unknown> = {};
  for (const name of names) if (Object.prototype.hasOwnProperty.call(result, name)) out[name] = result[name];
  return out;
}

/**
 * Keep a tool's result as an artifact: mask, write to R2, hand the masked document to every index over the
 * store. Answers what the model reads (projection + `artifact` reference) and the trace's record of it. An index
 * that cannot take the document (an embedding outage) is recorded as such; the artifact is kept regardless.
 */
export async function keepArtifact(env: RuntimeEnv, policy: Policy, scope: { tenant: string; workflow: string },
  tool: string, result: Record<string, unknown>, indexer: Indexer):
  Promise<{ forModel: Record<string, unknown>; trace: ArtifactTrace }> {
  const { tenant, workflow } = scope;
  const wf: Workflow = policy.workflows[workflow]!;
  const spec = policy.tools[tool]!.artifact!;
  const masked = maskPII(bodyOf(spec, result), wf.pii);
  const hex = await sha256Hex(masked);
  const ref = `sha256:${hex}`;
  const key = tenantPrefix(tenant) + hex;
  const bytes = encoder.encode(masked).length;
  const shown = projection(spec, result);
  const titleField = shown["title"] ?? result["title"];
  const title = maskPII(typeof titleField === "string" ? titleField : tool, wf.pii).slice(0, 300);
  await bucketOf(env, spec.binding).put(key, masked, {
    httpMetadata: { contentType: spec.field ? "text/plain; charset=utf-8" : "application/json" },
    customMetadata: { tool, workflow, title },
  });
  const indexed: string[] = [];
  for (const [name, index] of Object.entries(policy.indexes ?? {})) {
    if (index.store !== spec.store) continue;
    try {
      await indexer(name, { ref, title, tool, text: masked });
      indexed.push(name);
    } catch (error) {
      console.error(`agentspec: index \`${name}\` could not take artifact ${ref}:`,
        error instanceof Error ? error.message : String(error));
      indexed.push(`${name}: error`);
    }
  }
  const forModel = { ...shown, artifact: { ref, store: spec.store, bytes } };
  const kept_out_bytes = Math.max(0, encoder.encode(JSON.stringify(result)).length -
    encoder.encode(JSON.stringify(forModel)).length);
  return { forModel, trace: { store: spec.store, key, ref, bytes, kept_out_bytes, indexed } };
}

/** The artifact stores of a spec whose bucket is bound: every store an `artifact` clause names. A store whose
 * binding is missing is logged and left out, so the admin reads still answer for the others (keeping an
 * artifact in it fails where it happens, in the turn or step). */
export function artifactStores(policy: Policy, env: RuntimeEnv): { store: string; bucket: R2Bucket }[] {
  const seen = new Map<string, string>();
  for (const tool of Object.values(policy.tools)) {
    if (tool.artifact) seen.set(tool.artifact.store, tool.artifact.binding);
  }
  const out: { store: string; bucket: R2Bucket }[] = [];
  for (const [store, binding] of [...seen.entries()].sort()) {
    const bucket = (env as Record<string, unknown>)[binding] as R2Bucket | undefined;
    if (bucket) out.push({ store, bucket });
    else console.error(`agentspec: artifact store binding \`${binding}\` is missing from env`);
  }
  return out;
}

export interface ArtifactListing {
  store: string;
  ref: string;
  key: string;
  bytes: number;
  uploaded: string;
  tool: string;
  title: string;
}

/** A tenant's artifacts in every artifact store (at most `limit` per store, newest keys not guaranteed first). */
export async function listArtifacts(env: RuntimeEnv, policy: Policy, tenant: string, limit = 1000):
  Promise<ArtifactListing[]> {
  const out: ArtifactListing[] = [];
  for (const { store, bucket } of artifactStores(policy, env)) {
    const listed = await bucket.list({ prefix: tenantPrefix(tenant), limit,
      include: ["customMetadata"] });
    for (const obj of listed.objects) {
      out.push({ store, ref: `sha256:${obj.key.slice(tenantPrefix(tenant).length)}`, key: obj.key, bytes: obj.size,
        uploaded: obj.uploaded.toISOString(), tool: obj.customMetadata?.["tool"] ?? "",
        title: obj.customMetadata?.["title"] ?? "" });
    }
  }
  return out;
}

/** One of a tenant's artifacts, read back: its body and where it is; null when the tenant has no such artifact. */
export async function readArtifact(env: RuntimeEnv, policy: Policy, tenant: string, ref: string):
  Promise<{ store: string; key: string; body: string; contentType: string } | null> {
  const key = artifactKey(tenant, ref);
  if (key === null) return null;
  for (const { store, bucket } of artifactStores(policy, env)) {
    const obj = await bucket.get(key);
    if (obj !== null) {
      return { store, key, body: await obj.text(), contentType: obj.httpMetadata?.contentType ?? "text/plain" };
    }
  }
  return null;
}
