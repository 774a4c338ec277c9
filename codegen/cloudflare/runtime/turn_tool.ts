// Part of the session role: one tool call the model asked for in a turn — the policy decision (recorded), the
// call through the guarded fetch, retried once on a transient failure when replay-safe, its outcome (recorded)
// and what the turn's trace keeps of it.

import type { DecisionLog, DecisionView, Scope } from "./decisions";
import { OutboundBlockedError, ToolError } from "./errors";
import { type FetchLike } from "./guard";
import { maskPII } from "./pii";
import { evaluateToolCall, type Policy, type Workflow } from "./policy";
import { invokeTool, ToolArgumentError, undeclaredArgs, type ToolResult } from "./tools";
import type { RetryRecord } from "./usage";

/** A tool call that failed transiently (429, 5xx, timeout, network) is sent at most this many times in all,
 * and only when it is replay-safe: read-only, or carrying an Idempotency-Key the tool honours. */
const MAX_TOOL_ATTEMPTS = 2;
const TOOL_RETRY_DELAY_MS = 50;

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

/** What a tool call needs of its session. */
export interface ToolCallHost {
  readonly policy: Policy;
  readonly env: object;
  readonly log: DecisionLog;
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

function failureRule(error: ToolError): string {
  if (error instanceof ToolArgumentError) return error.rule;
  if (error.status >= 300 && error.status < 400) return "tool.redirect_refused";
  if (error.status > 0) return "tool.status";
  return /timed out/.test(error.message) ? "tool.timeout" : "tool.error";
}

/** One tool call. Answers what the model reads back: the projected result, or an error object. */
export async function callTool(host: ToolCallHost, scope: Scope, wf: Workflow, intent: string, name: string,
  args: Record<string, unknown>, fetcher: FetchLike | undefined, log: TurnLog): Promise<string> {
  const verdict = evaluateToolCall(host.policy, scope.workflow, name);
  log.decisions.push(host.log.record(scope, intent, `tool.call:${name}`, verdict));
  const trace: ToolTrace = { tool: name, decision: verdict.decision, rule: verdict.rule, outcome: "denied",
    status: null, attempts: 0, ms: 0, idempotency_key: null };
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
    trace.ms = Date.now() - started;
    log.decisions.push(host.log.record(scope, intent, `tool.result:${name}`, { decision, rule }));
  };
  for (let attempt = 1; ; attempt++) {
    trace.attempts = attempt;
    let result: ToolResult;
    try {
      result = await invokeTool({ policy: host.policy, toolName: name, args, sessionId: scope.session,
        workflow: scope.workflow, tenant: scope.tenant, env: host.env, allowedHosts, ...(fetcher ? { fetcher } : {}) });
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
