// The runtime's policy evaluator against the cases tests/test_policy_parity.py checks the Python evaluator
// against: the two read the same tables and must decide every (workflow, tool) pair the same way.
import { describe, expect, it } from "vitest";
import { checkOutbound, isHostAllowed } from "../guard";
import { evaluateToolCall, type Policy } from "../policy";
import parity from "./parity.json";

interface Case {
  policy: string;
  workflow: string;
  tool: string;
  decision: string;
  rule: string;
}

const policies = parity.policies as unknown as Record<string, Policy>;
const cases = parity.cases as Case[];

describe("policy parity with the Python evaluator", () => {
  it("has cases for every example spec and the synthetic tables", () => {
    expect(new Set(cases.map((c) => c.policy))).toEqual(
      new Set(["synthetic", "support_desk", "ops_agent", "research_assistant"]),
    );
    expect(cases.length).toBeGreaterThan(100);
  });

  it("decides every case as Python does", () => {
    const differ = cases
      .map((c) => ({ c, got: evaluateToolCall(policies[c.policy]!, c.workflow, c.tool) }))
      .filter(({ c, got }) => got.decision !== c.decision || got.rule !== c.rule)
      .map(({ c, got }) => `${c.policy}/${c.workflow}/${c.tool}: python ${c.decision} ${c.rule}, ts ${got.decision} ${got.rule}`);
    expect(differ).toEqual([]);
  });

  it("matches hosts as Python does", () => {
    for (const h of parity.hosts) {
      expect([h.url, isHostAllowed(h.allowed, new URL(h.url))]).toEqual([h.url, h.expected]);
    }
  });

  it("decides the hypothesis-generated requests (odd hosts, ports, userinfo, IPv6) as Python does", () => {
    const generated = policies["generated"]!;
    const requests = parity.requests as (Case & { url: string; guard: boolean })[];
    expect(requests.length).toBeGreaterThanOrEqual(1000);
    const passes = (allowed: readonly string[], url: string): boolean => {
      try {
        checkOutbound(allowed, url);
        return true;
      } catch {
        return false;
      }
    };
    const differ = requests.flatMap((r) => {
      const got = evaluateToolCall(generated, r.workflow, r.tool);
      const guard = passes(generated.workflows[r.workflow]!.outbound, r.url);
      return got.decision !== r.decision || got.rule !== r.rule || guard !== r.guard
        ? [`${r.url} ${JSON.stringify(generated.workflows[r.workflow]!.outbound)}: python ${r.decision} ${r.rule} ` +
          `guard ${r.guard}, ts ${got.decision} ${got.rule} guard ${guard}`]
        : [];
    });
    expect(differ).toEqual([]);
  });
});
