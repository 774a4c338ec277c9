// Error classes the runtime throws, and `jsonError`, the one place an error becomes an HTTP response
// shaped `{"error": {"code", "message"}}` (the generated Worker's error contract, see docs/runtime.md).

/** A JSON error response: `{"error": {"code": code, "message": message}}` with a JSON content type. */
export function jsonError(status: number, code: string, message: string, headers?: HeadersInit): Response {
  const h = new Headers(headers);
  h.set("content-type", "application/json; charset=utf-8");
  return new Response(JSON.stringify({ error: { code, message } }), { status, headers: h });
}

/** guardedFetch refused a request: host not allowlisted, bad scheme, userinfo, or unparseable URL. */
export class OutboundBlockedError extends Error {
  override readonly name = "OutboundBlockedError";
  constructor(
    readonly host: string,
    readonly reason: string,
  ) {
    super(`outbound request to \`${host}\` blocked: ${reason}`);
  }
}

/** One inference attempt against one model, as reported back to the caller and the trace. */
export interface InferenceAttempt {
  model: string;
  ok: boolean;
  status?: number;
  error?: string;
  ms: number;
}

/** Every model of the tier failed (429, 5xx, timeout or network error); `attempts` says how each failed.
 * `inferenceUrl` is the OpenAI-compatible backend they were sent to (absent: Workers AI). */
export class AllModelsFailedError extends Error {
  override readonly name = "AllModelsFailedError";
  constructor(
    readonly attempts: readonly InferenceAttempt[],
    readonly inferenceUrl?: string,
  ) {
    super(
      `all models failed: ${attempts.map((a) => `${a.model} (${a.status ?? a.error ?? "error"})`).join(", ") || "no models"}`,
    );
  }

  /** Each model's cause, in the order tried: `@cf/a: cannot reach 127.0.0.1:9: ...; @cf/b: HTTP 503`. What the
   * `model.unavailable` chain record carries as its `detail`, and the 503's message lists. */
  causes(): string {
    return this.attempts.map((a) => `${a.model}: ${a.error ?? (a.status !== undefined ? `HTTP ${a.status}` : "error")}`)
      .join("; ") || "no models";
  }

  /** When no model could even be reached at INFERENCE_URL, the variable to look at, said on the first turn
   * (a wrong port or a model server that is not running looks like this); otherwise "". */
  hint(): string {
    if (this.inferenceUrl === undefined || this.attempts.length === 0) return "";
    if (!this.attempts.every((a) => a.error?.startsWith("cannot reach ") === true || a.error === "timeout")) return "";
    return `; nothing answers at INFERENCE_URL (${this.inferenceUrl}): is the model server running, and the URL right?`;
  }
}

/** A tool call failed: non-2xx answer (`status` set), timeout, bad template or undeclared secret (`status` 0). */
export class ToolError extends Error {
  override readonly name = "ToolError";
  constructor(
    readonly tool: string,
    readonly status: number,
    message: string,
    readonly body?: string,
  ) {
    super(`tool \`${tool}\`: ${message}`);
  }
}

/** A policy table or runtime configuration is inconsistent (a compiler bug, not a user error). */
export class PolicyError extends Error {
  override readonly name = "PolicyError";
}

/** An error's message, whatever was thrown. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
