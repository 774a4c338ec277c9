// The session Durable Object: one per (tenant, session id). A turn request in, a turn result out.
// It holds the per-session turn lock, the conversation (PII-masked) in SQLite, checkpoint summaries
// every N turns (written to KV by the summarizer tier, history trimmed), the hash-chained decision log
// and per-turn trace records. It also keeps the tenant's task registry, so task ids never cross tenants.
// https://developers.cloudflare.com/durable-objects/api/sqlite-storage-api/

import { DurableObject } from "cloudflare:workers";
import { appendRecord, type ChainRecord } from "./chain";
import {
  AllModelsFailedError, messageOf, OutboundBlockedError, PolicyError, ToolError, type InferenceAttempt,
} from "./errors";
import { decisionEvent, sendEvents, taskEvent, traceEvent, type ExportEvent } from "./export";
import { type FetchLike } from "./guard";
import { HttpError } from "./http";
import { runInference, type ChatMessage, type ChatTool, type InferenceResult } from "./inference";
import { maskPII } from "./pii";
import { newSealKey, SealKeyGoneError, sealText, unsealText } from "./seal";
import { evaluateToolCall, type Policy, type Tier, type Workflow } from "./policy";
import { observe, policyDenials, type Alert, type SliSample } from "./slo";
import {
  invokeTool, MAX_TOOL_CALLS_PER_ANSWER, MAX_TOOL_CALLS_PER_TURN, ToolArgumentError, undeclaredArgs, type ToolResult,
} from "./tools";

/** What the Worker needs of every generated Env. */
export type AgentEnv = {
  SESSION: DurableObjectNamespace<SessionObject<AgentEnv>>;
  INFERENCE_URL?: string;
  TOOL_ORIGINS?: string;
  AI?: unknown;
  /** The fleet export (export.ts); off when absent. */
  EXPORT_QUEUE?: Queue;
  EXPORT_BUCKET?: R2Bucket;
};

export interface TurnRequest {
  tenant: string;
  session: string;
  workflow: string;
  input: string;
  affinity: string;
  traceId: string;
  colo: string;
}

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

export type TurnOutcome =
  | {
      ok: true;
      session_id: string;
      turn: number;
      output: string;
      model: string;
      decisions: DecisionView[];
      trace_id: string;
    }
  | { ok: false; status: number; code: string; message: string; decisions: DecisionView[] };

// One Durable Object class plays three parts; each name says which, so no tenant, session id or workflow
// name can ever address another part's object (a session called "tasks", a tenant called "slo").
/** A session's object: its turns, conversation and decision chain. */
export const sessionObjectName = (tenant: string, session: string): string =>
  JSON.stringify(["session", tenant, session]);
/** A tenant's task registry: which task ids are its own, and their step records. */
export const taskRegistryName = (tenant: string): string => JSON.stringify(["tasks", tenant]);
/** A task's own object: the decision chain of its steps' tool calls. */
export const taskObjectName = (tenant: string, task: string): string => JSON.stringify(["task", tenant, task]);
/** A workflow's SLO monitor, shared by all its sessions. */
export const sloMonitorName = (workflow: string): string => JSON.stringify(["slo", workflow]);

/** At most this many model rounds in one turn (a round may ask for tools). */
const MAX_ROUNDS = 4;

/** Short-term memory: the turns a prompt carries, and a workflow without checkpoints keeps. A workflow with
 * `checkpoint every N turns` is trimmed to its summary at each checkpoint instead. */
const HISTORY_TURNS = 20;

/** A tool call that failed transiently (429, 5xx, timeout, network) is sent at most this many times in all,
 * and only when it is replay-safe: read-only, or carrying an Idempotency-Key the tool honours. */
const MAX_TOOL_ATTEMPTS = 2;
const TOOL_RETRY_DELAY_MS = 50;

/** One retry inside a turn: a model fallback, or a tool call sent again (or refused a retry: `performed` false). */
export interface RetryRecord {
  kind: "model" | "tool";
  /** The model or tool tried again. */
  target: string;
  /** 2 for the first retry. */
  attempt: number;
  reason: string;
  /** Whether repeating the call cannot repeat a side effect (always true for a model call). */
  replay_safe: boolean;
  performed: boolean;
}

/** What the trace keeps of one tool call the model asked for. Arguments are not kept: they may hold PII. */
export interface ToolTrace {
  tool: string;
  decision: string;
  rule: string;
  outcome: "ok" | "denied" | "blocked" | "failed";
  status: number | null;
  attempts: number;
  ms: number;
  idempotency_key: string | null;
}

/** Token usage of one or more model calls, and its price on the tier that served them (null: no price declared). */
interface Spend {
  input: number;
  output: number;
  cached: number;
}

/** USD for `usage` at `tier`'s declared per-million-token prices; cached input at its own price when declared. */
export function priceOf(tier: Tier, usage: Spend): number | null {
  if (!tier.price) return null;
  const p = tier.price;
  const cachedPrice = p.cached_input_per_mtok;
  const input = cachedPrice === undefined
    ? usage.input * p.input_per_mtok
    : (usage.input - usage.cached) * p.input_per_mtok + usage.cached * cachedPrice;
  return (input + usage.output * p.output_per_mtok) / 1e6;
}

/**
 * A model's family, for grouping traces: the last path segment up to its first versioned part
 * ("@cf/zai-org/glm-4.7-flash" -> "glm", "@cf/openai/gpt-oss-120b" -> "gpt-oss", "kimi-k2.6" -> "kimi").
 */
export function modelFamily(model: string): string {
  const name = model.split("/").at(-1) ?? model;
  const parts = name.split("-");
  const plain: string[] = [];
  for (const part of parts) {
    if (/\d/.test(part)) break;
    plain.push(part);
  }
  if (plain.length > 0) return plain.join("-");
  return /^[A-Za-z]+/.exec(name)?.[0] ?? name;
}

/** Model fallbacks inside one inference call: every failed attempt was followed by the next model. */
function modelRetries(attempts: readonly InferenceAttempt[]): RetryRecord[] {
  const out: RetryRecord[] = [];
  for (let i = 1; i < attempts.length; i++) {
    const failed = attempts[i - 1]!;
    out.push({ kind: "model", target: attempts[i]!.model, attempt: i + 1,
      reason: `${failed.model}: ${failed.status ?? failed.error ?? "error"}`, replay_safe: true, performed: true });
  }
  return out;
}

/** Transient failures worth one more try: rate limits, server errors, timeouts and network errors. */
function transient(error: ToolError): boolean {
  if (error.status === 429 || error.status >= 500) return true;
  // status 0 covers template and secret problems too; only the fetch-level failures are transient.
  return error.status === 0 && /timed out|request failed/.test(error.message);
}

function failureRule(error: ToolError): string {
  if (error instanceof ToolArgumentError) return error.rule;
  if (error.status >= 300 && error.status < 400) return "tool.redirect_refused";
  if (error.status > 0) return "tool.status";
  return /timed out/.test(error.message) ? "tool.timeout" : "tool.error";
}

let parsedOrigins: { source: string; origins: Record<string, string> } | null = null;

/** A fetch that sends a tool's request to the loopback origin standing in for its host (local runs). */
export function toolFetcher(env: { TOOL_ORIGINS?: string }): FetchLike | undefined {
  if (!env.TOOL_ORIGINS) return undefined;
  // Parsed once per isolate and value, not once per turn.
  if (parsedOrigins?.source !== env.TOOL_ORIGINS) {
    parsedOrigins = { source: env.TOOL_ORIGINS, origins: JSON.parse(env.TOOL_ORIGINS) as Record<string, string> };
  }
  const { origins } = parsedOrigins;
  return (input, init) => {
    const url = new URL(input);
    const origin = origins[url.host] ?? origins[url.hostname];
    return fetch(origin ? new URL(url.pathname + url.search, origin).toString() : input, init);
  };
}

// A workflow's tool definitions never change for a deployment: built once, sent the same (and so cacheable
// as a prompt prefix) every turn.
const chatToolsCache = new WeakMap<Workflow, ChatTool[]>();

export function chatTools(policy: Policy, wf: Workflow): ChatTool[] {
  let tools = chatToolsCache.get(wf);
  if (tools === undefined) {
    tools = buildChatTools(policy, wf);
    chatToolsCache.set(wf, tools);
  }
  return tools;
}

function buildChatTools(policy: Policy, wf: Workflow): ChatTool[] {
  return wf.tools.map((name) => {
    const tool = policy.tools[name]!;
    const properties: Record<string, unknown> = {};
    const required: string[] = [];
    for (const [arg, spec] of Object.entries(tool.args)) {
      const base = spec.replace("?", "");
      properties[arg] = { type: base === "int" ? "integer" : base === "bool" ? "boolean" : base };
      if (!spec.endsWith("?")) required.push(arg);
    }
    return { type: "function", function: { name, parameters: { type: "object", properties, required } } };
  });
}

export class SessionObject<E extends AgentEnv> extends DurableObject<E> {
  private busy = false;
  private readonly sql: SqlStorage;
  /** The newest record of the decision chain: loaded once, then kept here (undefined: not loaded yet). */
  private last: ChainRecord | null | undefined;
  /** Records made since the last flush. A turn writes them together with its other rows, in one storage
   * commit; a tool call's decision is flushed before its request goes out. */
  private pending: ChainRecord[] = [];
  /** Committed records and traces not yet handed to the fleet export. */
  private outbox: ExportEvent[] = [];

  constructor(
    ctx: DurableObjectState,
    env: E,
    protected readonly policy: Policy,
  ) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, turn INTEGER NOT NULL,
        role TEXT NOT NULL, content TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS turns (turn INTEGER PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, workflow TEXT NOT NULL, created TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS task_steps (task TEXT NOT NULL, step TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (task, step));
      CREATE TABLE IF NOT EXISTS task_keys (key TEXT PRIMARY KEY, task TEXT NOT NULL, fingerprint TEXT NOT NULL);`);
  }

  // ── state ────────────────────────────────────────────────────────────────

  /** The meta table, read once: this object is its only writer, so the copy in memory stays true. */
  private metaCache: Map<string, string> | null = null;

  private metaTable(): Map<string, string> {
    this.metaCache ??= new Map(this.sql.exec<{ key: string; value: string }>("SELECT key, value FROM meta")
      .toArray().map((r) => [r.key, r.value]));
    return this.metaCache;
  }

  private meta(key: string): string | null {
    return this.metaTable().get(key) ?? null;
  }

  /** Set (or, with null, remove) meta keys in one statement each way. */
  private setMeta(values: Record<string, string | null>): void {
    const cache = this.metaTable(); // loaded first, so it never misses what is written here
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

  /** The newest turn and when it was committed (ms since the epoch), read once from the turns table and then
   * kept here: the counter and the idle clock cost no write of their own. */
  private head: { turn: number; at: number } | null = null;

  private lastTurn(): { turn: number; at: number } {
    this.head ??= this.sql.exec<{ turn: number; at: number }>(
      "SELECT turn, at FROM turns ORDER BY turn DESC LIMIT 1").toArray()[0] ?? { turn: 0, at: 0 };
    return this.head;
  }

  /** The last HISTORY_TURNS turns' messages, as a prompt carries them: read once, then kept in step here. */
  private recent: { role: string; content: string }[] | null = null;

  private recentHistory(): readonly { role: string; content: string }[] {
    this.recent ??= this.sql.exec<{ role: string; content: string }>(
      "SELECT role, content FROM (SELECT id, role, content FROM messages ORDER BY id DESC LIMIT ?) ORDER BY id",
      HISTORY_TURNS * 2).toArray();
    return this.recent;
  }

  private appendHistory(turn: number, user: string, assistant: string): void {
    this.sql.exec("INSERT INTO messages (turn, role, content) VALUES (?, 'user', ?), (?, 'assistant', ?)",
      turn, user, turn, assistant);
    const recent = [...this.recentHistory(), { role: "user", content: user }, { role: "assistant", content: assistant }];
    this.recent = recent.slice(-HISTORY_TURNS * 2);
  }

  private clearHistory(): void {
    this.sql.exec("DELETE FROM messages");
    this.recent = [];
  }

  private lastRecord(): ChainRecord | null {
    if (this.last === undefined) {
      const rows = this.sql.exec<{ body: string }>("SELECT body FROM records ORDER BY seq DESC LIMIT 1").toArray();
      this.last = rows[0] ? (JSON.parse(rows[0].body) as ChainRecord) : null;
    }
    return this.last;
  }

  private record(req: Scope, intent: string, action: string, d: { decision: string; rule: string }): DecisionView {
    const rec = appendRecord(this.lastRecord(), {
      tenant: req.tenant, session: req.session, workflow: req.workflow, intent, action,
      decision: d.decision, rule: d.rule, spec_hash: this.policy.spec_hash,
    });
    this.last = rec;
    this.pending.push(rec);
    return { seq: rec.seq, action: rec.action, decision: rec.decision, rule: rec.rule };
  }

  /** Write the pending records. Synchronous: rows written between two awaits share one commit. */
  private flushRecords(): void {
    for (const rec of this.pending) {
      this.sql.exec("INSERT INTO records (seq, body) VALUES (?, ?)", rec.seq, JSON.stringify(rec));
      this.outbox.push(decisionEvent(rec));
    }
    this.pending = [];
  }

  // ── RPC: one turn ────────────────────────────────────────────────────────

  /** RPC for the front door: one turn, answered as the HTTP status and JSON body the client gets. Serialized
   * here, once, instead of structured-cloned to the Worker and serialized there. */
  async turnResponse(req: TurnRequest): Promise<{ status: number; body: string }> {
    const outcome = await this.turn(req);
    this.exportOutbox();
    if (!outcome.ok) {
      return { status: outcome.status, body: JSON.stringify({
        error: { code: outcome.code, message: outcome.message }, decisions: outcome.decisions }) };
    }
    const { ok: _ok, ...answer } = outcome;
    return { status: 200, body: JSON.stringify(answer) };
  }

  /** Hand what this object committed to the fleet export, after the commit and without waiting for it. */
  private exportOutbox(): void {
    if (this.outbox.length === 0) return;
    const events = this.outbox;
    this.outbox = [];
    this.ctx.waitUntil(sendEvents(this.env, events));
  }

  async turn(req: TurnRequest): Promise<TurnOutcome> {
    // Input gates do not hold while we await the model or a tool, so the lock is explicit.
    if (this.busy) {
      return { ok: false, status: 409, code: "turn_in_progress", message: "a turn is already running in this session",
        decisions: [] };
    }
    this.busy = true;
    try {
      return await this.runTurn(req);
    } finally {
      // Whatever ended the turn, the decisions it made are kept (and the in-memory chain head stays true).
      this.flushRecords();
      this.busy = false;
    }
  }

  private async runTurn(req: TurnRequest): Promise<TurnOutcome> {
    const started = Date.now();
    const wf = this.policy.workflows[req.workflow]!;
    const turn = this.lastTurn().turn + 1;
    const masked = (text: string) => maskPII(text, wf.pii);
    const maskedInput = masked(req.input);
    const intent = maskedInput.slice(0, 200);
    const decisions: DecisionView[] = [];
    const retries: RetryRecord[] = [];
    const toolTraces: ToolTrace[] = [];
    decisions.push(this.record(req, intent, `model.route:${wf.turn_tier}`,
      { decision: "allow", rule: `route.risk.${wf.turn_risk}` }));

    // The session's state lives `ttl` past its last turn (`session affinity ... ttl`): an idle session
    // starts over with no history or summary. Its turn numbers and decision chain go on.
    const lastTurnAt = this.lastTurn().at;
    if (lastTurnAt > 0 && started - lastTurnAt > wf.affinity.ttl_ms) {
      this.clearHistory();
      this.setMeta({ summary: null, checkpoint_turn: null });
      decisions.push(this.record(req, intent, "session.expired", { decision: "allow", rule: "session.ttl" }));
    }

    const summary = this.meta("summary");
    const history = this.recentHistory();
    // Static content first, so the prompt prefix stays cacheable across turns.
    const messages: ChatMessage[] = [
      { role: "system", content: `You are the ${this.policy.agent.name} agent, workflow ${req.workflow}. ` +
        "Use the tools offered when they help; never invent tool results." },
      ...(summary ? [{ role: "system" as const, content: `Summary of the conversation so far: ${summary}` }] : []),
      ...history.map((m) => ({ role: m.role as "user" | "assistant", content: m.content })),
      { role: "user", content: req.input },
    ];
    const tools = chatTools(this.policy, wf);
    const fetcher = toolFetcher(this.env);
    let output = "";
    let model = "";
    let ttft: number | null = null;
    let rounds = 0;
    const usage: Spend = { input: 0, output: 0, cached: 0 };
    let callsThisTurn = 0;
    try {
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const result = await runInference({ policy: this.policy, tier: wf.turn_tier, messages,
          ...(tools.length ? { tools } : {}), sessionAffinity: req.affinity, env: this.env });
        // Answers are not streamed, so the first token arrives with the first complete answer.
        ttft ??= Date.now() - started;
        rounds++;
        model = result.model;
        retries.push(...modelRetries(result.attempts));
        usage.input += result.usage.input;
        usage.output += result.usage.output;
        usage.cached += result.usage.cached;
        if (result.attempts.length > 1) {
          decisions.push(this.record(req, intent, `model.fallback:${result.model}`,
            { decision: "allow", rule: "model.fallback" }));
        }
        if (result.toolCalls.length === 0 || round === MAX_ROUNDS - 1) {
          output = result.text;
          break;
        }
        messages.push({ role: "assistant", content: result.text || null, tool_calls: result.toolCalls.map((c) => ({
          id: c.id, type: "function" as const, function: { name: c.name, arguments: c.raw } })) });
        for (const [index, call] of result.toolCalls.entries()) {
          // Capped per answer and per turn: a model cannot fan out into unbounded calls. The excess is denied.
          const cap = index >= MAX_TOOL_CALLS_PER_ANSWER ? "tool.limit.answer"
            : callsThisTurn >= MAX_TOOL_CALLS_PER_TURN ? "tool.limit.turn" : null;
          let content: string;
          if (cap !== null) {
            decisions.push(this.record(req, intent, `tool.call:${call.name}`, { decision: "deny", rule: cap }));
            content = JSON.stringify({ error: "denied by policy", rule: cap });
          } else {
            callsThisTurn++;
            content = await this.toolCall(req, wf, intent, call.name, call.arguments ?? {}, fetcher,
              { decisions, retries, tools: toolTraces });
          }
          messages.push({ role: "tool", tool_call_id: call.id, content });
        }
      }
    } catch (error) {
      if (error instanceof AllModelsFailedError) {
        decisions.push(this.record(req, intent, `model.call:${wf.turn_tier}`,
          { decision: "deny", rule: "model.unavailable" }));
        this.flushRecords();
        // A failed turn counts against the success SLO (and its latency against the latency SLO).
        await this.observeSlo(req, intent, { ok: false, latency_ms: Date.now() - started, ttft_ms: 0,
          cost_usd: null, input_tokens: usage.input, cached_tokens: usage.cached,
          denied: policyDenials(decisions), decisions: decisions.length }, decisions);
        return { ok: false, status: 503, code: "models_unavailable",
          message: `every model of the tier failed (${error.attempts.map((a) => `${a.model}: ${a.error ?? a.status ?? "error"}`).join("; ")}); try again later`, decisions };
      }
      if (error instanceof HttpError && error.code === "misconfigured") {
        // Said to the caller as what it is; an error thrown across the RPC boundary would lose its class.
        return { ok: false, status: error.status, code: error.code, message: error.message, decisions };
      }
      throw error;
    }

    const tier = this.policy.tiers[wf.turn_tier]!;
    const cost = priceOf(tier, usage);
    const latency = Date.now() - started;
    const traceOf = (checkpoint: Record<string, unknown> | null) => ({
      trace_id: req.traceId, turn, workflow: req.workflow, tenant: req.tenant, region: req.colo, affinity: req.affinity,
      // OpenTelemetry GenAI semantic conventions where a name exists
      // (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/).
      "gen_ai.operation.name": "chat", "gen_ai.provider.name": "cloudflare.workers_ai",
      "gen_ai.conversation.id": req.session,
      "gen_ai.request.model": tier.models[0] ?? model, "gen_ai.response.model": model,
      model_family: modelFamily(model), tier: wf.turn_tier, prompt_family: `${req.workflow}.turn`,
      ttft_ms: ttft ?? latency, latency_ms: latency, rounds,
      "gen_ai.usage.input_tokens": usage.input, "gen_ai.usage.output_tokens": usage.output,
      "gen_ai.usage.cache_read.input_tokens": usage.cached,
      cost_usd: cost,
      price: tier.price ?? null,
      retries: retries.filter((r) => r.performed).length,
      retry_log: retries,
      tools: toolTraces,
      checkpoint,
      decisions: decisions.map((d) => ({ seq: d.seq, action: d.action, decision: d.decision, rule: d.rule })),
    });
    // One commit for the turn: masked messages, the counter, its decision records and its trace record, with
    // no await in between, so a stop can never leave a counted turn untraced or a trace without its turn.
    this.appendHistory(turn, maskedInput, masked(output));
    if (!wf.checkpoint && turn % HISTORY_TURNS === 0 && turn > HISTORY_TURNS) {
      // Trimmed every HISTORY_TURNS turns rather than every turn: storage holds 20 to 40 turns, a prompt 20.
      this.sql.exec("DELETE FROM messages WHERE turn <= ?", turn - HISTORY_TURNS);
    }
    this.flushRecords();
    const at = Date.now();
    this.sql.exec("INSERT INTO turns (turn, at, body) VALUES (?, ?, ?)", turn, at, JSON.stringify(traceOf(null)));
    this.head = { turn, at };

    // Then what may follow a turn: SLO alerts and a checkpoint, which complete the trace record.
    const sample: SliSample = { ok: true, latency_ms: latency, ttft_ms: ttft ?? latency, cost_usd: cost,
      input_tokens: usage.input, cached_tokens: usage.cached,
      denied: policyDenials(decisions), decisions: decisions.length };
    // The turn is committed: from here a failure is recorded, never answered as an error (a client retrying
    // an error would run the turn twice).
    const before = decisions.length;
    try {
      await this.observeSlo(req, intent, sample, decisions);
    } catch (error) {
      console.error("agentspec: SLO monitor failed", messageOf(error));
      decisions.push(this.record(req, intent, "slo.observe", { decision: "failed", rule: "slo.error" }));
    }
    let checkpoint: Record<string, unknown> | null = null;
    if (wf.checkpoint && turn - Number(this.meta("checkpoint_turn") ?? "0") >= wf.checkpoint.every) {
      try {
        checkpoint = await this.checkpoint(req, wf, turn, decisions, intent, retries);
      } catch (error) {
        console.error("agentspec: checkpoint failed", messageOf(error));
        decisions.push(this.record(req, intent, `checkpoint:${wf.checkpoint.store}`,
          { decision: "failed", rule: "checkpoint.error" }));
        checkpoint = { tier: wf.checkpoint.tier, ok: false, prompt_family: `${req.workflow}.checkpoint` };
      }
    }
    if (checkpoint !== null || decisions.length > before) {
      this.flushRecords();
      this.sql.exec("UPDATE turns SET body = ? WHERE turn = ?", JSON.stringify(traceOf(checkpoint)), turn);
    }
    this.outbox.push(traceEvent(req, turn, traceOf(checkpoint)));
    return { ok: true, session_id: req.session, turn, output, model, decisions, trace_id: req.traceId };
  }

  /**
   * One tool call the model asked for: the policy decision (recorded), then the call through the guarded fetch,
   * retried once on a transient failure when replay-safe, then its outcome (recorded). Answers what the model
   * reads back: the projected result, or an error object.
   */
  private async toolCall(req: TurnRequest, wf: Workflow, intent: string, name: string,
    args: Record<string, unknown>, fetcher: FetchLike | undefined,
    log: { decisions: DecisionView[]; retries: RetryRecord[]; tools: ToolTrace[] }): Promise<string> {
    const verdict = evaluateToolCall(this.policy, req.workflow, name);
    log.decisions.push(this.record(req, intent, `tool.call:${name}`, verdict));
    const trace: ToolTrace = { tool: name, decision: verdict.decision, rule: verdict.rule, outcome: "denied",
      status: null, attempts: 0, ms: 0, idempotency_key: null };
    log.tools.push(trace);
    if (verdict.decision === "deny") return JSON.stringify({ error: "denied by policy", rule: verdict.rule });
    const tool = this.policy.tools[name]!;
    const undeclared = undeclaredArgs(tool, args);
    if (undeclared.length > 0) {
      // Dropped before the call (invokeTool sends declared arguments only); the names are kept (masked), not the values.
      log.decisions.push(this.record(req, intent, `tool.args:${name}:${maskPII(undeclared.join(","), wf.pii).slice(0, 200)}`,
        { decision: "dropped", rule: "tool.args.undeclared" }));
    }
    const replaySafe = tool.read_only || (tool.idempotency_key ?? "") !== "";
    // In shadow mode a would-be denial still runs: its host must then get through the guard.
    const allowedHosts = verdict.decision === "shadow_deny" ? [...wf.outbound, tool.host] : wf.outbound;
    // The decision is stored before the call goes out (the output gate holds the request until it is).
    this.flushRecords();
    const started = Date.now();
    const outcome = (decision: string, rule: string): void => {
      trace.ms = Date.now() - started;
      log.decisions.push(this.record(req, intent, `tool.result:${name}`, { decision, rule }));
    };
    for (let attempt = 1; ; attempt++) {
      trace.attempts = attempt;
      let result: ToolResult;
      try {
        result = await invokeTool({ policy: this.policy, toolName: name, args, sessionId: req.session,
          workflow: req.workflow, tenant: req.tenant, env: this.env, allowedHosts, ...(fetcher ? { fetcher } : {}) });
      } catch (error) {
        if (error instanceof OutboundBlockedError) {
          trace.outcome = "blocked";
          outcome("deny", "outbound.guard");
          return JSON.stringify({ error: "blocked by the outbound allowlist" });
        }
        if (!(error instanceof ToolError)) throw error;
        trace.status = error.status || null;
        if (transient(error) && attempt < MAX_TOOL_ATTEMPTS) {
          log.retries.push({ kind: "tool", target: name, attempt: attempt + 1, reason: error.message,
            replay_safe: replaySafe, performed: replaySafe });
          if (replaySafe) {
            await new Promise((resolve) => setTimeout(resolve, TOOL_RETRY_DELAY_MS * attempt));
            continue;
          }
        }
        trace.outcome = "failed";
        outcome("failed", failureRule(error));
        return JSON.stringify({ error: `tool failed (${error.status})` });
      }
      trace.outcome = "ok";
      trace.status = result.status;
      trace.idempotency_key = result.idempotencyKey === null ? null : maskPII(result.idempotencyKey, wf.pii);
      outcome("ok", "tool.ok");
      return JSON.stringify(result.result);
    }
  }

  /**
   * Summarize the conversation with the checkpoint tier, store the summary (masked) in the workflow's store,
   * keep it as the next turns' context and trim the history. A summarizer outage keeps the history for the
   * next turn to try again. Returns what the turn's trace keeps of it.
   */
  private async checkpoint(req: TurnRequest, wf: Workflow, turn: number, decisions: DecisionView[], intent: string,
    retries: RetryRecord[]): Promise<Record<string, unknown>> {
    const checkpoint = wf.checkpoint!;
    const store = (this.env as unknown as Record<string, KVNamespace | R2Bucket | undefined>)[checkpoint.store];
    if (!store) throw new PolicyError(`checkpoint store binding \`${checkpoint.store}\` is missing from env`);
    const history = this.sql.exec<{ role: string; content: string }>(
      "SELECT role, content FROM messages ORDER BY id").toArray();
    const previous = this.meta("summary");
    let result: InferenceResult;
    try {
      result = await runInference({ policy: this.policy, tier: checkpoint.tier, sessionAffinity: req.affinity,
        env: this.env, messages: [
          { role: "system", content: "Summarize this conversation for the agent's future turns. Keep facts, " +
            "decisions and open questions; omit personal data." },
          ...(previous ? [{ role: "user" as const, content: `Earlier summary: ${previous}` }] : []),
          { role: "user", content: history.map((m) => `${m.role}: ${m.content}`).join("\n") },
        ] });
    } catch (error) {
      if (!(error instanceof AllModelsFailedError)) throw error;
      retries.push(...modelRetries(error.attempts));
      decisions.push(this.record(req, intent, `checkpoint:${checkpoint.store}`,
        { decision: "failed", rule: "model.unavailable" }));
      return { tier: checkpoint.tier, ok: false, prompt_family: `${req.workflow}.checkpoint` };
    }
    retries.push(...modelRetries(result.attempts));
    const summary = maskPII(result.text, wf.pii);
    await store.put(`summary/${req.tenant}/${req.session}`, JSON.stringify({
      session: req.session, tenant: req.tenant, turn, summary, spec_hash: this.policy.spec_hash }));
    this.setMeta({ summary, checkpoint_turn: String(turn) });
    this.clearHistory();
    decisions.push(this.record(req, intent, `checkpoint:${checkpoint.store}`,
      { decision: "allow", rule: "checkpoint.every" }));
    const tier = this.policy.tiers[checkpoint.tier]!;
    return { tier: checkpoint.tier, ok: true, prompt_family: `${req.workflow}.checkpoint`,
      "gen_ai.response.model": result.model, "gen_ai.usage.input_tokens": result.usage.input,
      "gen_ai.usage.output_tokens": result.usage.output,
      "gen_ai.usage.cache_read.input_tokens": result.usage.cached, cost_usd: priceOf(tier, result.usage),
      trimmed_messages: history.length };
  }

  /** Feed one turn to its workflow's SLO monitor; each alert it fires becomes an `alert:<sli>` record. */
  private async observeSlo(req: TurnRequest, intent: string, sample: SliSample, decisions: DecisionView[]):
    Promise<void> {
    const slo = this.policy.workflows[req.workflow]?.slo;
    if (!slo || Object.keys(slo).length === 0) return; // no SLO: spare the monitor round trip
    const monitor = this.env.SESSION.getByName(sloMonitorName(req.workflow));
    for (const alert of await monitor.observe(req.workflow, sample)) {
      decisions.push(this.record(req, intent, `alert:${alert.sli}`,
        { decision: alert.delivered ? "alert" : "alert_undelivered", rule: `slo.${alert.sli}` }));
    }
  }

  // ── RPC: the workflow's SLO monitor (this object named ["slo", workflow]) ──

  async observe(workflow: string, sample: SliSample): Promise<Alert[]> {
    return observe(this.sql, this.env, this.policy, workflow, sample);
  }

  // ── RPC: reads ───────────────────────────────────────────────────────────

  traces(since: number): { records: ChainRecord[]; turns: unknown[] } {
    const records = this.sql.exec<{ body: string }>("SELECT body FROM records WHERE seq > ? ORDER BY seq", since)
      .toArray().map((r) => JSON.parse(r.body) as ChainRecord);
    const turns = this.sql.exec<{ body: string }>("SELECT body FROM turns ORDER BY turn").toArray()
      .map((r) => JSON.parse(r.body) as unknown);
    return { records, turns };
  }

  state(): { turns: number; summary: string | null; messages: { role: string; content: string }[] } {
    const messages = this.sql.exec<{ role: string; content: string }>(
      "SELECT role, content FROM messages ORDER BY id").toArray();
    return { turns: this.lastTurn().turn, summary: this.meta("summary"), messages };
  }

  // ── RPC: the tenant's task registry ──────────────────────────────────────

  registerTask(id: string, workflow: string): void {
    this.sql.exec("INSERT OR IGNORE INTO tasks (id, workflow, created) VALUES (?, ?, ?)", id, workflow,
      new Date().toISOString());
  }

  /**
   * Claim a client's Idempotency-Key for a task (and register the task) in one synchronous step, so two
   * concurrent requests with one key get one task. Answers the task the key names and the body fingerprint
   * it was first used with; `fresh` when this call claimed it.
   */
  claimTaskKey(key: string, id: string, workflow: string, fingerprint: string):
    { task: string; fingerprint: string; fresh: boolean } {
    const held = this.sql.exec<{ task: string; fingerprint: string }>(
      "SELECT task, fingerprint FROM task_keys WHERE key = ?", key).toArray()[0];
    if (held) return { ...held, fresh: false };
    this.sql.exec("INSERT INTO task_keys (key, task, fingerprint) VALUES (?, ?, ?)", key, id, fingerprint);
    this.registerTask(id, workflow);
    return { task: id, fingerprint, fresh: true };
  }

  ownsTask(id: string): boolean {
    return this.sql.exec("SELECT id FROM tasks WHERE id = ?", id).toArray().length > 0;
  }

  // ── RPC: a task's decision chain (this object named ["task", tenant, task id]) ──

  /** One policy decision of a task step, chained and stored at once (a task's steps run one at a time). */
  recordDecision(scope: Scope, intent: string, action: string, decision: string, rule: string): DecisionView {
    const view = this.record(scope, intent, action, { decision, rule });
    this.flushRecords();
    this.exportOutbox();
    return view;
  }

  recordStep(task: string, step: string, body: Record<string, unknown>, tenant = ""): void {
    this.sql.exec("INSERT INTO task_steps (task, step, body) VALUES (?, ?, ?) " +
      "ON CONFLICT(task, step) DO UPDATE SET body = excluded.body", task, step, JSON.stringify(body));
    this.exportTask(tenant, task, step, body);
  }

  /** A task step's record (or, with step null, its summary) to the fleet export; this is the tenant's registry. */
  exportTask(tenant: string, task: string, step: string | null, body: Record<string, unknown>): void {
    const workflow = this.sql.exec<{ workflow: string }>("SELECT workflow FROM tasks WHERE id = ?", task)
      .toArray()[0]?.workflow ?? "";
    this.outbox.push(taskEvent({ tenant, task, workflow }, step, String(body["status"] ?? ""),
      Number(body["attempts"] ?? 0), body));
    this.exportOutbox();
  }

  // ── RPC: a task's sealing key (this object named ["task", tenant, task id]; see seal.ts) ──

  async seal(plain: string): Promise<string> {
    let key = this.meta("seal_key");
    if (key === null) {
      key = newSealKey();
      this.setMeta({ seal_key: key });
    }
    return sealText(key, plain);
  }

  async unseal(blob: string): Promise<string> {
    const key = this.meta("seal_key");
    if (key === null) throw new SealKeyGoneError();
    return unsealText(key, blob);
  }

  /** The task ended: its key goes, and with it every copy of its sealed values. Overwritten before the row is
   * deleted, so the freed page does not keep it either. */
  forgetSealKey(): void {
    if (this.meta("seal_key") === null) return;
    this.setMeta({ seal_key: "0".repeat(44) });
    this.setMeta({ seal_key: null });
  }

  taskSteps(task: string): unknown[] {
    return this.sql.exec<{ body: string }>("SELECT body FROM task_steps WHERE task = ? ORDER BY rowid", task)
      .toArray().map((r) => JSON.parse(r.body) as unknown);
  }
}
