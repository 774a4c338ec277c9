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

describe("signed chain heads at the front door (heads.ts)", () => {
  // agentspec.signing.local_key("heads-parity"), as heads.test.ts.
  const SECRET = "MC4CAQAwBQYDK2VwBCIEIJxuyoCwTuEsm1dMpymuMThB6sI52iOvYOEi+lVQl4vW";
  const signed = createWorker<TestEnv>({ ...policy, audit: { signing_secret: "AUDIT_SIGNING_KEY" } });
  const base = { ...(env as unknown as TestEnv), API_TOKENS: JSON.stringify({ "t-acme": "acme" }), ADMIN_TOKEN: "adm" };
  const send = (w: ExportedHandler<TestEnv>, e: object, method: string, path: string, token: string, body?: unknown) =>
    w.fetch!(new Request(`http://agent.test${path}`, {
      method, headers: { authorization: `Bearer ${token}`, "x-tenant-id": "acme", "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }) as Request<unknown, IncomingRequestCfProperties>, e as TestEnv, {} as ExecutionContext);

  it("serves the public key (never the private one) in /v1/policy", async () => {
    const r = await send(signed, { ...base, AUDIT_SIGNING_KEY: SECRET }, "GET", "/v1/policy", "t-acme");
    expect(r.status).toBe(200);
    const { audit } = (await r.json()) as { audit: Record<string, string> };
    expect(audit).toMatchObject({ signing_secret: "AUDIT_SIGNING_KEY", alg: "Ed25519", key_id: "fb0ddbbb091762be",
      public_key: "fdWQzIoFjBID8urutBsGqij-F4gxmxoUfYQYq8HFNuM" });
    expect(JSON.stringify(audit)).not.toContain(SECRET.slice(16));
  });

  it("refuses to run a turn, or serve the key, when the signing secret is unset or no key", async () => {
    const turn = await send(signed, base, "POST", "/v1/sessions/s1/turns", "t-acme", { workflow: "refunds", input: "hi" });
    expect(turn.status).toBe(500);
    expect(await turn.json()).toMatchObject({ error: { code: "misconfigured",
      message: "secret `AUDIT_SIGNING_KEY` (the key that signs chain heads) is not set on this deployment" } });
    const bad = await send(signed, { ...base, AUDIT_SIGNING_KEY: "bm90IGEga2V5" }, "GET", "/v1/policy", "t-acme");
    expect(bad.status).toBe(500);
    expect(await bad.json()).toMatchObject({ error: { code: "misconfigured",
      message: "secret `AUDIT_SIGNING_KEY` holds no Ed25519 private key (PKCS#8, PEM or base64)" } });
  });

  it("answers /v1/heads 404 `not_signed` for an agent that does not sign", async () => {
    const r = await send(worker, base, "GET", "/v1/heads?session=s1", "adm");
    expect(r.status).toBe(404);
    expect(await r.json()).toMatchObject({ error: { code: "not_signed" } });
  });
});
