// The agentspec Cloudflare runtime library, copied unchanged into every generated project: policy evaluation,
// guarded outbound fetch, PII masking, the hash-chained decision log, inference with fallback, tool calls, errors,
// and the parts every generated Worker shares: the HTTP front door, the session Durable Object, workflow steps.
export * from "./errors";
export * from "./policy";
export * from "./guard";
export * from "./pii";
export * from "./chain";
export * from "./inference";
export * from "./tools";
export * from "./http";
export * from "./load";
export * from "./session";
export * from "./slo";
export * from "./task";
export * from "./worker";
export * from "./export";
export * from "./seal";
