// The test Worker's main module: the runtime's Durable Object and front door wired to the fixture policy, as a
// generated index.ts wires them to a spec's, so the role tests reach real objects (SQLite, RPC, eviction).
import { createWorker, SessionObject, type AgentEnv, type Policy } from "../index";
import { makePolicy } from "./fixtures";

export type TestEnv = AgentEnv & {
  SESSION: DurableObjectNamespace<SessionDO>;
  SUMMARIES: KVNamespace;
  ARTIFACTS: R2Bucket;
  INFERENCE_URL: string;
  ORDERS_KEY: string;
};

/** The fixture policy, with both tiers' timeouts at 2 s: a model answer here crosses to Node and back (the high
 * tier's 50 ms is too short for that), and an eviction waits for a turn's pending timeout timers to fire. */
export const policy: Policy = (() => {
  const p = makePolicy();
  const tiers = Object.fromEntries(Object.entries(p.tiers).map(([name, tier]) => [name, { ...tier, timeout_ms: 2000 }]));
  return withRetrieval({ ...p, tiers });
})();

/** The fixture policy plus what the retrieval tests read: a tool keeping its text as an artifact, an index over
 * the artifact store (keyword and semantic, 8-dimensional stand-in embeddings) and a workflow using both. */
function withRetrieval(p: Policy): Policy {
  return {
    ...p,
    stores: { ...p.stores, artifacts: { kind: "r2", binding: "ARTIFACTS" } },
    tiers: { ...p.tiers, embed: { models: ["embed-a"], timeout_ms: 2000, clearance: "low" } },
    tools: {
      ...p.tools,
      fetch_doc: {
        method: "GET", url: "https://docs.example.com/v1/docs/{doc_id}", host: "docs.example.com", risk: "low",
        read_only: true, timeout_ms: 2000, secrets: [], headers: {}, args: { doc_id: "string" },
        returns: { title: "string", text: "string" },
        artifact: { store: "artifacts", binding: "ARTIFACTS", field: "text", show: ["title"] },
      },
      // Its store's binding is missing from the test Worker's env: keeping its result fails.
      fetch_lost: {
        method: "GET", url: "https://docs.example.com/v1/docs/{doc_id}", host: "docs.example.com", risk: "low",
        read_only: true, timeout_ms: 2000, secrets: [], headers: {}, args: { doc_id: "string" },
        returns: { title: "string", text: "string" },
        artifact: { store: "lost", binding: "LOST", field: "text", show: ["title"] },
      },
    },
    indexes: { docs: { store: "artifacts", keyword: true,
      semantic: { tier: "embed", dimensions: 8, vector_binding: "VEC_DOCS" } } },
    workflows: {
      ...p.workflows,
      research: {
        class: "research", mode: "enforce", turn_risk: "low", turn_tier: "low", routes: {}, tools: ["fetch_doc", "fetch_lost"],
        outbound: ["docs.example.com"], affinity: { header: "x-session-affinity", ttl_ms: 600000 },
        pii: { classes: ["email", "phone"], patterns: {} }, steps: [], writes: ["artifacts"], indexes: ["docs"],
      },
    },
  };
}

export class SessionDO extends SessionObject<TestEnv> {
  constructor(ctx: DurableObjectState, env: TestEnv) {
    super(ctx, env, policy);
  }
}

export default createWorker<TestEnv>(policy);
