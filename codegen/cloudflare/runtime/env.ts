// Shared type: the bindings the runtime's roles read from a generated Env, all but the Durable Object namespace
// itself (which object.ts adds as `AgentEnv`, so no role module has to import the object class).

export type RuntimeEnv = {
  INFERENCE_URL?: string;
  TOOL_ORIGINS?: string;
  AI?: unknown;
  /** The fleet export (export.ts); off when absent. */
  EXPORT_QUEUE?: Queue;
  EXPORT_BUCKET?: R2Bucket;
};
