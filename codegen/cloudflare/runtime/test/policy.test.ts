// evaluateToolCall / turnTier / routeTier over the policy tables, in both enforce and shadow mode.
import { describe, expect, it } from "vitest";
import { PolicyError } from "../errors";
import { evaluateToolCall, routeTier, turnTier } from "../policy";
import { makePolicy } from "./fixtures";

const policy = makePolicy();

describe("evaluateToolCall", () => {
  it("allows an allowlisted tool whose host is allowlisted", () => {
    expect(evaluateToolCall(policy, "refunds", "issue_refund")).toEqual({
      decision: "allow",
      rule: "tools.allow",
      reason: "tool `issue_refund` is allowed in workflow `refunds`",
    });
  });

  it("denies an unknown workflow", () => {
    const d = evaluateToolCall(policy, "refundz", "issue_refund");
    expect(d.decision).toBe("deny");
    expect(d.rule).toBe("workflow.unknown");
    expect(d.reason).toContain("`refundz`");
  });

  it("does not treat inherited object keys as workflows or tools", () => {
    expect(evaluateToolCall(policy, "constructor", "issue_refund").rule).toBe("workflow.unknown");
    expect(evaluateToolCall(policy, "refunds", "toString").rule).toBe("tools.unknown");
  });

  it("denies a declared tool missing from the workflow's allowlist", () => {
    expect(evaluateToolCall(policy, "refunds", "local_echo")).toMatchObject({ decision: "deny", rule: "tools.allowlist" });
  });

  it("denies an undeclared tool in every mode, since there is nothing to call", () => {
    expect(evaluateToolCall(policy, "refunds", "drop_tables")).toMatchObject({ decision: "deny", rule: "tools.unknown" });
    expect(evaluateToolCall(policy, "triage", "drop_tables")).toMatchObject({ decision: "deny", rule: "tools.unknown" });
  });

  it("denies an allowlisted tool whose host is off the outbound allowlist", () => {
    const d = evaluateToolCall(policy, "refunds", "exfiltrate");
    expect(d).toMatchObject({ decision: "deny", rule: "outbound.allowlist" });
    expect(d.reason).toContain("`evil.example.net`");
  });

  it("shadow mode answers shadow_deny for a read-only call within the turn tier's clearance", () => {
    const p = makePolicy();
    p.workflows["triage"]!.tools = ["exfiltrate"];
    expect(evaluateToolCall(p, "triage", "lookup_order")).toMatchObject({ decision: "shadow_deny", rule: "tools.allowlist" });
    p.workflows["triage"]!.tools = ["lookup_order"];
    p.workflows["triage"]!.outbound = [];
    expect(evaluateToolCall(p, "triage", "lookup_order")).toMatchObject({ decision: "shadow_deny", rule: "outbound.allowlist" });
    expect(evaluateToolCall(policy, "triage", "lookup_order")).toMatchObject({ decision: "allow", rule: "tools.allow" });
  });

  it("shadow mode denies a state-changing would-be denial for real, under its own rule", () => {
    const d = evaluateToolCall(policy, "triage", "issue_refund");
    expect(d).toMatchObject({ decision: "deny", rule: "shadow.not_read_only" });
    expect(d.reason).toContain("not in the tool allowlist");
    expect(evaluateToolCall(policy, "triage", "exfiltrate")).toMatchObject({ decision: "deny", rule: "shadow.not_read_only" });
  });

  it("shadow mode denies a read-only call above the turn tier's clearance for real", () => {
    const p = makePolicy();
    p.tools["lookup_order"]!.risk = "medium"; // triage runs on tier low, cleared for low
    p.workflows["triage"]!.tools = [];
    const d = evaluateToolCall(p, "triage", "lookup_order");
    expect(d).toMatchObject({ decision: "deny", rule: "shadow.over_clearance" });
    expect(d.reason).toContain("clearance `low` of tier `low`");
    p.tiers["low"]!.clearance = "medium";
    expect(evaluateToolCall(p, "triage", "lookup_order")).toMatchObject({ decision: "shadow_deny", rule: "tools.allowlist" });
    (p.tools["lookup_order"] as { risk: string }).risk = "severe"; // an unknown level is never within clearance
    expect(evaluateToolCall(p, "triage", "lookup_order")).toMatchObject({ decision: "deny", rule: "shadow.over_clearance" });
  });

  it("matches a tool host with a port only against the same port", () => {
    // triage allows 127.0.0.1:9999, the tool is on :8787 (read-only here, so shadow answers the host rule)
    const p = makePolicy();
    p.tools["local_echo"]!.read_only = true;
    expect(evaluateToolCall(p, "triage", "local_echo")).toMatchObject({ rule: "outbound.allowlist" });
    p.workflows["triage"]!.outbound = ["127.0.0.1:8787"];
    expect(evaluateToolCall(p, "triage", "local_echo")).toMatchObject({ decision: "allow" });
    p.workflows["triage"]!.outbound = ["127.0.0.1"];
    expect(evaluateToolCall(p, "triage", "local_echo")).toMatchObject({ decision: "allow" });
  });

  it("is case-insensitive on hosts", () => {
    const p = makePolicy();
    p.workflows["refunds"]!.outbound = ["ORDERS.Example.COM", "billing.example.com"];
    expect(evaluateToolCall(p, "refunds", "lookup_order").decision).toBe("allow");
  });
});

describe("turnTier and routeTier", () => {
  it("resolves a workflow's turn tier", () => {
    const t = turnTier(policy, "refunds");
    expect(t.name).toBe("high");
    expect(t.tier.models[0]).toBe("@cf/moonshotai/kimi-k2.6");
    expect(turnTier(policy, "triage").name).toBe("low");
  });

  it("throws PolicyError for an unknown workflow or tier", () => {
    expect(() => turnTier(policy, "nope")).toThrow(PolicyError);
    const p = makePolicy();
    p.workflows["refunds"]!.turn_tier = "ultra";
    expect(() => turnTier(p, "refunds")).toThrow(/tier `ultra`/);
  });

  it("routes by risk and falls back to the turn tier", () => {
    expect(routeTier(policy, "refunds", "low").name).toBe("low");
    expect(routeTier(policy, "refunds", "medium").name).toBe("high");
  });
});
