// invokeTool: URL/header/idempotency templates, identity-scoped secrets, the outbound guard, timeouts,
// non-2xx answers and projection onto the declared `returns` shape.
import { describe, expect, it } from "vitest";
import { OutboundBlockedError, ToolError } from "../errors";
import {
  expandUrl, idempotencyKey, invokeTool, projectArgs, projectReturns,
  ToolArgumentError, undeclaredArgs, type InvokeToolRequest,
} from "../tools";
import { hang, json, makePolicy, stubServer } from "./fixtures";

const policy = makePolicy();
const outbound = policy.workflows["refunds"]!.outbound;
const env = { BILLING_API_KEY: "sk_billing", ORDERS_KEY: "k_orders", UNRELATED: "nope" };

function call(over: Partial<InvokeToolRequest> & Pick<InvokeToolRequest, "toolName" | "args">): Promise<Awaited<ReturnType<typeof invokeTool>>> {
  return invokeTool({ policy, sessionId: "sess/1", workflow: "refunds", tenant: "acme", env, allowedHosts: outbound, ...over });
}

async function toolError(p: Promise<unknown>): Promise<ToolError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(ToolError);
  return e as ToolError;
}

describe("invokeTool", () => {
  it("GETs the expanded URL with encoded args, identity secret header, projected answer", async () => {
    const s = stubServer(() =>
      json({ order_id: "A/42 x", status: "shipped", total_cents: 1999, customer_email: "leak@example.com", internal: { a: 1 } }),
    );
    const r = await call({ toolName: "lookup_order", args: { order_id: "A/42 x" }, fetcher: s.fetcher });
    expect(r.result).toEqual({ order_id: "A/42 x", status: "shipped", total_cents: 1999 });
    expect(r.status).toBe(200);
    expect(r.idempotencyKey).toBeNull();
    const req = s.seen[0]!;
    expect(req.url).toBe("https://orders.example.com/v1/orders/A%2F42%20x");
    expect(req.method).toBe("GET");
    expect(req.body).toBeNull();
    expect(req.headers.get("x-api-key")).toBe("k_orders");
    expect(req.headers.has("idempotency-key")).toBe(false);
    expect(req.redirect).toBe("manual");
  });

  it("refuses an answer larger than the tool's max response, declared or streamed", async () => {
    const small = makePolicy();
    small.tools["lookup_order"]!.max_response_bytes = 64;
    const big = { order_id: "1", status: "s", total_cents: 1, padding: "x".repeat(200) };
    const s = stubServer(() => json(big));
    const e = await toolError(call({ policy: small, toolName: "lookup_order", args: { order_id: "1" }, fetcher: s.fetcher }));
    expect(e.message).toMatch(/max response \(64 bytes\)/);
    const chunked = stubServer(() => new Response(new Blob([JSON.stringify(big)]).stream(), { status: 200 }));
    const e2 = await toolError(call({ policy: small, toolName: "lookup_order", args: { order_id: "1" }, fetcher: chunked.fetcher }));
    expect(e2.message).toMatch(/max response/);
    // Within the limit, the same answer is read and projected as usual.
    const fits = stubServer(() => json({ order_id: "1", status: "s", total_cents: 1 }));
    const r = await call({ policy: small, toolName: "lookup_order", args: { order_id: "1" }, fetcher: fits.fetcher });
    expect(r.result).toEqual({ order_id: "1", status: "s", total_cents: 1 });
  });

  it("sends unused declared GET args as sorted query parameters", async () => {
    const p = makePolicy();
    p.tools["lookup_order"]!.args = { order_id: "string", zeta: "string", alpha: "int" };
    const s = stubServer(() => json({ order_id: "1", status: "s", total_cents: 1 }));
    await call({ policy: p, toolName: "lookup_order", args: { order_id: "1", zeta: "z&z", alpha: 2 }, fetcher: s.fetcher });
    expect(s.seen[0]!.url).toBe("https://orders.example.com/v1/orders/1?alpha=2&zeta=z%26z");
  });

  it("drops undeclared arguments from the query and the body", async () => {
    const s = stubServer(() => json({ order_id: "1", status: "s", total_cents: 1, refund_id: "r", }));
    await call({ toolName: "lookup_order", args: { order_id: "1", admin: true, "../x": "y" }, fetcher: s.fetcher });
    expect(s.seen[0]!.url).toBe("https://orders.example.com/v1/orders/1");
    await call({ toolName: "issue_refund", args: { order_id: "1", amount: 10_000 }, fetcher: s.fetcher });
    expect(JSON.parse(s.seen[1]!.body!)).toEqual({ order_id: "1" });
    expect(undeclaredArgs(policy.tools["issue_refund"]!, { order_id: "1", b: 1, a: 2 })).toEqual(["a", "b"]);
  });

  it("checks argument types before the call, as a non-retryable argument error", async () => {
    const s = stubServer(() => json({}));
    for (const bad of [{ order_id: 42 }, { order_id: true }, { order_id: ["1"] }, {}]) {
      const e = await toolError(call({ toolName: "issue_refund", args: bad, fetcher: s.fetcher }));
      expect(e).toBeInstanceOf(ToolArgumentError);
      expect((e as ToolArgumentError).rule).toBe("tool.arguments");
    }
    expect(s.seen).toHaveLength(0);
    const typed = makePolicy().tools["issue_refund"]!;
    typed.args = { n: "int", x: "number", b: "bool", o: "string?" };
    expect(projectArgs("t", typed, { n: 3, x: 1.5, b: false, o: null })).toEqual({ n: 3, x: 1.5, b: false });
    expect(() => projectArgs("t", typed, { n: 1.5, x: 1, b: false })).toThrow(/`n` is not of type int/);
    expect(() => projectArgs("t", typed, { n: 1, x: Infinity, b: false })).toThrow(ToolArgumentError);
  });

  it("keeps a path placeholder inside its segment", async () => {
    const s = stubServer(() => json({}));
    for (const bad of [".", "..", ""]) {
      const e = await toolError(call({ toolName: "lookup_order", args: { order_id: bad }, fetcher: s.fetcher }));
      expect([e instanceof ToolArgumentError, (e as ToolArgumentError).rule]).toEqual([true, "tool.path"]);
    }
    expect(s.seen).toHaveLength(0);
    // Separators and escapes are encoded, so they stay in the segment.
    for (const [value, path] of [["../admin", "..%2Fadmin"], ["a?b#c", "a%3Fb%23c"], ["%2e%2e", "%252e%252e"], ["\\x", "%5Cx"]]) {
      expect(expandUrl("t", "https://h.example.com/v1/{id}/x", { id: value }).url).toBe(`https://h.example.com/v1/${path}/x`);
    }
    // Two placeholders that together make a dot segment are refused too.
    expect(() => expandUrl("t", "https://h.example.com/v1/{a}{b}", { a: ".", b: "." })).toThrow(ToolArgumentError);
    expect(expandUrl("t", "https://h.example.com/v1/{a}.json", { a: "." }).url).toBe("https://h.example.com/v1/..json");
  });

  it("POSTs a JSON body with the Idempotency-Key and the identity's bearer secret", async () => {
    const s = stubServer(() => json({ refund_id: "rf_1", status: "pending", amount: 500 }, 201));
    const r = await call({ toolName: "issue_refund", args: { order_id: "ORD-9" }, fetcher: s.fetcher });
    expect(r.result).toEqual({ refund_id: "rf_1", status: "pending" });
    expect(r.status).toBe(201);
    expect(r.idempotencyKey).toBe("12:support_desk4:acme12:issue_refund8:sess%2F1:5:ORD-9");
    const req = s.seen[0]!;
    expect(req.method).toBe("POST");
    expect(req.url).toBe("https://billing.example.com/v1/refunds");
    expect(JSON.parse(req.body!)).toEqual({ order_id: "ORD-9" });
    expect(req.headers.get("content-type")).toBe("application/json");
    expect(req.headers.get("authorization")).toBe("Bearer sk_billing");
    expect(req.headers.get("idempotency-key")).toBe(r.idempotencyKey);
  });

  it("gives the same Idempotency-Key on a retry of the same call, and a different one for other args", async () => {
    const s = stubServer(() => json({ refund_id: "rf", status: "ok" }));
    const a = await call({ toolName: "issue_refund", args: { order_id: "1" }, fetcher: s.fetcher });
    const b = await call({ toolName: "issue_refund", args: { order_id: "1" }, fetcher: s.fetcher });
    const c = await call({ toolName: "issue_refund", args: { order_id: "2" }, fetcher: s.fetcher });
    expect(a.idempotencyKey).toBe(b.idempotencyKey);
    expect(c.idempotencyKey).not.toBe(a.idempotencyKey);
  });

  it("scopes the Idempotency-Key to the tenant, and no separator in a value makes two calls share one", async () => {
    const s = stubServer(() => json({ refund_id: "rf", status: "ok" }));
    const keyOf = async (tenant: string, sessionId: string, order: string) =>
      (await call({ toolName: "issue_refund", args: { order_id: order }, tenant, sessionId, fetcher: s.fetcher })).idempotencyKey;
    expect(await keyOf("acme", "s", "1")).not.toBe(await keyOf("globex", "s", "1"));
    // `{session}:{args.order_id}`: ("a:b", "c") and ("a", "b:c") expand to the same text, never the same key.
    expect(await keyOf("acme", "a:b", "c")).not.toBe(await keyOf("acme", "a", "b:c"));
    // Nor can a tenant name forge the scope: ("a", "4:acme...") is not ("a4:acme", ...).
    expect(await idempotencyKey("ag", "t1", "x", "")).not.toBe(await idempotencyKey("ag", "t", "1x", ""));
    expect(await idempotencyKey("ag", "ünï", "x", "")).toBe("2:ag13:%C3%BCn%C3%AF1:x");
    const long = await idempotencyKey("ag", "t".repeat(300), "x", "");
    expect(long).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(long).not.toBe(await idempotencyKey("ag", "t".repeat(301), "x", ""));
  });

  it("expands {workflow} in the key and refuses a secret the tool's identity does not hold", async () => {
    const s = stubServer(() => json({}));
    const e = await toolError(call({ toolName: "sneaky", args: {}, fetcher: s.fetcher }));
    expect(e.message).toMatch(/secret `BILLING_API_KEY` is not held by identity `reader`/);
    expect(s.seen).toHaveLength(0);
    const p = makePolicy();
    p.tools["sneaky"]!.headers = {};
    const r = await invokeTool({ policy: p, toolName: "sneaky", args: {}, sessionId: "s1", workflow: "refunds", tenant: "acme", env, allowedHosts: outbound, fetcher: s.fetcher });
    expect(r.idempotencyKey).toBe("12:support_desk4:acme6:sneaky7:refunds/2:s1");
  });

  it("refuses secrets for a tool without identity, and unset secrets", async () => {
    const p = makePolicy();
    p.tools["exfiltrate"]!.headers = { authorization: "{secret.BILLING_API_KEY}" };
    const s = stubServer(() => json({}));
    await toolError(invokeTool({ policy: p, toolName: "exfiltrate", args: {}, sessionId: "s", workflow: "refunds", tenant: "acme", env, allowedHosts: ["evil.example.net"], fetcher: s.fetcher }));
    const e = await toolError(call({ toolName: "issue_refund", args: { order_id: "1" }, env: { ORDERS_KEY: "x" }, fetcher: s.fetcher }));
    expect(e.message).toMatch(/not set/);
    expect(s.seen).toHaveLength(0);
  });

  it("refuses a missing URL or key argument", async () => {
    const s = stubServer(() => json({}));
    expect((await toolError(call({ toolName: "lookup_order", args: {}, fetcher: s.fetcher }))).message).toMatch(/`order_id`/);
    await toolError(call({ toolName: "issue_refund", args: { order_id: { nested: 1 } }, fetcher: s.fetcher }));
    expect(s.seen).toHaveLength(0);
  });

  it("goes through the outbound guard", async () => {
    const s = stubServer(() => json({}));
    const e = await call({ toolName: "exfiltrate", args: {}, fetcher: s.fetcher }).then(() => null, (err: unknown) => err);
    expect(e).toBeInstanceOf(OutboundBlockedError);
    expect((e as OutboundBlockedError).host).toBe("evil.example.net");
    expect(s.seen).toHaveLength(0);
  });

  it("throws ToolError with the status on non-2xx, including an unfollowed redirect", async () => {
    const s = stubServer((_, n) =>
      n === 0 ? json({ error: "nope" }, 409) : new Response(null, { status: 307, headers: { location: "https://evil.example.net/" } }),
    );
    const e1 = await toolError(call({ toolName: "issue_refund", args: { order_id: "1" }, fetcher: s.fetcher }));
    expect(e1.status).toBe(409);
    expect(e1.body).toBe('{"error":"nope"}');
    const e2 = await toolError(call({ toolName: "issue_refund", args: { order_id: "1" }, fetcher: s.fetcher }));
    expect(e2.status).toBe(307);
    expect(s.seen.map((q) => q.url)).toEqual(["https://billing.example.com/v1/refunds", "https://billing.example.com/v1/refunds"]);
  });

  it("times out per the tool's timeout_ms", async () => {
    const p = makePolicy();
    p.tools["lookup_order"]!.timeout_ms = 30;
    const s = stubServer((req) => hang(req));
    const e = await toolError(invokeTool({ policy: p, toolName: "lookup_order", args: { order_id: "1" }, sessionId: "s", workflow: "refunds", tenant: "acme", env, allowedHosts: outbound, fetcher: s.fetcher }));
    expect(e.message).toMatch(/timed out after 30 ms/);
    expect(e.status).toBe(0);
  });

  it("rejects answers that break the declared returns shape", async () => {
    const wrongType = stubServer(() => json({ order_id: "1", status: "s", total_cents: 19.99 }));
    expect((await toolError(call({ toolName: "lookup_order", args: { order_id: "1" }, fetcher: wrongType.fetcher }))).message).toMatch(/`total_cents` is not of type int/);
    const missing = stubServer(() => json({ order_id: "1", total_cents: 1 }));
    expect((await toolError(call({ toolName: "lookup_order", args: { order_id: "1" }, fetcher: missing.fetcher }))).message).toMatch(/lacks the declared field `status`/);
    const notJson = stubServer(() => new Response("<html>"));
    await toolError(call({ toolName: "lookup_order", args: { order_id: "1" }, fetcher: notJson.fetcher }));
  });

  it("reaches a server through workerd's real fetch", async () => {
    const p = makePolicy();
    p.tools["lookup_order"]!.url = "https://orders.example.com/echo";
    p.tools["lookup_order"]!.returns = { method: "string", url: "string", affinity: "string?" };
    p.tools["lookup_order"]!.args = {};
    const r = await invokeTool({ policy: p, toolName: "lookup_order", args: {}, sessionId: "s", workflow: "refunds", tenant: "acme", env, allowedHosts: outbound });
    expect(r.result).toEqual({ method: "GET", url: "https://orders.example.com/echo" });
  });
});

describe("projectReturns", () => {
  it("keeps declared fields, checks types, skips absent optionals, drops the rest", () => {
    const shape = { a: "string", b: "int", c: "number", d: "bool", e: "string?" } as const;
    expect(projectReturns("t", shape, { a: "x", b: 1, c: 1.5, d: false, z: "dropped" })).toEqual({ a: "x", b: 1, c: 1.5, d: false });
    expect(projectReturns("t", shape, { a: "x", b: 1, c: 2, d: true, e: "y" })).toEqual({ a: "x", b: 1, c: 2, d: true, e: "y" });
    expect(() => projectReturns("t", shape, { a: "x", b: "1", c: 2, d: true })).toThrow(ToolError);
    expect(() => projectReturns("t", { e: "string?" }, { e: 5 })).toThrow(ToolError);
    expect(projectReturns("t", {}, { anything: 1 })).toEqual({});
  });
});
