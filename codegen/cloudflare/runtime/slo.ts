// Rolling service-level indicators per workflow, and the alerts they fire: one turn's sample in, the
// alerts it triggered out. Runs inside the workflow's monitor object (a SessionObject named
// ["slo", workflow]), so every session of the workflow feeds the same window.

import type { Policy } from "./policy";

/** What one turn contributes to its workflow's SLIs. */
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

/** An SLO crossed: which indicator, its value and the bound, and whether the webhook took it. */
export interface Alert {
  sli: string;
  value: number;
  bound: number;
  delivered: boolean;
}

/**
 * Fold a sample into the window kept in `sql` and return the alerts it fires.
 * Placeholder: keeps no window and fires nothing yet.
 */
export async function observe(
  _sql: SqlStorage,
  _env: object,
  _policy: Policy,
  _workflow: string,
  _sample: SliSample,
): Promise<Alert[]> {
  return [];
}
