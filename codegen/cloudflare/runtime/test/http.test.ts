// Request bodies at the front door: the size limit, and what happens to the bytes of a refused body.
import { describe, expect, it } from "vitest";
import { HttpError, readBody, readJsonObject, readLimited, wellFormed } from "../http";

/** A body of `total` bytes in 1 KiB chunks that counts what was pulled from it and whether it was cancelled. */
function counted(total: number) {
  const seen = { pulled: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const n = Math.min(1024, total - seen.pulled);
      if (n <= 0) return controller.close();
      seen.pulled += n;
      controller.enqueue(new Uint8Array(n));
    },
    cancel() {
      seen.cancelled = true;
    },
  });
  return { stream, seen };
}

const post = (body: ReadableStream<Uint8Array>, length?: number) =>
  new Request("http://agent.test/v1/sessions/s/turns", {
    method: "POST", body, headers: length === undefined ? {} : { "content-length": String(length) },
  });

describe("readBody", () => {
  it("reads a body within the limit whole", async () => {
    const { stream } = counted(3000);
    expect((await readBody(post(stream, 3000), 4096))?.byteLength).toBe(3000);
  });

  it("drains a body declared too large, so the refusal is not sent while the client still writes", async () => {
    const { stream, seen } = counted(200_000);
    expect(await readBody(post(stream, 200_000), 4096)).toBeNull();
    expect(seen.pulled).toBe(200_000);
    expect(seen.cancelled).toBe(false);
  });

  it("drains a chunked body once it passes the limit", async () => {
    const { stream, seen } = counted(50_000);
    expect(await readBody(post(stream), 4096)).toBeNull();
    expect(seen.pulled).toBe(50_000);
  });

  it("cuts off a body too large to drain", async () => {
    const declared = { stream: counted(8 << 20), length: 8 << 20 };
    expect(await readBody(post(declared.stream.stream, declared.length), 4096)).toBeNull();
    expect(declared.stream.seen.pulled).toBeLessThanOrEqual(64 * 1024); // at most what the stream buffered ahead
    const chunked = counted(8 << 20);
    expect(await readBody(post(chunked.stream), 4096)).toBeNull();
    expect(chunked.seen.pulled).toBeLessThan(2 << 20);
    expect(chunked.seen.cancelled).toBe(true);
  });
});

describe("readLimited", () => {
  it("drains a refused request body whole at any size, so the 413 always arrives complete", async () => {
    for (const length of [8 << 20, undefined]) {
      const { stream, seen } = counted(8 << 20);
      const refused = await readLimited(post(stream, length), 4096).then(() => null, (e: unknown) => e);
      expect(refused).toBeInstanceOf(HttpError);
      expect((refused as HttpError).status).toBe(413);
      expect(seen.pulled).toBe(8 << 20);
    }
  });
});

describe("readJsonObject", () => {
  const json = (text: string) =>
    readJsonObject(new Request("http://agent.test/", { method: "POST", body: text, headers: { "content-type": "application/json" } }), 65536);
  const refusal = (text: string) => json(text).then(() => null, (e: unknown) => e as HttpError);

  it("refuses a lone surrogate in any string or key, naming where", async () => {
    for (const [text, where] of [
      ['{"input": "a\\ud800"}', "`input`"],
      ['{"params": {"x": ["ok", "\\udfff b"]}}', "`params.x.1`"],
      ['{"params": {"\\udc00": 1}}', "`params`"],
      ['{"\\ud83d": 1}', "a key"],
    ] as const) {
      const e = await refusal(text);
      expect([e?.status, e?.code, e?.message]).toEqual([400, "invalid_unicode", `${where} has a lone surrogate`]);
    }
  });

  it("accepts paired surrogates, written raw or escaped, and an escaped backslash before `u`", async () => {
    expect(await json('{"input": "\\ud83d\\ude00 😀"}')).toEqual({ input: "😀 😀" });
    expect(await json('{"input": "\\\\ud800"}')).toEqual({ input: "\\ud800" });
    expect(wellFormed("a\ud800")).toBe(false);
    expect(wellFormed("\udc00a")).toBe(false);
    expect(wellFormed("😀")).toBe(true);
  });
});
