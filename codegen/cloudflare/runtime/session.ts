// The session Durable Object: one per (tenant, session id). A turn request in, a turn result out.
// It holds the per-session turn lock, the conversation (PII-masked) in SQLite, checkpoint summaries
// every N turns (written to KV by the summarizer tier, history trimmed), the hash-chained decision log
// and per-turn trace records. It also keeps the tenant's task registry, so task ids never cross tenants.
// https://developers.cloudflare.com/durable-objects/api/sqlite-storage-api/

import { DurableObject } from "cloudflare:workers";
import { appendRecord, type ChainRecord } from "./chain";
import { AllModelsFailedError, OutboundBlockedError, ToolError } from "./errors";
import { type FetchLike } from "./guard";
import { runInference, type ChatMessage, type ChatTool, type InferenceResult } from "./inference";
import { maskPII } from "./pii";
import { evaluateToolCall, type Policy, type Workflow } from "./policy";
import { observe, type Alert, type SliSample } from "./slo";
import { invokeTool } from "./tools";

/** What the Worker needs of every generated Env. */
export type AgentEnv = {
  SESSION: DurableObjectNamespace<SessionObject<AgentEnv>>;
  INFERENCE_URL?: string;
  TOOL_ORIGINS?: string;
  AI?: unknown;
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

/** At most this many model rounds in one turn (a round may ask for tools). */
const MAX_ROUNDS = 4;

/** A fetch that sends a tool's request to the loopback origin standing in for its host (local runs). */
export function toolFetcher(env: { TOOL_ORIGINS?: string }): FetchLike | undefined {
  if (!env.TOOL_ORIGINS) return undefined;
  const origins = JSON.parse(env.TOOL_ORIGINS) as Record<string, string>;
  return (input, init) => {
    const url = new URL(input);
    const origin = origins[url.host] ?? origins[url.hostname];
    return fetch(origin ? new URL(url.pathname + url.search, origin).toString() : input, init);
  };
}

export function chatTools(policy: Policy, wf: Workflow): ChatTool[] {
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

  constructor(
    ctx: DurableObjectState,
    env: E,
    protected readonly policy: Policy,
  ) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, turn INTEGER NOT NULL,
        role TEXT NOT NULL, content TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS turns (turn INTEGER PRIMARY KEY, body TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, workflow TEXT NOT NULL, created TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS task_steps (task TEXT NOT NULL, step TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (task, step));`);
  }

  // ── state ────────────────────────────────────────────────────────────────

  private meta(key: string): string | null {
    const rows = this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray();
    return rows[0]?.value ?? null;
  }

  private setMeta(key: string, value: string): void {
    this.sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      key, value);
  }

  private lastRecord(): ChainRecord | null {
    const rows = this.sql.exec<{ body: string }>("SELECT body FROM records ORDER BY seq DESC LIMIT 1").toArray();
    return rows[0] ? (JSON.parse(rows[0].body) as ChainRecord) : null;
  }

  private async record(req: TurnRequest, intent: string, action: string, d: { decision: string; rule: string }):
    Promise<DecisionView> {
    const rec = await appendRecord(this.lastRecord(), {
      tenant: req.tenant, session: req.session, workflow: req.workflow, intent, action,
      decision: d.decision, rule: d.rule, spec_hash: this.policy.spec_hash,
    });
    this.sql.exec("INSERT INTO records (seq, body) VALUES (?, ?)", rec.seq, JSON.stringify(rec));
    return { seq: rec.seq, action: rec.action, decision: rec.decision, rule: rec.rule };
  }

  // ── RPC: one turn ────────────────────────────────────────────────────────

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
      this.busy = false;
    }
  }

  private async runTurn(req: TurnRequest): Promise<TurnOutcome> {
    const started = Date.now();
    const wf = this.policy.workflows[req.workflow]!;
    const turn = Number(this.meta("turns") ?? "0") + 1;
    const masked = (text: string) => maskPII(text, wf.pii);
    const intent = masked(req.input).slice(0, 200);
    const decisions: DecisionView[] = [];
    decisions.push(await this.record(req, intent, `model.route:${wf.turn_tier}`,
      { decision: "allow", rule: `route.risk.${wf.turn_risk}` }));

    const summary = this.meta("summary");
    const history = this.sql.exec<{ role: string; content: string }>(
      "SELECT role, content FROM messages ORDER BY id").toArray();
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
    let first: InferenceResult | null = null;
    const usage = { input: 0, output: 0, cached: 0 };
    let attempts = 0;
    try {
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const result = await runInference({ policy: this.policy, tier: wf.turn_tier, messages,
          ...(tools.length ? { tools } : {}), sessionAffinity: req.affinity, env: this.env });
        first ??= result;
        model = result.model;
        attempts += result.attempts.length;
        usage.input += result.usage.input;
        usage.output += result.usage.output;
        usage.cached += result.usage.cached;
        if (result.attempts.length > 1) {
          decisions.push(await this.record(req, intent, `model.fallback:${result.model}`,
            { decision: "allow", rule: "model.fallback" }));
        }
        if (result.toolCalls.length === 0 || round === MAX_ROUNDS - 1) {
          output = result.text;
          break;
        }
        messages.push({ role: "assistant", content: result.text || null, tool_calls: result.toolCalls.map((c) => ({
          id: c.id, type: "function" as const, function: { name: c.name, arguments: c.raw } })) });
        for (const call of result.toolCalls) {
          const content = await this.toolCall(req, wf, intent, call.name, call.arguments ?? {}, fetcher, decisions);
          messages.push({ role: "tool", tool_call_id: call.id, content });
        }
      }
    } catch (error) {
      if (error instanceof AllModelsFailedError) {
        decisions.push(await this.record(req, intent, `model.call:${wf.turn_tier}`,
          { decision: "deny", rule: "model.unavailable" }));
        return { ok: false, status: 503, code: "models_unavailable",
          message: "every model of the tier failed; try again later", decisions };
      }
      throw error;
    }

    // Persist: masked messages, the turn counter, the trace record.
    this.sql.exec("INSERT INTO messages (turn, role, content) VALUES (?, 'user', ?)", turn, masked(req.input));
    this.sql.exec("INSERT INTO messages (turn, role, content) VALUES (?, 'assistant', ?)", turn, masked(output));
    this.setMeta("turns", String(turn));
    const tier = this.policy.tiers[wf.turn_tier]!;
    const cost = tier.price
      ? (usage.input * tier.price.input_per_mtok + usage.output * tier.price.output_per_mtok) / 1e6 : null;
    const trace = {
      trace_id: req.traceId, turn, workflow: req.workflow, tenant: req.tenant, region: req.colo,
      "gen_ai.operation.name": "chat", "gen_ai.request.model": model, "gen_ai.system": "workers-ai",
      model_family: model.split("/").slice(0, -1).join("/") || model, prompt_family: `${req.workflow}.turn`,
      ttft_ms: first ? (first.attempts.at(-1)?.ms ?? 0) : 0, latency_ms: Date.now() - started,
      "gen_ai.usage.input_tokens": usage.input, "gen_ai.usage.output_tokens": usage.output,
      cached_tokens: usage.cached, cost_usd: cost, retries: Math.max(0, attempts - 1),
      decisions: decisions.map((d) => d.seq),
    };
    this.sql.exec("INSERT INTO turns (turn, body) VALUES (?, ?)", turn, JSON.stringify(trace));
    const sample: SliSample = { ok: true, latency_ms: trace.latency_ms, ttft_ms: trace.ttft_ms, cost_usd: cost,
      input_tokens: usage.input, cached_tokens: usage.cached,
      denied: decisions.filter((d) => d.decision === "deny").length, decisions: decisions.length };
    const monitor = this.env.SESSION.getByName(JSON.stringify(["slo", req.workflow]));
    for (const alert of await monitor.observe(req.workflow, sample)) {
      decisions.push(await this.record(req, intent, `alert:${alert.sli}`,
        { decision: alert.delivered ? "alert" : "alert_undelivered", rule: `slo.${alert.sli}` }));
    }
    if (wf.checkpoint && turn % wf.checkpoint.every === 0) await this.checkpoint(req, wf, decisions, intent);
    return { ok: true, session_id: req.session, turn, output, model, decisions, trace_id: req.traceId };
  }

  private async toolCall(req: TurnRequest, wf: Workflow, intent: string, name: string,
    args: Record<string, unknown>, fetcher: FetchLike | undefined, decisions: DecisionView[]): Promise<string> {
    const verdict = evaluateToolCall(this.policy, req.workflow, name);
    decisions.push(await this.record(req, intent, `tool.call:${name}`, verdict));
    if (verdict.decision === "deny") return JSON.stringify({ error: "denied by policy", rule: verdict.rule });
    const tool = this.policy.tools[name]!;
    // In shadow mode a would-be denial still runs: its host must then get through the guard.
    const allowedHosts = verdict.decision === "shadow_deny" ? [...wf.outbound, tool.host] : wf.outbound;
    try {
      const result = await invokeTool({ policy: this.policy, toolName: name, args, sessionId: req.session,
        workflow: req.workflow, env: this.env, allowedHosts, ...(fetcher ? { fetcher } : {}) });
      return JSON.stringify(result.result);
    } catch (error) {
      if (error instanceof OutboundBlockedError) {
        decisions.push(await this.record(req, intent, `tool.fetch:${name}`, { decision: "deny", rule: "outbound.guard" }));
        return JSON.stringify({ error: "blocked by the outbound allowlist" });
      }
      if (error instanceof ToolError) return JSON.stringify({ error: `tool failed (${error.status})` });
      throw error;
    }
  }

  private async checkpoint(req: TurnRequest, wf: Workflow, decisions: DecisionView[], intent: string): Promise<void> {
    const checkpoint = wf.checkpoint!;
    const history = this.sql.exec<{ role: string; content: string }>(
      "SELECT role, content FROM messages ORDER BY id").toArray();
    const previous = this.meta("summary");
    const result = await runInference({ policy: this.policy, tier: checkpoint.tier, sessionAffinity: req.affinity,
      env: this.env, messages: [
        { role: "system", content: "Summarize this conversation for the agent's future turns. Keep facts, " +
          "decisions and open questions; omit personal data." },
        ...(previous ? [{ role: "user" as const, content: `Earlier summary: ${previous}` }] : []),
        { role: "user", content: history.map((m) => `${m.role}: ${m.content}`).join("\n") },
      ] });
    const summary = maskPII(result.text, wf.pii);
    const store = (this.env as unknown as Record<string, KVNamespace | undefined>)[checkpoint.store];
    await store?.put(`summary/${req.tenant}/${req.session}`, JSON.stringify({
      session: req.session, tenant: req.tenant, turn: Number(this.meta("turns")), summary,
      spec_hash: this.policy.spec_hash }));
    this.setMeta("summary", summary);
    this.sql.exec("DELETE FROM messages");
    decisions.push(await this.record(req, intent, `checkpoint:${checkpoint.store}`,
      { decision: "allow", rule: "checkpoint.every" }));
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
    return { turns: Number(this.meta("turns") ?? "0"), summary: this.meta("summary"), messages };
  }

  // ── RPC: the tenant's task registry ──────────────────────────────────────

  registerTask(id: string, workflow: string): void {
    this.sql.exec("INSERT OR IGNORE INTO tasks (id, workflow, created) VALUES (?, ?, ?)", id, workflow,
      new Date().toISOString());
  }

  ownsTask(id: string): boolean {
    return this.sql.exec("SELECT id FROM tasks WHERE id = ?", id).toArray().length > 0;
  }

  recordStep(task: string, step: string, body: Record<string, unknown>): void {
    this.sql.exec("INSERT INTO task_steps (task, step, body) VALUES (?, ?, ?) " +
      "ON CONFLICT(task, step) DO UPDATE SET body = excluded.body", task, step, JSON.stringify(body));
  }

  taskSteps(task: string): unknown[] {
    return this.sql.exec<{ body: string }>("SELECT body FROM task_steps WHERE task = ? ORDER BY rowid", task)
      .toArray().map((r) => JSON.parse(r.body) as unknown);
  }
}
