// Sealing a task's values: what the Workflows engine persists for a task (its params, step results, event
// payloads) goes in as `{"$sealed": "v1.<base64 iv+ciphertext>"}`, AES-256-GCM under a key of the task's own
// Durable Object; steps open it again through that object. When the task ends the key is deleted, so the
// engine's stored copies can no longer be read by anyone. Plain JSON in, a sealed value out (and back).
// https://developers.cloudflare.com/workers/runtime-apis/web-crypto/

/** The one key of a sealed value; a spec name cannot contain `$`, so it never collides with a result field. */
export const SEALED = "$sealed";

export type Sealed = { [SEALED]: string };

/** Whether a value read from the engine is sealed (rather than a plain value of an older task). */
export function isSealed(value: unknown): value is Sealed {
  return value !== null && typeof value === "object" && !Array.isArray(value) && typeof (value as Sealed)[SEALED] === "string";
}

/** The key is gone: the task ended, and its persisted values are unreadable by design. */
export class SealKeyGoneError extends Error {
  constructor() {
    super("the task's sealing key is gone (the task has ended)");
    this.name = "SealKeyGoneError";
  }
}

const bytesToBase64 = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes));
const base64ToBytes = (text: string): Uint8Array => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** A new random 256-bit key, as base64 text (what the task's object stores). */
export function newSealKey(): string {
  return bytesToBase64(crypto.getRandomValues(new Uint8Array(32)));
}

const imported = new Map<string, Promise<CryptoKey>>();

function cryptoKey(key: string): Promise<CryptoKey> {
  let k = imported.get(key);
  if (k === undefined) {
    k = crypto.subtle.importKey("raw", base64ToBytes(key), "AES-GCM", false, ["encrypt", "decrypt"]);
    if (imported.size > 256) imported.clear(); // one isolate serves many tasks: keep the cache bounded
    imported.set(key, k);
  }
  return k;
}

/** `plain` encrypted under `key`, with a fresh 96-bit IV: `v1.` then base64 of IV and ciphertext. */
export async function sealText(key: string, plain: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, await cryptoKey(key),
    new TextEncoder().encode(plain)));
  const out = new Uint8Array(iv.length + ct.length);
  out.set(iv);
  out.set(ct, iv.length);
  return `v1.${bytesToBase64(out)}`;
}

/** The text `sealText` sealed; throws if the blob was made under another key or altered. */
export async function unsealText(key: string, blob: string): Promise<string> {
  if (!blob.startsWith("v1.")) throw new Error("not a sealed value");
  const bytes = base64ToBytes(blob.slice(3));
  const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: bytes.slice(0, 12) }, await cryptoKey(key),
    bytes.slice(12));
  return new TextDecoder().decode(plain);
}

/** What a task's object offers (task_chain.ts, through the object's RPC methods): seal, open, forget. */
export interface SealKeeper {
  seal(plain: string): Promise<string>;
  unseal(blob: string): Promise<string>;
  forgetSealKey(): void | Promise<void>;
}

/** `value` sealed by `keeper`, as the engine will store it. */
export async function sealWith(keeper: SealKeeper, value: unknown): Promise<Sealed> {
  return { [SEALED]: await keeper.seal(JSON.stringify(value)) };
}
