// What the runtime keeps of a turn's model rounds and tool calls so the turn can be run again: a rerun
// (`agentspec trace replay DIR --runtime URL`) re-sends the recorded turns and tasks to a candidate runtime and
// serves it the recorded model answers and tool results from a loopback stub, then compares the decisions. The
// same records feed the traffic calibration (per-model and per-tool latency and failures). Nothing is kept
// unmasked: a tool call's arguments and a tool's answer are projected onto what the tool declares and masked
// with the workflow's `pii mask` rules before they reach a trace. Field names: agentspec/trace/schema.py.

import type { InferenceAttempt } from "./errors";
import type { InferenceResult, ToolCallRequest } from "./inference";
import { maskDeep, maskPII, type PiiRules } from "./pii";
import type { Policy } from "./policy";
import { undeclaredArgs } from "./tools";

/** The step name of an event sent to a task, in the fleet export (`agentspec.event.<uuid>`): a name no spec step
 * can have (a spec step's is an identifier), so readers tell it from a step record. */
export const EVENT_STEP = "agentspec.event";

/** One model tried in a round. */
export interface ModelAttemptTrace {
  model: string;
  ok: boolean;
  status: number | null;
  error: string | null;
  latency_ms: number;
}

/** One tool call a model answer asked for: declared arguments only, masked; undeclared ones by name. */
export interface ToolRequestTrace {
  name: string;
  args: Record<string, unknown>;
  undeclared: string[];
}

/** One model round of a turn. */
export interface ModelRoundTrace {
  round: number;
  model: string;
  latency_ms: number;
  attempts: ModelAttemptTrace[];
  usage: { input: number; output: number; cached: number };
  tool_calls: ToolRequestTrace[];
}

/** One attempt of a tool call: `rule` is `ok` or the failure's rule. */
export interface ToolAttemptTrace {
  sent: boolean;
  status: number | null;
  rule: string;
  latency_ms: number;
}

export function modelAttempts(attempts: readonly InferenceAttempt[]): ModelAttemptTrace[] {
  return attempts.map((a) => ({ model: a.model, ok: a.ok, status: a.status ?? null, error: a.error ?? null,
    latency_ms: a.ms }));
}

/**
 * A tool request as the trace keeps it: the arguments the tool declares (not type-checked, so a wrongly typed
 * one fails again when rerun), each string masked; undeclared ones by their masked names. A tool the policy
 * does not declare keeps no arguments: its call is denied whatever they are.
 */
export function toolRequest(policy: Policy, name: string, args: Record<string, unknown> | null,
  pii: PiiRules): ToolRequestTrace {
  if (!Object.prototype.hasOwnProperty.call(policy.tools, name)) return { name, args: {}, undeclared: [] };
  const tool = policy.tools[name]!;
  const given = args ?? {};
  const declared: Record<string, unknown> = {};
  for (const arg of Object.keys(tool.args)) {
    if (Object.prototype.hasOwnProperty.call(given, arg)) declared[arg] = given[arg];
  }
  return { name, args: maskDeep(declared, pii), undeclared: undeclaredArgs(tool, given).map((n) => maskPII(n, pii)) };
}

export function modelRound(round: number, result: InferenceResult, calls: readonly ToolCallRequest[],
  policy: Policy, pii: PiiRules): ModelRoundTrace {
  return {
    round, model: result.model, latency_ms: result.attempts.reduce((n, a) => n + a.ms, 0),
    attempts: modelAttempts(result.attempts), usage: { ...result.usage },
    tool_calls: calls.map((c) => toolRequest(policy, c.name, c.arguments, pii)),
  };
}

/**
 * The W3C trace context header for the requests of one turn or task (https://www.w3.org/TR/trace-context/):
 * the trace id is the turn's `trace_id` or the task id's 32 hex digits, so a tool's logs, and a rerun's stub,
 * can tell which turn or task a request belongs to. The parent id is the call's index, which keeps it stable
 * across retries of one call.
 */
export function traceparent(id: string, call: number): string {
  const hex = id.toLowerCase().replace(/[^0-9a-f]/g, "");
  const trace = hex.slice(-32).padStart(32, "0");
  const traceId = /^0+$/.test(trace) ? "1".padStart(32, "0") : trace; // all zeros is invalid
  const parent = (call + 1).toString(16).padStart(16, "0");
  return `00-${traceId}-${parent}-01`;
}
