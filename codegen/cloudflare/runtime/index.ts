// The agentspec Cloudflare runtime library, copied unchanged into every generated project: policy evaluation,
// guarded outbound fetch, PII masking, the hash-chained decision log, inference with fallback, tool calls, errors,
// and the parts every generated Worker shares: the HTTP front door, the Durable Object (object.ts) and its roles
// (session.ts, registry.ts, task_chain.ts, slo.ts), workflow steps (task.ts).
export * from "./errors";
export * from "./policy";
export * from "./guard";
export * from "./pii";
export * from "./chain";
export * from "./inference";
export * from "./tools";
export * from "./http";
export * from "./load";
export * from "./names";
export * from "./env";
export * from "./origins";
export * from "./usage";
export * from "./prompt";
export * from "./meta";
export * from "./decisions";
export * from "./turn_tool";
export * from "./session";
export * from "./registry";
export * from "./task_chain";
export * from "./object";
export * from "./slo";
export * from "./task";
export * from "./worker";
export * from "./export";
export * from "./seal";
