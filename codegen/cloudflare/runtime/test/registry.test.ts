// The task registry role (registry.ts) through a real object: ownership, idempotency keys, step records.
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
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

  it("claims an Idempotency-Key once: a retry gets the first task, and whether its body is the same", async () => {
    const r = registry();
    expect(await r.claimTaskKey("key-1", "refunds-a", "refunds", '{"a":1}')).toEqual({ task: "refunds-a", same: true, fresh: true });
    expect(await r.claimTaskKey("key-1", "refunds-b", "refunds", '{"a":1}')).toEqual({ task: "refunds-a", same: true, fresh: false });
    expect(await r.claimTaskKey("key-1", "refunds-c", "refunds", '{"a":2}')).toEqual({ task: "refunds-a", same: false, fresh: false });
    expect(await r.ownsTask("refunds-a")).toBe(true);
    expect(await r.ownsTask("refunds-b")).toBe(false);
  });

  it("stores a keyed fingerprint, its key the registry's own, never a plain hash of the body", async () => {
    const body = '{"params":{"email":"ann@example.com"},"workflow":"refunds"}';
    const plain = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body))),
      (b) => b.toString(16).padStart(2, "0")).join("");
    const tenant = `tenant-${crypto.randomUUID()}`;
    const stub = testEnv.SESSION.getByName(taskRegistryName(tenant));
    await stub.claimTaskKey("k", "refunds-a", "refunds", body);
    const other = registry();
    await other.claimTaskKey("k", "refunds-a", "refunds", body);
    const stored = await runInDurableObject(stub, (_obj, state) =>
      state.storage.sql.exec<{ fingerprint: string }>("SELECT fingerprint FROM task_keys").toArray()[0]!.fingerprint);
    const theirs = await runInDurableObject(other, (_obj, state) =>
      state.storage.sql.exec<{ fingerprint: string }>("SELECT fingerprint FROM task_keys").toArray()[0]!.fingerprint);
    expect(stored).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(stored).not.toContain(plain);
    expect(theirs).not.toBe(stored); // each tenant's registry has its own key
  });

  it("still compares a key claimed before fingerprints were keyed", async () => {
    const body = '{"params":{},"workflow":"refunds"}';
    const plain = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body))),
      (b) => b.toString(16).padStart(2, "0")).join("");
    const stub = registry();
    await runInDurableObject(stub, (_obj, state) => {
      state.storage.sql.exec("INSERT INTO task_keys (key, task, fingerprint) VALUES ('old', 'refunds-o', ?)", plain);
    });
    expect(await stub.claimTaskKey("old", "refunds-x", "refunds", body)).toEqual({ task: "refunds-o", same: true, fresh: false });
    expect((await stub.claimTaskKey("old", "refunds-x", "refunds", "{}")).same).toBe(false);
  });

  it("gives two concurrent claims of one key one task", async () => {
    const r = registry();
    const claims = await Promise.all(["x", "y", "z"].map((t) => r.claimTaskKey("same", `refunds-${t}`, "refunds", "{}")));
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
