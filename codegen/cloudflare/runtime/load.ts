// The policy tables as the compiler wrote them (an imported JSON module) in, a typed Policy out: the
// format version and the top-level tables are checked once, at start-up, so a mismatched compiler and
// runtime fail loudly instead of deciding on missing data.

import { PolicyError } from "./errors";
import type { Policy } from "./policy";

export const POLICY_FORMAT = 1;

export function loadPolicy(tables: unknown): Policy {
  const value = tables as Partial<Record<keyof Policy, unknown>> | null;
  if (value === null || typeof value !== "object") throw new PolicyError("policy tables are not an object");
  if (value.format !== POLICY_FORMAT) {
    throw new PolicyError(`policy tables have format ${String(value.format)}; this runtime reads ${POLICY_FORMAT}`);
  }
  for (const table of ["agent", "auth", "limits", "tiers", "identities", "tools", "workflows"] as const) {
    if (typeof value[table] !== "object" || value[table] === null) {
      throw new PolicyError(`policy tables lack \`${table}\``);
    }
  }
  return value as unknown as Policy;
}
