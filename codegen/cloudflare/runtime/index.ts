// The agentspec Cloudflare runtime library, copied unchanged into every generated project: policy evaluation,
// guarded outbound fetch, PII masking, the hash-chained decision log, inference with fallback, tool calls, errors.
export * from "./errors";
export * from "./policy";
export * from "./guard";
export * from "./pii";
export * from "./chain";
export * from "./inference";
export * from "./tools";
