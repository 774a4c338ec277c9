// heads.ts: the signing key from its secret, signatures Python verifies, and the head log's append rules.
import { describe, expect, it } from "vitest";
import { GENESIS_HASH } from "../chain";
import { Anchorer, bodyOf, entryHash, HeadLog, signerFor, SigningKeyError, type ChainHead } from "../heads";

// agentspec.signing.local_key("heads-parity"): its PKCS#8 in base64, its public key, and the signature Python's
// `cryptography` makes over the canonical JSON of BODY (Ed25519 signatures are deterministic, so they must match).
const SECRET = "MC4CAQAwBQYDK2VwBCIEIJxuyoCwTuEsm1dMpymuMThB6sI52iOvYOEi+lVQl4vW";
const PUBLIC = "fdWQzIoFjBID8urutBsGqij-F4gxmxoUfYQYq8HFNuM";
const SPKI = "MCowBQYDK2VwAyEAfdWQzIoFjBID8urutBsGqij+F4gxmxoUfYQYq8HFNuM=";
const KEY_ID = "fb0ddbbb091762be";
const PYTHON_SIG = "SWvpJvEb9Q9ujbIR-0sZXGNKCacfDNRXjObA_QxgYal1l3gFH6qSbfmNlyJhcAnuMtEZ4gR-cbEoIVfux7QzBA";

/** Just enough of SqlStorage for the head log's three statements, over an array. */
function fakeSql(): SqlStorage & { rows: { chain: string; n: number; body: string }[] } {
  const rows: { chain: string; n: number; body: string }[] = [];
  const result = (list: unknown[]) => ({ toArray: () => list });
  const exec = (query: string, ...args: unknown[]) => {
    if (query.startsWith("CREATE")) return result([]);
    if (query.startsWith("INSERT")) {
      const [chain, n, body] = args as [string, number, string];
      if (rows.some((r) => r.chain === chain && r.n === n)) throw new Error("UNIQUE constraint failed");
      rows.push({ chain, n, body });
      return result([]);
    }
    const mine = rows.filter((r) => r.chain === args[0]).sort((a, b) => a.n - b.n);
    return result(query.includes("DESC LIMIT 1") ? mine.slice(-1) : mine);
  };
  return { exec, rows } as unknown as SqlStorage & { rows: { chain: string; n: number; body: string }[] };
}

const head = (seq: number, hash = String(seq).repeat(64).slice(0, 64)): ChainHead =>
  ({ tenant: "acme", chain: "session", id: "s1", seq, hash });

describe("signerFor", () => {
  it("imports PKCS#8 as base64 or PEM and derives the public key", async () => {
    const signer = await signerFor("AUDIT_SIGNING_KEY", SECRET);
    expect(signer.info.public_key).toBe(PUBLIC);
    expect(signer.info.key_id).toBe(KEY_ID);
    expect(signer.info.spki_pem).toBe(`-----BEGIN PUBLIC KEY-----\n${SPKI}\n-----END PUBLIC KEY-----\n`);
    const pem = `-----BEGIN PRIVATE KEY-----\n${SECRET}\n-----END PRIVATE KEY-----\n`;
    expect((await signerFor("AUDIT_SIGNING_KEY", pem)).info.public_key).toBe(PUBLIC);
  });

  it("names the secret when it is unset or holds no key", async () => {
    await expect(signerFor("AUDIT_SIGNING_KEY", undefined)).rejects.toThrow("secret `AUDIT_SIGNING_KEY` is not set");
    await expect(signerFor("K", "not a key!")).rejects.toBeInstanceOf(SigningKeyError);
    await expect(signerFor("K", "MC4CAQAwBQYDK2VwBCIEIA")).rejects.toThrow("holds no Ed25519 private key");
  });
});

describe("HeadLog", () => {
  it("signs the canonical JSON of the body exactly as Python does", async () => {
    const signer = await signerFor("K", SECRET);
    const log = new HeadLog(fakeSql(), "a");
    const entry = await log.append({ tenant: "acme", chain: "session", id: "s1", seq: 3, hash: "ab".repeat(32) },
      signer, () => "2026-12-02T00:00:00.000Z");
    expect(entry).toMatchObject({ v: 1, n: 1, prev: GENESIS_HASH, key_id: KEY_ID });
    expect(entry!.sig).toBe(PYTHON_SIG);
  });

  it("links each chain's entries, skips a repeated head and keeps chains apart", async () => {
    const signer = await signerFor("K", SECRET);
    const sql = fakeSql();
    const log = new HeadLog(sql, "a");
    const first = (await log.append(head(2), signer))!;
    expect(await log.append(head(2), signer)).toBeNull(); // the same head again adds nothing
    const second = (await log.append(head(5), signer))!;
    expect(second.n).toBe(2);
    expect(second.prev).toBe(entryHash(bodyOf(first)));
    // A head that goes back (an object rolled back) is still written: the log keeps what it was told.
    expect((await log.append(head(4), signer))!.n).toBe(3);
    const other = (await log.append({ ...head(1), id: "s2" }, signer))!;
    expect(other).toMatchObject({ n: 1, prev: GENESIS_HASH, id: "s2" });
    expect(log.entries("session", "s1").map((e) => e.seq)).toEqual([2, 5, 4]);
    expect(sql.rows).toHaveLength(4);
  });

  it("serializes concurrent appends of one chain", async () => {
    const signer = await signerFor("K", SECRET);
    const log = new HeadLog(fakeSql(), "a");
    const entries = await Promise.all([1, 2, 3, 4].map((s) => log.append(head(s), signer)));
    expect(entries.map((e) => e!.n)).toEqual([1, 2, 3, 4]);
    for (let i = 1; i < 4; i++) expect(entries[i]!.prev).toBe(entryHash(bodyOf(entries[i - 1]!)));
  });
});

describe("Anchorer", () => {
  it("sends the newest head once, coalescing commits made while a send is in flight", async () => {
    let seq = 1;
    const sent: number[] = [];
    let release: () => void = () => {};
    const anchorer = new Anchorer(() => head(seq), async (h) => {
      sent.push(h.seq);
      await new Promise<void>((resolve) => { release = resolve; });
    }, 0);
    const first = anchorer.poke()!;
    for (seq = 2; seq <= 4; seq++) expect(anchorer.poke()).toBeNull(); // in flight: only remembered
    seq = 4;
    release();
    await new Promise((r) => setTimeout(r, 0));
    release();
    await first;
    expect(sent).toEqual([1, 4]);
    expect(anchorer.poke()).toBeNull(); // nothing new since
  });

  it("logs a failed send and sends the newest head at the next commit", async () => {
    let fail = true;
    const sent: number[] = [];
    let seq = 1;
    const anchorer = new Anchorer(() => head(seq), async (h) => {
      if (fail) throw new Error("head log unreachable");
      sent.push(h.seq);
    }, 0);
    await anchorer.poke();
    fail = false;
    seq = 2;
    await anchorer.poke();
    expect(sent).toEqual([2]);
  });

  it("sends a busy chain's head at most once per interval, the newest one", async () => {
    let seq = 1;
    const sent: number[] = [];
    const naps: number[] = [];
    let wake: () => void = () => {};
    const anchorer = new Anchorer(() => head(seq), async (h) => { sent.push(h.seq); }, 1000, (ms) => {
      naps.push(ms);
      return new Promise<void>((resolve) => { wake = resolve; });
    });
    const work = anchorer.poke()!; // sent at once
    await new Promise((r) => setTimeout(r, 0));
    expect(sent).toEqual([1]);
    for (seq = 2; seq <= 9; seq++) expect(anchorer.poke()).toBeNull(); // within the interval: held
    seq = 9;
    wake();
    await new Promise((r) => setTimeout(r, 0));
    expect(sent).toEqual([1, 9]);
    wake(); // the interval after the second send passes with no commit: the sender stops
    await work;
    expect(naps).toHaveLength(2);
    expect(naps.every((ms) => ms > 900 && ms <= 1000)).toBe(true);
  });
});
