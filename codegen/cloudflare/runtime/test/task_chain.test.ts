// The task chain role (task_chain.ts) through a real object: decisions chained one at a time, the sealing key.
import { env } from "cloudflare:workers";
import { evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { verifyChain, type ChainRecord } from "../chain";
import { taskObjectName } from "../names";
import { isSealed, SEALED, sealWith } from "../seal";
import type { TestEnv } from "./worker";

const testEnv = env as unknown as TestEnv;

/** The error an RPC call rejects with (null if it resolves). Handled at once: `expect(...).rejects` on an RPC
 * promise leaves workerd reporting the rejection as unhandled. */
const rejection = (p: Promise<unknown>): Promise<unknown> => p.then(() => null, (e: unknown) => e);
const task = () => {
  const id = `refunds-${crypto.randomUUID()}`;
  return { id, stub: testEnv.SESSION.getByName(taskObjectName("acme", id)) };
};

describe("a task's decision chain", () => {
  it("chains each decision as it is recorded, and keeps it across an eviction", async () => {
    const t = task();
    const scope = { tenant: "acme", session: t.id, workflow: "refunds" };
    const first = await t.stub.recordDecision(scope, "call lookup_order", "tool.call:lookup_order", "allow", "tools.allow");
    expect(first).toEqual({ seq: 1, action: "tool.call:lookup_order", decision: "allow", rule: "tools.allow" });
    await evictDurableObject(t.stub);
    const second = await t.stub.recordDecision(scope, "call lookup_order", "tool.result:lookup_order", "ok", "tool.ok");
    expect(second.seq).toBe(2);
    const { records, turns } = (await t.stub.traces(0)) as unknown as { records: ChainRecord[]; turns: unknown[] };
    expect(verifyChain(records)).toEqual({ ok: true });
    expect(records.map((r) => [r.session, r.workflow, r.spec_hash.startsWith("sha256:")])).toEqual([
      [t.id, "refunds", true], [t.id, "refunds", true],
    ]);
    expect(turns).toEqual([]);
    expect(((await t.stub.traces(1)) as unknown as { records: ChainRecord[] }).records.map((r) => r.seq)).toEqual([2]);
  });
});

describe("a task's sealing key", () => {
  it("seals and opens under the task's own key, which another task does not hold", async () => {
    const a = task();
    const b = task();
    const sealed = await sealWith(a.stub, { card: "4242 4242 4242 4242" });
    expect(isSealed(sealed)).toBe(true);
    expect(JSON.stringify(sealed)).not.toContain("4242");
    expect(JSON.parse(await a.stub.unseal(sealed[SEALED]))).toEqual({ card: "4242 4242 4242 4242" });
    await b.stub.seal("b's own key is made");
    expect(await rejection(b.stub.unseal(sealed[SEALED]))).toBeInstanceOf(Error);
  });

  it("forgets its key when the task ends: nothing sealed under it opens again", async () => {
    const t = task();
    const blob = await t.stub.seal("secret");
    await t.stub.forgetSealKey();
    expect(String(await rejection(t.stub.unseal(blob)))).toMatch(/sealing key is gone/);
    await t.stub.forgetSealKey(); // twice is fine
    expect(await t.stub.unseal(await t.stub.seal("new"))).toBe("new");
  });
});
