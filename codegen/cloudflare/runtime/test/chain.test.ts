// The hash-chained decision log: canonical JSON parity with Python, chaining, and tamper detection.
import { describe, expect, it } from "vitest";
import {
  appendRecord, canonicalJSON, GENESIS_HASH, recordHash, sha256Hex, verifyChain, type ChainRecord, type RecordFields,
} from "../chain";

// Expected values computed with CPython 3:
//   s = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
//   hashlib.sha256(s.encode()).hexdigest()
const PY_RECORD = {
  seq: 1,
  ts: "2026-11-26T04:00:00.000Z",
  tenant: "acme",
  session: "s-1",
  workflow: "refunds",
  intent: 'refund order ORD-1 — “quoted” é 😀 tab\t nl\n ctl\u0001 del\u007f \\ "',
  action: "tool:issue_refund",
  decision: "allow",
  rule: "tools.allow",
  spec_hash: "sha256:" + "ab".repeat(32),
  prev_hash: GENESIS_HASH,
};
const PY_JSON =
  '{"action":"tool:issue_refund","decision":"allow","intent":"refund order ORD-1 — “quoted” é 😀 tab\\t nl\\n ctl\\u0001 del\u007f \\\\ \\"","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","rule":"tools.allow","seq":1,"session":"s-1","spec_hash":"sha256:abababababababababababababababababababababababababababababababab","tenant":"acme","ts":"2026-11-26T04:00:00.000Z","workflow":"refunds"}';
const PY_HASH = "8e5f3cf75a4e273248d8c9af979ea888456a46fcca6debf764409a273e0f2271";

function fields(i: number): RecordFields {
  return {
    ts: `2026-11-26T04:00:0${i}.000Z`,
    tenant: "acme",
    session: "s-1",
    workflow: "refunds",
    intent: `turn ${i}`,
    action: i % 2 === 0 ? "tool:lookup_order" : "tool:issue_refund",
    decision: "allow",
    rule: "tools.allow",
    spec_hash: "sha256:" + "ab".repeat(32),
  };
}

function chainOf(n: number): ChainRecord[] {
  const out: ChainRecord[] = [];
  for (let i = 0; i < n; i++) out.push(appendRecord(out.at(-1) ?? null, fields(i)));
  return out;
}

describe("canonicalJSON", () => {
  it("is byte-identical to Python's json.dumps(sort_keys, compact, ensure_ascii=False)", () => {
    expect(canonicalJSON(PY_RECORD)).toBe(PY_JSON);
    expect(recordHash(PY_RECORD)).toBe(PY_HASH);
  });

  it("sorts keys recursively by code point like Python, not by UTF-16 unit", () => {
    const obj = { "\u{1F600}": 1, "\uffff": 2, b: [true, null, { z: 0, a: -5 }], a: "x" };
    expect(canonicalJSON(obj)).toBe('{"a":"x","b":[true,null,{"a":-5,"z":0}],"\uffff":2,"\u{1F600}":1}');
  });

  it("refuses values Python would print differently", () => {
    expect(() => canonicalJSON({ x: 1.5 })).toThrow(TypeError);
    expect(() => canonicalJSON({ x: Number.NaN })).toThrow(TypeError);
    expect(() => canonicalJSON({ x: 2 ** 60 })).toThrow(TypeError);
    expect(() => canonicalJSON({ x: () => 1 })).toThrow(TypeError);
  });
});

describe("appendRecord", () => {
  it("starts at genesis and links each record to the previous hash", () => {
    const [a, b, c] = chainOf(3);
    expect(a!.seq).toBe(1);
    expect(a!.prev_hash).toBe(GENESIS_HASH);
    expect(b!.seq).toBe(2);
    expect(b!.prev_hash).toBe(a!.hash);
    expect(c!.prev_hash).toBe(b!.hash);
    expect(a!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set([a!.hash, b!.hash, c!.hash]).size).toBe(3);
  });

  it("hashes exactly the record without its hash field", () => {
    const r = appendRecord(null, { ...fields(0), ts: PY_RECORD.ts });
    const { hash, ...rest } = r;
    expect(hash).toBe(recordHash(rest));
    const py = appendRecord(null, { ...PY_RECORD });
    expect(py.hash).toBe(PY_HASH);
  });

  it("hashes a record with an extra or missing field as it is, never by the known fields alone", () => {
    const { hash: _h, ...rest } = appendRecord(null, { ...PY_RECORD });
    const extra = { ...rest, note: "slipped in" };
    expect(recordHash(extra)).toBe(sha256Hex(canonicalJSON(extra)));
    expect(recordHash(extra)).not.toBe(PY_HASH);
    const { rule: _r, ...missing } = rest;
    const swapped = { ...missing, other: "tools.allow" }; // as many keys as a record, one of them unknown
    expect(recordHash(swapped as unknown as ChainRecord)).toBe(sha256Hex(canonicalJSON(swapped)));
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("fills ts with an ISO-8601 timestamp when not given", () => {
    const { ts: _omit, ...noTs } = fields(0);
    const r = appendRecord(null, noTs);
    expect(new Date(r.ts).toISOString()).toBe(r.ts);
  });
});

describe("verifyChain", () => {
  it("accepts an intact chain and an empty one", () => {
    expect(verifyChain(chainOf(5))).toEqual({ ok: true });
    expect(verifyChain([])).toEqual({ ok: true });
  });

  it("detects an altered field", () => {
    const chain = chainOf(4);
    chain[2] = { ...chain[2]!, decision: "deny" };
    expect(verifyChain(chain)).toEqual({ ok: false, index: 2, seq: 3, reason: "hash does not match the record's contents" });
  });

  it("detects an altered field even when the attacker rehashes that record", () => {
    const chain = chainOf(4);
    const forged = { ...chain[1]!, action: "tool:nothing_to_see" };
    forged.hash = recordHash(forged);
    chain[1] = forged;
    const v = verifyChain(chain);
    expect(v).toMatchObject({ ok: false, index: 2, seq: 3 });
    expect(v.ok === false && v.reason).toMatch(/prev_hash/);
  });

  it("detects a removed record in the middle and at the start", () => {
    const chain = chainOf(5);
    expect(verifyChain([...chain.slice(0, 2), ...chain.slice(3)])).toMatchObject({ ok: false, index: 2, seq: 4 });
    expect(verifyChain(chain.slice(1))).toMatchObject({ ok: false, index: 0, reason: "first record does not start at genesis" });
  });

  it("detects reordering", () => {
    const chain = chainOf(4);
    const swapped = [chain[0]!, chain[2]!, chain[1]!, chain[3]!];
    expect(verifyChain(swapped)).toMatchObject({ ok: false, index: 1, seq: 3 });
  });

  it("detects a tampered seq (rehashed) and a broken prev_hash", () => {
    const chain = chainOf(3);
    const badSeq = { ...chain[1]!, seq: 7 };
    badSeq.hash = recordHash(badSeq);
    expect(verifyChain([chain[0]!, badSeq])).toMatchObject({ ok: false, index: 1, reason: "seq 7 where 2 was expected" });
    const badPrev = { ...chain[2]!, prev_hash: "f".repeat(64) };
    badPrev.hash = recordHash(badPrev);
    expect(verifyChain([chain[0]!, chain[1]!, badPrev])).toMatchObject({ ok: false, index: 2, seq: 3 });
  });

  it("verifies a later slice against the last verified record", () => {
    const chain = chainOf(6);
    expect(verifyChain(chain.slice(3), chain[2]!)).toEqual({ ok: true });
    expect(verifyChain(chain.slice(4), chain[2]!)).toMatchObject({ ok: false, index: 0 });
  });

  it("reports malformed records instead of throwing", () => {
    const chain = chainOf(2);
    const broken = { ...chain[1]!, rule: 5 } as unknown as ChainRecord;
    expect(verifyChain([chain[0]!, broken])).toMatchObject({ ok: false, index: 1, reason: "field `rule` is missing or not a string" });
  });
});
