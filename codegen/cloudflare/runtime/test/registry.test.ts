// The task registry role (registry.ts) through a real object: ownership, idempotency keys, step records.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { taskRegistryName } from "../names";
import type { TestEnv } from "./worker";

const testEnv = env as unknown as TestEnv;
const registry = () => testEnv.SESSION.getByName(taskRegistryName(`tenant-${crypto.randomUUID()}`));

describe("a tenant's task registry", () => {
  it("owns the tasks registered with it, and no other", async () => {
    const mine = registry();
    const theirs = registry();
    await mine.registerTask("refunds-1", "refunds");
    await mine.registerTask("refunds-1", "refunds"); // a retry registers nothing twice
    expect(await mine.ownsTask("refunds-1")).toBe(true);
    expect(await mine.ownsTask("refunds-2")).toBe(false);
    expect(await theirs.ownsTask("refunds-1")).toBe(false);
  });

  it("claims an Idempotency-Key once: a retry gets the first task and its body fingerprint", async () => {
    const r = registry();
    expect(await r.claimTaskKey("key-1", "refunds-a", "refunds", "fp-1")).toEqual({ task: "refunds-a", fingerprint: "fp-1", fresh: true });
    expect(await r.claimTaskKey("key-1", "refunds-b", "refunds", "fp-2")).toEqual({ task: "refunds-a", fingerprint: "fp-1", fresh: false });
    expect(await r.ownsTask("refunds-a")).toBe(true);
    expect(await r.ownsTask("refunds-b")).toBe(false);
  });

  it("gives two concurrent claims of one key one task", async () => {
    const r = registry();
    const claims = await Promise.all(["x", "y", "z"].map((t) => r.claimTaskKey("same", `refunds-${t}`, "refunds", "fp")));
    expect(claims.filter((c) => c.fresh)).toHaveLength(1);
    expect(new Set(claims.map((c) => c.task)).size).toBe(1);
  });

  it("keeps one record per step, the latest, in the order steps first ran", async () => {
    const r = registry();
    await r.registerTask("refunds-t", "refunds");
    await r.recordStep("refunds-t", "verify", { name: "verify", status: "running", attempts: 1 }, "acme");
    await r.recordStep("refunds-t", "refund", { name: "refund", status: "ok", attempts: 1 }, "acme");
    await r.recordStep("refunds-t", "verify", { name: "verify", status: "ok", attempts: 2 }, "acme");
    expect(await r.taskSteps("refunds-t")).toEqual([
      { name: "verify", status: "ok", attempts: 2 },
      { name: "refund", status: "ok", attempts: 1 },
    ]);
    expect(await r.taskSteps("refunds-other")).toEqual([]);
  });
});
