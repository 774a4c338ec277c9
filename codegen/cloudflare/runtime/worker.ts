// The generated Worker's front door: a request in, a JSON response out. Authentication (bearer tokens
// mapped to tenants, the admin token), tenant resolution, input validation and limits, then routing to the
// Durable Object (object.ts) or a Workflow. The routes and error shapes are the runtime contract in docs/runtime.md.
// Routes are one table (ROUTES, at the end): to add one, write its handler and add a row; 405 and its `Allow`
// header are derived from the same rows.

import { listArtifacts, readArtifact } from "./artifacts";
import { exportsResponse, writeBatch } from "./export";
import { HttpError, errorResponse, readJsonObject, sameSecret, stringField } from "./http";
import { maskDeep } from "./pii";
import type { Policy, Workflow as PolicyWorkflow } from "./policy";
import { EVENT_STEP } from "./rerun";
import type { TaskParams } from "./task";
import { checkField } from "./tools";
import { sealWith } from "./seal";
import { signerFor, SigningKeyError, type ChainKind, type PublicKeyInfo } from "./heads";
import { headLogName, sessionObjectName, taskObjectName, taskRegistryName } from "./names";
import type { AgentEnv } from "./object";

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" };

/** A JSON answer, with the same content type as every error (Response.json leaves the charset out). */
function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;
const MAX_INPUT = 32_000;
/** An affinity key is forwarded to the model as a header: printable ASCII, bounded. */
const AFFINITY = /^[\x21-\x7e]{1,256}$/;

interface Caller {
  tenant: string;
  admin: boolean;
}

function secretOf(env: AgentEnv, name: string | null | undefined): string | undefined {
  if (!name) return undefined;
  const value = (env as unknown as Record<string, unknown>)[name];
  return typeof value === "string" ? value : undefined;
}

// The token map, parsed once per isolate and secret value (a rotated secret is parsed again).
let parsedTokens: { source: string; tokens: Record<string, unknown> } | null = null;

function tokenMap(source: string, name: string): Record<string, unknown> {
  if (parsedTokens?.source !== source) {
    let tokens: unknown;
    try {
      tokens = JSON.parse(source);
    } catch {
      tokens = null;
    }
    if (typeof tokens !== "object" || tokens === null || Array.isArray(tokens)) {
      throw new HttpError(500, "misconfigured", `secret \`${name}\` is not a JSON object`);
    }
    parsedTokens = { source, tokens: tokens as Record<string, unknown> };
  }
  return parsedTokens.tokens;
}

/** A secret the deployment must hold is not set: said as such (and logged), never as "the token is not valid". */
function misconfigured(secret: string, what: string): HttpError {
  console.error(`agentspec: misconfigured: secret \`${secret}\` (${what}) is not set`);
  return new HttpError(500, "misconfigured", `secret \`${secret}\` (${what}) is not set on this deployment`);
}

/** The signing key's public half, for a spec with `audit sign with secret` (null without). A secret that is unset
 * or holds no Ed25519 key is a 500 `misconfigured` naming it. */
async function auditKey(env: AgentEnv, policy: Policy): Promise<PublicKeyInfo | null> {
  const audit = policy.audit;
  if (!audit) return null;
  const source = secretOf(env, audit.signing_secret);
  if (source === undefined) throw misconfigured(audit.signing_secret, "the key that signs chain heads");
  try {
    return (await signerFor(audit.signing_secret, source)).info;
  } catch (error) {
    if (!(error instanceof SigningKeyError)) throw error;
    console.error(`agentspec: misconfigured: ${error.message}`);
    throw new HttpError(500, "misconfigured", error.message);
  }
}

/** Who is calling: 401 without a valid token, 403 when the tenant header names another tenant. */
function authenticate(request: Request, env: AgentEnv, policy: Policy, adminOnly: boolean): Caller {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) throw new HttpError(401, "unauthorized", "send `Authorization: Bearer <token>`");
  const token = match[1]!;
  const claimed = request.headers.get(policy.auth.tenant_header);
  const admin = secretOf(env, policy.auth.admin_secret);
  if (adminOnly && policy.auth.admin_secret && !admin) throw misconfigured(policy.auth.admin_secret, "the admin token");
  if (admin && sameSecret(token, admin)) {
    if (!claimed) throw new HttpError(400, "missing_tenant", `send the \`${policy.auth.tenant_header}\` header`);
    return { tenant: claimed, admin: true };
  }
  if (adminOnly) throw new HttpError(401, "unauthorized", "this route needs the admin token");
  const source = secretOf(env, policy.auth.tokens_secret);
  if (source === undefined) throw misconfigured(policy.auth.tokens_secret, "the token map (token -> tenant)");
  const tokens = tokenMap(source, policy.auth.tokens_secret);
  let tenant: string | undefined;
  for (const [known, owner] of Object.entries(tokens)) {
    if (sameSecret(token, known) && typeof owner === "string") tenant = owner;
  }
  if (tenant === undefined) throw new HttpError(401, "unauthorized", "the token is not valid");
  if (claimed !== null && claimed !== tenant) {
    throw new HttpError(403, "forbidden_tenant", "the token does not belong to that tenant");
  }
  return { tenant, admin: false };
}

function workflowOf(policy: Policy, name: string) {
  const wf = Object.prototype.hasOwnProperty.call(policy.workflows, name) ? policy.workflows[name] : undefined;
  if (!wf) throw new HttpError(404, "unknown_workflow", `workflow \`${name}\` is not declared`);
  return wf;
}

function sessionStub(env: AgentEnv, tenant: string, session: string) {
  // Keyed by tenant and session: two tenants using the same session id never share an object.
  return env.SESSION.getByName(sessionObjectName(tenant, session));
}

function checkSessionId(policy: Policy, id: string): string {
  const invalid = () => new HttpError(400, "invalid_session_id",
    `a session id is 1 to ${policy.limits.max_session_id} letters, digits, \`.\`, \`_\`, \`:\` or \`-\``);
  let decoded: string;
  try {
    decoded = decodeURIComponent(id);
  } catch {
    throw invalid(); // a malformed %-escape
  }
  if (decoded.length > policy.limits.max_session_id || !SESSION_ID.test(decoded)) throw invalid();
  return decoded;
}

/** The session's affinity key: the workflow's affinity header when sent and non-empty, else the session id. */
function affinityOf(request: Request, header: string, session: string): string {
  const sent = request.headers.get(header)?.trim() ?? "";
  if (sent === "") return session;
  if (!AFFINITY.test(sent)) {
    throw new HttpError(400, "invalid_affinity", `\`${header}\` is 1 to 256 printable ASCII characters`);
  }
  return sent;
}

/** A task of the caller's tenant: 404 for an id it does not own, and for one whose instance was never made. */
async function ownedTask(env: AgentEnv, policy: Policy, caller: Caller, id: string) {
  const registry = env.SESSION.getByName(taskRegistryName(caller.tenant));
  const name = Object.keys(policy.workflows).find((w) => id.startsWith(`${w}-`));
  if (!name || !(await registry.ownsTask(id))) throw new HttpError(404, "unknown_task", `task \`${id}\` not found`);
  let instance: WorkflowInstance;
  try {
    instance = await taskBinding(env, policy.workflows[name]!.task_binding!).get(id);
  } catch {
    // Registered, but the instance was never created (create failed after registration).
    throw new HttpError(404, "unknown_task", `task \`${id}\` not found`);
  }
  return { id, instance, registry, workflow: policy.workflows[name]! };
}

function taskBinding(env: AgentEnv, binding: string): Workflow {
  const value = (env as unknown as Record<string, unknown>)[binding];
  if (!value) throw new HttpError(500, "misconfigured", `binding \`${binding}\` is missing`);
  return value as Workflow;
}

/** A client's `Idempotency-Key` on `POST /v1/tasks`: printable ASCII, bounded. */
const TASK_KEY = /^[\x21-\x7e]{1,255}$/;

async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Parts joined so that no part can pass for two: each as its length, `:`, itself. */
function lengthPrefixed(...parts: string[]): string {
  return parts.map((p) => `${p.length}:${p}`).join("");
}

/** JSON with object keys sorted, so a retried body with its keys in another order is the same body. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Create the instance unless it exists: a retry finds the first request's instance (or makes the one a crash
 * between claiming the key and creating it left unmade). */
async function createOnce(binding: Workflow, options: WorkflowInstanceCreateOptions<TaskParams>): Promise<void> {
  try {
    await binding.get(options.id!);
    return;
  } catch {
    // Not made yet.
  }
  try {
    await binding.create(options);
  } catch (error) {
    // A concurrent retry made it first: fine, as long as it exists now.
    await binding.get(options.id!).catch(() => {
      throw error;
    });
  }
}

/**
 * Task params that feed a call step directly (a step without `with`, which passes the params whole, or an
 * argument that is exactly `{params.NAME}`) are checked against the tool's declared argument types here, so
 * a wrong or missing one is a 400 before anything is stored, not a failed task later.
 */
function checkTaskParams(policy: Policy, wf: PolicyWorkflow, params: Record<string, unknown>): void {
  const has = (name: string) => Object.prototype.hasOwnProperty.call(params, name) && params[name] !== null;
  for (const step of wf.steps) {
    if (step.kind !== "call" || !step.tool) continue;
    const declared = policy.tools[step.tool]?.args ?? {};
    const feeds: [string, string][] = step.args
      ? step.args.flatMap(([arg, template]) => {
        const lone = /^\{params\.([^{}.]+)\}$/.exec(template);
        return lone ? [[arg, lone[1]!] as [string, string]] : [];
      })
      : Object.keys(declared).map((arg) => [arg, arg]);
    for (const [arg, param] of feeds) {
      const spec = declared[arg];
      if (spec === undefined) continue;
      if (!has(param)) {
        if (spec.endsWith("?")) continue;
        throw new HttpError(400, "invalid_params",
          `\`params.${param}\` is required: step \`${step.name}\` passes it to \`${step.tool}\` as \`${arg}\``);
      }
      if (!checkField(spec, params[param])) {
        throw new HttpError(400, "invalid_params",
          `\`params.${param}\` must be of type ${spec.replace(/\?$/, "")}: step \`${step.name}\` passes it to \`${step.tool}\``);
      }
    }
  }
}

/** What every route handler gets: the request, its parsed URL, the Env and the policy. */
interface RouteContext {
  request: Request;
  url: URL;
  env: AgentEnv;
  policy: Policy;
}

/** A task id in a path: the route matches any segment (so a wrong method is a 405), the handler checks it. */
function taskIdOf(segment: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(segment)) throw new HttpError(404, "not_found", "no such route");
  return segment;
}

function healthz({ policy }: RouteContext): Response {
  return json({ ok: true, agent: policy.agent.name, version: policy.agent.version, spec_hash: policy.spec_hash });
}

async function policyTables({ request, env, policy }: RouteContext): Promise<Response> {
  authenticate(request, env, policy, false);
  const key = await auditKey(env, policy);
  // With signing on, `audit` also carries the public key that verifies the chain heads.
  return json(key === null ? policy : { ...policy, audit: { ...policy.audit, ...key } });
}

async function postTurn({ request, env, policy }: RouteContext, [sessionSegment]: string[]): Promise<Response> {
  const caller = authenticate(request, env, policy, false);
  const session = checkSessionId(policy, sessionSegment!);
  const body = await readJsonObject(request, policy.limits.max_body_bytes);
  const workflow = stringField(body, "workflow", 64);
  const input = stringField(body, "input", MAX_INPUT);
  const wf = workflowOf(policy, workflow);
  const affinity = affinityOf(request, wf.affinity.header, session);
  // A spec that signs its heads does not run turns unsigned: a missing key is said at once, not found by an audit.
  if (policy.audit && secretOf(env, policy.audit.signing_secret) === undefined) {
    throw misconfigured(policy.audit.signing_secret, "the key that signs chain heads");
  }
  const cf = (request as { cf?: { colo?: unknown } }).cf;
  const { status, body: answer } = await sessionStub(env, caller.tenant, session).turnResponse({
    tenant: caller.tenant, session, workflow, input, affinity, traceId: crypto.randomUUID(),
    colo: typeof cf?.colo === "string" ? cf.colo : "local",
  });
  return new Response(answer, { status, headers: JSON_HEADERS });
}

async function postTask({ request, env, policy }: RouteContext): Promise<Response> {
  const caller = authenticate(request, env, policy, false);
  const body = await readJsonObject(request, policy.limits.max_body_bytes);
  const workflow = stringField(body, "workflow", 64);
  const wf = workflowOf(policy, workflow);
  const params = body["params"] ?? {};
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw new HttpError(400, "invalid_field", "`params` must be a JSON object");
  }
  if (!wf.task_binding) throw new HttpError(404, "not_a_task", `workflow \`${workflow}\` has no steps to run`);
  checkTaskParams(policy, wf, params as Record<string, unknown>);
  const registry = env.SESSION.getByName(taskRegistryName(caller.tenant));
  const binding = taskBinding(env, wf.task_binding);
  // Params sealed under the task's own key (seal.ts): the Workflows engine keeps no raw params.
  const create = async (id: string) => ({
    id,
    params: {
      tenant: caller.tenant,
      params: (await sealWith(env.SESSION.getByName(taskObjectName(caller.tenant, id)), params)) as TaskParams["params"],
    },
  });
  const key = request.headers.get("idempotency-key");
  if (key === null) {
    // 32 hex digits (the UUID without its dashes), as long as a keyed id's: names up to 31 characters fit in 64.
    const id = `${workflow}-${crypto.randomUUID().replaceAll("-", "")}`;
    await registry.registerTask(id, workflow);
    await binding.create(await create(id));
    return json({ task_id: id }, 202);
  }
  // Idempotent creation: the instance id is derived from tenant and key, and the key remembers the body.
  if (!TASK_KEY.test(key)) {
    throw new HttpError(400, "invalid_idempotency_key", "`Idempotency-Key` is 1 to 255 printable ASCII characters");
  }
  const id = `${workflow}-${(await sha256Hex(lengthPrefixed(caller.tenant, key))).slice(0, 32)}`;
  // The registry keeps only a keyed fingerprint of the body (registry.ts), never the params themselves.
  const claim = await registry.claimTaskKey(key, id, workflow, canonical({ workflow, params }));
  if (!claim.same) {
    throw new HttpError(409, "idempotency_conflict", "this `Idempotency-Key` was used with a different body");
  }
  await createOnce(binding, await create(claim.task));
  return json({ task_id: claim.task }, 202);
}

async function getTask({ request, env, policy }: RouteContext, [segment]: string[]): Promise<Response> {
  const taskId = taskIdOf(segment!);
  const caller = authenticate(request, env, policy, false);
  const { id, instance, registry } = await ownedTask(env, policy, caller, taskId);
  const status = await instance.status();
  return json({ task_id: id, status: status.status, output: status.output ?? null,
    error: status.error ?? null, steps: await registry.taskSteps(id) });
}

async function postTaskEvent({ request, env, policy }: RouteContext, [segment]: string[]): Promise<Response> {
  const taskId = taskIdOf(segment!);
  // What a `wait event "TYPE"` step waits for: `{"type": "TYPE", "payload": {...}}`.
  const caller = authenticate(request, env, policy, false);
  const body = await readJsonObject(request, policy.limits.max_body_bytes);
  const type = stringField(body, "type", 100);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(type)) {
    throw new HttpError(400, "invalid_field", "`type` is letters, digits, `_`, `-` and `.`");
  }
  const payload = body["payload"] ?? {};
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new HttpError(400, "invalid_field", "`payload` must be a JSON object");
  }
  const { id, instance, registry, workflow } = await ownedTask(env, policy, caller, taskId);
  await instance.sendEvent({ type, payload: await sealWith(env.SESSION.getByName(taskObjectName(caller.tenant, id)), payload) });
  // What a rerun sends again (rerun.ts), masked: to the fleet export only, not a step of `GET /v1/tasks/{id}`.
  await registry.exportTask(caller.tenant, id, `${EVENT_STEP}.${crypto.randomUUID()}`,
    { status: "sent", type, payload: maskDeep(payload, workflow.pii) });
  return json({ task_id: id, event: type }, 202);
}

/** The tenant's artifacts (admin): every artifact store's objects under the tenant's prefix, masked as kept. */
async function getArtifacts({ request, env, policy }: RouteContext): Promise<Response> {
  const caller = authenticate(request, env, policy, true);
  return json({ artifacts: await listArtifacts(env, policy, caller.tenant) });
}

/** One of the tenant's artifacts (admin), by reference (`sha256:<hex>`): its masked body as it was kept. */
async function getArtifact({ request, env, policy }: RouteContext, [refSegment]: string[]): Promise<Response> {
  const caller = authenticate(request, env, policy, true);
  // `sha256:` may come percent-encoded (`sha256%3A`); the reference is checked after decoding.
  const ref = /^sha256(:|%3[aA])[0-9a-f]{64}$/.test(refSegment!) ? refSegment!.replace(/%3[aA]/, ":") : "";
  if (!/^sha256:[0-9a-f]{64}$/.test(ref)) {
    throw new HttpError(400, "invalid_artifact", "an artifact reference is `sha256:` and 64 hexadecimal digits");
  }
  const found = await readArtifact(env, policy, caller.tenant, ref);
  if (found === null) throw new HttpError(404, "unknown_artifact", `the tenant has no artifact \`${ref}\``);
  return new Response(found.body, { headers: { "content-type": found.contentType, "x-artifact-store": found.store,
    "x-artifact-key": found.key } });
}

async function getTraces({ request, url, env, policy }: RouteContext): Promise<Response> {
  const caller = authenticate(request, env, policy, true);
  const sinceText = url.searchParams.get("since") ?? "0";
  if (!/^\d{1,15}$/.test(sinceText)) {
    throw new HttpError(400, "invalid_since", "`since` must be a non-negative decimal integer");
  }
  const since = Number(sinceText);
  const key = await auditKey(env, policy);
  const taskId = url.searchParams.get("task");
  if (taskId !== null) {
    // A task's decisions: its own chain, for a task of this tenant only.
    const { id } = await ownedTask(env, policy, caller, taskId);
    const heads = key && await signedHeads(env, caller.tenant, "task", id);
    const traces = (await env.SESSION.getByName(taskObjectName(caller.tenant, id)).traces(since)) as unknown as
      Record<string, unknown>;
    return json(key === null ? traces : { ...traces, heads, audit: key });
  }
  const session = checkSessionId(policy, url.searchParams.get("session") ?? "");
  // The heads are read before the chain: a turn committed in between leaves the chain longer than its last
  // head (a tail not signed yet), never a head beyond the chain's end (which would read as a cut tail).
  const heads = key && await signedHeads(env, caller.tenant, "session", session);
  // The RPC stub types `unknown[]` (the turns' free-form trace records) as never; the shape is the DO's.
  const traces = (await sessionStub(env, caller.tenant, session).traces(since)) as unknown as {
    records: unknown[];
    turns: unknown[];
  };
  if (since === 0 && traces.records.length === 0 && traces.turns.length === 0 && (heads ?? []).length === 0) {
    throw new HttpError(404, "unknown_session", `session \`${session}\` has no records`);
  }
  return json(key === null ? traces : { ...traces, heads, audit: key });
}

function signedHeads(env: AgentEnv, tenant: string, chain: ChainKind, id: string) {
  return env.SESSION.getByName(headLogName(tenant)).signedHeads(chain, id);
}

/** The head log of one session or task, and the key that verifies it: `GET /v1/heads?session=ID|task=ID`. */
async function getHeads({ request, url, env, policy }: RouteContext): Promise<Response> {
  const caller = authenticate(request, env, policy, true);
  const key = await auditKey(env, policy);
  if (key === null) {
    throw new HttpError(404, "not_signed", "this agent does not sign its chain heads (no `audit sign with secret`)");
  }
  const taskId = url.searchParams.get("task");
  if (taskId !== null) {
    const { id } = await ownedTask(env, policy, caller, taskId);
    return json({ task: id, audit: key, heads: await signedHeads(env, caller.tenant, "task", id) });
  }
  const session = checkSessionId(policy, url.searchParams.get("session") ?? "");
  return json({ session, audit: key, heads: await signedHeads(env, caller.tenant, "session", session) });
}

function getExports({ request, url, env, policy }: RouteContext): Promise<Response> {
  authenticate(request, env, policy, true);
  return exportsResponse(url, env);
}

/** One route: a method, an exact path or a pattern (its groups are the handler's arguments), and its handler. */
interface Route {
  method: "GET" | "POST";
  path: string | RegExp;
  handle(ctx: RouteContext, groups: string[]): Response | Promise<Response>;
}

/** Every route the Worker answers. A path pattern is written here once: dispatch and 405 both read it. */
export const ROUTES: readonly Route[] = [
  { method: "GET", path: "/healthz", handle: healthz },
  { method: "GET", path: "/v1/policy", handle: policyTables },
  { method: "POST", path: /^\/v1\/sessions\/([^/]+)\/turns$/, handle: postTurn },
  { method: "POST", path: "/v1/tasks", handle: postTask },
  { method: "GET", path: /^\/v1\/tasks\/([^/]+)$/, handle: getTask },
  { method: "POST", path: /^\/v1\/tasks\/([^/]+)\/events$/, handle: postTaskEvent },
  { method: "GET", path: "/v1/traces", handle: getTraces },
  { method: "GET", path: "/v1/heads", handle: getHeads },
  { method: "GET", path: "/v1/exports", handle: getExports },
  { method: "GET", path: "/v1/artifacts", handle: getArtifacts },
  { method: "GET", path: /^\/v1\/artifacts\/([^/]+)$/, handle: getArtifact },
];

/** The groups of `path` if `route` matches it (none for an exact path), else null. */
function matchRoute(route: Route, path: string): string[] | null {
  if (typeof route.path === "string") return route.path === path ? [] : null;
  const match = route.path.exec(path);
  return match ? match.slice(1) : null;
}

/** The methods the routes answer at `path`, for 405 and its `Allow` header (null: no route has this path). */
export function allowedMethods(path: string): string | null {
  const methods = ROUTES.filter((r) => matchRoute(r, path) !== null).map((r) => r.method);
  return methods.length > 0 ? [...new Set(methods)].join(", ") : null;
}

async function route(request: Request, env: AgentEnv, policy: Policy): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname;
  for (const r of ROUTES) {
    if (r.method !== request.method) continue;
    const groups = matchRoute(r, path);
    if (groups !== null) return r.handle({ request, url, env, policy }, groups);
  }
  const allow = allowedMethods(path);
  if (allow !== null) {
    throw new HttpError(405, "method_not_allowed", `${request.method} is not allowed here; use ${allow}`, { allow });
  }
  throw new HttpError(404, "not_found", "no such route");
}

export function createWorker<E extends AgentEnv>(policy: Policy): ExportedHandler<E> {
  return {
    async fetch(request, env) {
      try {
        return await route(request, env, policy);
      } catch (error) {
        return errorResponse(error);
      }
    },
    // The fleet export's queue consumer: each batch becomes R2 objects (export.ts).
    async queue(batch, env) {
      await writeBatch(batch, env);
    },
  };
}
