// Shared helper: what the model is sent — a turn's messages (static content first, so the prompt prefix stays
// cacheable across turns), the checkpoint summarizer's messages, and a workflow's tool definitions.

import type { ChatMessage, ChatTool } from "./inference";
import type { Policy, Workflow } from "./policy";

/** A stored message of the conversation (PII-masked). */
export interface HistoryMessage {
  role: string;
  content: string;
}

/** A turn's prompt: the system message, the checkpoint summary when there is one, the recent history, the input. */
export function turnMessages(policy: Policy, workflow: string, summary: string | null,
  history: readonly HistoryMessage[], input: string): ChatMessage[] {
  return [
    { role: "system", content: `You are the ${policy.agent.name} agent, workflow ${workflow}. ` +
      "Use the tools offered when they help; never invent tool results." },
    ...(summary ? [{ role: "system" as const, content: `Summary of the conversation so far: ${summary}` }] : []),
    ...history.map((m) => ({ role: m.role as "user" | "assistant", content: m.content })),
    { role: "user", content: input },
  ];
}

/** The checkpoint tier's prompt: summarize the history (and fold in the earlier summary). */
export function checkpointMessages(previous: string | null, history: readonly HistoryMessage[]): ChatMessage[] {
  return [
    { role: "system", content: "Summarize this conversation for the agent's future turns. Keep facts, " +
      "decisions and open questions; omit personal data." },
    ...(previous ? [{ role: "user" as const, content: `Earlier summary: ${previous}` }] : []),
    { role: "user", content: history.map((m) => `${m.role}: ${m.content}`).join("\n") },
  ];
}

// A workflow's tool definitions never change for a deployment: built once, sent the same (and so cacheable
// as a prompt prefix) every turn.
const chatToolsCache = new WeakMap<Workflow, ChatTool[]>();

export function chatTools(policy: Policy, wf: Workflow): ChatTool[] {
  let tools = chatToolsCache.get(wf);
  if (tools === undefined) {
    tools = buildChatTools(policy, wf);
    chatToolsCache.set(wf, tools);
  }
  return tools;
}

/** An index the workflow may search, offered to the model as a tool named after it (retrieval.ts). */
function indexTool(name: string, semantic: boolean): ChatTool {
  const properties: Record<string, unknown> = { query: { type: "string" }, top: { type: "integer" } };
  if (semantic) properties["mode"] = { type: "string", enum: ["keyword", "semantic", "both"] };
  return { type: "function", function: { name, description: "Search the documents kept earlier; answers their " +
    "references, scores, titles and snippets.", parameters: { type: "object", properties, required: ["query"] } } };
}

function buildChatTools(policy: Policy, wf: Workflow): ChatTool[] {
  const indexes = (wf.indexes ?? []).map((name) => indexTool(name, Boolean(policy.indexes?.[name]?.semantic)));
  return [...toolDefinitions(policy, wf), ...indexes];
}

function toolDefinitions(policy: Policy, wf: Workflow): ChatTool[] {
  return wf.tools.map((name) => {
    const tool = policy.tools[name]!;
    const properties: Record<string, unknown> = {};
    const required: string[] = [];
    for (const [arg, spec] of Object.entries(tool.args)) {
      const base = spec.replace("?", "");
      properties[arg] = { type: base === "int" ? "integer" : base === "bool" ? "boolean" : base };
      if (!spec.endsWith("?")) required.push(arg);
    }
    return { type: "function", function: { name, parameters: { type: "object", properties, required } } };
  });
}
