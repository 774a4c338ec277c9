// Role: a tenant's task registry (the object named taskRegistryName(tenant); object.ts routes its RPCs here).
// Which task ids are the tenant's own (so task ids never cross tenants), the clients' Idempotency-Keys that
// created them, and each task's step records, which it also hands to the fleet export.

import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import { taskEvent, type Outbox } from "./export";
import type { MetaTable } from "./meta";

const UTF8 = new TextEncoder();
/** Fingerprints made under the registry's key start with this; older ones are a plain sha256 of the body. */
const KEYED = "hmac-sha256:";

export const REGISTRY_SCHEMA = `CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, workflow TEXT NOT NULL,
    created TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS task_steps (task TEXT NOT NULL, step TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (task, step));
  CREATE TABLE IF NOT EXISTS task_keys (key TEXT PRIMARY KEY, task TEXT NOT NULL, fingerprint TEXT NOT NULL);`;

/** What the registry needs of its object. */
export interface RegistryHost {
  readonly sql: SqlStorage;
  readonly meta: MetaTable;
  readonly outbox: Outbox;
  /** Send what is in the outbox to the export, after the commit. */
  exportOutbox(): void;
}

export class TaskRegistry {
  constructor(private readonly host: RegistryHost) {}

  registerTask(id: string, workflow: string): void {
    this.host.sql.exec("INSERT OR IGNORE INTO tasks (id, workflow, created) VALUES (?, ?, ?)", id, workflow,
      new Date().toISOString());
  }

  /**
   * The fingerprint of a task body: HMAC-SHA256 under this registry's own random key (made on first use, kept in
   * its meta table, never sent anywhere), so the stored value is no plain hash of params that may hold PII: it
   * cannot be matched against guessed values without the key, nor compared across tenants. Synchronous (noble),
   * so a claim stays one synchronous step.
   */
  private fingerprint(body: string): string {
    let key = this.host.meta.get("fingerprint_key");
    if (key === null) {
      key = bytesToHex(crypto.getRandomValues(new Uint8Array(32)));
      this.host.meta.set({ fingerprint_key: key });
    }
    return KEYED + bytesToHex(hmac(sha256, hexToBytes(key), UTF8.encode(body)));
  }

  /**
   * Claim a client's Idempotency-Key for a task (and register the task) in one synchronous step, so two
   * concurrent requests with one key get one task. `body` is the request's canonical `{workflow, params}`; only
   * its fingerprint is stored. Answers the task the key names, whether `body` is the one the key was first used
   * with (`same`), and `fresh` when this call claimed it.
   */
  claimTaskKey(key: string, id: string, workflow: string, body: string):
    { task: string; same: boolean; fresh: boolean } {
    const fingerprint = this.fingerprint(body);
    const held = this.host.sql.exec<{ task: string; fingerprint: string }>(
      "SELECT task, fingerprint FROM task_keys WHERE key = ?", key).toArray()[0];
    if (held) {
      // A key claimed before fingerprints were keyed holds sha256(body): still compared, as it was written.
      const same = held.fingerprint.startsWith(KEYED)
        ? held.fingerprint === fingerprint
        : held.fingerprint === bytesToHex(sha256(UTF8.encode(body)));
      return { task: held.task, same, fresh: false };
    }
    this.host.sql.exec("INSERT INTO task_keys (key, task, fingerprint) VALUES (?, ?, ?)", key, id, fingerprint);
    this.registerTask(id, workflow);
    return { task: id, same: true, fresh: true };
  }

  ownsTask(id: string): boolean {
    return this.host.sql.exec("SELECT id FROM tasks WHERE id = ?", id).toArray().length > 0;
  }

  recordStep(task: string, step: string, body: Record<string, unknown>, tenant = ""): void {
    this.host.sql.exec("INSERT INTO task_steps (task, step, body) VALUES (?, ?, ?) " +
      "ON CONFLICT(task, step) DO UPDATE SET body = excluded.body", task, step, JSON.stringify(body));
    this.exportTask(tenant, task, step, body);
  }

  /** A task step's record (or, with step null, its summary) to the fleet export. */
  exportTask(tenant: string, task: string, step: string | null, body: Record<string, unknown>): void {
    const workflow = this.host.sql.exec<{ workflow: string }>("SELECT workflow FROM tasks WHERE id = ?", task)
      .toArray()[0]?.workflow ?? "";
    this.host.outbox.push(taskEvent({ tenant, task, workflow }, step, String(body["status"] ?? ""),
      Number(body["attempts"] ?? 0), body));
    this.host.exportOutbox();
  }

  taskSteps(task: string): unknown[] {
    return this.host.sql.exec<{ body: string }>("SELECT body FROM task_steps WHERE task = ? ORDER BY rowid", task)
      .toArray().map((r) => JSON.parse(r.body) as unknown);
  }
}
