// One run of a spec workflow's steps inside a Cloudflare Workflow: the policy, the workflow's name, the
// event and env in; each step's result out, as the generated `step.do` callbacks ask for it. Call steps go
// through the policy and `invokeTool` (with the tool's Idempotency-Key, stable across retries because it is
// built from the instance id and the arguments); compensations run from the step's rollback handler.
// https://developers.cloudflare.com/workflows/build/rules-of-workflows/

import type { WorkflowEvent, WorkflowStepEvent } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";
import { ToolError } from "./errors";
import { runInference } from "./inference";
import { evaluateToolCall, type Policy, type Step, type Workflow } from "./policy";
import { toolFetcher, type AgentEnv } from "./session";
import { invokeTool } from "./tools";

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type Scalar = string | number | boolean | null;
/** A step's result: flat, so Workflows can persist it and the types stay shallow (see `flat`). */
export type StepValue = { [key: string]: Scalar };
export type StepResults = Record<string, StepValue>;
export type TaskParams = { tenant: string; params: { [key: string]: Json } };
export type TaskOutput = { workflow: string; results: StepResults };

/** Keep scalars; encode anything nested as JSON text. Declared `returns` shapes are scalar already. */
function flat(value: unknown): StepValue {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return { value: JSON.stringify(value) };
  return Object.fromEntries(Object.entries(value).map(([k, v]) =>
    [k, v === null || ["string", "number", "boolean"].includes(typeof v) ? (v as Scalar) : JSON.stringify(v)]));
}

const PLACEHOLDER = /\{([^{}]*)\}/g;

export class TaskRun {
  private readonly wf: Workflow;

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
    let value: Json | undefined = head === "params" ? this.event.payload.params : results[head!];
    // Both are JSON objects; nested params are walked below, step results are flat.
    for (const key of rest) {
      value = value !== null && typeof value === "object" && !Array.isArray(value) ? value[key] : undefined;
    }
    if (value === undefined) throw new NonRetryableError(`template value \`{${path}}\` is missing`);
    return value;
  }

  private args(step: Step & { args?: [string, string][] | null }, results: StepResults): Record<string, Json> {
    if (!step.args) return { ...this.event.payload.params };
    return Object.fromEntries(step.args.map(([name, template]) => [name, this.render(template, results)]));
  }

  private async invoke(toolName: string, args: Record<string, Json>): Promise<StepValue> {
    const verdict = evaluateToolCall(this.policy, this.workflow, toolName);
    if (verdict.decision === "deny") throw new NonRetryableError(`policy denied \`${toolName}\`: ${verdict.rule}`);
    const fetcher = toolFetcher(this.env);
    try {
      const result = await invokeTool({ policy: this.policy, toolName, args, sessionId: this.event.instanceId,
        workflow: this.workflow, env: this.env, allowedHosts: this.wf.outbound, ...(fetcher ? { fetcher } : {}) });
      return flat(result.result);
    } catch (error) {
      // A 4xx other than 408/429 will not succeed on retry: fail the step now (and roll back).
      if (error instanceof ToolError && error.status >= 400 && error.status < 500 && ![408, 429].includes(error.status)) {
        throw new NonRetryableError(error.message);
      }
      throw error;
    }
  }

  private async report(step: string, status: string, detail: Record<string, unknown> = {}): Promise<void> {
    const registry = this.env.SESSION.getByName(JSON.stringify([this.event.payload.tenant, "tasks"]));
    await registry.recordStep(this.event.instanceId, step, { name: step, status, ...detail });
  }

  async call(name: string, results: StepResults): Promise<StepValue> {
    const step = this.step(name);
    const result = await this.invoke(step.tool!, this.args(step, results));
    await this.report(name, "complete", { tool: step.tool });
    return result;
  }

  async infer(name: string, results: StepResults): Promise<StepValue> {
    const step = this.step(name);
    const prompt = this.render(step.prompt!, results);
    const answer = await runInference({ policy: this.policy, tier: step.tier!, env: this.env,
      sessionAffinity: this.event.instanceId,
      messages: [{ role: "user", content: typeof prompt === "string" ? prompt : JSON.stringify(prompt) }] });
    await this.report(name, "complete", { model: answer.model });
    return { text: answer.text, model: answer.model };
  }

  /** The rollback of a call step: run its tool's compensating tool, once (it has an idempotency key). */
  async compensate(name: string, output: StepValue | undefined, results: StepResults): Promise<void> {
    const step = this.step(name);
    const compensating = this.policy.tools[step.tool!]!.compensate!;
    const declared = Object.keys(this.policy.tools[compensating]!.args);
    const known: Record<string, Json> = { ...this.args(step, results) };
    if (output) Object.assign(known, output);
    const args = Object.fromEntries(declared.filter((a) => a in known).map((a) => [a, known[a]!]));
    await this.invoke(compensating, args);
    await this.report(name, "compensated", { tool: compensating });
  }

  received(event: WorkflowStepEvent<StepValue>): StepValue {
    return { ...flat(event.payload), type: event.type };
  }

  finish(results: StepResults): TaskOutput {
    return { workflow: this.workflow, results };
  }
}
