// The runtime's PII masker against the cases tests/test_pii_parity.py checks the Python masker against: texts
// drawn with emails, phones, cards, IBANs and IPs in noise, each with what agentspec/pii.py makes of it.
import { describe, expect, it } from "vitest";
import { maskPII, type PiiRules } from "../pii";
import parity from "./pii_parity.json";

interface Case {
  rules: string;
  text: string;
  masked: string;
}

const rules = parity.rules as unknown as Record<string, PiiRules>;
const cases = parity.cases as Case[];

describe("PII masking parity with the Python masker", () => {
  it("has several hundred distinct texts", () => {
    expect(new Set(cases.map((c) => c.text)).size).toBeGreaterThan(500);
  });

  it("masks every case as Python does", () => {
    const differ = cases
      .map((c) => ({ c, got: maskPII(c.text, rules[c.rules]!) }))
      .filter(({ c, got }) => got !== c.masked)
      .map(({ c, got }) => `${c.rules}: ${JSON.stringify(c.text)}: python ${JSON.stringify(c.masked)}, ts ${JSON.stringify(got)}`);
    expect(differ).toEqual([]);
  });
});
