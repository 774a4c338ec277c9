// Part of the session role: one tool call the model asked for in a turn — the policy decision (recorded), the
// call through the guarded fetch, retried once on a transient failure when replay-safe, its outcome (recorded)
// and what the turn's trace keeps of it: each attempt and, when ok, the result the model read, masked (the call's
// request is in its round's `tool_calls`, rerun.ts).

import { keepArtifact, type ArtifactTrace } from "./artifacts";
import type { DecisionLog, DecisionView, Scope } from "./decisions";
import { OutboundBlockedError, ToolError } from "./errors";
import { type FetchLike } from "./guard";
import { maskDeep, maskPII } from "./pii";
import { evaluateToolCall, type Policy, type Workflow } from "./policy";
import type { ToolAttemptTrace } from "./rerun";
import { DEFAULT_TOP, type IndexRpc, type SearchMode } from "./retrieval";
import { failureRule, invokeTool, undeclaredArgs, wasSent, type ToolResult } from "./tools";
import type { RetryRecord } from "./usage";

/** A tool call that failed transiently (429, 5xx, timeout, network) is sent at most this many times in all,
 * and only when it is replay-safe: read-only, or carrying an Idempotency-Key the tool honours. */
const MAX_TOOL_ATTEMPTS = 2;
const TOOL_RETRY_DELAY_MS = 50;

/** What the trace keeps of one tool call the model asked for (field by field: agentspec/trace/schema.py). */
export interface ToolTrace {
  tool: string;
  /** The model round (1-based) that asked for it. */
  round: number;
  decision: string;
  rule: string;
  outcome: "ok" | "denied" | "blocked" | "failed";
  /** The failure's rule when `failed` or `blocked`, else null. */
  failure: string | null;
  status: number | null;
  attempts: number;
  latency_ms: number;
  attempt_log: ToolAttemptTrace[];
  /** The projected result the model read, masked; null unless ok. */
  result: Record<string, unknown> | null;
  idempotency_key: string | null;
  /** When the tool keeps its result as an artifact: where, its size, and the bytes kept out of the prompt. */
  artifact?: ArtifactTrace;
  /** When the call was a search of an index: the results' references and scores (no text: it may be long). */
  search?: { index: string; mode: SearchMode; hits: { ref: string; score: number }[] };
}

/** What a tool call needs of its session. */
export interface ToolCallHost {
  readonly policy: Policy;
  readonly env: object;
  readonly log: DecisionLog;
  /** A tenant's index object (retrieval.ts), reached over RPC. */
  indexObject(tenant: string, index: string): IndexRpc;
}

/** Where a turn collects what its tool calls did. */
export interface TurnLog {
  decisions: DecisionView[];
  retries: RetryRecord[];
  tools: ToolTrace[];
}

/** Transient failures worth one more try: rate limits, server errors, timeouts and network errors. */
function transient(error: ToolError): boolean {
  if (error.status === 429 || error.status >= 500) return true;
  // status 0 covers template and secret problems too; only the fetch-level failures are transient.
  return error.status === 0 && /timed out|request failed/.test(error.message);
}

/** One tool call. Answers what the model reads back: the projected result, or an error object. */
export async function callTool(host: ToolCallHost, scope: Scope, wf: Workflow, intent: string, name: string,
  args: Record<string, unknown>, fetcher: FetchLike | undefined, log: TurnLog,
  call: { round: number; traceparent: string }): Promise<string> {
  if (isIndexCall(host.policy, name)) return searchCall(host, scope, wf, intent, name, args, log, call.round);
  const verdict = evaluateToolCall(host.policy, scope.workflow, name);
  log.decisions.push(host.log.record(scope, intent, `tool.call:${name}`, verdict));
  const trace: ToolTrace = { tool: name, round: call.round, decision: verdict.decision, rule: verdict.rule,
    outcome: "denied", failure: null, status: null, attempts: 0, latency_ms: 0, attempt_log: [], result: null,
    idempotency_key: null };
  log.tools.push(trace);
  if (verdict.decision === "deny") return JSON.stringify({ error: "denied by policy", rule: verdict.rule });
  const tool = host.policy.tools[name]!;
  const undeclared = undeclaredArgs(tool, args);
  if (undeclared.length > 0) {
    // Dropped before the call (invokeTool sends declared arguments only); the names are kept (masked), not the values.
    log.decisions.push(host.log.record(scope, intent,
      `tool.args:${name}:${maskPII(undeclared.join(","), wf.pii).slice(0, 200)}`,
      { decision: "dropped", rule: "tool.args.undeclared" }));
  }
  const replaySafe = tool.read_only || (tool.idempotency_key ?? "") !== "";
  // In shadow mode a would-be denial still runs: its host must then get through the guard.
  const allowedHosts = verdict.decision === "shadow_deny" ? [...wf.outbound, tool.host] : wf.outbound;
  // The decision is stored before the call goes out (the output gate holds the request until it is).
  host.log.flush();
  const started = Date.now();
  const outcome = (decision: string, rule: string): void => {
    trace.latency_ms = Date.now() - started;
    if (decision !== "ok") trace.failure = rule;
    log.decisions.push(host.log.record(scope, intent, `tool.result:${name}`, { decision, rule }));
  };
  for (let attempt = 1; ; attempt++) {
    trace.attempts = attempt;
    const sentAt = Date.now();
    let result: ToolResult;
    try {
      result = await invokeTool({ policy: host.policy, toolName: name, args, sessionId: scope.session,
        workflow: scope.workflow, tenant: scope.tenant, env: host.env, allowedHosts, traceparent: call.traceparent,
        ...(fetcher ? { fetcher } : {}) });
    } catch (error) {
      if (error instanceof OutboundBlockedError) {
        trace.attempt_log.push({ sent: false, status: null, rule: "outbound.guard", latency_ms: Date.now() - sentAt });
        trace.outcome = "blocked";
        outcome("deny", "outbound.guard");
        return JSON.stringify({ error: "blocked by the outbound allowlist" });
      }
      if (!(error instanceof ToolError)) throw error;
      trace.status = error.status || null;
      trace.attempt_log.push({ sent: wasSent(error), status: trace.status, rule: failureRule(error),
        latency_ms: Date.now() - sentAt });
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
    trace.attempt_log.push({ sent: true, status: result.status, rule: "ok", latency_ms: result.ms });
    trace.idempotency_key = result.idempotencyKey === null ? null : maskPII(result.idempotencyKey, wf.pii);
    outcome("ok", "tool.ok");
    const forModel = tool.artifact ? await keptForModel(host, scope, intent, name, result.result, log, trace)
      : result.result;
    trace.result = maskDeep(forModel, wf.pii);
    return JSON.stringify(forModel);
  }
}

/** Keep a result aside (artifacts.ts): the model reads the projection and a reference; the trace keeps the same,
 * never the body. When the store fails, the model gets neither the body (the spec keeps it out of the prompt) nor
 * a reference. */
async function keptForModel(host: ToolCallHost, scope: Scope, intent: string, name: string,
  result: Record<string, unknown>, log: TurnLog, trace: ToolTrace): Promise<Record<string, unknown>> {
  const store = host.policy.tools[name]!.artifact!.store;
  try {
    const kept = await keepArtifact(host.env, host.policy, scope, name, result,
      (index, doc) => host.indexObject(scope.tenant, index).indexArtifact(index, scope.tenant, doc));
    trace.artifact = kept.trace;
    log.decisions.push(host.log.record(scope, intent, `artifact.keep:${store}`,
      { decision: "allow", rule: "stores.write" }));
    return kept.forModel;
  } catch (error) {
    console.error(`agentspec: artifact of \`${name}\` not kept:`, error instanceof Error ? error.message : String(error));
    trace.failure = "artifact.error";
    log.decisions.push(host.log.record(scope, intent, `artifact.keep:${store}`,
      { decision: "failed", rule: "artifact.error" }));
    return { error: "the tool answered, but its result could not be kept" };
  }
}

/** Whether the model's tool name is an index (an index and a tool never share a name: the checker's E0101). */
export function isIndexCall(policy: Policy, name: string): boolean {
  return !Object.prototype.hasOwnProperty.call(policy.tools, name) &&
    Object.prototype.hasOwnProperty.call(policy.indexes ?? {}, name);
}

/** The model searches an index its workflow allows: this tenant's entries only, top results with references. */
async function searchCall(host: ToolCallHost, scope: Scope, wf: Workflow, intent: string, name: string,
  args: Record<string, unknown>, log: TurnLog, round: number): Promise<string> {
  const allowed = (wf.indexes ?? []).includes(name);
  const rule = allowed ? "indexes.allow" : "indexes.allowlist";
  log.decisions.push(host.log.record(scope, intent, `index.search:${name}`,
    { decision: allowed ? "allow" : "deny", rule }));
  const trace: ToolTrace = { tool: name, round, decision: allowed ? "allow" : "deny", rule,
    outcome: allowed ? "ok" : "denied", failure: null, status: null, attempts: allowed ? 1 : 0, latency_ms: 0,
    attempt_log: [], result: null, idempotency_key: null };
  log.tools.push(trace);
  if (!allowed) return JSON.stringify({ error: "denied by policy", rule });
  const query = typeof args["query"] === "string" ? args["query"] : "";
  const top = typeof args["top"] === "number" && Number.isFinite(args["top"]) ? args["top"] : DEFAULT_TOP;
  const mode: SearchMode = args["mode"] === "keyword" || args["mode"] === "semantic" ? args["mode"] : "both";
  const started = Date.now();
  host.log.flush();
  try {
    const hits = await host.indexObject(scope.tenant, name).searchIndex(name, scope.tenant, query, top, mode);
    trace.latency_ms = Date.now() - started;
    trace.search = { index: name, mode, hits: hits.map((h) => ({ ref: h.ref, score: h.score })) };
    const results = hits.map((h) => ({ ref: h.ref, score: Number(h.score.toFixed(6)), title: h.title,
      snippet: h.snippet, via: h.via }));
    trace.result = maskDeep({ count: results.length }, wf.pii);
    return JSON.stringify({ results });
  } catch (error) {
    trace.latency_ms = Date.now() - started;
    trace.outcome = "failed";
    trace.failure = "index.error";
    console.error(`agentspec: search of index \`${name}\` failed:`, error instanceof Error ? error.message : String(error));
    log.decisions.push(host.log.record(scope, intent, `index.result:${name}`, { decision: "failed", rule: "index.error" }));
    return JSON.stringify({ error: "search failed" });
  }
}
