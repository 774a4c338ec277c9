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
import { deflateRawSync, inflateRawSync } from "node:zlib";
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

/** Sends and failures seen by this isolate: a failure is counted and logged, never thrown at a turn. `dropped`:
 * events too large for a queue message (128 KB), skipped so that they do not hold every later event back. */
export const exportCounters = { sent: 0, failed: 0, dropped: 0 };

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
 * turns instead of once per turn, and no turn ever waits for the queue. Measured locally (docs/runtime.md, the
 * export's cost), each send costs the isolate about 1.3 ms of CPU whatever it carries, plus its bytes: at 2 s a
 * busy session's sends cost its turns 11% more CPU, at 10 s under 5%. Ten seconds is still well inside "minutes
 * behind" for a fleet review.
 */
export const EXPORT_LINGER_MS = 10_000;
// https://developers.cloudflare.com/durable-objects/api/alarms/: a throwing alarm is retried 6 times.
const LAST_ALARM_RETRY = 6;
const OUTAGE_RETRY_MS = 60_000;
// A sendBatch carries at most 256 KB in all; the rest of it for each message's envelope.
const BATCH_BYTES = 240_000;
const ENVELOPE_BYTES = 128;
// Rows read from one table per round: a round sends at most SEND_BATCH messages anyway.
const ROWS_PER_READ = 500;

/** The object's durable outbox, for the events no table of its own keeps (task records): NDJSON messages
 * committed, not yet accepted by the queue. */
export const EXPORT_OUTBOX_SCHEMA =
  "CREATE TABLE IF NOT EXISTS export_outbox (id INTEGER PRIMARY KEY, body TEXT NOT NULL, events INTEGER NOT NULL);";
/** How far each table has been sent: the last `records.seq` and `turns.turn` the queue accepted. */
export const EXPORT_CURSOR_SCHEMA =
  "CREATE TABLE IF NOT EXISTS export_cursor (source TEXT PRIMARY KEY, last INTEGER NOT NULL);";

/** An event's line and its UTF-8 size, its data given as JSON text already: the head's escaping is
 * JSON.stringify's, and the data (a row's body, written by JSON.stringify) goes in as stored, neither parsed nor
 * serialized again. The same text as JSON.stringify of the whole event. */
export function eventLine(head: Omit<ExportEvent, "data">, data: string, dataBytes = utf8Length(data)):
  { text: string; bytes: number } {
  const open = `${JSON.stringify(head).slice(0, -1)},"data":`;
  return { text: `${open}${data}}`, bytes: utf8Length(open) + dataBytes + 1 };
}

type Source = "outbox" | "decision" | "trace";

/** One round's messages, and what to mark sent once the queue has accepted them. */
interface Round {
  messages: string[];
  events: number;
  upTo: Partial<Record<Source, number>>;
  /** The round stopped at its size limits: more may be waiting. */
  full: boolean;
  /** The round holds the whole outbox as it was after this many `keep` writes. */
  outboxAt?: number;
}

/** Messages of at most MESSAGE_BYTES, SEND_BATCH and BATCH_BYTES in all, packed from lines in order. */
class Packer {
  readonly round: Round = { messages: [], events: 0, upTo: {}, full: false };
  private lines: string[] = [];
  private size = 0;
  private total = 0;

  /** Add a whole message (an outbox row); false when the round is full. */
  message(text: string, bytes: number, events: number): boolean {
    this.close();
    if (!this.fits(bytes)) return this.stop();
    this.round.messages.push(text);
    this.round.events += events;
    this.total += bytes + ENVELOPE_BYTES;
    return true;
  }

  /** Add one line; false when the round is full. A line too large for any message is skipped (and counted). */
  line(text: string, bytes: number): boolean {
    if (bytes + 1 > MESSAGE_BYTES) {
      exportCounters.dropped += 1;
      console.error(`agentspec: export event of ${bytes} bytes skipped (a queue message holds 128 KB)`,
        text.slice(0, 160));
      return true;
    }
    if (this.lines.length > 0 && this.size + bytes + 1 > MESSAGE_BYTES) this.close();
    if (this.lines.length === 0 ? !this.fits(bytes) : this.total + bytes + 1 > BATCH_BYTES) return this.stop();
    this.lines.push(text);
    this.size += bytes + 1;
    this.total += bytes + 1 + (this.lines.length === 1 ? ENVELOPE_BYTES : 0);
    this.round.events += 1;
    return true;
  }

  private stop(): false {
    this.round.full = true;
    return false;
  }

  /** Whether a new message of `bytes` fits the round (the first always does). */
  private fits(bytes: number): boolean {
    const count = this.round.messages.length + (this.lines.length > 0 ? 1 : 0);
    return count === 0 || (count < SEND_BATCH && this.total + bytes + ENVELOPE_BYTES <= BATCH_BYTES);
  }

  close(): Round {
    if (this.lines.length > 0) this.round.messages.push(this.lines.join("\n"));
    this.lines = [];
    this.size = 0;
    return this.round;
  }
}

/**
 * The sending side of the export, one per Durable Object. Decision records and turn traces are exported from the
 * tables the object keeps them in anyway (`records`, `turns`): a turn writes nothing for the export but, now and
 * then, an alarm. The alarm (`flush`) reads what is past each table's cursor, builds each event's line around the
 * stored body (not parsed, not serialized again), sends 100 messages per `sendBatch` and moves the cursors past
 * what the queue accepted. Task records, which no table keeps whole, are written to the object's outbox table at
 * their commit instead (`keep`). A refused send throws out of the alarm, which the runtime retries with backoff:
 * nothing committed is lost to a queue outage or an eviction (at least once; an event sent twice has the same id).
 * Without a queue binding the export is off, and nothing is kept or read.
 */
export class ExportSender {
  /** An alarm is set and has not fired yet (this object is the only one that sets it). */
  private scheduled = false;
  /** `kept` counts keep's writes to `export_outbox` (its only writer); `emptyAt` is the count at which a sent
   * round held the whole outbox. Equal, the outbox is known empty without a query; a write during the send
   * makes them differ. Undefined at first: an earlier instance may have left rows. */
  private kept = 0;
  private emptyAt: number | undefined;

  /**
   * @param unfinishedTurn the turn whose trace row is written but not final yet (a checkpoint may still complete
   *   it), if any: its trace, and every later one, waits for the next alarm.
   */
  constructor(
    private readonly sql: SqlStorage,
    private readonly storage: DurableObjectStorage,
    private readonly queue: Queue | undefined,
    private readonly unfinishedTurn: () => number | null = () => null,
  ) {
    if (queue === undefined) return;
    sql.exec(EXPORT_OUTBOX_SCHEMA + EXPORT_CURSOR_SCHEMA);
    // What an earlier instance committed but did not send (its alarm gave up, or it was evicted first).
    if (this.pending()) this.schedule();
  }

  /** Keep a commit's task events for the next send, and set the alarm for its records and trace. Synchronous:
   * the rows join the caller's commit. `touched`: the commit wrote rows to `records` or `turns`. */
  keep(events: readonly ExportEvent[], touched = false): void {
    if (this.queue === undefined) return;
    for (const m of bundle(events)) {
      this.sql.exec("INSERT INTO export_outbox (body, events) VALUES (?, ?)", m.text, m.count);
      this.kept += 1;
    }
    if (touched || events.length > 0) this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    void this.storage.setAlarm(Date.now() + EXPORT_LINGER_MS);
  }

  /** Each table's cursor: read once, then kept in step with what `flush` writes (this object is its only writer). */
  private cursors: Partial<Record<Source, number>> | undefined;

  private cursor(source: Source): number {
    this.cursors ??= Object.fromEntries(this.sql.exec<{ source: Source; last: number }>(
      "SELECT source, last FROM export_cursor").toArray().map((r) => [r.source, r.last]));
    return this.cursors[source] ?? 0;
  }

  /** A trace may be read up to this turn (exclusive). */
  private traceLimit(): number {
    return this.unfinishedTurn() ?? Number.MAX_SAFE_INTEGER;
  }

  /** Whether anything committed is not sent yet. */
  private pending(): boolean {
    const one = (query: string, ...bindings: number[]) => this.sql.exec(query, ...bindings).toArray().length > 0;
    return one("SELECT 1 FROM export_outbox LIMIT 1")
      || one("SELECT 1 FROM records WHERE seq > ? LIMIT 1", this.cursor("decision"))
      || one("SELECT 1 FROM turns WHERE turn > ? AND turn < ? LIMIT 1", this.cursor("trace"), this.traceLimit());
  }

  /** The next round: outbox messages first, then decision records, then traces, each oldest first. */
  private collect(): Round {
    const pack = new Packer();
    const { upTo } = pack.round;
    const outbox = this.emptyAt !== this.kept ? this.sql.exec<{ id: number; body: string; events: number; bytes: number }>(
      "SELECT id, body, events, length(CAST(body AS BLOB)) AS bytes FROM export_outbox ORDER BY id LIMIT ?",
      SEND_BATCH).toArray() : [];
    for (const r of outbox) {
      if (!pack.message(r.body, r.bytes, r.events)) return pack.close();
      upTo.outbox = r.id;
    }
    if (outbox.length === SEND_BATCH) pack.round.full = true; // more may be waiting
    else pack.round.outboxAt = this.kept; // all of it is in this round
    // The head fields are read by SQLite from the stored JSON; the body goes into the line as it is.
    const records = this.sql.exec<{ seq: number; body: string; bytes: number; ts: string; workflow: string;
      tenant: string; session: string }>(
      `SELECT seq, body, length(CAST(body AS BLOB)) AS bytes, json_extract(body, '$.ts') AS ts,
        json_extract(body, '$.workflow') AS workflow, json_extract(body, '$.tenant') AS tenant,
        json_extract(body, '$.session') AS session
       FROM records WHERE seq > ? ORDER BY seq LIMIT ?`, this.cursor("decision"), ROWS_PER_READ).toArray();
    if (records.length === ROWS_PER_READ) pack.round.full = true;
    for (const r of records) {
      const line = eventLine({ schema: EXPORT_SCHEMA, kind: "decision", id: decisionId(r.tenant, r.session, r.seq),
        ts: r.ts, workflow: r.workflow, tenant: r.tenant, session: r.session, seq: r.seq }, r.body, r.bytes);
      if (!pack.line(line.text, line.bytes)) return pack.close();
      upTo.decision = r.seq;
    }
    const turns = this.sql.exec<{ turn: number; at: number; body: string; bytes: number; trace_id: string;
      workflow: string; tenant: string; session: string }>(
      `SELECT turn, at, body, length(CAST(body AS BLOB)) AS bytes, json_extract(body, '$.trace_id') AS trace_id,
        json_extract(body, '$.workflow') AS workflow, json_extract(body, '$.tenant') AS tenant,
        json_extract(body, '$."gen_ai.conversation.id"') AS session
       FROM turns WHERE turn > ? AND turn < ? ORDER BY turn LIMIT ?`,
      this.cursor("trace"), this.traceLimit(), ROWS_PER_READ).toArray();
    if (turns.length === ROWS_PER_READ) pack.round.full = true;
    for (const r of turns) {
      const line = eventLine({ schema: EXPORT_SCHEMA, kind: "trace", id: `trace:${r.trace_id}`,
        ts: new Date(r.at).toISOString(), workflow: r.workflow, tenant: r.tenant, session: r.session, seq: r.turn },
      r.body, r.bytes);
      if (!pack.line(line.text, line.bytes)) return pack.close();
      upTo.trace = r.turn;
    }
    return pack.close();
  }

  /** The alarm: send what is committed and not sent, oldest first. Throws (and keeps the rest) when the queue
   * refuses, so the runtime retries the alarm (from 2 s, doubling, 6 times); the last retry sets a slow alarm of
   * its own instead, so an outage longer than the retries still loses nothing. */
  async flush(retryCount = 0): Promise<void> {
    this.scheduled = false; // a commit from here on sets the next alarm
    const queue = this.queue;
    if (queue === undefined) return;
    for (;;) {
      const round = this.collect();
      if (round.messages.length === 0) return;
      try {
        await queue.sendBatch(round.messages.map((text) => ({ body: packMessage(text), contentType: "bytes" as const })));
      } catch (error) {
        exportCounters.failed += round.events;
        console.error("agentspec: export send failed (retried)", error instanceof Error ? error.message : String(error));
        if (retryCount < LAST_ALARM_RETRY) throw error;
        this.scheduled = true;
        await this.storage.setAlarm(Date.now() + OUTAGE_RETRY_MS);
        return;
      }
      exportCounters.sent += round.events;
      const { outbox, decision, trace } = round.upTo;
      if (outbox !== undefined) this.sql.exec("DELETE FROM export_outbox WHERE id <= ?", outbox);
      if (round.outboxAt !== undefined) this.emptyAt = round.outboxAt;
      for (const [source, last] of [["decision", decision], ["trace", trace]] as const) {
        if (last === undefined) continue;
        this.sql.exec("INSERT INTO export_cursor (source, last) VALUES (?, ?) "
          + "ON CONFLICT (source) DO UPDATE SET last = excluded.last", source, last);
        this.cursors![source] = last;
      }
      if (!round.full) return; // everything was read; what commits from here sets the next alarm
    }
  }
}

/** What the consumer needs of an event: its partition and its id. */
export type ExportHead = Pick<ExportEvent, "kind" | "id" | "ts" | "workflow">;

/**
 * A message as the queue carries it: the NDJSON text, deflated. The queue's copy of a message is paid for in the
 * sending isolate by the byte, and trace lines share most of their keys: one trace deflates to about 40% of its
 * text, a message of five to about 16%. Level 1, the cheapest, is within 2 points of the default level there.
 * Objects in R2 stay plain NDJSON.
 */
export function packMessage(text: string): Uint8Array {
  return new Uint8Array(deflateRawSync(text, { level: 1 }));
}

const UTF8 = new TextDecoder();

/** A message's NDJSON text: deflated bytes (this version), or the text itself (messages sent before). */
export function messageText(body: ArrayBuffer | ArrayBufferView | string): string {
  return typeof body === "string" ? body : UTF8.decode(inflateRawSync(body));
}

/** The events of one queue message: deflated or plain NDJSON, or one event object (messages sent before). */
export function messageEvents(body: unknown): { event: ExportHead; line: string }[] {
  if (typeof body === "string" || body instanceof ArrayBuffer || ArrayBuffer.isView(body)) {
    return messageText(body).split("\n").filter((line) => line !== "").map((line) => ({ event: lineHead(line), line }));
  }
  return [{ event: body as ExportEvent, line: JSON.stringify(body) }];
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
 * into the object's ExportSender. Task events are held here; a decision record or a trace only marks the outbox
 * touched (the sender reads them from their tables). */
export class Outbox {
  private events: ExportEvent[] = [];
  private touched = false;

  push(event: ExportEvent): void {
    this.events.push(event);
  }

  /** A row was written to `records` or `turns`. */
  touch(): void {
    this.touched = true;
  }

  /** Everything queued so far, and the outbox emptied. */
  drain(): { events: ExportEvent[]; touched: boolean } {
    const out = { events: this.events, touched: this.touched };
    this.events = [];
    this.touched = false;
    return out;
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
