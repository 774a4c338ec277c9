// One run of a spec workflow's steps inside a Cloudflare Workflow: the policy, the workflow's name, the
// event and env in; each step's result out, as the generated `step.do` callbacks ask for it. Call steps go
// through the policy and `invokeTool` (with the tool's Idempotency-Key, stable across retries because it is
// built from the instance id and the arguments); compensations run from the step's rollback handler.
// Every attempt's outcome is recorded in the tenant's task registry, so `GET /v1/tasks/{id}` shows it.
// https://developers.cloudflare.com/workflows/build/rules-of-workflows/

import type { WorkflowEvent, WorkflowStepContext, WorkflowStepEvent } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";
import type { ChainRecord } from "./chain";
import { messageOf, OutboundBlockedError, ToolError } from "./errors";
import { runInference } from "./inference";
import { maskDeep, maskPII } from "./pii";
import { evaluateToolCall, type Policy, type Step, type Workflow } from "./policy";
import { isSealed, SEALED, sealWith } from "./seal";
import { priceOf, sloMonitorName, taskObjectName, taskRegistryName, toolFetcher, type AgentEnv } from "./session";
import { policyDenials, type SliSample } from "./slo";
import { invokeTool } from "./tools";

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

function nonRetryable(error: unknown): boolean {
  return error instanceof Error && (error.name === "NonRetryableError" || error.message.startsWith("NonRetryableError"));
}

export class TaskRun {
  private readonly wf: Workflow;
  /** The task's params and its step results opened (see seal.ts): once per run, not once per step. */
  private params: { [key: string]: Json } | null = null;
  private readonly opened = new Map<string, StepValue>();

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
    await log.recordDecision({ tenant: this.event.payload.tenant, session: this.event.instanceId, workflow: this.workflow },
      toolName === decidedAs ? `call ${toolName}` : `compensate ${decidedAs} with ${toolName}`,
      `tool.call:${toolName}`, verdict.decision, verdict.rule);
    if (verdict.decision === "deny") throw new NonRetryableError(`policy denied \`${toolName}\`: ${verdict.rule}`);
    // A missing argument stays missing on a retry.
    const lacking = this.missing(toolName, args);
    if (lacking.length > 0) {
      throw new NonRetryableError(`tool \`${toolName}\`: missing argument ${lacking.map((a) => `\`${a}\``).join(", ")}`);
    }
    const fetcher = toolFetcher(this.env);
    try {
      const result = await invokeTool({ policy: this.policy, toolName, args, sessionId: this.event.instanceId,
        workflow: this.workflow, env: this.env, allowedHosts: this.wf.outbound, ...(fetcher ? { fetcher } : {}) });
      return flat(result.result);
    } catch (error) {
      // Neither an off-allowlist host nor a 4xx other than 408/429 will succeed on retry: fail the step now
      // (and roll back).
      if (error instanceof OutboundBlockedError) throw new NonRetryableError(error.message);
      if (error instanceof ToolError && error.status >= 400 && error.status < 500 && ![408, 429].includes(error.status)) {
        throw new NonRetryableError(error.message);
      }
      throw error;
    }
  }

  private async report(step: string, status: string, detail: Record<string, unknown> = {}): Promise<void> {
    const registry = this.env.SESSION.getByName(taskRegistryName(this.event.payload.tenant));
    // Errors may quote arguments (a URL, a tool's answer): masked, like everything else persisted.
    await registry.recordStep(this.event.instanceId, step, maskDeep({ name: step, status, ...detail }, this.wf.pii));
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
    try {
      const [value, detail] = await run();
      await this.report(name, "complete", { ...detail, attempts });
      return value;
    } catch (error) {
      const fatal = nonRetryable(error);
      const last = fatal || attempts > (at?.config.retries?.limit ?? 0);
      const message = maskPII(`step \`${name}\`: ${messageOf(error).replace(/^NonRetryableError:?\s*/, "")}`, this.wf.pii);
      try {
        await this.report(name, last ? "failed" : "retrying", { error: message, attempts });
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
      return [await this.seal(await this.invoke(step.tool!, this.args(step, plain))), { tool: step.tool }];
    });
  }

  async infer(name: string, results: StepResults, at?: Attempt): Promise<StepValue> {
    const step = this.step(name);
    return this.attempt(name, at, async () => {
      const prompt = this.render(step.prompt!, await this.open(results));
      const answer = await runInference({ policy: this.policy, tier: step.tier!, env: this.env,
        sessionAffinity: this.event.instanceId,
        messages: [{ role: "user", content: typeof prompt === "string" ? prompt : JSON.stringify(prompt) }] });
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
   * arguments are known without the step's result, and otherwise is skipped: there is nothing to undo by id,
   * and a throw here would stop every earlier step's rollback.
   */
  async compensate(name: string, output: StepValue | undefined, sealed: StepResults): Promise<void> {
    try {
      const results = await this.open(sealed);
      const opened = output === undefined ? undefined : (await this.open({ output }))["output"];
      await this.undo(name, opened, results);
    } finally {
      if (!this.rollbackPending(sealed, name)) await this.forget();
    }
  }

  private async undo(name: string, output: StepValue | undefined, results: StepResults): Promise<void> {
    const step = this.step(name);
    const tool = step.tool!;
    const compensating = this.policy.tools[tool]!.compensate!;
    const declared = Object.keys(this.policy.tools[compensating]!.args);
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
        await this.report(name, "not_compensated", { tool, compensation: compensating,
          error: `missing argument ${lacking.map((a) => `\`${a}\``).join(", ")}` });
      }
      return;
    }
    try {
      await this.invoke(compensating, args, tool);
    } catch (error) {
      try {
        await this.report(name, "compensation_failed", { tool, compensation: compensating, error: messageOf(error) });
      } catch {
        // As in `attempt`: the registry's failure must not hide the compensation's own.
      }
      throw error;
    }
    await this.report(name, "compensated", { tool, compensation: compensating });
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

  /** The task's answer, masked (the engine keeps it, `GET /v1/tasks/{id}` shows it); the key goes. */
  async finish(results: StepResults): Promise<TaskOutput> {
    const plain = await this.open(results);
    await this.forget();
    return { workflow: this.workflow, results: maskDeep(plain, this.wf.pii) };
  }
}
