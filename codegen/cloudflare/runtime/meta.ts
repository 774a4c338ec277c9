// Shared helper: an object's `meta` table of small key/value state (a session's summary and checkpoint turn, a
// task's sealing key), read once and then kept in memory: the object is its only writer, so the copy stays true.

export const META_SCHEMA = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

export class MetaTable {
  private cache: Map<string, string> | null = null;

  constructor(private readonly sql: SqlStorage) {}

  private table(): Map<string, string> {
    this.cache ??= new Map(this.sql.exec<{ key: string; value: string }>("SELECT key, value FROM meta")
      .toArray().map((r) => [r.key, r.value]));
    return this.cache;
  }

  get(key: string): string | null {
    return this.table().get(key) ?? null;
  }

  /** Set (or, with null, remove) keys in one statement each way. */
  set(values: Record<string, string | null>): void {
    const cache = this.table(); // loaded first, so it never misses what is written here
    const set = Object.entries(values).filter((e): e is [string, string] => e[1] !== null);
    const unset = Object.entries(values).filter(([, v]) => v === null).map(([k]) => k);
    if (set.length > 0) {
      this.sql.exec(`INSERT INTO meta (key, value) VALUES ${set.map(() => "(?, ?)").join(", ")} ` +
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value", ...set.flat());
    }
    if (unset.length > 0) {
      this.sql.exec(`DELETE FROM meta WHERE key IN (${unset.map(() => "?").join(", ")})`, ...unset);
    }
    for (const [k, v] of set) cache.set(k, v);
    for (const k of unset) cache.delete(k);
  }
}
