// The hash-chained decision log: the previous record and a new record's fields in, the next record out
// (seq + 1, prev_hash = previous hash, hash = sha256 of its canonical JSON); and verification of a chain,
// which finds altered fields, removed or reordered records and broken links. Python's
// `hashlib.sha256(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()`
// over the record without "hash" gives the same hash.

import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

export const GENESIS_HASH = "0".repeat(64);

export interface ChainRecord {
  /** 1 for the first record of a chain, then +1 per record. */
  seq: number;
  /** ISO-8601 timestamp. */
  ts: string;
  tenant: string;
  session: string;
  workflow: string;
  intent: string;
  action: string;
  decision: string;
  rule: string;
  spec_hash: string;
  /** Optional: why, in words, when the rule alone does not say it (a `model.unavailable` record: each model's
   * cause). Hashed like every other field; a record without it hashes as it always did. */
  detail?: string;
  prev_hash: string;
  hash: string;
}

/** What the caller supplies; seq, prev_hash and hash come from the chain, ts defaults to now. */
export type RecordFields = Omit<ChainRecord, "seq" | "ts" | "prev_hash" | "hash"> & { ts?: string };

export type ChainVerdict = { ok: true } | { ok: false; index: number; seq: number; reason: string };

const STRING_FIELDS = [
  "ts", "tenant", "session", "workflow", "intent", "action", "decision", "rule", "spec_hash", "prev_hash", "hash",
] as const;

const SURROGATE = /[\uD800-\uDFFF]/;

/** Python's str ordering: by code point (JavaScript's default sort compares UTF-16 code units). */
function compareCodePoints(a: string, b: string): number {
  // Without surrogates the two orders agree, and plain comparison is much cheaper than walking code points.
  if (!SURROGATE.test(a) && !SURROGATE.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done === true) return y.done === true ? 0 : -1;
    if (y.done === true) return 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/**
 * JSON with object keys sorted recursively and no whitespace, byte-identical to Python's
 * `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`. Numbers must be safe integers
 * (Python and JavaScript print floats differently, e.g. 1.0 vs 1, 1e+16 vs 10000000000000000).
 */
export function canonicalJSON(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "string":
      return JSON.stringify(value);
    case "number":
      if (!Number.isSafeInteger(value)) throw new TypeError(`canonicalJSON: ${value} is not a safe integer`);
      return String(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map(canonicalJSON).join(",")}]`;
      const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
      entries.sort(([a], [b]) => compareCodePoints(a, b));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJSON(v)}`).join(",")}}`;
    }
    default:
      throw new TypeError(`canonicalJSON: cannot encode a ${typeof value}`);
  }
}

const UTF8 = new TextEncoder();

/**
 * Lower-case hex SHA-256 of the UTF-8 bytes of `text`. Synchronous, so chaining a decision never ends the
 * turn's storage transaction at an await; @noble/hashes rather than WebCrypto (a promise per record) or
 * node:crypto (a Buffer-based polyfill in workerd), which both cost several times more per record.
 */
export function sha256Hex(text: string): string {
  return bytesToHex(sha256(UTF8.encode(text)));
}

/** The hash a record should carry: sha256 of the canonical JSON of every field except "hash". */
export function recordHash(record: Omit<ChainRecord, "hash"> | ChainRecord): string {
  const { hash: _ignored, ...rest } = record as ChainRecord;
  return sha256Hex(canonicalJSON(rest));
}

/** The record that follows `prev` (or starts a chain when `prev` is null). */
export function appendRecord(prev: ChainRecord | null, fields: RecordFields): ChainRecord {
  const body: Omit<ChainRecord, "hash"> = {
    ...fields,
    ts: fields.ts ?? new Date().toISOString(),
    seq: prev === null ? 1 : prev.seq + 1,
    prev_hash: prev === null ? GENESIS_HASH : prev.hash,
  };
  return { ...body, hash: recordHash(body) };
}

/**
 * Check a chain, oldest first. By default it must start at genesis (seq 1, prev_hash of 64 zeros); pass
 * `after` (the last record already verified) to check a later slice. Reports the first bad record.
 */
export function verifyChain(
  records: readonly ChainRecord[],
  after: { seq: number; hash: string } | null = null,
): ChainVerdict {
  let expectedSeq = after === null ? 1 : after.seq + 1;
  let expectedPrev = after === null ? GENESIS_HASH : after.hash;
  for (const [index, r] of records.entries()) {
    const fail = (reason: string): ChainVerdict => ({ ok: false, index, seq: typeof r.seq === "number" ? r.seq : -1, reason });
    if (r === null || typeof r !== "object") return { ok: false, index, seq: -1, reason: "record is not an object" };
    if (!Number.isSafeInteger(r.seq)) return fail("seq is not an integer");
    for (const f of STRING_FIELDS) {
      if (typeof r[f] !== "string") return fail(`field \`${f}\` is missing or not a string`);
    }
    if (r.hash !== recordHash(r)) return fail("hash does not match the record's contents");
    if (r.prev_hash !== expectedPrev) {
      return fail(index === 0 && after === null
        ? "first record does not start at genesis"
        : "prev_hash does not match the previous record's hash");
    }
    if (r.seq !== expectedSeq) return fail(`seq ${r.seq} where ${expectedSeq} was expected`);
    expectedSeq = r.seq + 1;
    expectedPrev = r.hash;
  }
  return { ok: true };
}
