// loadPolicy: the tables held to the generated schema once, at start; a misfit names its field.
import { describe, expect, it } from "vitest";
import { PolicyError } from "../errors";
import { loadPolicy } from "../load";
import { makePolicy } from "./fixtures";

/** A copy of the fixture tables with `edit` applied to a plain JSON copy (as a hand-edited policy.json). */
function corrupted(edit: (tables: any) => void): unknown {
  const tables = JSON.parse(JSON.stringify(makePolicy()));
  edit(tables);
  return tables;
}

const failure = (tables: unknown): string => {
  try {
    loadPolicy(tables);
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyError);
    return (e as Error).message;
  }
  throw new Error("loadPolicy accepted the tables");
};

describe("loadPolicy", () => {
  it("accepts the tables as the compiler writes them", () => {
    const tables = makePolicy();
    expect(loadPolicy(JSON.parse(JSON.stringify(tables)))).toEqual(tables);
  });

  it("names a field whose value is not one of its literals", () => {
    expect(failure(corrupted((t) => { t.workflows.refunds.mode = "off"; })))
      .toBe('policy.json: workflows.refunds.mode: expected "enforce" | "shadow", got "off"');
  });

  it("names a missing required field", () => {
    expect(failure(corrupted((t) => { delete t.tools.lookup_order.host; }))).toBe("policy.json: tools.lookup_order.host: missing");
  });

  it("names an unknown key, so a misspelt table does not pass unread", () => {
    expect(failure(corrupted((t) => { t.workflows.triage.outbund = []; })))
      .toBe("policy.json: workflows.triage.outbund: unknown key in workflows.triage");
  });

  it("checks scalars, array items, tuples and nullable tables", () => {
    expect(failure(corrupted((t) => { t.tiers.low.timeout_ms = 1.5; })))
      .toBe("policy.json: tiers.low.timeout_ms: expected integer, got 1.5");
    expect(failure(corrupted((t) => { t.workflows.refunds.tools[1] = 7; })))
      .toBe("policy.json: workflows.refunds.tools.1: expected string, got 7");
    expect(failure(corrupted((t) => { t.workflows.refunds.steps[0].args = [["a"]]; })))
      .toBe("policy.json: workflows.refunds.steps.0.args.0: expected at least 2 items, got 1");
    expect(failure(corrupted((t) => { t.workflows.refunds.checkpoint = { every: "6", tier: "low", store: "S" }; })))
      .toBe('policy.json: workflows.refunds.checkpoint.every: expected integer, got "6"');
    expect(failure(corrupted((t) => { t.workflows.refunds.checkpoint = 6; })))
      .toBe("policy.json: workflows.refunds.checkpoint: expected Checkpoint | null, got 6");
  });

  it("checks the SLO table and the keys of the routes table", () => {
    expect(failure(corrupted((t) => { t.workflows.refunds.slo.latency_ms = "fast"; })))
      .toBe('policy.json: workflows.refunds.slo.latency_ms: expected integer, got "fast"');
    expect(failure(corrupted((t) => { t.workflows.refunds.routes.urgent = "high"; })))
      .toBe('policy.json: workflows.refunds.routes.urgent: expected a key "low" | "medium" | "high", got "urgent"');
  });

  it("refuses tables of another format before reading them", () => {
    expect(failure(corrupted((t) => { t.format = 2; }))).toBe("policy.json: tables have format 2; this runtime reads 1");
    expect(failure(null)).toBe("policy.json: expected an object");
  });
});
