// The fleet export: sending never throws at a turn, batches become partitioned objects with stable keys.
import { describe, expect, it } from "vitest";
import { appendRecord } from "../chain";
import {
  bundle, decisionEvent, exportCounters, groupEvents, sendEvents, traceEvent, writeBatch, type ExportEvent,
} from "../export";

const scope = { tenant: "acme", session: "s-1", workflow: "refunds" };

function events(): ExportEvent[] {
  const first = appendRecord(null, { ...scope, intent: "hi", action: "tool.call:x", decision: "allow",
    rule: "tools.allow", spec_hash: "sha256:00", ts: "2026-12-01T10:00:00.000Z" });
  const trace = traceEvent(scope, 1, { trace_id: "t-1", latency_ms: 5 });
  return [decisionEvent(first), { ...trace, ts: "2026-12-01T10:00:01.000Z" },
    { ...decisionEvent(first), workflow: "other", id: "decision:s-2:1", ts: "2026-12-02T00:00:00.000Z" }];
}

/** A message batch as the Queue hands it to the consumer, recording acks. */
function batchOf(list: unknown[]) {
  const acked = { all: false };
  const batch = {
    queue: "q", messages: list.map((body, i) => ({ id: String(i), timestamp: new Date(), body, attempts: 1,
      ack() {}, retry() {} })),
    ackAll() { acked.all = true; }, retryAll() {},
  } as unknown as MessageBatch<unknown>;
  return { batch, acked };
}

function memoryBucket(fail = false) {
  const objects = new Map<string, string>();
  const bucket = {
    async put(key: string, body: string) {
      if (fail) throw new Error("bucket down");
      objects.set(key, body);
      return null;
    },
  } as unknown as R2Bucket;
  return { bucket, objects };
}

describe("sendEvents", () => {
  it("swallows and counts a failing queue", async () => {
    const before = exportCounters.failed;
    const queue = { async sendBatch() { throw new Error("queue down"); } } as unknown as Queue;
    await expect(sendEvents({ EXPORT_QUEUE: queue }, events())).resolves.toBeUndefined();
    expect(exportCounters.failed - before).toBe(3);
  });

  it("sends a turn's events as one NDJSON message, every event once", async () => {
    const sent: { body: string; contentType: string }[][] = [];
    const queue = { async sendBatch(m: { body: string; contentType: string }[]) { sent.push(m); } } as unknown as Queue;
    const many = Array.from({ length: 50 }, (_, i) => ({ ...events()[0]!, id: `decision:s:${i}` }));
    await sendEvents({ EXPORT_QUEUE: queue }, many);
    expect(sent.map((b) => b.length)).toEqual([1]);
    expect(sent[0]![0]!.contentType).toBe("text");
    expect(sent[0]![0]!.body.split("\n").map((l) => (JSON.parse(l) as ExportEvent).id)).toEqual(many.map((e) => e.id));
  });

  it("keeps each message under the queue's 128 KB and sends at most 100 messages per call", async () => {
    const sent: { body: string }[][] = [];
    const queue = { async sendBatch(m: { body: string }[]) { sent.push(m); } } as unknown as Queue;
    const big = { ...events()[1]!, data: { trace_id: "t", blob: "é".repeat(25_000) } };
    const many = Array.from({ length: 250 }, (_, i) => ({ ...big, id: `trace:t-${i}` }));
    await sendEvents({ EXPORT_QUEUE: queue }, many);
    expect(sent.map((b) => b.length)).toEqual([100, 25]);
    const bodies = sent.flat().map((m) => m.body);
    expect(Math.max(...bodies.map((b) => new TextEncoder().encode(b).length))).toBeLessThan(128 * 1024);
    expect(bodies.flatMap((b) => b.split("\n")).map((l) => (JSON.parse(l) as ExportEvent).id))
      .toEqual(many.map((e) => e.id));
  });

  it("is a no-op without a binding", async () => {
    await expect(sendEvents({}, events())).resolves.toBeUndefined();
  });
});

describe("writeBatch", () => {
  it("writes one Hive-partitioned object per kind, date and workflow, then acks", async () => {
    const { bucket, objects } = memoryBucket();
    const { batch, acked } = batchOf(events());
    await writeBatch(batch, { EXPORT_BUCKET: bucket });
    const keys = [...objects.keys()].sort();
    expect(keys).toHaveLength(3);
    expect(keys[0]).toMatch(/^decisions\/dt=2026-12-01\/workflow=refunds\/part-[0-9a-f]{24}\.ndjson$/);
    expect(keys[1]).toMatch(/^decisions\/dt=2026-12-02\/workflow=other\/part-/);
    expect(keys[2]).toMatch(/^traces\/dt=2026-12-01\/workflow=refunds\/part-/);
    const lines = objects.get(keys[2]!)!.trimEnd().split("\n").map((l) => JSON.parse(l) as ExportEvent);
    expect(lines.map((e) => e.id)).toEqual(["trace:t-1"]);
    expect(acked.all).toBe(true);
  });

  it("writes the same objects from NDJSON messages as from one-event messages (sent before)", async () => {
    const a = memoryBucket();
    const b = memoryBucket();
    await writeBatch(batchOf(events()).batch, { EXPORT_BUCKET: a.bucket });
    await writeBatch(batchOf(bundle(events()).map((m) => m.text)).batch, { EXPORT_BUCKET: b.bucket });
    expect([...b.objects.entries()].sort()).toEqual([...a.objects.entries()].sort());
  });

  it("gives a redelivered batch the same keys", async () => {
    const a = memoryBucket();
    const b = memoryBucket();
    await writeBatch(batchOf(events()).batch, { EXPORT_BUCKET: a.bucket });
    await writeBatch(batchOf([...events()].reverse()).batch, { EXPORT_BUCKET: b.bucket });
    expect([...a.objects.keys()].sort()).toEqual([...b.objects.keys()].sort());
  });

  it("throws (so the Queue retries the batch) when the bucket fails, and acks nothing", async () => {
    const { bucket } = memoryBucket(true);
    const { batch, acked } = batchOf(events());
    await expect(writeBatch(batch, { EXPORT_BUCKET: bucket })).rejects.toThrow("bucket down");
    expect(acked.all).toBe(false);
  });

  it("groups by the event's UTC date", () => {
    expect([...groupEvents(events()).keys()].map((k) => k.split("/")[1])).toEqual(
      ["dt=2026-12-01", "dt=2026-12-01", "dt=2026-12-02"]);
  });
});
