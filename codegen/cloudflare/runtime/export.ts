// The fleet export: finished turns' traces, task step and summary records and decision records in, as events
// sent to a Cloudflare Queue off the hot path; out of the Queue's batching consumer, NDJSON objects in R2 under
// a date- and workflow-partitioned (Hive-style) layout that DuckDB, Spark or any engine reads in place:
//   traces/dt=2026-12-01/workflow=refunds/part-<batch hash>.ndjson
//   decisions/dt=…/workflow=…/part-….ndjson      tasks/dt=…/workflow=…/part-….ndjson
// Delivery is at least once (a batch whose R2 write fails is retried whole); every event has a stable id
// (`trace:<trace id>`, `decision:<tenant>:<session>:<seq>`, `task:<task>:<step>:<status>:<attempt>`), so analysis counts
// each once, and a redelivered batch writes the same object key again (the part name hashes its event ids).
// https://developers.cloudflare.com/queues/configuration/batching-retries/
// https://developers.cloudflare.com/r2/api/workers/workers-api-reference/

import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import type { ChainRecord } from "./chain";
import { HttpError } from "./http";

/** The export's line format; a reader refuses any other. */
export const EXPORT_SCHEMA = 1;

export type ExportKind = "trace" | "decision" | "task";

/** The R2 prefix of each kind. */
export const EXPORT_PREFIX: Record<ExportKind, string> = { trace: "traces", decision: "decisions", task: "tasks" };

/** One line of an export file. `workflow` and the date are the object's partition, and also kept here. */
export interface ExportEvent {
  schema: typeof EXPORT_SCHEMA;
  kind: ExportKind;
  id: string;
  /** ISO-8601; its UTC date is the `dt` partition. */
  ts: string;
  workflow: string;
  tenant: string;
  /** The session id, or a task's id for a task's records. */
  session: string;
  /** Turn number, decision seq, or a task step's attempt. */
  seq: number;
  data: Record<string, unknown>;
}

/** The bindings the export uses; both optional, and the export is off without them. */
export interface ExportEnv {
  EXPORT_QUEUE?: Queue;
  EXPORT_BUCKET?: R2Bucket;
}

/** Sends and failures seen by this isolate: a failure is counted and logged, never thrown at a turn. */
export const exportCounters = { sent: 0, failed: 0 };

// A queue's sendBatch takes at most 100 messages, a message at most 128 KB
// (https://developers.cloudflare.com/queues/platform/limits/).
const SEND_BATCH = 100;
const MESSAGE_BYTES = 120 * 1024; // UTF-8 bytes of the text; the rest of 128 KB for the message's envelope
const ASCII = /^[\x00-\x7f]*$/;
const encoder = new TextEncoder();

function utf8Length(text: string): number {
  return ASCII.test(text) ? text.length : encoder.encode(text).length;
}

/**
 * A turn's events as few queue messages as fit: each message is NDJSON text (one line per event, serialized once
 * here and written as is by the consumer). An event alone above the limit is still sent alone: the queue refuses
 * it, and that is counted as a failed send. One message per turn instead of one per event is what keeps the export
 * cheap: the queue's costs (and a consumer batch's 100-message cap) are per message, not per byte.
 */
export function bundle(events: readonly ExportEvent[]): { text: string; count: number }[] {
  const out: { text: string; count: number }[] = [];
  let lines: string[] = [];
  let size = 0;
  for (const event of events) {
    const line = JSON.stringify(event);
    const bytes = utf8Length(line);
    if (lines.length > 0 && size + bytes + 1 > MESSAGE_BYTES) {
      out.push({ text: lines.join("\n"), count: lines.length });
      lines = [];
      size = 0;
    }
    lines.push(line);
    size += bytes + 1;
  }
  if (lines.length > 0) out.push({ text: lines.join("\n"), count: lines.length });
  return out;
}

/**
 * How long an object gathers what it commits before one send to the queue. The queue's cost is per send (and
 * per 64 KB), not per event: a session answering a turn every few hundred milliseconds sends once for several
 * turns instead of once per turn, and no turn ever waits for the queue.
 */
export const EXPORT_LINGER_MS = 500;
// https://developers.cloudflare.com/durable-objects/api/alarms/: a throwing alarm is retried 6 times.
const LAST_ALARM_RETRY = 6;
const OUTAGE_RETRY_MS = 60_000;

/** The object's durable outbox: NDJSON messages committed, not yet accepted by the queue. */
export const EXPORT_OUTBOX_SCHEMA =
  "CREATE TABLE IF NOT EXISTS export_outbox (id INTEGER PRIMARY KEY, body TEXT NOT NULL, events INTEGER NOT NULL);";

/**
 * The sending side of the export, one per Durable Object. `keep` writes a commit's events to the object's own
 * SQLite (as bundled NDJSON messages: one row per turn, usually) and sets an alarm EXPORT_LINGER_MS away if none
 * is set; the alarm (`flush`) sends every kept message, 100 per `sendBatch`, and deletes what the queue accepted.
 * A refused send throws out of the alarm, which the runtime retries with backoff: nothing committed is lost to a
 * queue outage or an eviction (at least once; an event sent twice has the same id). Without a queue binding the
 * export is off and nothing is kept.
 */
export class ExportSender {
  /** An alarm is set and has not fired yet (this object is the only one that sets it). */
  private scheduled = false;

  constructor(
    private readonly sql: SqlStorage,
    private readonly storage: DurableObjectStorage,
    private readonly queue: Queue | undefined,
  ) {
    if (queue === undefined) return;
    sql.exec(EXPORT_OUTBOX_SCHEMA);
    // Messages an earlier instance kept but did not send (its alarm gave up, or it was evicted first).
    if (sql.exec("SELECT id FROM export_outbox LIMIT 1").toArray().length > 0) this.schedule();
  }

  /** Keep a commit's events for the next send. Synchronous: the rows join the caller's commit. */
  keep(events: readonly ExportEvent[]): void {
    if (this.queue === undefined || events.length === 0) return;
    for (const m of bundle(events)) {
      this.sql.exec("INSERT INTO export_outbox (body, events) VALUES (?, ?)", m.text, m.count);
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    void this.storage.setAlarm(Date.now() + EXPORT_LINGER_MS);
  }

  /** The alarm: send what is kept, oldest first. Throws (and keeps the rest) when the queue refuses, so the
   * runtime retries the alarm (from 2 s, doubling, 6 times); the last retry sets a slow alarm of its own instead,
   * so an outage longer than the retries still loses nothing. */
  async flush(retryCount = 0): Promise<void> {
    this.scheduled = false; // a commit from here on sets the next alarm
    const queue = this.queue;
    if (queue === undefined) return;
    let last = 0;
    for (;;) {
      const rows = this.sql.exec<{ id: number; body: string; events: number }>(
        "SELECT id, body, events FROM export_outbox WHERE id > ? ORDER BY id LIMIT ?", last, SEND_BATCH).toArray();
      if (rows.length === 0) return;
      const count = rows.reduce((n, r) => n + r.events, 0);
      try {
        await queue.sendBatch(rows.map((r) => ({ body: r.body, contentType: "text" as const })));
      } catch (error) {
        exportCounters.failed += count;
        console.error("agentspec: export send failed (retried)", error instanceof Error ? error.message : String(error));
        if (retryCount < LAST_ALARM_RETRY) throw error;
        this.scheduled = true;
        await this.storage.setAlarm(Date.now() + OUTAGE_RETRY_MS);
        return;
      }
      exportCounters.sent += count;
      last = rows[rows.length - 1]!.id;
      this.sql.exec("DELETE FROM export_outbox WHERE id <= ?", last);
    }
  }
}

/** What the consumer needs of an event: its partition and its id. */
export type ExportHead = Pick<ExportEvent, "kind" | "id" | "ts" | "workflow">;

/** The events of one queue message: NDJSON text (this version), or one event object (messages sent before). */
export function messageEvents(body: unknown): { event: ExportHead; line: string }[] {
  if (typeof body !== "string") return [{ event: body as ExportEvent, line: JSON.stringify(body) }];
  return body.split("\n").filter((line) => line !== "").map((line) => ({ event: lineHead(line), line }));
}

const HEAD_END = ',"tenant":';

/**
 * An NDJSON line's head, parsed without its body. Locally the consumer runs in the same isolate as the turns, and
 * parsing every trace whole, a batch at a time, stalled the turns waiting behind it (the runtime benchmark's p99).
 * Events are built with schema, kind, id, ts and workflow before tenant (the literals below), and inside JSON text
 * every `"` is escaped, so the first `,"tenant":` in a line ends those fields; a line without it is parsed whole.
 */
export function lineHead(line: string): ExportHead {
  const end = line.indexOf(HEAD_END);
  return JSON.parse(end === -1 ? line : `${line.slice(0, end)}}`) as ExportHead;
}

/** A decision's export id. The tenant is part of it: two tenants may use the same session id, and the review
 * counts each id once. Each part is percent-encoded, so a `:` inside a tenant or session id cannot make two
 * records share an id. */
export function decisionId(tenant: string, session: string, seq: number): string {
  return `decision:${encodeURIComponent(tenant)}:${encodeURIComponent(session)}:${seq}`;
}

export function decisionEvent(rec: ChainRecord): ExportEvent {
  return { schema: EXPORT_SCHEMA, kind: "decision", id: decisionId(rec.tenant, rec.session, rec.seq), ts: rec.ts,
    workflow: rec.workflow, tenant: rec.tenant, session: rec.session, seq: rec.seq, data: { ...rec } };
}

export function traceEvent(scope: { tenant: string; session: string; workflow: string }, turn: number,
  trace: Record<string, unknown> & { trace_id: string }): ExportEvent {
  return { schema: EXPORT_SCHEMA, kind: "trace", id: `trace:${trace.trace_id}`, ts: new Date().toISOString(),
    workflow: scope.workflow, tenant: scope.tenant, session: scope.session, seq: turn, data: trace };
}

/** A task step's record, or (step null) the task's summary when it finished. */
export function taskEvent(scope: { tenant: string; task: string; workflow: string }, step: string | null,
  status: string, attempt: number, data: Record<string, unknown>): ExportEvent {
  const id = step === null ? `task:${scope.task}:summary` : `task:${scope.task}:${step}:${status}:${attempt}`;
  return { schema: EXPORT_SCHEMA, kind: "task", id, ts: new Date().toISOString(), workflow: scope.workflow,
    tenant: scope.tenant, session: scope.task, seq: attempt,
    data: { task: scope.task, step, status, attempt, ...data } };
}

/** What an object committed and has not yet handed to the export: filled at each commit, drained after it
 * into the object's ExportSender. */
export class Outbox {
  private events: ExportEvent[] = [];

  push(event: ExportEvent): void {
    this.events.push(event);
  }

  /** Everything queued so far, and the outbox emptied. */
  drain(): ExportEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }
}

/** The object key an event group goes to; the same events always give the same key. */
export function partKey(kind: ExportKind, dt: string, workflow: string, ids: readonly string[]): string {
  const digest = bytesToHex(sha256(utf8ToBytes([...ids].sort().join("\n")))).slice(0, 24);
  return `${EXPORT_PREFIX[kind]}/dt=${dt}/workflow=${encodeURIComponent(workflow)}/part-${digest}.ndjson`;
}

/** Group a batch's events by object: kind, UTC date and workflow. */
export function groupEvents(events: readonly ExportEvent[]): Map<string, ExportEvent[]> {
  const lines = groupLines(events.map((event) => ({ event, line: "" })));
  return new Map([...lines].map(([key, group]) => [key, group.map((g) => g.event)]));
}

function groupLines<T extends { event: ExportHead }>(items: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, { kind: ExportKind; dt: string; workflow: string; items: T[] }>();
  for (const item of items) {
    const { event } = item;
    const dt = event.ts.slice(0, 10);
    const group = `${event.kind}\u0000${dt}\u0000${event.workflow}`;
    let entry = groups.get(group);
    if (entry === undefined) {
      entry = { kind: event.kind, dt, workflow: event.workflow, items: [] };
      groups.set(group, entry);
    }
    entry.items.push(item);
  }
  return new Map([...groups.values()].map((g) => [partKey(g.kind, g.dt, g.workflow, g.items.map((i) => i.event.id)),
    g.items]));
}

/**
 * The queue consumer: one R2 object per (kind, date, workflow) of the batch, then every message acked. A failed
 * write throws, and the Queue delivers the whole batch again (at least once; the rewrite has the same key).
 * The objects are written concurrently: a batch's writes are independent, and its retry rewrites them all.
 */
export async function writeBatch(batch: MessageBatch<unknown>, env: ExportEnv): Promise<void> {
  const bucket = env.EXPORT_BUCKET;
  if (bucket === undefined) throw new Error("binding `EXPORT_BUCKET` is missing");
  const items = batch.messages.flatMap((m) => messageEvents(m.body));
  await Promise.all([...groupLines(items)].map(([key, group]) =>
    bucket.put(key, group.map((g) => g.line).join("\n") + "\n",
      { httpMetadata: { contentType: "application/x-ndjson" } })));
  batch.ackAll();
}

/** An export object as `GET /v1/exports` lists it. */
export interface ExportObject {
  key: string;
  size: number;
  etag: string;
  uploaded: string;
}

/**
 * `GET /v1/exports?since=ISO` (admin): the export objects uploaded at or after `since`, oldest first; with
 * `key=K`, that object's NDJSON. A client keeps the newest `uploaded` it has seen and asks from there.
 */
export async function exportsResponse(url: URL, env: ExportEnv): Promise<Response> {
  const bucket = env.EXPORT_BUCKET;
  if (bucket === undefined) throw new HttpError(404, "export_disabled", "binding `EXPORT_BUCKET` is missing");
  const key = url.searchParams.get("key");
  if (key !== null) {
    const object = /^(traces|decisions|tasks)\//.test(key) ? await bucket.get(key) : null;
    if (object === null) throw new HttpError(404, "unknown_export", `export object \`${key}\` not found`);
    return new Response(object.body, { headers: { "content-type": "application/x-ndjson", etag: object.httpEtag } });
  }
  const sinceText = url.searchParams.get("since");
  const since = sinceText === null || sinceText === "" ? 0 : Date.parse(sinceText);
  if (Number.isNaN(since)) throw new HttpError(400, "invalid_since", "`since` is an ISO-8601 time");
  const objects: ExportObject[] = [];
  for (const prefix of Object.values(EXPORT_PREFIX)) {
    let cursor: string | undefined;
    do {
      const page = await bucket.list({ prefix: `${prefix}/`, ...(cursor ? { cursor } : {}) });
      for (const o of page.objects) {
        if (o.uploaded.getTime() >= since) {
          objects.push({ key: o.key, size: o.size, etag: o.etag, uploaded: o.uploaded.toISOString() });
        }
      }
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor !== undefined);
  }
  objects.sort((a, b) => a.uploaded.localeCompare(b.uploaded) || a.key.localeCompare(b.key));
  return Response.json({ schema: EXPORT_SCHEMA, objects, counters: { ...exportCounters } });
}
