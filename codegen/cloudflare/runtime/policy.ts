// Policy tables (the `policy.json` the compiler emits) and their evaluation:
// (policy, workflow, tool name) in, one allow / deny / shadow_deny Decision out, naming the rule that decided.
// The Python evaluator in agentspec/policy.py reads the same tables and must return the same decisions.

import { isHostAllowed } from "./guard";
import { PolicyError } from "./errors";

// The tables' types are generated from the one schema (agentspec/policy_schema.py, through policy.schema.json):
// see policy_types.ts. `Policy` is the root, `policy.json` as a whole.
import type { PolicyTables, Tier, ToolSpec } from "./policy_types";

export type * from "./policy_types";
export { POLICY_SCHEMA } from "./policy_types";
export type Policy = PolicyTables;
/** A tool argument's or return field's declared type, without the optional mark. */
export type FieldType = "string" | "int" | "number" | "bool";

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
