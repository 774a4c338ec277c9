// The fleet export: commits kept durably and sent by the alarm, batches become partitioned objects with stable keys.
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { appendRecord } from "../chain";
import {
  bundle, decisionEvent, decisionId, lineHead, EXPORT_LINGER_MS, exportCounters, ExportSender, groupEvents, traceEvent, writeBatch,
  type ExportEvent,
} from "../export";
import type { TestEnv } from "./worker";

const testEnv = env as unknown as TestEnv;

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

/** A queue recording each sendBatch call, or refusing while `down`. */
function recordingQueue() {
  const calls: { body: string; contentType: string }[][] = [];
  const state = { down: false };
  const queue = {
    async sendBatch(m: { body: string; contentType: string }[]) {
      if (state.down) throw new Error("queue down");
      calls.push(m);
    },
  } as unknown as Queue;
  return { queue, calls, state };
}

const sessionObject = () => testEnv.SESSION.getByName(`export-test-${crypto.randomUUID()}`);
const ids = (calls: { body: string }[][]) =>
  calls.flat().flatMap((m) => m.body.split("\n")).map((l) => (JSON.parse(l) as ExportEvent).id);

describe("ExportSender", () => {
  it("keeps each commit in the object's storage and sends several commits in one sendBatch, then forgets them",
    async () => {
      const { queue, calls } = recordingQueue();
      await runInDurableObject(sessionObject(), async (_obj, state) => {
        const sender = new ExportSender(state.storage.sql, state.storage, queue);
        const t0 = Date.now();
        sender.keep(events().slice(0, 2)); // one turn: its decision and its trace
        sender.keep(events().slice(2)); // the next turn
        const rows = () => state.storage.sql.exec<{ events: number }>("SELECT events FROM export_outbox").toArray();
        expect(rows().map((r) => r.events)).toEqual([2, 1]);
        const alarm = await state.storage.getAlarm();
        expect(alarm).not.toBeNull();
        expect(alarm! - t0).toBeGreaterThanOrEqual(EXPORT_LINGER_MS - 5);
        expect(calls).toEqual([]); // nothing sent before the alarm
        const before = exportCounters.sent;
        await sender.flush();
        expect(calls.map((c) => c.length)).toEqual([2]); // one call, one message per commit
        expect(calls[0]![0]!.contentType).toBe("text");
        expect(ids(calls)).toEqual(events().map((e) => e.id));
        expect(exportCounters.sent - before).toBe(3);
        expect(rows()).toEqual([]);
      });
    });

  it("keeps what the queue refused, and sends it at the next alarm (at least once)", async () => {
    const { queue, calls, state: q } = recordingQueue();
    await runInDurableObject(sessionObject(), async (_obj, state) => {
      const sender = new ExportSender(state.storage.sql, state.storage, queue);
      sender.keep(events());
      q.down = true;
      const failed = exportCounters.failed;
      await expect(sender.flush()).rejects.toThrow("queue down"); // the runtime retries a throwing alarm
      expect(exportCounters.failed - failed).toBe(3);
      await state.storage.deleteAlarm();
      await expect(sender.flush(6)).resolves.toBeUndefined(); // the runtime's last retry: a slow alarm instead
      const slow = await state.storage.getAlarm();
      expect(slow! - Date.now()).toBeGreaterThan(30_000);
      q.down = false;
      await sender.flush();
      expect(ids(calls)).toEqual(events().map((e) => e.id));
    });
  });

  it("picks up what an earlier instance kept, and sends at most 100 messages per call", async () => {
    const { queue, calls } = recordingQueue();
    await runInDurableObject(sessionObject(), async (_obj, state) => {
      const first = new ExportSender(state.storage.sql, state.storage, queue);
      for (let i = 0; i < 130; i++) first.keep([{ ...events()[0]!, id: `decision:s:${i}` }]);
      await state.storage.deleteAlarm(); // as if its alarm had given up
      const second = new ExportSender(state.storage.sql, state.storage, queue);
      expect(await state.storage.getAlarm()).not.toBeNull();
      await second.flush();
      expect(calls.map((c) => c.length)).toEqual([100, 30]);
      expect(ids(calls)).toEqual(Array.from({ length: 130 }, (_, i) => `decision:s:${i}`));
    });
  });

  it("keeps nothing without a queue binding", async () => {
    await runInDurableObject(sessionObject(), async (_obj, state) => {
      new ExportSender(state.storage.sql, state.storage, undefined).keep(events());
      expect(state.storage.sql.exec("SELECT name FROM sqlite_master WHERE name = 'export_outbox'").toArray())
        .toEqual([]);
      expect(await state.storage.getAlarm()).toBeNull();
    });
  });
});

describe("lineHead", () => {
  it("reads kind, id, ts and workflow as a whole parse would, whatever the body holds", () => {
    const tricky = traceEvent({ tenant: 'a,"tenant":b', session: 's,"tenant":', workflow: "watch" }, 3,
      { trace_id: 'tr,"tenant":x', note: ',"tenant":{"kind":"decision"}' });
    const record = appendRecord(null, { tenant: 'a,"tenant":b', session: 's,"tenant":', workflow: "watch",
      intent: ',"tenant":"x"', action: "tool.call:x", decision: "allow", rule: "tools.allow", spec_hash: "sha256:00",
      ts: "2026-12-01T10:00:00.000Z" });
    const all = [tricky, decisionEvent(record), ...events()];
    for (const event of all) {
      const line = JSON.stringify(event);
      const whole = JSON.parse(line) as ExportEvent;
      expect(lineHead(line)).toMatchObject({ kind: whole.kind, id: whole.id, ts: whole.ts, workflow: whole.workflow });
    }
    expect(lineHead('{"kind":"trace","id":"t","ts":"2026-12-01T00:00:00Z","workflow":"w"}').id).toBe("t");
  });
});

describe("decisionId", () => {
  it("tells two tenants' records of one session id apart, and a `:` inside an id cannot join two", () => {
    expect(decisionId("acme", "s1", 1)).not.toBe(decisionId("globex", "s1", 1));
    expect(decisionId("a:b", "c", 1)).not.toBe(decisionId("a", "b:c", 1));
    expect(decisionId("a", "b:c", 1)).toBe("decision:a:b%3Ac:1");
  });
});

describe("bundle", () => {
  it("puts a commit's events in one NDJSON message", () => {
    const many = Array.from({ length: 50 }, (_, i) => ({ ...events()[0]!, id: `decision:s:${i}` }));
    const messages = bundle(many);
    expect(messages.map((m) => m.count)).toEqual([50]);
    expect(messages[0]!.text.split("\n").map((l) => (JSON.parse(l) as ExportEvent).id)).toEqual(many.map((e) => e.id));
  });

  it("keeps each message under the queue's 128 KB", () => {
    const big = { ...events()[1]!, data: { trace_id: "t", blob: "é".repeat(25_000) } };
    const many = Array.from({ length: 250 }, (_, i) => ({ ...big, id: `trace:t-${i}` }));
    const messages = bundle(many);
    expect(messages).toHaveLength(125); // two of these 50 KB events to a message
    expect(Math.max(...messages.map((m) => new TextEncoder().encode(m.text).length))).toBeLessThan(128 * 1024);
    expect(messages.flatMap((m) => m.text.split("\n")).map((l) => (JSON.parse(l) as ExportEvent).id))
      .toEqual(many.map((e) => e.id));
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
