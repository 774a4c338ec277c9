// HTTP plumbing of the generated Worker: request limits and JSON bodies in, typed values or an
// HttpError out; and the one place a thrown error becomes a `{"error": {"code", "message"}}` response.
// Never a stack trace: an unexpected error answers 500 `internal` and is logged, not echoed.

import { jsonError } from "./errors";

/** An error with the HTTP status and stable code the client sees. */
export class HttpError extends Error {
  override readonly name = "HttpError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra response headers, e.g. `Allow` on a 405. */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export function errorResponse(error: unknown): Response {
  if (error instanceof HttpError) return jsonError(error.status, error.code, error.message, error.headers);
  // Durable Object infrastructure errors say what they are: `overloaded` (retrying adds load) or `retryable`
  // (transient, e.g. the object was restarting). https://developers.cloudflare.com/durable-objects/best-practices/error-handling/
  const flags = error !== null && typeof error === "object" ? (error as { overloaded?: unknown; retryable?: unknown }) : {};
  if (flags.overloaded === true) return jsonError(503, "overloaded", "the session is overloaded; slow down");
  if (flags.retryable === true) {
    return jsonError(503, "unavailable", "the session is restarting; retry shortly", { "retry-after": "1" });
  }
  console.error("agentspec: unexpected error", error instanceof Error ? error.message : String(error));
  return jsonError(500, "internal", "the agent runtime failed; the incident is logged");
}

const tooLarge = (limit: number) => new HttpError(413, "body_too_large", `the body exceeds ${limit} bytes`);

/**
 * The body's bytes, never more than `limit`: a declared Content-Length above it is refused before reading, and a
 * body without one (chunked) or lying about it is read as a stream and refused as soon as it passes the limit, so
 * an oversize body is never buffered whole.
 */
export async function readLimited(request: Request, limit: number): Promise<Uint8Array> {
  // A request's refused body is drained whole, whatever its size (the platform bounds it): answering while the
  // client still sends can cut the 413 off. Only a tool's answer is cut off past DRAIN_MAX.
  const bytes = await readBody(request, limit, Number.POSITIVE_INFINITY);
  if (bytes === null) throw tooLarge(limit);
  return bytes;
}

/**
 * How much of a tool answer too large is still read, and dropped, before the refusal; a larger one is cut off.
 * (A request's body is drained whole: see readLimited.)
 */
const DRAIN_MAX = 1024 * 1024;

/** Read and drop the rest of a refused body, up to `max` bytes in all (`read` of them already read). */
async function drain(reader: ReadableStreamDefaultReader<Uint8Array>, read = 0, max = DRAIN_MAX): Promise<void> {
  try {
    while (read <= max) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
    }
    await reader.cancel();
  } catch {
    // The client went away: nothing left to answer.
  }
}

/**
 * A request's or response's body, or null when it is larger than `limit` bytes: refused on a declared
 * Content-Length, else read as a stream and refused as soon as it passes the limit; either way an oversize
 * body is never buffered, only drained (see DRAIN_MAX). Shared by the front door and tool answers.
 */
export async function readBody(message: Request | Response, limit: number, drainMax = DRAIN_MAX):
  Promise<Uint8Array | null> {
  const header = message.headers.get("content-length")?.trim() ?? null;
  const declared = header !== null && /^\d+$/.test(header) ? Number(header) : null;
  if (declared !== null && declared > limit) {
    if (declared <= drainMax && message.body !== null) await drain(message.body.getReader(), 0, drainMax);
    else await message.body?.cancel().catch(() => undefined);
    return null;
  }
  if (message.body === null) return new Uint8Array(0);
  if (declared !== null) {
    // Framed by its Content-Length, within the limit: one read, no stream loop.
    const bytes = new Uint8Array(await message.arrayBuffer());
    return bytes.byteLength > limit ? null : bytes;
  }
  const reader = message.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await drain(reader, size, drainMax);
      return null;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

// Made once: a decoder without `stream` keeps no state between calls. Fatal, so bad UTF-8 is a 400, not U+FFFD.
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
const UTF8 = new TextEncoder();

/** Read a JSON object body no larger than `limit` bytes (413 above it, 400 if it is not a JSON object). */
export async function readJsonObject(request: Request, limit: number): Promise<Record<string, unknown>> {
  const type = request.headers.get("content-type") ?? "";
  if (type && !type.toLowerCase().includes("json")) {
    throw new HttpError(415, "unsupported_media_type", "send the body as application/json");
  }
  const bytes = await readLimited(request, limit);
  let value: unknown;
  let text: string;
  try {
    text = STRICT_UTF8.decode(bytes);
    value = JSON.parse(text);
  } catch {
    throw new HttpError(400, "invalid_json", "the body is not valid UTF-8 JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(400, "invalid_body", "the body must be a JSON object");
  }
  // Strict UTF-8 leaves one way to invalid Unicode: a `\uD800`-style escape of a lone surrogate. Refused here,
  // before anything is stored (SQLite, KV and the Workflows engine would keep it, or mangle it differently).
  if (ESCAPED_SURROGATE.test(text)) {
    const where = loneSurrogateAt(value, "");
    if (where !== null) {
      throw new HttpError(400, "invalid_unicode", `${where === "" ? "a key" : `\`${where}\``} has a lone surrogate`);
    }
  }
  return value as Record<string, unknown>;
}

const ESCAPED_SURROGATE = /\\u[dD][89a-fA-F][0-9a-fA-F]{2}/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether `text` is well-formed UTF-16 (no surrogate without its pair). */
export function wellFormed(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/** The dotted path of the first string (or key) in `value` with a lone surrogate, or null when there is none.
 * A bad key is named by its parent's path. */
function loneSurrogateAt(value: unknown, path: string): string | null {
  if (typeof value === "string") return wellFormed(value) ? null : path;
  if (value === null || typeof value !== "object") return null;
  for (const [key, item] of Object.entries(value)) {
    if (!wellFormed(key)) return path;
    const found = loneSurrogateAt(item, path === "" ? key : `${path}.${key}`);
    if (found !== null) return found;
  }
  return null;
}

export function stringField(body: Record<string, unknown>, name: string, maxLength: number): string {
  const value = body[name];
  if (typeof value !== "string" || value.length === 0) {
    throw new HttpError(400, "invalid_field", `\`${name}\` must be a non-empty string`);
  }
  if (value.length > maxLength) {
    throw new HttpError(400, "invalid_field", `\`${name}\` is longer than ${maxLength} characters`);
  }
  return value;
}

/** Constant-time string comparison, so token checks leak nothing through timing. */
export function sameSecret(a: string, b: string): boolean {
  const x = UTF8.encode(a);
  const y = UTF8.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}
