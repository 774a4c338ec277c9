// One tool call: the tool's declared spec (from the policy tables), the model's arguments and the session in,
// the tool's JSON answer projected onto its declared `returns` shape out. The arguments are projected onto the
// declared `args` and type-checked first; then it builds the URL (a placeholder never leaves its path segment),
// headers (secrets restricted to the tool's identity), the Idempotency-Key (scoped to agent, tenant and tool, its
// parts length-prefixed so no value can forge a separator) and body, and sends it through guardedFetch.

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
  /** The tenant the call is made for: part of every Idempotency-Key, so two tenants' calls never share one. */
  tenant: string;
  /** The Worker's env; `{secret.NAME}` in a header template reads `env[NAME]`. */
  env: object;
  /** Hosts this call may reach: the workflow's outbound allowlist. */
  allowedHosts: readonly string[];
  fetcher?: FetchLike;
  /** The W3C `traceparent` of the turn or task making the call (rerun.ts `traceparent`), sent as is. */
  traceparent?: string;
}

export interface ToolResult {
  /** The answer, reduced to the declared `returns` fields. */
  result: Record<string, unknown>;
  status: number;
  idempotencyKey: string | null;
  ms: number;
}

/**
 * The call's arguments cannot be sent as they are: a missing or wrongly typed declared argument, or a path
 * placeholder that would leave its segment. Sending it again cannot help, so callers never retry it.
 */
export class ToolArgumentError extends ToolError {
  constructor(tool: string, message: string, readonly rule: "tool.arguments" | "tool.path" = "tool.arguments") {
    super(tool, 0, message);
  }
}

/** The rule a failed call is recorded under (`tool.result:<tool>` / `failed`). */
export function failureRule(error: ToolError): string {
  if (error instanceof ToolArgumentError) return error.rule;
  if (error.status >= 300 && error.status < 400) return "tool.redirect_refused";
  if (error.status > 0) return "tool.status";
  return /timed out/.test(error.message) ? "tool.timeout" : "tool.error";
}

/** Whether a failed call's request went out: it got a status, or failed in flight (timeout, network). A
 * template, secret or argument problem fails it before anything is sent. */
export function wasSent(error: ToolError): boolean {
  if (error instanceof ToolArgumentError) return false;
  return error.status > 0 || /timed out|request failed/.test(error.message);
}

/** At most this many tool calls are run from one model answer, and from one turn; the excess is denied. */
export const MAX_TOOL_CALLS_PER_ANSWER = 8;
export const MAX_TOOL_CALLS_PER_TURN = 16;

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
  tenant: string;
  env: object;
}

/** Expand `{session}`, `{workflow}`, `{args.NAME}` and, where `secrets` is set, `{secret.NAME}`; each value
 * through `value` (as is by default). */
function expand(template: string, ctx: TemplateContext, allowSecrets: boolean,
  value: (text: string) => string = (text) => text): string {
  return template.replace(PLACEHOLDER, (_, key: string) => {
    if (key === "session") return value(ctx.sessionId);
    if (key === "workflow") return value(ctx.workflow);
    if (key.startsWith("args.")) return value(argument(ctx.toolName, ctx.args, key.slice(5)));
    if (key.startsWith("secret.") && allowSecrets) return secret(ctx, key.slice(7));
    throw new ToolError(ctx.toolName, 0, `template placeholder \`{${key}}\` is not allowed here`);
  });
}

/** One part of an Idempotency-Key: percent-encoded (so the header is ASCII), then prefixed with its length. */
function keyPart(text: string): string {
  const encoded = encodeURIComponent(text);
  return `${encoded.length}:${encoded}`;
}

/** Keys longer than this are sent as their SHA-256 (APIs commonly cap a key at 255 characters). */
const MAX_KEY = 255;

/**
 * The Idempotency-Key of a call: agent, tenant and tool, then the tool's template with every placeholder value,
 * each as a length-prefixed part. Injective: the length says where each value ends, so `a:b` can never pass
 * for two values, nor one tenant's call for another's. A key longer than MAX_KEY is sent as `sha256:` + its hash.
 */
export async function idempotencyKey(agent: string, tenant: string, toolName: string, expanded: string):
  Promise<string> {
  const key = keyPart(agent) + keyPart(tenant) + keyPart(toolName) + expanded;
  if (key.length <= MAX_KEY) return key;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key)));
  return `sha256:${Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("")}`;
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

/**
 * Fill `{name}` in the URL template from the arguments, each value percent-encoded; returns the used names. A
 * value that would not stay in its path segment is refused (ToolArgumentError `tool.path`): an empty value, a
 * segment that comes out as `.` or `..`, or a URL whose path the URL parser reads differently from the text.
 */
export function expandUrl(toolName: string, template: string, args: Record<string, unknown>): { url: string; used: Set<string> } {
  const used = new Set<string>();
  const url = template.replace(PLACEHOLDER, (_, name: string) => {
    used.add(name);
    const value = argument(toolName, args, name);
    if (value === "") throw new ToolArgumentError(toolName, `path argument \`${name}\` is empty`, "tool.path");
    return encodeURIComponent(value);
  });
  if (used.size === 0) return { url, used };
  const path = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/i.exec(url)?.[1] ?? "";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ToolArgumentError(toolName, "the URL is not valid with these arguments", "tool.path");
  }
  const segments = path.split("/");
  const dotted = segments.some((seg) => seg === "." || seg === ".." || /^(%2e|\.){1,2}$/i.test(seg));
  if (dotted || parsed.pathname !== (path === "" ? "/" : path)) {
    throw new ToolArgumentError(toolName, "a path argument would leave its segment", "tool.path");
  }
  return { url, used };
}

/** The names in `args` the tool does not declare: dropped before the call, and recorded by the caller. */
export function undeclaredArgs(tool: ToolSpec, args: Record<string, unknown>): string[] {
  return Object.keys(args).filter((name) => !Object.prototype.hasOwnProperty.call(tool.args, name)).sort();
}

/**
 * The arguments the tool declares, and only those, each checked against its declared type; an optional one
 * may be absent or null (then it is left out). A missing required or wrongly typed argument is a
 * ToolArgumentError: the call is never sent.
 */
export function projectArgs(toolName: string, tool: ToolSpec, args: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(tool.args)) {
    const present = Object.prototype.hasOwnProperty.call(args, name) && args[name] !== null && args[name] !== undefined;
    if (!present) {
      if (spec.endsWith("?")) continue;
      throw new ToolArgumentError(toolName, `argument \`${name}\` is missing`);
    }
    if (!checkField(spec, args[name])) {
      throw new ToolArgumentError(toolName, `argument \`${name}\` is not of type ${spec.replace(/\?$/, "")}`);
    }
    out[name] = args[name];
  }
  return out;
}

export function checkField(spec: FieldSpec, value: unknown): boolean {
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
  // Only declared arguments, of their declared types, ever reach the request: URL, query, body, key.
  const args = projectArgs(toolName, tool, req.args);
  const ctx: TemplateContext = { ...req, args, tool };
  const method = tool.method.toUpperCase();
  const { url: expanded, used } = expandUrl(toolName, tool.url, args);

  let url = expanded;
  let body: string | undefined;
  const bodyless = method === "GET" || method === "HEAD" || method === "DELETE";
  if (bodyless) {
    const rest = Object.keys(args).filter((k) => !used.has(k)).sort();
    if (rest.length > 0) {
      const u = new URL(expanded);
      for (const k of rest) u.searchParams.append(k, argument(toolName, args, k));
      url = u.toString();
    }
  } else {
    body = JSON.stringify(args);
  }

  const headers = new Headers({ accept: "application/json" });
  try {
    for (const [name, template] of Object.entries(tool.headers)) headers.set(name, expand(template, ctx, true));
  } catch (e) {
    if (e instanceof ToolError) throw e;
    throw new ToolError(toolName, 0, `bad header value: ${String(e)}`);
  }
  const key = tool.idempotency_key ?? null;
  const sentKey = key === null || key === ""
    ? null
    : await idempotencyKey(policy.agent.name, req.tenant, toolName, expand(key, ctx, false, keyPart));
  if (sentKey !== null) headers.set("idempotency-key", sentKey);
  if (req.traceparent !== undefined) headers.set("traceparent", req.traceparent);
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
  return { result, status: res.status, idempotencyKey: sentKey, ms: Date.now() - started };
}
