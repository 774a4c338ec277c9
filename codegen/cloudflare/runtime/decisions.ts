// Shared helper: an object's hash-chained decision log (the `records` table), kept by a session's object for
// its turns and by a task's object for its steps. Records are chained in memory as they are made and written
// at `flush`, together with the other rows of the same commit; each written record is queued for the export.

import { appendRecord, type ChainRecord } from "./chain";
import type { Outbox } from "./export";

export const RECORDS_SCHEMA = "CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);";

/** Whose decision a record is: a session's (`session` = its id) or a task's (`session` = the task id). */
export interface Scope {
  tenant: string;
  session: string;
  workflow: string;
}

export interface DecisionView {
  seq: number;
  action: string;
  decision: string;
  rule: string;
}

export class DecisionLog {
  /** The newest record of the chain: loaded once, then kept here (undefined: not loaded yet). */
  private last: ChainRecord | null | undefined;
  /** Records made since the last flush. A turn writes them together with its other rows, in one storage
   * commit; a tool call's decision is flushed before its request goes out. */
  private pending: ChainRecord[] = [];

  constructor(
    private readonly sql: SqlStorage,
    private readonly specHash: string,
    private readonly outbox: Outbox,
  ) {}

  private lastRecord(): ChainRecord | null {
    if (this.last === undefined) {
      const rows = this.sql.exec<{ body: string }>("SELECT body FROM records ORDER BY seq DESC LIMIT 1").toArray();
      this.last = rows[0] ? (JSON.parse(rows[0].body) as ChainRecord) : null;
    }
    return this.last;
  }

  /** Chain one decision (written at the next flush). */
  record(scope: Scope, intent: string, action: string,
    d: { decision: string; rule: string; detail?: string }): DecisionView {
    const rec = appendRecord(this.lastRecord(), {
      tenant: scope.tenant, session: scope.session, workflow: scope.workflow, intent, action,
      decision: d.decision, rule: d.rule, spec_hash: this.specHash,
      // Only when there is one: an absent key, not `undefined`, which canonicalJSON cannot encode.
      ...(d.detail !== undefined ? { detail: d.detail } : {}),
    });
    this.last = rec;
    this.pending.push(rec);
    return { seq: rec.seq, action: rec.action, decision: rec.decision, rule: rec.rule };
  }

  /** Write the pending records. Synchronous: rows written between two awaits share one commit. */
  flush(): void {
    for (const rec of this.pending) {
      this.sql.exec("INSERT INTO records (seq, body) VALUES (?, ?)", rec.seq, JSON.stringify(rec));
      this.outbox.touch(); // the export reads it from this table (export.ts ExportSender)
    }
    this.pending = [];
  }

  /** The newest written record (what a head log may be told): null for an empty chain, or while records are
   * pending (they are not committed yet; the next flush's caller anchors them). */
  written(): ChainRecord | null {
    return this.pending.length > 0 ? null : this.lastRecord();
  }

  /** The written records after `since`, oldest first. */
  since(since: number): ChainRecord[] {
    return this.sql.exec<{ body: string }>("SELECT body FROM records WHERE seq > ? ORDER BY seq", since)
      .toArray().map((r) => JSON.parse(r.body) as ChainRecord);
  }
}
