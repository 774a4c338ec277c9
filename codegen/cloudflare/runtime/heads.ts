// Signed, anchored chain heads (docs/runtime.md, "Signed chain heads"). A decision chain's head (its newest
// record's seq and hash) is sent, after the commit that wrote it, to the tenant's head log: a Durable Object of
// its own (named ["heads", tenant]) whose SQLite table only ever grows. Each entry is signed with Ed25519 (the
// private key from the secret `audit sign with secret` names) and links to the previous entry of the same
// chain by hash, so an auditor holding the public key can tell a rewritten chain (every later record re-hashed
// included), a cut tail or an object rolled back to an older state from the chain as it was.
// Heads in, signed entries out; verification is Python's (agentspec/trace/heads.py).
// https://developers.cloudflare.com/workers/runtime-apis/web-crypto/

import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { canonicalJSON, GENESIS_HASH, sha256Hex } from "./chain";

/** Which chain a head is of: a session's (`id` = the session id) or a task's (`id` = the task id). */
export type ChainKind = "session" | "task";

/** A chain's newest record, as the object holding the chain sends it. */
export interface ChainHead {
  tenant: string;
  chain: ChainKind;
  id: string;
  seq: number;
  hash: string;
}

/** What is signed: the canonical JSON of these fields (chain.ts `canonicalJSON`, Python's `json.dumps` twin). */
export interface HeadBody {
  v: 1;
  agent: string;
  tenant: string;
  chain: ChainKind;
  id: string;
  /** 1 for a chain's first entry, then +1: a removed entry leaves a gap. */
  n: number;
  seq: number;
  hash: string;
  /** When the head log wrote the entry (ISO-8601). */
  ts: string;
  /** sha256 of the canonical JSON of the chain's previous entry's body (64 zeros for n = 1). */
  prev: string;
  /** The signing key's id: the first 16 hex digits of sha256 over its raw 32-byte public key. */
  key_id: string;
}

export interface SignedHead extends HeadBody {
  /** Ed25519 signature of the body's canonical JSON, base64url without padding. */
  sig: string;
}

/** The public half, as `GET /v1/policy` and `GET /v1/heads` serve it (and as an auditor keeps it). */
export interface PublicKeyInfo {
  alg: "Ed25519";
  key_id: string;
  /** The raw 32-byte public key, base64url without padding. */
  public_key: string;
  /** The same key as a PEM SubjectPublicKeyInfo, what `agentspec trace verify --public-key` reads. */
  spki_pem: string;
}

/** The signing secret is unset or holds no Ed25519 private key. */
export class SigningKeyError extends Error {
  constructor(secret: string, why: string) {
    super(`secret \`${secret}\` ${why}`);
    this.name = "SigningKeyError";
  }
}

const UTF8 = new TextEncoder();

const base64url = (bytes: Uint8Array): string =>
  btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

function fromBase64url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
}

/** The DER of a PKCS#8 private key given as PEM (`openssl genpkey -algorithm ed25519`) or as bare base64. */
function pkcs8Bytes(secret: string, text: string): Uint8Array {
  const body = text.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, "").replace(/\\n|\s/g, "");
  if (!/^[A-Za-z0-9+/_-]+=*$/.test(body)) throw new SigningKeyError(secret, "is not a PEM or base64 PKCS#8 key");
  return fromBase64url(body);
}

// DER of an Ed25519 SubjectPublicKeyInfo, up to the 32 key bytes (RFC 8410 §4).
const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

export interface Signer {
  key: CryptoKey;
  info: PublicKeyInfo;
}

let signerCache: { source: string; signer: Promise<Signer> } | null = null;

/** The signing key from the secret's value, imported once per isolate and value (a rotated secret is imported
 * again). Its public half comes from the JWK export's `x`. */
export function signerFor(secret: string, source: string | undefined): Promise<Signer> {
  if (source === undefined || source === "") return Promise.reject(new SigningKeyError(secret, "is not set"));
  if (signerCache?.source !== source) {
    signerCache = { source, signer: importSigner(secret, source) };
  }
  return signerCache.signer;
}

async function importSigner(secret: string, source: string): Promise<Signer> {
  const der = pkcs8Bytes(secret, source);
  let key: CryptoKey;
  let jwk: JsonWebKey;
  try {
    // An extractable copy only to read the public half from its JWK; the key kept for signing is not extractable.
    const copy = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, true, ["sign"]);
    jwk = (await crypto.subtle.exportKey("jwk", copy)) as JsonWebKey;
    key = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]);
  } catch {
    throw new SigningKeyError(secret, "holds no Ed25519 private key (PKCS#8, PEM or base64)");
  }
  if (typeof jwk.x !== "string") throw new SigningKeyError(secret, "gives no public key");
  const raw = fromBase64url(jwk.x);
  const spki = new Uint8Array(SPKI_PREFIX.length + raw.length);
  spki.set(SPKI_PREFIX);
  spki.set(raw, SPKI_PREFIX.length);
  const b64 = btoa(String.fromCharCode(...spki));
  return {
    key,
    info: {
      alg: "Ed25519",
      key_id: keyId(raw),
      public_key: base64url(raw),
      spki_pem: `-----BEGIN PUBLIC KEY-----\n${b64}\n-----END PUBLIC KEY-----\n`,
    },
  };
}

/** The first 16 hex digits of sha256 over the raw public key. */
export function keyId(raw: Uint8Array): string {
  return bytesToHex(sha256(raw)).slice(0, 16);
}

/** sha256 of an entry body's canonical JSON: what the chain's next entry carries as `prev`. */
export function entryHash(body: HeadBody): string {
  return sha256Hex(canonicalJSON(body));
}

/** The body without its signature. */
export function bodyOf(head: SignedHead): HeadBody {
  const { sig: _sig, ...body } = head;
  return body;
}

/** The head log's table; the object holding it creates it on first use. */
const SCHEMA = `CREATE TABLE IF NOT EXISTS heads (chain TEXT NOT NULL, n INTEGER NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (chain, n))`;

const chainKey = (chain: ChainKind, id: string): string => JSON.stringify([chain, id]);

/**
 * A tenant's head log over its object's SQLite storage. Appends are serialized (a signature is an await, and
 * two heads of one chain must not both take the same `n`); a head equal to the chain's last entry adds nothing.
 * Entries are never updated or deleted.
 */
export class HeadLog {
  private ready = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly sql: SqlStorage, private readonly agent: string) {}

  private table(): void {
    if (!this.ready) {
      this.sql.exec(SCHEMA);
      this.ready = true;
    }
  }

  private last(key: string): SignedHead | null {
    const row = this.sql.exec<{ body: string }>("SELECT body FROM heads WHERE chain = ? ORDER BY n DESC LIMIT 1", key)
      .toArray()[0];
    return row ? (JSON.parse(row.body) as SignedHead) : null;
  }

  /** Sign and append `head`; answers the new entry, or null when it is the chain's last entry already. */
  append(head: ChainHead, signer: Signer, now: () => string = () => new Date().toISOString()): Promise<SignedHead | null> {
    const run = this.queue.then(() => this.appendNow(head, signer, now));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async appendNow(head: ChainHead, signer: Signer, now: () => string): Promise<SignedHead | null> {
    this.table();
    const key = chainKey(head.chain, head.id);
    const last = this.last(key);
    if (last !== null && last.seq === head.seq && last.hash === head.hash) return null;
    const body: HeadBody = {
      v: 1, agent: this.agent, tenant: head.tenant, chain: head.chain, id: head.id, n: (last?.n ?? 0) + 1,
      seq: head.seq, hash: head.hash, ts: now(), prev: last === null ? GENESIS_HASH : entryHash(bodyOf(last)),
      key_id: signer.info.key_id,
    };
    const sig = new Uint8Array(await crypto.subtle.sign("Ed25519", signer.key, UTF8.encode(canonicalJSON(body))));
    const entry: SignedHead = { ...body, sig: base64url(sig) };
    this.sql.exec("INSERT INTO heads (chain, n, body) VALUES (?, ?, ?)", key, entry.n, JSON.stringify(entry));
    return entry;
  }

  /** Every entry of one chain, oldest first. */
  entries(chain: ChainKind, id: string): SignedHead[] {
    this.table();
    return this.sql.exec<{ body: string }>("SELECT body FROM heads WHERE chain = ? ORDER BY n", chainKey(chain, id))
      .toArray().map((r) => JSON.parse(r.body) as SignedHead);
  }
}

/** A busy chain sends its head at most this often: one RPC, row and signature per second instead of per commit
 * (benchmarks/signing.py measured +1.2 ms of CPU per turn when every commit sent its head). */
export const ANCHOR_INTERVAL_MS = 1000;

/**
 * Sends a chain's head to its head log after each commit, off the turn's path: the caller hands the promise to
 * `waitUntil` and answers at once. The first commit after a quiet spell is sent at once; commits made while a
 * send is in flight, or within `interval` ms of the last send, are coalesced into one send of the newest head
 * (which covers every record before it), so heads reach the log in order and a busy chain costs one send per
 * interval. A failed send is logged, and the next commit sends the newest head again.
 */
export class Anchorer {
  private inFlight: Promise<void> | null = null;
  private again = false;
  private sent: { seq: number; hash: string } | null = null;

  constructor(
    private readonly current: () => ChainHead | null,
    private readonly send: (head: ChainHead) => Promise<unknown>,
    private readonly interval = ANCHOR_INTERVAL_MS,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  /** The work to wait for, or null when there is nothing new to send (or a send under way will pick it up). */
  poke(): Promise<void> | null {
    if (this.inFlight !== null) {
      this.again = true;
      return null;
    }
    const head = this.fresh();
    if (head === null) return null;
    this.inFlight = this.run(head).finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private fresh(): ChainHead | null {
    const head = this.current();
    if (head === null || (this.sent?.seq === head.seq && this.sent.hash === head.hash)) return null;
    return head;
  }

  private async run(first: ChainHead): Promise<void> {
    let head: ChainHead | null = first;
    while (head !== null) {
      this.again = false;
      const started = Date.now();
      try {
        await this.send(head);
        this.sent = { seq: head.seq, hash: head.hash };
      } catch (error) {
        console.error("agentspec: anchoring a chain head failed", error instanceof Error ? error.message : String(error));
        return;
      }
      // Hold the next send until the interval is up; commits meanwhile only set `again`.
      const wait = this.interval - (Date.now() - started);
      if (wait > 0) await this.sleep(wait);
      head = this.again ? this.fresh() : null;
    }
  }
}
