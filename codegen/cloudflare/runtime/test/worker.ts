// The test Worker's main module: the runtime's Durable Object and front door wired to the fixture policy, as a
// generated index.ts wires them to a spec's, so the role tests reach real objects (SQLite, RPC, eviction).
import { createWorker, SessionObject, type AgentEnv, type Policy } from "../index";
import { makePolicy } from "./fixtures";

export type TestEnv = AgentEnv & {
  SESSION: DurableObjectNamespace<SessionDO>;
  SUMMARIES: KVNamespace;
  INFERENCE_URL: string;
  ORDERS_KEY: string;
};

/** The fixture policy, with both tiers' timeouts at 2 s: a model answer here crosses to Node and back (the high
 * tier's 50 ms is too short for that), and an eviction waits for a turn's pending timeout timers to fire. */
export const policy: Policy = (() => {
  const p = makePolicy();
  const tiers = Object.fromEntries(Object.entries(p.tiers).map(([name, tier]) => [name, { ...tier, timeout_ms: 2000 }]));
  return { ...p, tiers };
})();

export class SessionDO extends SessionObject<TestEnv> {
  constructor(ctx: DurableObjectState, env: TestEnv) {
    super(ctx, env, policy);
  }
}

export default createWorker<TestEnv>(policy);
