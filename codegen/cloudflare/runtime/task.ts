// One run of a spec workflow's steps inside a Cloudflare Workflow: the policy, the workflow's name, the
// event and env in; each step's result out, as the generated `step.do` callbacks ask for it. Call steps go
// through the policy and `invokeTool` (with the tool's Idempotency-Key, stable across retries because it is
// built from the instance id and the arguments); compensations run from the step's rollback handler.
// Every attempt's outcome is recorded in the tenant's task registry, so `GET /v1/tasks/{id}` shows it.
// https://developers.cloudflare.com/workflows/build/rules-of-workflows/

import type { WorkflowEvent, WorkflowStepContext, WorkflowStepEvent } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";
import { keepArtifact } from "./artifacts";
import type { ChainRecord } from "./chain";
import { AllModelsFailedError, messageOf, OutboundBlockedError, ToolError } from "./errors";
import { runInference } from "./inference";
import { maskDeep, maskPII } from "./pii";
import { evaluateToolCall, type Policy, type Step, type Workflow } from "./policy";
import { isSealed, SEALED, sealWith } from "./seal";
import { indexObjectName, sloMonitorName, taskObjectName, taskRegistryName } from "./names";
import type { AgentEnv } from "./object";
import { toolFetcher } from "./origins";
import { modelAttempts, toolRequest, traceparent } from "./rerun";
import { DEFAULT_TOP } from "./retrieval";
import { deliver, policyDenials, sloTable, type SliSample } from "./slo";
import { failureRule, invokeTool, ToolArgumentError, undeclaredArgs, wasSent } from "./tools";
import { priceOf } from "./usage";

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type Scalar = string | number | boolean | null;
/** A step's result: flat, so Workflows can persist it and the types stay shallow (see `flat`). */
export type StepValue = { [key: string]: Scalar };
export type StepResults = Record<string, StepValue>;
export type TaskParams = { tenant: string; params: { [key: string]: Json } };
export type TaskOutput = { workflow: string; results: StepResults };
/** What the SLO step keeps (Workflows persists it, so a replayed run does not feed the monitor twice). */
export type SloStepResult = { observed: boolean; alerts: string[] };

/** The closing SLO step of a workflow with an `slo`: never retried (observing twice would count the task twice),
 * and its callback does not throw. The name has a character a spec step name cannot, so it never collides. */
export const SLO_STEP = { name: "agentspec.slo", config: { retries: { limit: 0, delay: 0 }, timeout: 30_000 } };

/** Keep scalars; encode anything nested as JSON text. Declared `returns` shapes are scalar already. */
function flat(value: unknown): StepValue {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return { value: JSON.stringify(value) };
  return Object.fromEntries(Object.entries(value).map(([k, v]) =>
    [k, v === null || ["string", "number", "boolean"].includes(typeof v) ? (v as Scalar) : JSON.stringify(v)]));
}

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** What the generated code passes for a step attempt: the `step.do` callback's context (attempt, config). */
export type Attempt = Pick<WorkflowStepContext, "attempt" | "config">;

/** How a task's tool call failed, as a turn's trace says it. */
function callFailure(error: unknown): { sent: boolean; http_status: number | null; failure: string } {
  if (error instanceof OutboundBlockedError) return { sent: false, http_status: null, failure: "outbound.guard" };
  if (!(error instanceof ToolError)) return { sent: false, http_status: null, failure: "tool.error" };
  return { sent: wasSent(error), http_status: error.status || null, failure: failureRule(error) };
}

function nonRetryable(error: unknown): boolean {
  return error instanceof Error && (error.name === "NonRetryableError" || error.message.startsWith("NonRetryableError"));
}

export class TaskRun {
  private readonly wf: Workflow;
  /** The task's params and its step results opened (see seal.ts): once per run, not once per step. */
  private params: { [key: string]: Json } | null = null;
  private readonly opened = new Map<string, StepValue>();
  /** What the running attempt's tool or model call did, for its step record (what a rerun serves again, see
   * rerun.ts); reset when an attempt starts. A run's steps go one at a time. */
  private outcome: Record<string, unknown> = {};

  constructor(
    private readonly policy: Policy,
    private readonly workflow: string,
    private readonly event: WorkflowEvent<TaskParams>,
    private readonly env: AgentEnv,
  ) {
    this.wf = policy.workflows[workflow]!;
  }

  private step(name: string): Step {
    return this.wf.steps.find((s) => s.name === name)!;
  }

  /** A template's value: a lone `{x.y}` keeps its type (an int stays an int); otherwise text. */
  render(template: string, results: StepResults): Json {
    const lone = /^\{([^{}]*)\}$/.exec(template);
    if (lone) return this.lookup(lone[1]!, results);
    return template.replace(PLACEHOLDER, (_, key: string) => {
      const value = this.lookup(key, results);
      return typeof value === "string" ? value : JSON.stringify(value);
    });
  }

  private lookup(path: string, results: StepResults): Json {
    const [head, ...rest] = path.split(".");
    let value: Json | undefined = head === "params" ? this.params! : results[head!];
    // Both are JSON objects; nested params are walked below, step results are flat.
    for (const key of rest) {
      value = value !== null && typeof value === "object" && !Array.isArray(value) ? value[key] : undefined;
    }
    if (value === undefined) throw new NonRetryableError(`template value \`{${path}}\` is missing`);
    return value;
  }

  private args(step: Step & { args?: [string, string][] | null }, results: StepResults): Record<string, Json> {
    if (!step.args) return { ...this.params! };
    return Object.fromEntries(step.args.map(([name, template]) => [name, this.render(template, results)]));
  }

  /** Required arguments of a tool that `args` lacks (declared without `?`). */
  private missing(toolName: string, args: Record<string, Json>): string[] {
    return Object.entries(this.policy.tools[toolName]!.args)
      .filter(([name, spec]) => !spec.endsWith("?") && (args[name] === undefined || args[name] === null))
      .map(([name]) => name);
  }

  /** Call a tool for a step. A compensation is decided as the call it undoes (`decidedAs`): the workflow
   * allows the step's tool, and with it that tool's declared compensation, listed or not. */
  private async invoke(toolName: string, args: Record<string, Json>, decidedAs = toolName): Promise<StepValue> {
    const verdict = evaluateToolCall(this.policy, this.workflow, decidedAs);
    // Every decision is a record: a task's go to its own chain, readable at /v1/traces?task=ID.
    const log = this.env.SESSION.getByName(taskObjectName(this.event.payload.tenant, this.event.instanceId));
    const scope = { tenant: this.event.payload.tenant, session: this.event.instanceId, workflow: this.workflow };
    await log.recordDecision(scope,
      toolName === decidedAs ? `call ${toolName}` : `compensate ${decidedAs} with ${toolName}`,
      `tool.call:${toolName}`, verdict.decision, verdict.rule);
    if (verdict.decision === "deny") throw new NonRetryableError(`policy denied \`${toolName}\`: ${verdict.rule}`);
    // A missing argument stays missing on a retry.
    const lacking = this.missing(toolName, args);
    if (lacking.length > 0) {
      throw new NonRetryableError(`tool \`${toolName}\`: missing argument ${lacking.map((a) => `\`${a}\``).join(", ")}`);
    }
    const undeclared = undeclaredArgs(this.policy.tools[toolName]!, args);
    if (undeclared.length > 0) {
      // Dropped before the call (invokeTool sends declared arguments only): recorded by name (masked), never by value.
      const names = maskPII(undeclared.join(","), this.wf.pii).slice(0, 200);
      await log.recordDecision(scope, `call ${toolName}`, `tool.args:${toolName}:${names}`, "dropped",
        "tool.args.undeclared");
    }
    const fetcher = toolFetcher(this.env);
    const started = Date.now();
    // Masked with the rest of the step record (`report`).
    Object.assign(this.outcome, { args: toolRequest(this.policy, toolName, args, this.wf.pii).args, sent: false,
      http_status: null, failure: null });
    try {
      const result = await invokeTool({ policy: this.policy, toolName, args, sessionId: this.event.instanceId,
        workflow: this.workflow, tenant: this.event.payload.tenant, env: this.env, allowedHosts: this.wf.outbound,
        traceparent: traceparent(this.event.instanceId, 0), ...(fetcher ? { fetcher } : {}) });
      Object.assign(this.outcome, { sent: true, http_status: result.status, result: result.result,
        latency_ms: result.ms });
      if (this.policy.tools[toolName]!.artifact && toolName === decidedAs) return await this.keep(toolName, result.result);
      return flat(result.result);
    } catch (error) {
      Object.assign(this.outcome, { latency_ms: Date.now() - started, ...callFailure(error) });
      // Neither an off-allowlist host nor a 4xx other than 408/429 will succeed on retry: fail the step now
      // (and roll back).
      if (error instanceof OutboundBlockedError || error instanceof ToolArgumentError) {
        throw new NonRetryableError(error.message);
      }
      if (error instanceof ToolError && error.status >= 400 && error.status < 500 && ![408, 429].includes(error.status)) {
        throw new NonRetryableError(error.message);
      }
      throw error;
    }
  }

  /** A call step's result kept as an artifact (artifacts.ts): the step's value keeps every field (a later step
   * may read `{read.text}`) and gains `artifact_ref`; the step record keeps what a turn's model would read. */
  private async keep(toolName: string, result: Record<string, unknown>): Promise<StepValue> {
    const tenant = this.event.payload.tenant;
    const kept = await keepArtifact(this.env, this.policy, { tenant, workflow: this.workflow }, toolName, result,
      (index, doc) => this.env.SESSION.getByName(indexObjectName(tenant, index)).indexArtifact(index, tenant, doc));
    const scope = { tenant, session: this.event.instanceId, workflow: this.workflow };
    await this.keeper().recordDecision(scope, `call ${toolName}`, `artifact.keep:${kept.trace.store}`, "allow",
      "stores.write");
    Object.assign(this.outcome, { result: kept.forModel, artifact: kept.trace });
    return flat({ ...result, artifact_ref: kept.trace.ref });
  }

  private async report(step: string, status: string, detail: Record<string, unknown> = {}): Promise<void> {
    const registry = this.env.SESSION.getByName(taskRegistryName(this.event.payload.tenant));
    // Errors may quote arguments (a URL, a tool's answer): masked, like everything else persisted.
    await registry.recordStep(this.event.instanceId, step, maskDeep({ name: step, status, ...detail }, this.wf.pii),
      this.event.payload.tenant);
  }

  // ── sealing (seal.ts): the engine stores only sealed params and results; steps see them opened ──

  private keeper() {
    return this.env.SESSION.getByName(taskObjectName(this.event.payload.tenant, this.event.instanceId));
  }

  private async open(results: StepResults): Promise<StepResults> {
    const keeper = this.keeper();
    if (this.params === null) {
      const p = this.event.payload.params;
      this.params = isSealed(p) ? (JSON.parse(await keeper.unseal(p[SEALED])) as { [key: string]: Json }) : p;
    }
    const out: StepResults = {};
    for (const [name, value] of Object.entries(results)) {
      if (!isSealed(value)) {
        out[name] = value;
        continue;
      }
      let plain = this.opened.get(value[SEALED]);
      if (plain === undefined) {
        const { [SEALED]: blob, ...rest } = value;
        plain = { ...flat(JSON.parse(await keeper.unseal(blob))), ...rest };
        this.opened.set(blob, plain);
      }
      out[name] = plain;
    }
    return out;
  }

  private async seal(value: StepValue): Promise<StepValue> {
    return sealWith(this.keeper(), value);
  }

  private compensable(s: Step): boolean {
    return s.kind === "call" && this.policy.tools[s.tool!]?.compensate != null;
  }

  /** Whether a rollback is still to run after `after` (a step's name; none: the task just failed). Rollbacks
   * run in reverse step order, the failed step's own included, so the first compensable step that started is
   * the last. The key must outlive it. */
  private rollbackPending(results: StepResults, after?: string): boolean {
    const steps = this.wf.steps.filter((s) => s.kind !== "sleep");
    const end = after === undefined ? steps.length : steps.findIndex((s) => s.name === after);
    const failed = steps.findIndex((s) => results[s.name] === undefined);
    return steps.slice(0, end).some((s, i) => this.compensable(s) && (results[s.name] !== undefined || i === failed));
  }

  private async forget(): Promise<void> {
    try {
      await this.keeper().forgetSealKey();
    } catch (error) {
      console.error("agentspec: could not delete a task's sealing key", messageOf(error));
    }
  }

  /**
   * Run one attempt of a step: record how it went, and fail with the step's name in the message. A
   * non-retryable failure stays non-retryable (Workflows skips the remaining retries).
   */
  private async attempt(name: string, at: Attempt | undefined, run: () => Promise<[StepValue, Record<string, unknown>]>): Promise<StepValue> {
    const attempts = at?.attempt ?? 1;
    this.outcome = {};
    try {
      const [value, detail] = await run();
      await this.report(name, "complete", { ...detail, ...this.outcome, attempts });
      return value;
    } catch (error) {
      const fatal = nonRetryable(error);
      const last = fatal || attempts > (at?.config.retries?.limit ?? 0);
      const message = maskPII(`step \`${name}\`: ${messageOf(error).replace(/^NonRetryableError:?\s*/, "")}`, this.wf.pii);
      try {
        await this.report(name, last ? "failed" : "retrying", { ...this.outcome, error: message, attempts });
      } catch {
        // The registry is only a view: its failure must not hide the step's own error.
      }
      throw fatal ? new NonRetryableError(message) : new Error(message);
    }
  }

  async call(name: string, results: StepResults, at?: Attempt): Promise<StepValue> {
    const step = this.step(name);
    return this.attempt(name, at, async () => {
      const plain = await this.open(results);
      this.outcome = { tool: step.tool };
      return [await this.seal(await this.invoke(step.tool!, this.args(step, plain))), { tool: step.tool }];
    });
  }

  /** A `search` step: this task's tenant's index, top results flattened (results_json holds them all). */
  async search(name: string, results: StepResults, at?: Attempt): Promise<StepValue> {
    const step = this.step(name);
    return this.attempt(name, at, async () => {
      const rendered = this.render(step.query!, await this.open(results));
      const query = typeof rendered === "string" ? rendered : JSON.stringify(rendered);
      const tenant = this.event.payload.tenant;
      const allowed = (this.wf.indexes ?? []).includes(step.index!);
      const scope = { tenant, session: this.event.instanceId, workflow: this.workflow };
      await this.keeper().recordDecision(scope, `search ${step.index!}`, `index.search:${step.index!}`,
        allowed ? "allow" : "deny", allowed ? "indexes.allow" : "indexes.allowlist");
      if (!allowed) throw new NonRetryableError(`policy denied a search of \`${step.index!}\`: indexes.allowlist`);
      const hits = await this.env.SESSION.getByName(indexObjectName(tenant, step.index!))
        .searchIndex(step.index!, tenant, query, step.top ?? DEFAULT_TOP, "both");
      const top = hits[0];
      this.outcome = { index: step.index, hits: hits.map((h) => ({ ref: h.ref, score: h.score })) };
      const value: StepValue = { count: hits.length, top_ref: top?.ref ?? "", top_score: top?.score ?? 0,
        top_snippet: top?.snippet ?? "", results_json: JSON.stringify(hits.map((h) =>
          ({ ref: h.ref, score: h.score, title: h.title, snippet: h.snippet }))) };
      return [await this.seal(value), { index: step.index }];
    });
  }

  async infer(name: string, results: StepResults, at?: Attempt): Promise<StepValue> {
    const step = this.step(name);
    return this.attempt(name, at, async () => {
      const prompt = this.render(step.prompt!, await this.open(results));
      let answer;
      try {
        answer = await runInference({ policy: this.policy, tier: step.tier!, env: this.env,
          sessionAffinity: this.event.instanceId, traceparent: traceparent(this.event.instanceId, 0),
          messages: [{ role: "user", content: typeof prompt === "string" ? prompt : JSON.stringify(prompt) }] });
      } catch (error) {
        if (error instanceof AllModelsFailedError) this.outcome = { model_attempts: modelAttempts(error.attempts) };
        throw error;
      }
      // The answer's text is masked with the step record (`report`).
      this.outcome = { model_attempts: modelAttempts(answer.attempts), usage: { ...answer.usage }, text: answer.text };
      // Usage and price ride along in the step's result: Workflows keeps them, and the task's SLO sample sums them.
      const tier = this.policy.tiers[step.tier!]!;
      return [await this.seal({ text: answer.text, model: answer.model, input_tokens: answer.usage.input,
        output_tokens: answer.usage.output, cached_tokens: answer.usage.cached,
        cost_usd: priceOf(tier, answer.usage) }), { model: answer.model }];
    });
  }

  /**
   * The rollback of a call step: run its tool's compensating tool (idempotent, so at most once in effect).
   * Workflows also rolls back the step that failed, with no `output`: then the compensation runs only if its
   * arguments are known without the step's result, and otherwise is skipped: there is nothing to undo by id.
   * A failure is thrown (so Workflows retries it) only while retries remain: one that fails for good is
   * recorded in the registry and the task's chain, alerted, and returns, because a rollback that throws
   * stops every earlier step's rollback, and one stuck compensation must not strand the others.
   */
  async compensate(name: string, output: StepValue | undefined, sealed: StepResults, retryLimit = 0): Promise<void> {
    try {
      const results = await this.open(sealed);
      const opened = output === undefined ? undefined : (await this.open({ output }))["output"];
      await this.undo(name, opened, results, retryLimit);
    } finally {
      if (!this.rollbackPending(sealed, name)) await this.forget();
    }
  }

  private async undo(name: string, output: StepValue | undefined, results: StepResults, retryLimit = 0): Promise<void> {
    const step = this.step(name);
    const tool = step.tool!;
    const compensating = this.policy.tools[tool]!.compensate!;
    const declared = Object.keys(this.policy.tools[compensating]!.args);
    const intent = `compensate ${tool} with ${compensating}`;
    let known: Record<string, Json> = {};
    try {
      known = { ...this.args(step, results) };
    } catch {
      // An argument template the failed step could not fill: only its output can tell.
    }
    if (output) Object.assign(known, output);
    const args = Object.fromEntries(declared.filter((a) => a in known).map((a) => [a, known[a]!]));
    const lacking = this.missing(compensating, args);
    if (lacking.length > 0) {
      // A step that never returned keeps its `failed` record; one that did says why it was not undone.
      if (output) {
        const error = `missing argument ${lacking.map((a) => `\`${a}\``).join(", ")}`;
        await this.report(name, "not_compensated", { tool, compensation: compensating, error });
        await this.compensationOutcome(intent, compensating, "failed", "compensation.not_run", name, error);
      }
      return;
    }
    this.outcome = {};
    try {
      await this.invoke(compensating, args, tool);
    } catch (error) {
      // The rollback handler's `ctx` is the forward step's, so the rollback's own attempts are counted here, in
      // the registry record its earlier attempts left (`retryLimit` is the rollbackConfig's retry limit).
      const attempts = (await this.compensationAttempts(name)) + 1;
      const final = nonRetryable(error) || attempts > retryLimit;
      const message = messageOf(error).replace(/^NonRetryableError:?\s*/, "");
      try {
        await this.report(name, final ? "compensation_failed" : "compensation_retrying",
          { ...this.outcome, tool, compensation: compensating, error: message, attempts });
      } catch {
        // As in `attempt`: the registry's failure must not hide the compensation's own.
      }
      if (!final) throw error;
      await this.compensationOutcome(intent, compensating, "failed", "compensation.failed", name, message);
      return;
    }
    await this.report(name, "compensated", { ...this.outcome, tool, compensation: compensating });
    await this.compensationOutcome(intent, compensating, "ok", "compensation.ok", name);
  }

  /** How many attempts of a step's compensation have failed so far (0 when none has). Never throws. */
  private async compensationAttempts(step: string): Promise<number> {
    try {
      const registry = this.env.SESSION.getByName(taskRegistryName(this.event.payload.tenant));
      const steps = (await registry.taskSteps(this.event.instanceId)) as { name?: unknown; status?: unknown;
        attempts?: unknown }[];
      const record = steps.find((s) => s.name === step);
      return record?.status === "compensation_retrying" && typeof record.attempts === "number" ? record.attempts : 0;
    } catch {
      return 0;
    }
  }

  /**
   * Record how a compensation ended in the task's chain (`compensation:<tool>`); a failure is also alerted: to the
   * workflow's SLO webhook when it declares one (recorded `alert:compensation`, `alert` or `alert_undelivered`),
   * and to the log. Never throws: the remaining rollbacks must run whatever happens here.
   */
  private async compensationOutcome(intent: string, compensating: string, decision: "ok" | "failed", rule: string,
    step: string, error?: string): Promise<void> {
    const { tenant } = this.event.payload;
    const scope = { tenant, session: this.event.instanceId, workflow: this.workflow };
    try {
      const log = this.env.SESSION.getByName(taskObjectName(tenant, this.event.instanceId));
      await log.recordDecision(scope, intent, `compensation:${compensating}`, decision, rule);
      if (decision === "ok") return;
      console.error("agentspec: compensation failed", this.event.instanceId, step, error ?? "");
      const webhook = sloTable(this.wf.slo).webhook;
      const fetcher = toolFetcher(this.env);
      const delivered = await deliver(webhook, this.wf.outbound, {
        type: "agentspec.compensation_failed", agent: this.policy.agent.name, workflow: this.workflow,
        task: this.event.instanceId, step, compensation: compensating, rule, error: error ?? null,
        spec_hash: this.policy.spec_hash, ts: new Date().toISOString(),
      }, fetcher);
      await log.recordDecision(scope, intent, "alert:compensation", delivered ? "alert" : "alert_undelivered", rule);
    } catch (e) {
      console.error("agentspec: recording a compensation failed", messageOf(e));
    }
  }

  /**
   * What `run` throws when a step fails: a plain Error with the step's reason. Thrown as is, a
   * NonRetryableError would reach `instance.status().error` as the engine's generic "a step threw a
   * NonRetryableError" text (unless the `workflows_preserve_non_retryable_error_message` flag is on), and an
   * Error subclass crosses RPC as `Error` with its name glued onto the message.
   */
  async failed(error: unknown, results: StepResults = {}): Promise<unknown> {
    // With no rollback to come the task is over: its key goes now (else after the last rollback).
    if (!this.rollbackPending(results)) await this.forget();
    if (!nonRetryable(error) || !(error instanceof Error)) return error;
    return new Error(error.message.replace(/^NonRetryableError:?\s*/, ""));
  }

  /**
   * Feed the finished task to its workflow's SLO monitor, as one sample: ok or failed, latency from the
   * instance's creation (also its ttft: a task's answer comes whole at the end), the tokens and price of the
   * infer steps that ran (null price when none was priced), and the denials among its decisions. Each alert
   * it fires becomes an `alert:<sli>` record in the task's chain. Never throws: a monitor outage must not fail
   * a task, nor replace a failed task's reason.
   */
  async observe(ok: boolean, results: StepResults): Promise<SloStepResult> {
    const { tenant } = this.event.payload;
    const scope = { tenant, session: this.event.instanceId, workflow: this.workflow };
    try {
      const log = this.env.SESSION.getByName(taskObjectName(tenant, this.event.instanceId));
      // The RPC stub types the free-form `turns` as never, and the whole answer with them; the shape is the DO's.
      const { records } = (await log.traces(0)) as unknown as { records: ChainRecord[] };
      const latency = Math.max(0, Date.now() - this.event.timestamp.getTime());
      const plain = await this.open(results);
      const infers = this.wf.steps.filter((s) => s.kind === "infer" && plain[s.name] !== undefined)
        .map((s) => plain[s.name]!);
      const sum = (key: string) => infers.reduce((n, r) => n + (typeof r[key] === "number" ? r[key] : 0), 0);
      const priced = infers.filter((r) => typeof r["cost_usd"] === "number");
      const sample: SliSample = { ok, latency_ms: latency, ttft_ms: latency,
        cost_usd: priced.length > 0 ? sum("cost_usd") : null, input_tokens: sum("input_tokens"),
        cached_tokens: sum("cached_tokens"), denied: policyDenials(records),
        decisions: records.length };
      const alerts = await this.env.SESSION.getByName(sloMonitorName(this.workflow)).observe(this.workflow, sample);
      for (const alert of alerts) {
        await log.recordDecision(scope, ok ? "task complete" : "task failed", `alert:${alert.sli}`,
          alert.delivered ? "alert" : "alert_undelivered", `slo.${alert.sli}`);
      }
      return { observed: true, alerts: alerts.map((a) => a.sli) };
    } catch (error) {
      console.error("agentspec: SLO monitor failed", messageOf(error));
      return { observed: false, alerts: [] };
    }
  }

  received(event: WorkflowStepEvent<StepValue>): StepValue {
    return { ...flat(event.payload), type: event.type };
  }

  /**
   * The task's summary to the fleet export, when it completes or fails (before any rollback, whose steps are
   * exported as they run). Outside a step, so a replayed run sends it again: its id is stable. Never throws.
   */
  async exported(ok: boolean, results: StepResults, error?: unknown): Promise<void> {
    try {
      const plain = await this.open(results); // called before finish/failed, while the task's key still exists
      const infers = this.wf.steps.filter((s) => s.kind === "infer" && plain[s.name] !== undefined)
        .map((s) => plain[s.name]!);
      const priced = infers.filter((r) => typeof r["cost_usd"] === "number");
      await this.env.SESSION.getByName(taskRegistryName(this.event.payload.tenant)).exportTask(
        this.event.payload.tenant, this.event.instanceId, null, {
          status: ok ? "complete" : "failed", ok, steps: Object.keys(results).length,
          latency_ms: Math.max(0, Date.now() - this.event.timestamp.getTime()),
          cost_usd: priced.length > 0 ? priced.reduce((n, r) => n + (r["cost_usd"] as number), 0) : null,
          error: error === undefined ? null : messageOf(error), spec_hash: this.policy.spec_hash,
          // What a rerun sends again (rerun.ts), masked.
          params: maskDeep(this.params ?? {}, this.wf.pii),
        });
    } catch (failure) {
      console.error("agentspec: task export failed", messageOf(failure));
    }
  }

  /** The task's answer, masked (the engine keeps it, `GET /v1/tasks/{id}` shows it); the key goes. */
  async finish(results: StepResults): Promise<TaskOutput> {
    const plain = await this.open(results);
    await this.forget();
    return { workflow: this.workflow, results: maskDeep(plain, this.wf.pii) };
  }
}
