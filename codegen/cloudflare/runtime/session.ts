// Role: a session's turns (the object named sessionObjectName(tenant, session); object.ts routes its RPCs here).
// It holds the per-session turn lock, the conversation (PII-masked) in SQLite, checkpoint summaries every N
// turns (written to KV by the summarizer tier, history trimmed) and per-turn trace records; its decisions go to
// the object's chain (decisions.ts). A turn is: prompt building (`prepare`), the model/tool loop (`converse`),
// then the commit (`commit`, then `afterCommit` for what may follow a committed turn).
// https://developers.cloudflare.com/durable-objects/api/sqlite-storage-api/

import type { DecisionLog, DecisionView } from "./decisions";
import type { RuntimeEnv } from "./env";
import { AllModelsFailedError, messageOf, PolicyError } from "./errors";
import type { Outbox } from "./export";
import { HttpError } from "./http";
import { runInference, type ChatMessage, type InferenceResult } from "./inference";
import type { MetaTable } from "./meta";
import { maskPII } from "./pii";
import { modelRound, traceparent, type ModelRoundTrace } from "./rerun";
import type { Policy, Workflow } from "./policy";
import { chatTools, checkpointMessages, turnMessages, type HistoryMessage } from "./prompt";
import type { IndexRpc } from "./retrieval";
import { policyDenials, type Alert, type SliSample } from "./slo";
import { toolFetcher } from "./origins";
import { MAX_TOOL_CALLS_PER_ANSWER, MAX_TOOL_CALLS_PER_TURN } from "./tools";
import { callTool, type ToolTrace } from "./turn_tool";
import { modelFamily, modelRetries, priceOf, type RetryRecord, type Spend } from "./usage";

export const SESSION_SCHEMA = `CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, turn INTEGER NOT NULL,
    role TEXT NOT NULL, content TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS turns (turn INTEGER PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL);`;

export interface TurnRequest {
  tenant: string;
  session: string;
  workflow: string;
  input: string;
  affinity: string;
  traceId: string;
  colo: string;
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

/** What the session role needs of its object. */
export interface SessionHost {
  readonly sql: SqlStorage;
  readonly env: RuntimeEnv;
  readonly policy: Policy;
  readonly meta: MetaTable;
  readonly log: DecisionLog;
  readonly outbox: Outbox;
  /** The workflow's SLO monitor: another object, reached over RPC. */
  sloMonitor(workflow: string): { observe(workflow: string, sample: SliSample): Promise<Alert[]> };
  /** A tenant's index object (retrieval.ts): artifacts go in, searches come out. */
  indexObject(tenant: string, index: string): IndexRpc;
}

/** At most this many model rounds in one turn (a round may ask for tools). */
const MAX_ROUNDS = 4;

/** Short-term memory: the turns a prompt carries, and a workflow without checkpoints keeps. A workflow with
 * `checkpoint every N turns` is trimmed to its summary at each checkpoint instead. */
const HISTORY_TURNS = 20;

/** One turn in progress: what it was asked, and what it has done so far. */
interface Turn {
  req: TurnRequest;
  wf: Workflow;
  turn: number;
  started: number;
  maskedInput: string;
  intent: string;
  messages: ChatMessage[];
  decisions: DecisionView[];
  retries: RetryRecord[];
  tools: ToolTrace[];
  /** Each model round: the models tried and the tool calls asked for (what a rerun serves again, rerun.ts). */
  rounds: ModelRoundTrace[];
  usage: Spend;
}

/** What the model/tool loop answered. */
interface Answer {
  output: string;
  model: string;
  ttft: number | null;
  rounds: number;
}

/** Every turn's trace record of a session, oldest first. */
export function turnRecords(sql: SqlStorage): unknown[] {
  return sql.exec<{ body: string }>("SELECT body FROM turns ORDER BY turn").toArray()
    .map((r) => JSON.parse(r.body) as unknown);
}

export class SessionTurns {
  private busy = false;
  /** The turn whose trace row is written but may still change (its SLO alerts and checkpoint are running): the
   * export leaves it for its next send. */
  unfinished: number | null = null;

  constructor(private readonly host: SessionHost) {}

  // ── state ────────────────────────────────────────────────────────────────

  /** The newest turn and when it was committed (ms since the epoch), read once from the turns table and then
   * kept here: the counter and the idle clock cost no write of their own. */
  private head: { turn: number; at: number } | null = null;

  private lastTurn(): { turn: number; at: number } {
    this.head ??= this.host.sql.exec<{ turn: number; at: number }>(
      "SELECT turn, at FROM turns ORDER BY turn DESC LIMIT 1").toArray()[0] ?? { turn: 0, at: 0 };
    return this.head;
  }

  /** The last HISTORY_TURNS turns' messages, as a prompt carries them: read once, then kept in step here. */
  private recent: HistoryMessage[] | null = null;

  private recentHistory(): readonly HistoryMessage[] {
    this.recent ??= this.host.sql.exec<{ role: string; content: string }>(
      "SELECT role, content FROM (SELECT id, role, content FROM messages ORDER BY id DESC LIMIT ?) ORDER BY id",
      HISTORY_TURNS * 2).toArray();
    return this.recent;
  }

  private appendHistory(turn: number, user: string, assistant: string): void {
    this.host.sql.exec("INSERT INTO messages (turn, role, content) VALUES (?, 'user', ?), (?, 'assistant', ?)",
      turn, user, turn, assistant);
    const recent = [...this.recentHistory(), { role: "user", content: user }, { role: "assistant", content: assistant }];
    this.recent = recent.slice(-HISTORY_TURNS * 2);
  }

  private clearHistory(): void {
    this.host.sql.exec("DELETE FROM messages");
    this.recent = [];
  }

  private allMessages(): HistoryMessage[] {
    return this.host.sql.exec<{ role: string; content: string }>("SELECT role, content FROM messages ORDER BY id")
      .toArray();
  }

  private record(t: Turn, action: string, d: { decision: string; rule: string; detail?: string }): void {
    t.decisions.push(this.host.log.record(t.req, t.intent, action, d));
  }

  // ── one turn ─────────────────────────────────────────────────────────────

  async turn(req: TurnRequest): Promise<TurnOutcome> {
    // Input gates do not hold while we await the model or a tool, so the lock is explicit.
    if (this.busy) {
      return { ok: false, status: 409, code: "turn_in_progress", message: "a turn is already running in this session",
        decisions: [] };
    }
    this.busy = true;
    try {
      const t = this.prepare(req);
      let answer: Answer;
      try {
        answer = await this.converse(t);
      } catch (error) {
        return await this.failed(t, error);
      }
      return await this.commit(t, answer);
    } finally {
      // Whatever ended the turn, the decisions it made are kept (and the in-memory chain head stays true).
      this.host.log.flush();
      this.busy = false;
    }
  }

  /** The turn's number, routing decision, idle expiry, and prompt. */
  private prepare(req: TurnRequest): Turn {
    const started = Date.now();
    const wf = this.host.policy.workflows[req.workflow]!;
    const maskedInput = maskPII(req.input, wf.pii);
    const t: Turn = { req, wf, turn: this.lastTurn().turn + 1, started, maskedInput,
      intent: maskedInput.slice(0, 200), messages: [], decisions: [], retries: [], tools: [],
      rounds: [], usage: { input: 0, output: 0, cached: 0 } };
    this.record(t, `model.route:${wf.turn_tier}`, { decision: "allow", rule: `route.risk.${wf.turn_risk}` });

    // The session's state lives `ttl` past its last turn (`session affinity ... ttl`): an idle session
    // starts over with no history or summary. Its turn numbers and decision chain go on.
    const lastTurnAt = this.lastTurn().at;
    if (lastTurnAt > 0 && started - lastTurnAt > wf.affinity.ttl_ms) {
      this.clearHistory();
      this.host.meta.set({ summary: null, checkpoint_turn: null });
      this.record(t, "session.expired", { decision: "allow", rule: "session.ttl" });
    }
    t.messages = turnMessages(this.host.policy, req.workflow, this.host.meta.get("summary"), this.recentHistory(),
      req.input);
    return t;
  }

  /** Model rounds until an answer without tool calls (or the last round); the tool calls in between. */
  private async converse(t: Turn): Promise<Answer> {
    const { req, wf, messages } = t;
    const tools = chatTools(this.host.policy, wf);
    const fetcher = toolFetcher(this.host.env);
    const answer: Answer = { output: "", model: "", ttft: null, rounds: 0 };
    let callsThisTurn = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const result = await runInference({ policy: this.host.policy, tier: wf.turn_tier, messages,
        ...(tools.length ? { tools } : {}), sessionAffinity: req.affinity, traceparent: traceparent(req.traceId, 0),
        env: this.host.env });
      t.rounds.push(modelRound(round + 1, result, result.toolCalls, this.host.policy, wf.pii));
      // Answers are not streamed, so the first token arrives with the first complete answer.
      answer.ttft ??= Date.now() - t.started;
      answer.rounds++;
      answer.model = result.model;
      t.retries.push(...modelRetries(result.attempts));
      t.usage.input += result.usage.input;
      t.usage.output += result.usage.output;
      t.usage.cached += result.usage.cached;
      if (result.attempts.length > 1) {
        this.record(t, `model.fallback:${result.model}`, { decision: "allow", rule: "model.fallback" });
      }
      if (result.toolCalls.length === 0 || round === MAX_ROUNDS - 1) {
        answer.output = result.text;
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
          this.record(t, `tool.call:${call.name}`, { decision: "deny", rule: cap });
          content = JSON.stringify({ error: "denied by policy", rule: cap });
        } else {
          callsThisTurn++;
          content = await callTool(this.host, req, wf, t.intent, call.name, call.arguments ?? {}, fetcher, t,
            { round: round + 1, traceparent: traceparent(req.traceId, callsThisTurn) });
        }
        messages.push({ role: "tool", tool_call_id: call.id, content });
      }
    }
    return answer;
  }

  /** A turn the model/tool loop could not finish: every model down, or the deployment misconfigured. */
  private async failed(t: Turn, error: unknown): Promise<TurnOutcome> {
    const { decisions } = t;
    if (error instanceof AllModelsFailedError) {
      this.record(t, `model.call:${t.wf.turn_tier}`,
        { decision: "deny", rule: "model.unavailable", detail: error.causes() });
      this.host.log.flush();
      // A failed turn counts against the success SLO (and its latency against the latency SLO).
      await this.observeSlo(t, { ok: false, latency_ms: Date.now() - t.started, ttft_ms: 0,
        cost_usd: null, input_tokens: t.usage.input, cached_tokens: t.usage.cached,
        denied: policyDenials(decisions), decisions: decisions.length });
      return { ok: false, status: 503, code: "models_unavailable",
        message: `every model of the tier failed (${error.causes()})${error.hint()}; try again later`, decisions };
    }
    if (error instanceof HttpError && error.code === "misconfigured") {
      // Said to the caller as what it is; an error thrown across the RPC boundary would lose its class.
      return { ok: false, status: error.status, code: error.code, message: error.message, decisions };
    }
    throw error;
  }

  /** The trace record of a turn, given what its checkpoint did (null: none, or not yet). */
  private traceOf(t: Turn, answer: Answer, latency: number, cost: number | null,
    checkpoint: Record<string, unknown> | null): { trace_id: string } & Record<string, unknown> {
    const { req, wf, usage } = t;
    const tier = this.host.policy.tiers[wf.turn_tier]!;
    return {
      trace_id: req.traceId, turn: t.turn, workflow: req.workflow, tenant: req.tenant, region: req.colo,
      affinity: req.affinity,
      // OpenTelemetry GenAI semantic conventions where a name exists
      // (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/).
      "gen_ai.operation.name": "chat", "gen_ai.provider.name": "cloudflare.workers_ai",
      "gen_ai.conversation.id": req.session,
      "gen_ai.request.model": tier.models[0] ?? answer.model, "gen_ai.response.model": answer.model,
      model_family: modelFamily(answer.model), tier: wf.turn_tier, prompt_family: `${req.workflow}.turn`,
      ttft_ms: answer.ttft ?? latency, latency_ms: latency, rounds: answer.rounds,
      "gen_ai.usage.input_tokens": usage.input, "gen_ai.usage.output_tokens": usage.output,
      "gen_ai.usage.cache_read.input_tokens": usage.cached,
      cost_usd: cost,
      price: tier.price ?? null,
      retries: t.retries.filter((r) => r.performed).length,
      retry_log: t.retries,
      model_rounds: t.rounds,
      tools: t.tools,
      checkpoint,
      decisions: t.decisions.map((d) => ({ seq: d.seq, action: d.action, decision: d.decision, rule: d.rule })),
    };
  }

  /** Write the finished turn, then what may follow it. */
  private async commit(t: Turn, answer: Answer): Promise<TurnOutcome> {
    const { sql } = this.host;
    const cost = priceOf(this.host.policy.tiers[t.wf.turn_tier]!, t.usage);
    const latency = Date.now() - t.started;
    // One commit for the turn: masked messages, the counter, its decision records and its trace record, with
    // no await in between, so a stop can never leave a counted turn untraced or a trace without its turn.
    this.appendHistory(t.turn, t.maskedInput, maskPII(answer.output, t.wf.pii));
    if (!t.wf.checkpoint && t.turn % HISTORY_TURNS === 0 && t.turn > HISTORY_TURNS) {
      // Trimmed every HISTORY_TURNS turns rather than every turn: storage holds 20 to 40 turns, a prompt 20.
      sql.exec("DELETE FROM messages WHERE turn <= ?", t.turn - HISTORY_TURNS);
    }
    this.host.log.flush();
    const at = Date.now();
    sql.exec("INSERT INTO turns (turn, at, body) VALUES (?, ?, ?)", t.turn, at,
      JSON.stringify(this.traceOf(t, answer, latency, cost, null)));
    this.head = { turn: t.turn, at };
    this.unfinished = t.turn;
    try {
      const sample: SliSample = { ok: true, latency_ms: latency, ttft_ms: answer.ttft ?? latency, cost_usd: cost,
        input_tokens: t.usage.input, cached_tokens: t.usage.cached,
        denied: policyDenials(t.decisions), decisions: t.decisions.length };
      const checkpoint = await this.afterCommit(t, sample);
      if (checkpoint.result !== null || checkpoint.recorded) {
        this.host.log.flush();
        sql.exec("UPDATE turns SET body = ? WHERE turn = ?",
          JSON.stringify(this.traceOf(t, answer, latency, cost, checkpoint.result)), t.turn);
      }
    } finally {
      this.unfinished = null;
    }
    this.host.outbox.touch(); // the export reads the trace from `turns` (export.ts ExportSender)
    return { ok: true, session_id: t.req.session, turn: t.turn, output: answer.output, model: answer.model,
      decisions: t.decisions, trace_id: t.req.traceId };
  }

  /** SLO alerts and a checkpoint, which complete the trace record. The turn is committed: from here a failure is
   * recorded, never answered as an error (a client retrying an error would run the turn twice). */
  private async afterCommit(t: Turn, sample: SliSample):
    Promise<{ result: Record<string, unknown> | null; recorded: boolean }> {
    const before = t.decisions.length;
    try {
      await this.observeSlo(t, sample);
    } catch (error) {
      console.error("agentspec: SLO monitor failed", messageOf(error));
      this.record(t, "slo.observe", { decision: "failed", rule: "slo.error" });
    }
    let result: Record<string, unknown> | null = null;
    const every = t.wf.checkpoint;
    if (every && t.turn - Number(this.host.meta.get("checkpoint_turn") ?? "0") >= every.every) {
      try {
        result = await this.checkpoint(t);
      } catch (error) {
        console.error("agentspec: checkpoint failed", messageOf(error));
        this.record(t, `checkpoint:${every.store}`, { decision: "failed", rule: "checkpoint.error" });
        result = { tier: every.tier, ok: false, prompt_family: `${t.req.workflow}.checkpoint` };
      }
    }
    return { result, recorded: t.decisions.length > before };
  }

  /**
   * Summarize the conversation with the checkpoint tier, store the summary (masked) in the workflow's store,
   * keep it as the next turns' context and trim the history. A summarizer outage keeps the history for the
   * next turn to try again. Returns what the turn's trace keeps of it.
   */
  private async checkpoint(t: Turn): Promise<Record<string, unknown>> {
    const { req, wf } = t;
    const checkpoint = wf.checkpoint!;
    const store = (this.host.env as unknown as Record<string, KVNamespace | R2Bucket | undefined>)[checkpoint.store];
    if (!store) throw new PolicyError(`checkpoint store binding \`${checkpoint.store}\` is missing from env`);
    const history = this.allMessages();
    let result: InferenceResult;
    try {
      result = await runInference({ policy: this.host.policy, tier: checkpoint.tier, sessionAffinity: req.affinity,
        traceparent: traceparent(req.traceId, 0), env: this.host.env, messages: checkpointMessages(this.host.meta.get("summary"), history) });
    } catch (error) {
      if (!(error instanceof AllModelsFailedError)) throw error;
      t.retries.push(...modelRetries(error.attempts));
      this.record(t, `checkpoint:${checkpoint.store}`,
        { decision: "failed", rule: "model.unavailable", detail: error.causes() });
      return { tier: checkpoint.tier, ok: false, prompt_family: `${req.workflow}.checkpoint` };
    }
    t.retries.push(...modelRetries(result.attempts));
    const summary = maskPII(result.text, wf.pii);
    await store.put(`summary/${req.tenant}/${req.session}`, JSON.stringify({
      session: req.session, tenant: req.tenant, turn: t.turn, summary, spec_hash: this.host.policy.spec_hash }));
    this.host.meta.set({ summary, checkpoint_turn: String(t.turn) });
    this.clearHistory();
    this.record(t, `checkpoint:${checkpoint.store}`, { decision: "allow", rule: "checkpoint.every" });
    const tier = this.host.policy.tiers[checkpoint.tier]!;
    return { tier: checkpoint.tier, ok: true, prompt_family: `${req.workflow}.checkpoint`,
      "gen_ai.response.model": result.model, "gen_ai.usage.input_tokens": result.usage.input,
      "gen_ai.usage.output_tokens": result.usage.output,
      "gen_ai.usage.cache_read.input_tokens": result.usage.cached, cost_usd: priceOf(tier, result.usage),
      trimmed_messages: history.length };
  }

  /** Feed one turn to its workflow's SLO monitor; each alert it fires becomes an `alert:<sli>` record. */
  private async observeSlo(t: Turn, sample: SliSample): Promise<void> {
    const slo = this.host.policy.workflows[t.req.workflow]?.slo;
    if (!slo || Object.keys(slo).length === 0) return; // no SLO: spare the monitor round trip
    const monitor = this.host.sloMonitor(t.req.workflow);
    for (const alert of await monitor.observe(t.req.workflow, sample)) {
      this.record(t, `alert:${alert.sli}`,
        { decision: alert.delivered ? "alert" : "alert_undelivered", rule: `slo.${alert.sli}` });
    }
  }

  // ── reads ────────────────────────────────────────────────────────────────

  state(): { turns: number; summary: string | null; messages: HistoryMessage[] } {
    return { turns: this.lastTurn().turn, summary: this.host.meta.get("summary"), messages: this.allMessages() };
  }
}
