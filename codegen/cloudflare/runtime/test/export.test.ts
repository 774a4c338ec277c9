// The fleet export: commits kept durably and sent by the alarm, batches become partitioned objects with stable keys.
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { appendRecord, type ChainRecord } from "../chain";
import {
  bundle, decisionEvent, decisionId, eventLine, lineHead, EXPORT_LINGER_MS, exportCounters, ExportSender, groupEvents,
  messageText, packMessage, traceEvent, writeBatch,
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

/** A message as sent: its text (inflated), and what the queue carried. */
interface Sent { body: string; contentType: string; bytes: number }
const sent = (m: { body: Uint8Array; contentType: string }[]): Sent[] =>
  m.map((x) => ({ body: messageText(x.body), contentType: x.contentType, bytes: x.body.byteLength }));

/** A queue recording each sendBatch call, or refusing while `down`. */
function recordingQueue() {
  const calls: Sent[][] = [];
  const state = { down: false };
  const queue = {
    async sendBatch(m: { body: Uint8Array; contentType: string }[]) {
      if (state.down) throw new Error("queue down");
      calls.push(sent(m));
    },
  } as unknown as Queue;
  return { queue, calls, state };
}

const sessionObject = () => testEnv.SESSION.getByName(`export-test-${crypto.randomUUID()}`);

/** Rows as an object's commits write them: a decision record, and a turn's trace. */
function writeRecord(sql: SqlStorage, rec: ChainRecord): void {
  sql.exec("INSERT INTO records (seq, body) VALUES (?, ?)", rec.seq, JSON.stringify(rec));
}
function writeTurn(sql: SqlStorage, turn: number, at: number, extra: Record<string, unknown> = {}): void {
  sql.exec("INSERT INTO turns (turn, at, body) VALUES (?, ?, ?)", turn, at, JSON.stringify({ trace_id: `t-${turn}`,
    turn, workflow: scope.workflow, tenant: scope.tenant, "gen_ai.conversation.id": scope.session, ...extra }));
}
function chain(n: number): ChainRecord[] {
  const out: ChainRecord[] = [];
  for (let i = 0; i < n; i++) {
    out.push(appendRecord(out.at(-1) ?? null, { ...scope, intent: `turn ${i} — é`, action: "model.call",
      decision: "allow", rule: "tier.route", spec_hash: "sha256:00", ts: "2026-12-01T10:00:00.000Z" }));
  }
  return out;
}
const lines = (calls: { body: string }[][]) =>
  calls.flat().flatMap((m) => m.body.split("\n")).map((l) => JSON.parse(l) as ExportEvent);

describe("ExportSender", () => {
  it("sends records and traces from the tables the commits wrote, several commits in one sendBatch, once each",
    async () => {
      const { queue, calls } = recordingQueue();
      await runInDurableObject(sessionObject(), async (_obj, state) => {
        const sql = state.storage.sql;
        const sender = new ExportSender(sql, state.storage, queue);
        const t0 = Date.now();
        const [r1, r2, r3] = chain(3);
        writeRecord(sql, r1!);
        writeTurn(sql, 1, Date.parse("2026-12-01T10:00:01.000Z"), { latency_ms: 5 });
        sender.keep([], true); // one turn: its decision and its trace
        writeRecord(sql, r2!);
        sender.keep([], true); // the next commit
        expect(sql.exec("SELECT * FROM export_outbox").toArray()).toEqual([]); // nothing copied for the export
        const alarm = await state.storage.getAlarm();
        expect(alarm).not.toBeNull();
        expect(alarm! - t0).toBeGreaterThanOrEqual(EXPORT_LINGER_MS - 5);
        expect(calls).toEqual([]); // nothing sent before the alarm
        const before = exportCounters.sent;
        await sender.flush();
        expect(calls.map((c) => c.length)).toEqual([1]); // one call, the three events in one message
        expect(calls[0]![0]!.contentType).toBe("bytes"); // deflated NDJSON
        expect(calls[0]![0]!.bytes).toBeLessThan(new TextEncoder().encode(calls[0]![0]!.body).byteLength);
        // Each line is the event the record or trace makes, as JSON.stringify would write it whole.
        const trace = { ...traceEvent(scope, 1, { trace_id: "t-1", turn: 1, workflow: scope.workflow,
          tenant: scope.tenant, "gen_ai.conversation.id": scope.session, latency_ms: 5 }),
        ts: "2026-12-01T10:00:01.000Z" };
        expect(calls[0]![0]!.body.split("\n")).toEqual(
          [decisionEvent(r1!), decisionEvent(r2!), trace].map((e) => JSON.stringify(e)));
        expect(exportCounters.sent - before).toBe(3);
        await sender.flush(); // the cursors moved: nothing again
        expect(calls).toHaveLength(1);
        writeRecord(sql, r3!);
        writeTurn(sql, 2, Date.now());
        await sender.flush();
        expect(lines(calls.slice(1)).map((e) => e.id)).toEqual([decisionEvent(r3!).id, "trace:t-2"]);
      });
    });

  it("leaves the trace of an unfinished turn (and later ones) for the next send", async () => {
    const { queue, calls } = recordingQueue();
    await runInDurableObject(sessionObject(), async (_obj, state) => {
      const sql = state.storage.sql;
      const unfinished: { turn: number | null } = { turn: 2 };
      const sender = new ExportSender(sql, state.storage, queue, () => unfinished.turn);
      writeTurn(sql, 1, Date.now());
      writeTurn(sql, 2, Date.now());
      await sender.flush();
      expect(lines(calls).map((e) => e.id)).toEqual(["trace:t-1"]);
      sql.exec("UPDATE turns SET body = ? WHERE turn = 2", JSON.stringify({ trace_id: "t-2", turn: 2,
        workflow: scope.workflow, tenant: scope.tenant, "gen_ai.conversation.id": scope.session, checkpoint: "done" }));
      unfinished.turn = null;
      await sender.flush();
      const sent = lines(calls);
      expect(sent.map((e) => e.id)).toEqual(["trace:t-1", "trace:t-2"]);
      expect(sent[1]!.data).toMatchObject({ checkpoint: "done" }); // the final row, not the first one
    });
  });

  it("keeps what the queue refused, and sends it at the next alarm (at least once)", async () => {
    const { queue, calls, state: q } = recordingQueue();
    await runInDurableObject(sessionObject(), async (_obj, state) => {
      const sql = state.storage.sql;
      const sender = new ExportSender(sql, state.storage, queue);
      const records = chain(2);
      for (const r of records) writeRecord(sql, r);
      sender.keep([events()[0]!], true);
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
      expect(lines(calls).map((e) => e.id)).toEqual([events()[0]!.id, ...records.map((r) => decisionEvent(r).id)]);
      expect(sql.exec("SELECT * FROM export_outbox").toArray()).toEqual([]);
    });
  });

  it("picks up what an earlier instance did not send, within 100 messages and 256 KB per call", async () => {
    const { queue, calls } = recordingQueue();
    await runInDurableObject(sessionObject(), async (_obj, state) => {
      const sql = state.storage.sql;
      const first = new ExportSender(sql, state.storage, queue);
      for (let i = 0; i < 130; i++) first.keep([{ ...events()[0]!, id: `decision:s:${i}` }]);
      const blob = "x".repeat(40_000);
      for (let turn = 1; turn <= 12; turn++) writeTurn(sql, turn, Date.now(), { blob });
      await state.storage.deleteAlarm(); // as if its alarm had given up
      const second = new ExportSender(sql, state.storage, queue);
      expect(await state.storage.getAlarm()).not.toBeNull();
      await second.flush();
      for (const call of calls) {
        expect(call.length).toBeLessThanOrEqual(100);
        expect(call.reduce((n, m) => n + new TextEncoder().encode(m.body).length + 128, 0)).toBeLessThanOrEqual(256_000);
      }
      expect(calls.length).toBeGreaterThanOrEqual(3);
      expect(lines(calls).map((e) => e.id)).toEqual([...Array.from({ length: 130 }, (_, i) => `decision:s:${i}`),
        ...Array.from({ length: 12 }, (_, i) => `trace:t-${i + 1}`)]);
    });
  });

  it("sends what a commit kept while a send was in flight", async () => {
    const calls: Sent[][] = [];
    await runInDurableObject(sessionObject(), async (_obj, state) => {
      const sql = state.storage.sql;
      let sender: ExportSender | undefined;
      const queue = {
        async sendBatch(m: { body: Uint8Array; contentType: string }[]) {
          if (calls.length === 0) sender!.keep([{ ...events()[0]!, id: "task:t:during" }]); // a commit meanwhile
          calls.push(sent(m));
        },
      } as unknown as Queue;
      sender = new ExportSender(sql, state.storage, queue);
      sender.keep([{ ...events()[0]!, id: "task:t:before" }]);
      await sender.flush();
      await sender.flush();
      expect(lines(calls).map((e) => e.id)).toEqual(["task:t:before", "task:t:during"]);
    });
  });

  it("skips an event too large for a queue message (counted), and sends the ones after it", async () => {
    const { queue, calls } = recordingQueue();
    await runInDurableObject(sessionObject(), async (_obj, state) => {
      const sql = state.storage.sql;
      const sender = new ExportSender(sql, state.storage, queue);
      writeTurn(sql, 1, Date.now(), { blob: "é".repeat(70_000) }); // 140 KB of UTF-8
      writeTurn(sql, 2, Date.now());
      const dropped = exportCounters.dropped;
      await sender.flush();
      expect(exportCounters.dropped - dropped).toBe(1);
      expect(lines(calls).map((e) => e.id)).toEqual(["trace:t-2"]);
    });
  });

  it("keeps and reads nothing without a queue binding", async () => {
    await runInDurableObject(sessionObject(), async (_obj, state) => {
      writeRecord(state.storage.sql, chain(1)[0]!);
      new ExportSender(state.storage.sql, state.storage, undefined).keep(events(), true);
      expect(state.storage.sql.exec(
        "SELECT name FROM sqlite_master WHERE name IN ('export_outbox', 'export_cursor')").toArray()).toEqual([]);
      expect(await state.storage.getAlarm()).toBeNull();
    });
  });
});

describe("eventLine", () => {
  it("is JSON.stringify of the whole event, and counts its UTF-8 bytes", () => {
    for (const event of [...events(), traceEvent({ tenant: "t—é", session: 's"\\', workflow: "w" }, 2,
      { trace_id: "x", note: "naïve 🙂" })]) {
      const { data, ...head } = event;
      const line = eventLine(head, JSON.stringify(data));
      expect(line.text).toBe(JSON.stringify(event));
      expect(line.bytes).toBe(new TextEncoder().encode(line.text).length);
    }
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

  it("writes the same objects from deflated messages, as the Queue hands bytes back (an ArrayBuffer)", async () => {
    const a = memoryBucket();
    const b = memoryBucket();
    await writeBatch(batchOf(bundle(events()).map((m) => m.text)).batch, { EXPORT_BUCKET: a.bucket });
    const packed = bundle(events()).map((m) => packMessage(m.text));
    await writeBatch(batchOf(packed.map((bytes) => bytes.slice().buffer)).batch, { EXPORT_BUCKET: b.bucket });
    expect([...b.objects.entries()].sort()).toEqual([...a.objects.entries()].sort());
    expect(a.objects.size).toBe(3);
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
