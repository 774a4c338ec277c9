// What a turn's trace keeps for a rerun (rerun.ts): tool requests projected and masked, model rounds, and the
// W3C traceparent a turn's and a task's requests carry (agentspec/trace/rerun.py `trace_id_of` reads it back).
import { describe, expect, it } from "vitest";
import type { InferenceResult } from "../inference";
import { modelRound, toolRequest, traceparent } from "../rerun";
import { invokeTool } from "../tools";
import { json, makePolicy, stubServer } from "./fixtures";

const policy = makePolicy();
const pii = policy.workflows["refunds"]!.pii;

describe("toolRequest", () => {
  it("keeps declared arguments only, masked, and undeclared ones by name", () => {
    const r = toolRequest(policy, "lookup_order", { order_id: "ann@example.com", debug: true, "bob@example.com": 1 }, pii);
    expect(r).toEqual({ name: "lookup_order", args: { order_id: "[email]" }, undeclared: ["[email]", "debug"] });
  });

  it("keeps a wrongly typed argument as it is, so a rerun fails it the same way", () => {
    expect(toolRequest(policy, "lookup_order", { order_id: 42 }, pii).args).toEqual({ order_id: 42 });
  });

  it("keeps nothing of a call to a tool the policy does not declare, or of arguments that were not an object", () => {
    expect(toolRequest(policy, "no_such_tool", { a: "x" }, pii)).toEqual({ name: "no_such_tool", args: {}, undeclared: [] });
    expect(toolRequest(policy, "lookup_order", null, pii)).toEqual({ name: "lookup_order", args: {}, undeclared: [] });
  });
});

describe("modelRound", () => {
  it("lists every model tried, the usage and the requests of the answer", () => {
    const result: InferenceResult = {
      text: "", model: "b", usage: { input: 10, output: 2, cached: 4 },
      attempts: [{ model: "a", ok: false, status: 503, error: "HTTP 503", ms: 3 }, { model: "b", ok: true, status: 200, ms: 5 }],
      toolCalls: [{ id: "c0", name: "lookup_order", arguments: { order_id: "A-1" }, raw: "{}" }],
    };
    expect(modelRound(2, result, result.toolCalls, policy, pii)).toEqual({
      round: 2, model: "b", latency_ms: 8, usage: { input: 10, output: 2, cached: 4 },
      attempts: [{ model: "a", ok: false, status: 503, error: "HTTP 503", latency_ms: 3 },
        { model: "b", ok: true, status: 200, error: null, latency_ms: 5 }],
      tool_calls: [{ name: "lookup_order", args: { order_id: "A-1" }, undeclared: [] }],
    });
  });
});

describe("traceparent", () => {
  it("carries a turn's trace id, or a task id's last 32 hex digits, and the call's index", () => {
    expect(traceparent("9b1f0c3e-5d0a-4c55-9a43-2f1e7b6c8d21", 0)).toBe("00-9b1f0c3e5d0a4c559a432f1e7b6c8d21-0000000000000001-01");
    // A workflow name's hex letters ("fade") come before the id's 32 digits and are cut off.
    expect(traceparent("fade-0123456789abcdef0123456789abcdef", 2)).toBe("00-0123456789abcdef0123456789abcdef-0000000000000003-01");
    expect(traceparent("xyz", 0)).toBe(`00-${"0".repeat(31)}1-0000000000000001-01`); // never the invalid all-zero id
  });

  it("is sent on a tool request", async () => {
    const s = stubServer(() => json({ order_id: "A-1", status: "ok", total_cents: 1 }));
    await invokeTool({ policy, toolName: "lookup_order", args: { order_id: "A-1" }, sessionId: "s", workflow: "refunds",
      tenant: "acme", env: { ORDERS_KEY: "k" }, allowedHosts: ["orders.example.com"], fetcher: s.fetcher,
      traceparent: traceparent("t", 0) });
    expect(s.seen[0]!.headers.get("traceparent")).toBe(traceparent("t", 0));
  });
});
