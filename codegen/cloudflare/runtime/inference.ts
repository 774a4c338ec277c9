// Model calls with a fallback chain: a tier's models, the messages and tools in, the first model's answer
// that succeeds out, with one attempt record per model tried. The backend is an OpenAI-compatible
// `/chat/completions` endpoint when `env.INFERENCE_URL` is set (local runs, tests), else the Workers AI binding.
// `x-session-affinity` is sent either way so a session's prompt prefix stays cached on one model instance
// (https://developers.cloudflare.com/workers-ai/features/prompt-caching/). The inference endpoint is not a tool:
// it does not go through the tool outbound allowlist.

import { AllModelsFailedError, PolicyError, type InferenceAttempt } from "./errors";
import { HttpError } from "./http";
import type { FetchLike } from "./guard";
import type { Policy, Tier } from "./policy";

export interface ChatToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string | null;
  tool_calls?: ChatToolCall[];
  tool_call_id?: string;
  name?: string;
}

/** A tool offered to the model, in the OpenAI function-calling shape Workers AI also accepts. */
export interface ChatTool {
  type: "function";
  function: { name: string; description?: string; parameters: Record<string, unknown> };
}

/** A tool call the model asked for; `arguments` is null when the model's JSON was not an object. */
export interface ToolCallRequest {
  id: string;
  name: string;
  arguments: Record<string, unknown> | null;
  raw: string;
}

export interface Usage {
  input: number;
  output: number;
  cached: number;
}

export interface InferenceResult {
  text: string;
  toolCalls: ToolCallRequest[];
  model: string;
  attempts: InferenceAttempt[];
  usage: Usage;
}

/** The part of a Worker's env inference reads. Loose on purpose: a project without an `ai` binding type-checks. */
export interface InferenceEnv {
  /** Base URL of an OpenAI-compatible API, e.g. "http://127.0.0.1:8788/v1"; `/chat/completions` is appended. */
  INFERENCE_URL?: string;
  /** Optional bearer token for that API. */
  INFERENCE_API_KEY?: string;
  /** The Workers AI binding (`Ai`), typed loosely. */
  AI?: unknown;
}

export interface InferenceRequest {
  policy: Policy;
  /** Tier name, a key of `policy.tiers`. */
  tier: string;
  messages: readonly ChatMessage[];
  tools?: readonly ChatTool[];
  sessionAffinity: string;
  /** The W3C `traceparent` of the turn or task (rerun.ts `traceparent`), sent to the HTTP backend. */
  traceparent?: string;
  env: InferenceEnv;
  /** For the HTTP backend; defaults to global fetch. */
  fetcher?: FetchLike;
}

interface AiBinding {
  run(model: string, inputs: unknown, options?: unknown): Promise<unknown>;
}

/** A failure that ends one attempt: `retryable` moves on to the next model, otherwise the chain stops. */
class AttemptFailure extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
  ) {
    super(message);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);

function parseArguments(raw: unknown): { arguments: Record<string, unknown> | null; raw: string } {
  if (isObject(raw)) return { arguments: raw, raw: JSON.stringify(raw) };
  const text = typeof raw === "string" ? raw : "";
  try {
    const parsed: unknown = JSON.parse(text === "" ? "{}" : text);
    return { arguments: isObject(parsed) ? parsed : null, raw: text };
  } catch {
    return { arguments: null, raw: text };
  }
}

function toolCallsFrom(list: unknown): ToolCallRequest[] {
  if (!Array.isArray(list)) return [];
  return list.filter(isObject).map((c, i) => {
    const fn = isObject(c["function"]) ? c["function"] : c; // OpenAI nests under "function"; Workers AI may not
    return {
      id: typeof c["id"] === "string" ? c["id"] : `call_${i}`,
      name: typeof fn["name"] === "string" ? fn["name"] : "",
      ...parseArguments(fn["arguments"]),
    };
  });
}

/** Normalize an OpenAI chat completion or a Workers AI `{response, tool_calls, usage}` answer. */
function parseAnswer(body: unknown): { text: string; toolCalls: ToolCallRequest[]; usage: Usage } {
  if (!isObject(body)) throw new AttemptFailure("answer is not a JSON object", true);
  const usageRaw = isObject(body["usage"]) ? body["usage"] : {};
  const details = isObject(usageRaw["prompt_tokens_details"]) ? usageRaw["prompt_tokens_details"] : {};
  const usage: Usage = {
    input: num(usageRaw["prompt_tokens"]),
    output: num(usageRaw["completion_tokens"]),
    cached: num(details["cached_tokens"]),
  };
  if (Array.isArray(body["choices"])) {
    const first: unknown = body["choices"][0];
    const message = isObject(first) && isObject(first["message"]) ? first["message"] : null;
    if (message === null) throw new AttemptFailure("answer has no choices[0].message", true);
    const content = message["content"];
    return { text: typeof content === "string" ? content : "", toolCalls: toolCallsFrom(message["tool_calls"]), usage };
  }
  if ("response" in body || "tool_calls" in body) {
    const r = body["response"];
    return { text: typeof r === "string" ? r : r == null ? "" : JSON.stringify(r), toolCalls: toolCallsFrom(body["tool_calls"]), usage };
  }
  throw new AttemptFailure("answer has neither choices nor response", true);
}

/**
 * Whether a model's HTTP status lets the chain move on to the next model: 429 (busy, rate-limited; Workers AI's
 * `rejectIfBusy`), 408 (the model server gave up waiting) and every 5xx are about that model, not the request.
 * Any other 4xx says the request itself is wrong (bad messages, tools, or credentials), which every model of the
 * tier would refuse as well, so the chain stops and the turn answers 503 `models_unavailable` at once.
 */
export function retryableStatus(status: number): boolean {
  return status === 429 || status === 408 || status >= 500;
}

function describe(e: unknown): string {
  if (e instanceof Error) return e.name === "TimeoutError" || e.name === "AbortError" ? "timeout" : e.message || e.name;
  return String(e);
}

async function viaHttp(req: InferenceRequest, baseUrl: string, model: string, signal: AbortSignal): Promise<unknown> {
  const url = baseUrl.replace(/\/+$/, "") + "/chat/completions";
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-session-affinity": req.sessionAffinity,
  };
  if (req.env.INFERENCE_API_KEY) headers["authorization"] = `Bearer ${req.env.INFERENCE_API_KEY}`;
  if (req.traceparent !== undefined) headers["traceparent"] = req.traceparent;
  const body: Record<string, unknown> = { model, messages: req.messages };
  if (req.tools !== undefined && req.tools.length > 0) body["tools"] = req.tools;
  const fetcher = req.fetcher ?? ((i: string, r?: RequestInit) => fetch(i, r));
  let res: Response;
  try {
    res = await fetcher(url, { method: "POST", headers, body: JSON.stringify(body), signal });
  } catch (e) {
    const cause = describe(e);
    throw new AttemptFailure(cause === "timeout" ? cause : `cannot reach ${hostOf(url)}: ${cause}`, true);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new AttemptFailure(`HTTP ${res.status}`, retryableStatus(res.status), res.status);
  }
  try {
    return await res.json();
  } catch (e) {
    throw new AttemptFailure(signal.aborted ? "timeout" : `answer is not JSON: ${describe(e)}`, true, res.status);
  }
}

async function viaBinding(req: InferenceRequest, ai: AiBinding, model: string, signal: AbortSignal): Promise<unknown> {
  const inputs: Record<string, unknown> = { messages: req.messages };
  if (req.tools !== undefined && req.tools.length > 0) inputs["tools"] = req.tools;
  const options = { extraHeaders: { "x-session-affinity": req.sessionAffinity }, signal };
  // The binding may not honour `signal`; the race makes the tier's timeout hold either way.
  const timeout = new Promise<never>((_, reject) => {
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  try {
    return await Promise.race([ai.run(model, inputs, options), timeout]);
  } catch (e) {
    // Binding errors carry no HTTP status; every one (capacity 3040, model down, timeout) falls back.
    throw new AttemptFailure(describe(e), true);
  }
}

/**
 * Run one model call on `tier`: each model in `tier.models` in order, until one answers. 429, 408, 5xx, a stall
 * past `tier.timeout_ms` (per attempt), network errors and malformed answers move on to the next model; any other
 * 4xx stops the chain (the request itself is wrong, see `retryableStatus`). Throws AllModelsFailedError with every
 * attempt when no model answered.
 */
export async function runInference(req: InferenceRequest): Promise<InferenceResult> {
  const tier: Tier | undefined = Object.prototype.hasOwnProperty.call(req.policy.tiers, req.tier)
    ? req.policy.tiers[req.tier]
    : undefined;
  if (tier === undefined) throw new PolicyError(`tier \`${req.tier}\` is not declared`);
  const baseUrl = typeof req.env.INFERENCE_URL === "string" && req.env.INFERENCE_URL !== "" ? req.env.INFERENCE_URL : null;
  const ai = req.env.AI;
  if (baseUrl === null && !(isObject(ai) && typeof ai["run"] === "function")) {
    console.error("agentspec: misconfigured: no inference backend (INFERENCE_URL unset, no Workers AI binding `AI`)");
    throw new HttpError(500, "misconfigured", "no inference backend: set INFERENCE_URL or bind Workers AI as AI");
  }
  const attempts: InferenceAttempt[] = [];
  for (const model of tier.models) {
    const started = Date.now();
    const signal = AbortSignal.timeout(tier.timeout_ms);
    try {
      const raw = baseUrl !== null
        ? await viaHttp(req, baseUrl, model, signal)
        : await viaBinding(req, ai as AiBinding, model, signal);
      const answer = parseAnswer(raw);
      const done: InferenceAttempt = { model, ok: true, ms: Date.now() - started };
      if (baseUrl !== null) done.status = 200;
      attempts.push(done);
      return { ...answer, model, attempts };
    } catch (e) {
      const failure = e instanceof AttemptFailure ? e : new AttemptFailure(describe(e), true);
      const attempt: InferenceAttempt = { model, ok: false, error: failure.message, ms: Date.now() - started };
      if (failure.status !== undefined) attempt.status = failure.status;
      attempts.push(attempt);
      if (!failure.retryable) break;
    }
  }
  // The cause of each failure, logged where an operator looks first (wrangler's console, Workers Logs).
  const where = baseUrl !== null ? ` at ${hostOf(baseUrl)}` : " (Workers AI)";
  console.error(
    `agentspec: tier \`${req.tier}\`: every model failed${where}: ` +
      attempts.map((a) => `${a.model}: ${a.error ?? "error"}`).join("; "),
  );
  throw new AllModelsFailedError(attempts, baseUrl ?? undefined);
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "an unparseable INFERENCE_URL";
  }
}
