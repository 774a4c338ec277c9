// One tool call: the tool's declared spec (from the policy tables), the model's arguments and the session in,
// the tool's JSON answer projected onto its declared `returns` shape out. Builds the URL, headers (secrets
// restricted to the tool's identity), Idempotency-Key and body from templates, and sends it through guardedFetch.

import { OutboundBlockedError, ToolError } from "./errors";
import { guardedFetch, type FetchLike } from "./guard";
import { readBody } from "./http";
import type { FieldSpec, Policy, ToolSpec } from "./policy";

export interface InvokeToolRequest {
  policy: Policy;
  toolName: string;
  args: Record<string, unknown>;
  sessionId: string;
  workflow: string;
  /** The Worker's env; `{secret.NAME}` in a header template reads `env[NAME]`. */
  env: object;
  /** Hosts this call may reach: the workflow's outbound allowlist. */
  allowedHosts: readonly string[];
  fetcher?: FetchLike;
}

export interface ToolResult {
  /** The answer, reduced to the declared `returns` fields. */
  result: Record<string, unknown>;
  status: number;
  idempotencyKey: string | null;
  ms: number;
}

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** How an argument value appears in a URL, header or key: strings as is, other scalars printed. */
function scalar(tool: string, name: string, value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  throw new ToolError(tool, 0, `argument \`${name}\` is missing or not a scalar`);
}

function argument(tool: string, args: Record<string, unknown>, name: string): string {
  return scalar(tool, name, Object.prototype.hasOwnProperty.call(args, name) ? args[name] : undefined);
}

interface TemplateContext {
  toolName: string;
  tool: ToolSpec;
  policy: Policy;
  args: Record<string, unknown>;
  sessionId: string;
  workflow: string;
  env: object;
}

/** Expand `{session}`, `{workflow}`, `{args.NAME}` and, where `secrets` is set, `{secret.NAME}`. */
function expand(template: string, ctx: TemplateContext, allowSecrets: boolean): string {
  return template.replace(PLACEHOLDER, (_, key: string) => {
    if (key === "session") return ctx.sessionId;
    if (key === "workflow") return ctx.workflow;
    if (key.startsWith("args.")) return argument(ctx.toolName, ctx.args, key.slice(5));
    if (key.startsWith("secret.") && allowSecrets) return secret(ctx, key.slice(7));
    throw new ToolError(ctx.toolName, 0, `template placeholder \`{${key}}\` is not allowed here`);
  });
}

function secret(ctx: TemplateContext, name: string): string {
  const identity = ctx.tool.identity ?? null;
  const held = identity !== null && Object.prototype.hasOwnProperty.call(ctx.policy.identities, identity)
    ? ctx.policy.identities[identity]!.secrets
    : [];
  if (!held.includes(name)) {
    throw new ToolError(ctx.toolName, 0, `secret \`${name}\` is not held by identity \`${identity ?? "(none)"}\``);
  }
  const value: unknown = (ctx.env as Record<string, unknown>)[name];
  if (typeof value !== "string" || value === "") {
    throw new ToolError(ctx.toolName, 0, `secret \`${name}\` is not set in the environment`);
  }
  return value;
}

/** Fill `{name}` in the URL template from the arguments, each value percent-encoded; returns the used names. */
export function expandUrl(toolName: string, template: string, args: Record<string, unknown>): { url: string; used: Set<string> } {
  const used = new Set<string>();
  const url = template.replace(PLACEHOLDER, (_, name: string) => {
    used.add(name);
    return encodeURIComponent(argument(toolName, args, name));
  });
  return { url, used };
}

function checkField(spec: FieldSpec, value: unknown): boolean {
  switch (spec.replace(/\?$/, "")) {
    case "string":
      return typeof value === "string";
    case "int":
      return typeof value === "number" && Number.isSafeInteger(value);
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "bool":
      return typeof value === "boolean";
    default:
      return false;
  }
}

/**
 * Keep only the declared `returns` fields of a JSON answer, checking each one's type. A missing required field
 * or a field of the wrong type is a ToolError: the tool broke its declared contract.
 */
export function projectReturns(toolName: string, returns: Record<string, FieldSpec>, body: unknown, status = 0): Record<string, unknown> {
  const source = body !== null && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  const out: Record<string, unknown> = {};
  for (const [field, spec] of Object.entries(returns)) {
    const present = Object.prototype.hasOwnProperty.call(source, field) && source[field] !== null;
    if (!present) {
      if (spec.endsWith("?")) continue;
      throw new ToolError(toolName, status, `answer lacks the declared field \`${field}\``);
    }
    if (!checkField(spec, source[field])) {
      throw new ToolError(toolName, status, `answer field \`${field}\` is not of type ${spec.replace(/\?$/, "")}`);
    }
    out[field] = source[field];
  }
  return out;
}

/** The language's default `max response` (agentspec/platform.py, DEFAULT_MAX_RESPONSE). */
const DEFAULT_MAX_RESPONSE = 256 * 1024;

/** The answer as text, refused past the tool's `max response`: a tool cannot flood the runtime. */
async function readLimited(res: Response, limit: number, toolName: string): Promise<string> {
  const bytes = await readBody(res, limit);
  if (bytes === null) {
    throw new ToolError(toolName, res.status, `answer is larger than its max response (${limit} bytes)`);
  }
  return new TextDecoder().decode(bytes);
}

/**
 * Call a declared tool. GET/HEAD/DELETE send the arguments not used in the URL path as query parameters
 * (sorted by name); other methods send all arguments as a JSON body. Non-2xx (redirects included: they are
 * never followed) and timeouts throw ToolError; an off-allowlist host throws OutboundBlockedError.
 */
export async function invokeTool(req: InvokeToolRequest): Promise<ToolResult> {
  const { policy, toolName } = req;
  if (!Object.prototype.hasOwnProperty.call(policy.tools, toolName)) {
    throw new ToolError(toolName, 0, "tool is not declared");
  }
  const tool = policy.tools[toolName]!;
  const ctx: TemplateContext = { ...req, tool };
  const method = tool.method.toUpperCase();
  const { url: expanded, used } = expandUrl(toolName, tool.url, req.args);

  let url = expanded;
  let body: string | undefined;
  const bodyless = method === "GET" || method === "HEAD" || method === "DELETE";
  if (bodyless) {
    const rest = Object.keys(req.args).filter((k) => !used.has(k) && req.args[k] !== undefined).sort();
    if (rest.length > 0) {
      const u = new URL(expanded);
      for (const k of rest) u.searchParams.append(k, argument(toolName, req.args, k));
      url = u.toString();
    }
  } else {
    body = JSON.stringify(req.args);
  }

  const headers = new Headers({ accept: "application/json" });
  try {
    for (const [name, template] of Object.entries(tool.headers)) headers.set(name, expand(template, ctx, true));
  } catch (e) {
    if (e instanceof ToolError) throw e;
    throw new ToolError(toolName, 0, `bad header value: ${String(e)}`);
  }
  const key = tool.idempotency_key ?? null;
  const idempotencyKey = key === null || key === "" ? null : expand(key, ctx, false);
  if (idempotencyKey !== null) headers.set("idempotency-key", idempotencyKey);
  if (body !== undefined) headers.set("content-type", "application/json");

  const started = Date.now();
  const signal = AbortSignal.timeout(tool.timeout_ms);
  const init: RequestInit = { method, headers, signal };
  if (body !== undefined) init.body = body;
  let res: Response;
  let text: string;
  try {
    res = await guardedFetch(req.allowedHosts, url, init, req.fetcher);
    text = await readLimited(res, tool.max_response_bytes ?? DEFAULT_MAX_RESPONSE, toolName);
  } catch (e) {
    if (e instanceof ToolError) throw e;
    if (e instanceof Error && (e.name === "TimeoutError" || (e.name === "AbortError" && signal.aborted))) {
      throw new ToolError(toolName, 0, `timed out after ${tool.timeout_ms} ms`);
    }
    if (e instanceof OutboundBlockedError) throw e;
    throw new ToolError(toolName, 0, `request failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (res.status < 200 || res.status > 299) {
    throw new ToolError(toolName, res.status, `HTTP ${res.status}`, text.slice(0, 1024));
  }
  let parsed: unknown = null;
  if (text.trim() !== "") {
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ToolError(toolName, res.status, "answer is not JSON", text.slice(0, 1024));
    }
  }
  // A tool that declares no `returns` shape passes its JSON object on whole.
  const result = tool.returns
    ? projectReturns(toolName, tool.returns, parsed, res.status)
    : parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : { value: parsed };
  return { result, status: res.status, idempotencyKey, ms: Date.now() - started };
}
