// Shared helper: what traces say about model calls — token usage and its price on a tier, a model's family,
// and the retry log (model fallbacks, tool retries). Used by the session's turns and by task steps.

import type { InferenceAttempt } from "./errors";
import type { Tier } from "./policy";

/** Token usage of one or more model calls. */
export interface Spend {
  input: number;
  output: number;
  cached: number;
}

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

/** USD for `usage` at `tier`'s declared per-million-token prices; cached input at its own price when declared
 * (null: the tier declares no price). */
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
export function modelRetries(attempts: readonly InferenceAttempt[]): RetryRecord[] {
  const out: RetryRecord[] = [];
  for (let i = 1; i < attempts.length; i++) {
    const failed = attempts[i - 1]!;
    out.push({ kind: "model", target: attempts[i]!.model, attempt: i + 1,
      reason: `${failed.model}: ${failed.status ?? failed.error ?? "error"}`, replay_safe: true, performed: true });
  }
  return out;
}
