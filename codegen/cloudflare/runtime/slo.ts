// Role: a workflow's SLO monitor (the object named sloMonitorName(workflow); object.ts routes `observe` to
// `SloMonitor` at the end of this file). Rolling service-level indicators per workflow, and the alerts they
// fire: one turn's (or finished task's) sample in, the alerts it triggered out. Every session and task of the
// workflow feeds the same monitor object, so they share one window.
//
// The window: the last WINDOW_SIZE (100) samples of the workflow, by arrival order, kept in the monitor's
// SQLite (`slo_samples`); older rows are deleted as new ones arrive. A count window, not a time window: a
// quiet workflow keeps judging its last 100 turns however old they are, and a busy one reacts within turns.
//
// The indicators over that window (each judged only once the window holds MIN_SAMPLES samples):
//   latency         nearest-rank percentile (the declared pNN) of every sample's latency_ms (failed turns too)
//   ttft            the same over ttft_ms of the ok samples only (a failed turn has no first token), once
//                   MIN_SAMPLES of them are in the window
//   success         % of samples with ok
//   denied          % of all decisions in the window that were denials (sum denied / sum decisions)
//   cost            mean cost_usd per task over the samples that have a price (unpriced tiers: not judged)
//   cache hit       token-weighted: sum cached_tokens / sum input_tokens, in %
// Ceilings (latency, ttft, denied, cost) are crossed when the value is above the bound, floors (success,
// cache hit) when it is below; a value equal to its bound is within (the table does not keep `<` vs `<=`).
//
// The cache-hit drop (`alert drop Q%`): the window is split into its most recent DROP_RECENT (10) samples,
// the current rate, and every earlier sample still in the window, the baseline rate (both token-weighted).
// It is judged once the earlier part holds at least DROP_MIN_BASELINE (10) samples and the baseline is above
// zero, and crossed when the current rate has fallen by Q% *of the baseline* (relative: baseline 90%,
// `drop 20%` fires below 72%). A drop that persists becomes the baseline as the window rolls on, so the alert
// re-arms by itself once the lower rate is the new normal (the `cache hit >=` floor still guards the level).
//
// Firing: an alert fires when its indicator goes from within (or never judged) to crossed, and is re-armed
// when a later judgement finds it within again; while it stays crossed nothing is re-sent. The state lives in
// `slo_alerts` and is updated before the webhook is called, so concurrent turns never fire one alert twice.
// Each firing is POSTed as JSON to the workflow's `webhook` through guardedFetch restricted to the workflow's
// outbound allowlist (local runs reach the loopback stub through TOOL_ORIGINS), and returned as an Alert
// (`delivered` says whether the webhook answered 2xx), which the session records as `alert:<sli>`.

import { guardedFetch, type FetchLike } from "./guard";
import type { Policy, SloTable } from "./policy";
import { toolFetcher } from "./origins";

/** What one turn, or one finished task, contributes to its workflow's SLIs. */
export interface SliSample {
  ok: boolean;
  latency_ms: number;
  ttft_ms: number;
  cost_usd: number | null;
  input_tokens: number;
  cached_tokens: number;
  denied: number;
  decisions: number;
}

/**
 * How many of `decisions` are policy denials, the `denied` SLI's numerator: a tool call the policy refused or the
 * outbound guard blocked. A model outage is recorded as a `deny` too (`model.unavailable`), but it is no policy
 * decision: the `success` SLI counts it.
 */
export function policyDenials(decisions: readonly { decision: string; rule: string }[]): number {
  return decisions.filter((d) => d.decision === "deny" && d.rule !== "model.unavailable").length;
}

/** An SLO crossed: which indicator, its value and the bound, and whether the webhook took it. */
export interface Alert {
  sli: string;
  value: number;
  bound: number;
  delivered: boolean;
}

/** How many samples the window keeps. */
export const WINDOW_SIZE = 100;
/** Samples needed before any level SLO (latency, ttft, success, denied, cost, cache hit) is judged. */
export const MIN_SAMPLES = 5;
/** The cache-hit drop compares the last DROP_RECENT samples ... */
export const DROP_RECENT = 10;
/** ... with the earlier ones, once there are at least this many of them. */
export const DROP_MIN_BASELINE = 10;
/** How long the webhook may take before the alert counts as undelivered. */
export const WEBHOOK_TIMEOUT_MS = 3000;

/** The indicators, as named in alerts, decision records (`alert:<sli>`) and the webhook payload. */
export type SliName = "latency" | "ttft" | "success" | "denied" | "cost" | "cache_hit" | "cache_hit_drop";

/**
 * The workflow's `slo` table with only well-typed values kept. loadPolicy has already held the tables to the
 * schema, so for a compiled project this copies; a hand-made table (a test's) loses what it got wrong.
 */
export function sloTable(raw: object | null | undefined): SloTable {
  const out: SloTable = {};
  if (!raw) return out;
  const table = raw as Readonly<Record<string, unknown>>;
  const num = (k: string): number | undefined => {
    const v = table[k];
    return typeof v === "number" && Number.isFinite(v) ? v : undefined;
  };
  const str = (k: string): string | undefined => {
    const v = table[k];
    return typeof v === "string" ? v : undefined;
  };
  const set = <K extends keyof SloTable>(k: K, v: SloTable[K] | undefined): void => {
    if (v !== undefined) out[k] = v;
  };
  set("latency_percentile", str("latency_percentile"));
  set("latency_ms", num("latency_ms"));
  set("ttft_percentile", str("ttft_percentile"));
  set("ttft_ms", num("ttft_ms"));
  set("success_pct", num("success_pct"));
  set("cost_usd", num("cost_usd"));
  set("cache_hit_pct", num("cache_hit_pct"));
  set("cache_drop_pct", num("cache_drop_pct"));
  set("denied_pct", num("denied_pct"));
  set("webhook", str("webhook"));
  return out;
}

// ── window arithmetic (pure) ───────────────────────────────────────────────

/** `p95` -> 95; null when it is not a percentile in (0, 100]. */
export function parsePercentile(word: string | undefined): number | null {
  const m = /^p(\d+(?:\.\d+)?)$/i.exec(word ?? "");
  if (!m) return null;
  const p = Number(m[1]);
  return p > 0 && p <= 100 ? p : null;
}

/** Nearest-rank percentile: the smallest value with at least p% of the values at or below it. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/** Token-weighted cache-hit rate in %, or null when the samples carry no input tokens. */
export function cacheHitRate(samples: readonly SliSample[]): number | null {
  let input = 0;
  let cached = 0;
  for (const s of samples) {
    input += Math.max(0, s.input_tokens);
    cached += Math.max(0, Math.min(s.cached_tokens, s.input_tokens));
  }
  return input > 0 ? (cached / input) * 100 : null;
}

/** Baseline and current cache-hit rates for the drop alert, or null while it cannot be judged. */
export function cacheDrop(window: readonly SliSample[]): { baseline: number; current: number; drop_pct: number } | null {
  const earlier = window.slice(0, Math.max(0, window.length - DROP_RECENT));
  if (earlier.length < DROP_MIN_BASELINE) return null;
  const baseline = cacheHitRate(earlier);
  const current = cacheHitRate(window.slice(earlier.length));
  if (baseline === null || current === null || baseline <= 0) return null;
  return { baseline, current, drop_pct: Math.max(0, ((baseline - current) / baseline) * 100) };
}

/** One declared SLO judged over the window: its value against its bound, or null when not judgeable yet. */
export interface Judgement {
  sli: SliName;
  value: number;
  bound: number;
  crossed: boolean;
  unit: "ms" | "%" | "usd";
  detail?: Record<string, number | string>;
}

/** Judge every SLO the table declares over `window` (oldest first). Undeclared or unjudgeable SLOs are absent. */
export function judge(window: readonly SliSample[], slo: SloTable): Judgement[] {
  const out: Judgement[] = [];
  const n = window.length;
  const ceiling = (sli: SliName, value: number | null, bound: number | undefined, unit: Judgement["unit"],
    detail?: Record<string, number | string>): void => {
    if (value === null || bound === undefined) return;
    out.push({ sli, value, bound, crossed: value > bound, unit, ...(detail ? { detail } : {}) });
  };
  const floor = (sli: SliName, value: number | null, bound: number | undefined, detail?: Record<string, number | string>): void => {
    if (value === null || bound === undefined) return;
    out.push({ sli, value, bound, crossed: value < bound, unit: "%", ...(detail ? { detail } : {}) });
  };
  if (n >= MIN_SAMPLES) {
    const lp = parsePercentile(slo.latency_percentile);
    if (lp !== null) ceiling("latency", percentile(window.map((s) => s.latency_ms), lp), slo.latency_ms, "ms",
      { percentile: `p${lp}` });
    const tp = parsePercentile(slo.ttft_percentile);
    const answered = window.filter((s) => s.ok);
    if (tp !== null && answered.length >= MIN_SAMPLES) ceiling("ttft", percentile(answered.map((s) => s.ttft_ms), tp),
      slo.ttft_ms, "ms", { percentile: `p${tp}` });
    floor("success", (window.filter((s) => s.ok).length / n) * 100, slo.success_pct);
    const decisions = window.reduce((a, s) => a + Math.max(0, s.decisions), 0);
    const denied = window.reduce((a, s) => a + Math.max(0, s.denied), 0);
    ceiling("denied", decisions > 0 ? (denied / decisions) * 100 : null, slo.denied_pct, "%");
    const priced = window.filter((s) => s.cost_usd !== null);
    ceiling("cost", priced.length >= MIN_SAMPLES ? priced.reduce((a, s) => a + s.cost_usd!, 0) / priced.length : null,
      slo.cost_usd, "usd");
    floor("cache_hit", cacheHitRate(window), slo.cache_hit_pct);
  }
  if (slo.cache_drop_pct !== undefined) {
    const d = cacheDrop(window);
    if (d) out.push({ sli: "cache_hit_drop", value: d.drop_pct, bound: slo.cache_drop_pct,
      crossed: d.drop_pct >= slo.cache_drop_pct, unit: "%",
      detail: { baseline_pct: d.baseline, current_pct: d.current, recent: DROP_RECENT, earlier: n - DROP_RECENT } });
  }
  return out;
}

/**
 * Which judgements fire and which alerts re-arm, given the alerts currently firing: fire on the transition to
 * crossed, re-arm when judged within again; an SLO not judged this time keeps its state.
 */
export function transitions(judged: readonly Judgement[], firing: ReadonlySet<string>):
  { fire: Judgement[]; rearm: SliName[] } {
  const fire: Judgement[] = [];
  const rearm: SliName[] = [];
  for (const j of judged) {
    if (j.crossed && !firing.has(j.sli)) fire.push(j);
    else if (!j.crossed && firing.has(j.sli)) rearm.push(j.sli);
  }
  return { fire, rearm };
}

// ── delivery ────────────────────────────────────────────────────────────────

/** The webhook's JSON body for one alert. */
export function alertPayload(policy: Policy, workflow: string, j: Judgement, window: number, ts: string):
  Record<string, unknown> {
  return {
    type: "agentspec.slo_alert",
    agent: policy.agent.name,
    workflow,
    sli: j.sli,
    value: j.value,
    bound: j.bound,
    unit: j.unit,
    window,
    ...(j.detail ? { detail: j.detail } : {}),
    spec_hash: policy.spec_hash,
    ts,
  };
}

/** POST one alert to the webhook through the outbound guard; true when it answered 2xx. Never throws. */
export async function deliver(webhook: string | undefined, allowedHosts: readonly string[],
  payload: Record<string, unknown>, fetcher?: FetchLike, timeoutMs = WEBHOOK_TIMEOUT_MS): Promise<boolean> {
  if (!webhook) return false;
  try {
    const res = await guardedFetch(allowedHosts, webhook, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(timeoutMs),
    }, ...(fetcher ? [fetcher] : []));
    await res.body?.cancel().catch(() => undefined);
    return res.status >= 200 && res.status < 300;
  } catch {
    return false; // blocked by the guard, refused, or timed out: recorded as alert_undelivered
  }
}

// ── the monitor's storage ──────────────────────────────────────────────────

/** The storages whose tables exist already: the DDL runs once per object, not once per sample. */
const tablesMade = new WeakSet<SqlStorage>();

function ensureTables(sql: SqlStorage): void {
  if (tablesMade.has(sql)) return;
  sql.exec(`CREATE TABLE IF NOT EXISTS slo_samples (id INTEGER PRIMARY KEY AUTOINCREMENT, workflow TEXT NOT NULL,
      ts INTEGER NOT NULL, body TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS slo_samples_wf ON slo_samples (workflow, id);
    CREATE TABLE IF NOT EXISTS slo_alerts (workflow TEXT NOT NULL, sli TEXT NOT NULL, since INTEGER NOT NULL,
      PRIMARY KEY (workflow, sli));`);
  tablesMade.add(sql);
}

/** Keep only the values a sample may hold, so a stored row always parses back into a valid SliSample. */
function clean(s: SliSample): SliSample {
  const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  return {
    ok: s.ok === true,
    latency_ms: num(s.latency_ms),
    ttft_ms: num(s.ttft_ms),
    cost_usd: typeof s.cost_usd === "number" && Number.isFinite(s.cost_usd) ? s.cost_usd : null,
    input_tokens: num(s.input_tokens),
    cached_tokens: num(s.cached_tokens),
    denied: num(s.denied),
    decisions: num(s.decisions),
  };
}

/**
 * Fold a sample into the workflow's window kept in `sql` and return the alerts it fires (see the top of this
 * file). All storage work happens before the first await, so it is atomic within the monitor object.
 */
export async function observe(
  sql: SqlStorage,
  env: object,
  policy: Policy,
  workflow: string,
  sample: SliSample,
  fetcher: FetchLike | undefined = toolFetcher(env as { TOOL_ORIGINS?: string }),
): Promise<Alert[]> {
  const wf = policy.workflows[workflow];
  const slo = sloTable(wf?.slo);
  if (!wf || Object.keys(slo).length === 0) return [];
  ensureTables(sql);
  const now = Date.now();
  sql.exec("INSERT INTO slo_samples (workflow, ts, body) VALUES (?, ?, ?)", workflow, now, JSON.stringify(clean(sample)));
  sql.exec("DELETE FROM slo_samples WHERE workflow = ? AND id NOT IN " +
    "(SELECT id FROM slo_samples WHERE workflow = ? ORDER BY id DESC LIMIT ?)", workflow, workflow, WINDOW_SIZE);
  const window = sql.exec<{ body: string }>("SELECT body FROM slo_samples WHERE workflow = ? ORDER BY id", workflow)
    .toArray().map((r) => JSON.parse(r.body) as SliSample);
  const firing = new Set(sql.exec<{ sli: string }>("SELECT sli FROM slo_alerts WHERE workflow = ?", workflow)
    .toArray().map((r) => r.sli));
  const { fire, rearm } = transitions(judge(window, slo), firing);
  for (const sli of rearm) sql.exec("DELETE FROM slo_alerts WHERE workflow = ? AND sli = ?", workflow, sli);
  for (const j of fire) sql.exec("INSERT OR REPLACE INTO slo_alerts (workflow, sli, since) VALUES (?, ?, ?)",
    workflow, j.sli, now);
  if (fire.length === 0) return [];
  const ts = new Date(now).toISOString();
  return Promise.all(fire.map(async (j) => ({
    sli: j.sli,
    value: j.value,
    bound: j.bound,
    delivered: await deliver(slo.webhook, wf.outbound, alertPayload(policy, workflow, j, window.length, ts), fetcher),
  })));
}

/** What the monitor needs of its object. */
export interface SloMonitorHost {
  readonly sql: SqlStorage;
  readonly env: object;
  readonly policy: Policy;
}

/** The SLO monitor role: its window and alert state live in its object's SQLite (`slo_samples`, `slo_alerts`). */
export class SloMonitor {
  constructor(private readonly host: SloMonitorHost) {}

  observe(workflow: string, sample: SliSample): Promise<Alert[]> {
    return observe(this.host.sql, this.host.env, this.host.policy, workflow, sample);
  }
}
