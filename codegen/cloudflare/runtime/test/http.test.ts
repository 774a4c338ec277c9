// Request bodies at the front door: the size limit, and what happens to the bytes of a refused body.
import { describe, expect, it } from "vitest";
import { readBody } from "../http";

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
