// Policy tables (the `policy.json` the compiler emits) as types, and their evaluation:
// (policy, workflow, tool name) in, one allow / deny / shadow_deny Decision out, naming the rule that decided.
// The Python evaluator in agentspec/policy.py reads the same tables and must return the same decisions.

import { isHostAllowed } from "./guard";
import { PolicyError } from "./errors";

/** Declared type of a tool argument or return field; a trailing "?" marks it optional. */
export type FieldType = "string" | "int" | "number" | "bool";
export type FieldSpec = FieldType | `${FieldType}?`;

export interface Price {
  input_per_mtok: number;
  output_per_mtok: number;
  /** Optional: price of cached input tokens, when the model discounts them. */
  cached_input_per_mtok?: number;
}

export interface Tier {
  /** Primary model first, then the fallbacks, in the order they are tried. */
  models: string[];
  timeout_ms: number;
  clearance: string;
  price?: Price | null;
}

export interface Identity {
  secrets: string[];
}

export interface ToolSpec {
  method: string;
  /** URL template; `{name}` placeholders are filled from the call's arguments. */
  url: string;
  /** Host of `url` (with `:port` when the URL names one); checked against the workflow's outbound allowlist. */
  host: string;
  risk: string;
  read_only: boolean;
  /** Template over `{session}`, `{workflow}`, `{args.NAME}`; absent or null when the tool is read-only. */
  idempotency_key?: string | null;
  timeout_ms: number;
  identity?: string | null;
  secrets: string[];
  /** Header templates; `{secret.NAME}` reads `env[NAME]`, which must be a secret of the tool's identity. */
  headers: Record<string, string>;
  compensate?: string | null;
  args: Record<string, FieldSpec>;
  /** The declared result shape; null when the tool declares none (its JSON object is passed on whole). */
  returns: Record<string, FieldSpec> | null;
  max_response_bytes?: number;
}

export type Backoff = "constant" | "linear" | "exponential";

export interface Step {
  name: string;
  kind: "call" | "infer" | (string & {});
  tool?: string | null;
  /** Argument templates, `[name, template]`, over `{params.NAME}` and `{STEP.FIELD}`; null: the task's params. */
  args?: [string, string][] | null;
  tier?: string | null;
  prompt?: string | null;
  retries?: number;
  backoff?: Backoff;
  delay_ms?: number;
  timeout_ms?: number;
}

export interface Workflow {
  class: string;
  mode: "enforce" | "shadow";
  turn_risk: string;
  turn_tier: string;
  /** Risk level -> tier name. */
  routes: Record<string, string>;
  tools: string[];
  outbound: string[];
  affinity: { header: string; ttl_ms: number };
  checkpoint?: { every: number; tier: string; store: string } | null;
  pii: { classes: string[]; patterns: Record<string, string> };
  steps: Step[];
  /** The Workflow binding in `env` that runs this workflow's steps; null when it has none. */
  task_binding?: string | null;
  slo?: Record<string, number | string> | null;
}

export interface Policy {
  format: 1;
  spec_hash: string;
  compiler: string;
  agent: { name: string; version: number; owner: string | null };
  auth: { scheme: "bearer"; tokens_secret: string; admin_secret: string | null; tenant_header: string };
  stores?: Record<string, { kind: "kv" | "r2"; binding: string }>;
  limits: { max_body_bytes: number; max_session_id: number };
  tiers: Record<string, Tier>;
  identities: Record<string, Identity>;
  tools: Record<string, ToolSpec>;
  workflows: Record<string, Workflow>;
}

export type DecisionKind = "allow" | "deny" | "shadow_deny";

export interface Decision {
  decision: DecisionKind;
  /** Stable rule id: workflow.unknown, tools.unknown, tools.allowlist, outbound.allowlist, shadow.not_read_only,
   * shadow.over_clearance, tools.allow. */
  rule: string;
  reason: string;
}

const own = <T>(table: Record<string, T>, key: string): T | undefined =>
  Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;

/** Risk levels in order; a tier `clears risk R` for R and every level below it. */
export const RISK_ORDER: Readonly<Record<string, number>> = { low: 0, medium: 1, high: 2 };

/**
 * Decide whether `workflow` may call `toolName`. Checked in this order, first failing rule wins:
 * 1. `workflow.unknown` (deny): the workflow is not in the tables.
 * 2. `tools.unknown` (deny, in every mode): the tool is not declared, so there is nothing to call.
 * 3. `tools.allowlist`: the tool is not in the workflow's allowlist.
 * 4. `outbound.allowlist`: the tool's host is not in the workflow's outbound allowlist.
 * Rules 3 and 4 deny in mode "enforce". In mode "shadow" they answer `shadow_deny` (the call runs, recorded) only
 * for a harmless call: a `read_only` tool whose risk the workflow's turn tier clears. Otherwise shadow denies for
 * real, as `shadow.not_read_only` (a state-changing tool) or `shadow.over_clearance` (risk above the clearance).
 * Otherwise `tools.allow` (allow).
 */
export function evaluateToolCall(policy: Policy, workflow: string, toolName: string): Decision {
  const wf = own(policy.workflows, workflow);
  if (wf === undefined) {
    return { decision: "deny", rule: "workflow.unknown", reason: `workflow \`${workflow}\` is not declared` };
  }
  const tool = own(policy.tools, toolName);
  if (tool === undefined) {
    return { decision: "deny", rule: "tools.unknown", reason: `tool \`${toolName}\` is not declared` };
  }
  let refused: Decision | null = null;
  if (!wf.tools.includes(toolName)) {
    refused = { decision: "deny", rule: "tools.allowlist",
      reason: `tool \`${toolName}\` is not in the tool allowlist of workflow \`${workflow}\`` };
  } else if (!toolHostAllowed(wf.outbound, tool)) {
    refused = { decision: "deny", rule: "outbound.allowlist",
      reason: `host \`${tool.host}\` of tool \`${toolName}\` is not in the outbound allowlist of workflow \`${workflow}\`` };
  }
  if (refused === null) {
    return { decision: "allow", rule: "tools.allow", reason: `tool \`${toolName}\` is allowed in workflow \`${workflow}\`` };
  }
  if (wf.mode !== "shadow") return refused;
  // Shadow mode lets a would-be denial run only when running it cannot change anything nor read above clearance.
  if (!tool.read_only) {
    return { decision: "deny", rule: "shadow.not_read_only",
      reason: `${refused.reason}, and shadow mode runs only read-only tools` };
  }
  const clearance = own(policy.tiers, wf.turn_tier)?.clearance ?? "low";
  if ((RISK_ORDER[tool.risk] ?? Infinity) > (RISK_ORDER[clearance] ?? 0)) {
    return { decision: "deny", rule: "shadow.over_clearance",
      reason: `${refused.reason}, and its risk \`${tool.risk}\` is above the clearance \`${clearance}\` of tier \`${wf.turn_tier}\`` };
  }
  return { ...refused, decision: "shadow_deny" };
}

/** The same host test guardedFetch applies, on the tool's declared host and its URL's scheme. */
function toolHostAllowed(outbound: readonly string[], tool: ToolSpec): boolean {
  const scheme = /^http:/i.test(tool.url) ? "http:" : "https:";
  let url: URL;
  try {
    url = new URL(`${scheme}//${tool.host}/`);
  } catch {
    return false;
  }
  return isHostAllowed(outbound, url);
}

/** The tier a workflow's turns run on (its `turn_tier`), by name and table. Throws PolicyError if either is missing. */
export function turnTier(policy: Policy, workflow: string): { name: string; tier: Tier } {
  const wf = own(policy.workflows, workflow);
  if (wf === undefined) throw new PolicyError(`workflow \`${workflow}\` is not declared`);
  const tier = own(policy.tiers, wf.turn_tier);
  if (tier === undefined) throw new PolicyError(`tier \`${wf.turn_tier}\` of workflow \`${workflow}\` is not declared`);
  return { name: wf.turn_tier, tier };
}

/** The tier a workflow routes `risk` to (its `routes` table), falling back to `turn_tier`. */
export function routeTier(policy: Policy, workflow: string, risk: string): { name: string; tier: Tier } {
  const wf = own(policy.workflows, workflow);
  if (wf === undefined) throw new PolicyError(`workflow \`${workflow}\` is not declared`);
  const name = own(wf.routes, risk) ?? wf.turn_tier;
  const tier = own(policy.tiers, name);
  if (tier === undefined) throw new PolicyError(`tier \`${name}\` of workflow \`${workflow}\` is not declared`);
  return { name, tier };
}
