// The front door's route table (worker.ts): dispatch and 405/404 derived from the same rows.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { allowedMethods, createWorker, ROUTES } from "../worker";
import { policy, type TestEnv } from "./worker";

const worker = createWorker<TestEnv>(policy);
const call = (method: string, path: string) =>
  worker.fetch!(new Request(`http://agent.test${path}`, { method }) as Request<unknown, IncomingRequestCfProperties>,
    env as unknown as TestEnv, {} as ExecutionContext);

describe("the route table", () => {
  it("derives each path's methods from its rows", () => {
    expect(allowedMethods("/healthz")).toBe("GET");
    expect(allowedMethods("/v1/sessions/s-1/turns")).toBe("POST");
    expect(allowedMethods("/v1/tasks")).toBe("POST");
    expect(allowedMethods("/v1/tasks/refunds-1")).toBe("GET");
    expect(allowedMethods("/v1/tasks/refunds-1/events")).toBe("POST");
    expect(allowedMethods("/v1/sessions/s-1")).toBeNull();
    expect(allowedMethods("/nowhere")).toBeNull();
    expect(new Set(ROUTES.map((r) => `${r.method} ${String(r.path)}`)).size).toBe(ROUTES.length);
  });

  it("answers a route, a wrong method with 405 and Allow, and an unknown path with 404", async () => {
    const health = await call("GET", "/healthz");
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, agent: "support_desk" });
    const wrong = await call("DELETE", "/v1/tasks/refunds-1");
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("GET");
    expect(await wrong.json()).toMatchObject({ error: { code: "method_not_allowed" } });
    expect((await call("GET", "/nowhere")).status).toBe(404);
  });

  it("keeps a malformed task id a 404 for the right method and a 405 for a wrong one", async () => {
    const bad = await call("GET", "/v1/tasks/bad!id");
    expect(bad.status).toBe(404);
    expect(await bad.json()).toMatchObject({ error: { code: "not_found" } });
    expect((await call("POST", "/v1/tasks/bad!id")).status).toBe(405);
  });
});
