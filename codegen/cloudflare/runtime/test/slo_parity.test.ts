// The runtime's SLO monitor against the sequences tests/test_slo_parity.py writes from the Python monitor the
// simulator uses: every sample of every sequence goes through the window as `observe` keeps it (the last
// WINDOW_SIZE samples by arrival), `judge` and `transitions`; the verdicts after each sample and the alerts
// fired must be the Python ones, character for character.
import { describe, expect, it } from "vitest";
import type { SloTable } from "../policy";
import { judge, transitions, WINDOW_SIZE, type SliSample } from "../slo";
import parity from "./slo_parity.json";

interface Sequence {
  slo: SloTable;
  samples: {
    ok: boolean[]; latency_ms: number[]; ttft_ms: number[]; cost_usd: (number | null)[];
    input_tokens: number[]; cached_tokens: number[]; denied: number[]; decisions: number[];
  };
  verdicts: Record<string, string>;
  fired: [number, string][];
}

const SLIS = ["latency", "ttft", "success", "denied", "cost", "cache_hit", "cache_hit_drop"];
const sequences = parity.sequences as unknown as Sequence[];

function replay(seq: Sequence): { verdicts: Record<string, string>; fired: [number, string][] } {
  const s = seq.samples;
  const window: SliSample[] = [];
  const firing = new Set<string>();
  const verdicts: Record<string, string[]> = Object.fromEntries(SLIS.map((k) => [k, []]));
  const fired: [number, string][] = [];
  for (let i = 0; i < s.ok.length; i++) {
    window.push({ ok: s.ok[i]!, latency_ms: s.latency_ms[i]!, ttft_ms: s.ttft_ms[i]!, cost_usd: s.cost_usd[i]!,
      input_tokens: s.input_tokens[i]!, cached_tokens: s.cached_tokens[i]!, denied: s.denied[i]!,
      decisions: s.decisions[i]! });
    if (window.length > WINDOW_SIZE) window.shift();
    const judged = judge(window, seq.slo);
    const { fire, rearm } = transitions(judged, firing);
    for (const sli of rearm) firing.delete(sli);
    for (const j of fire) {
      firing.add(j.sli);
      fired.push([i, j.sli]);
    }
    for (const sli of SLIS) {
      const j = judged.find((x) => x.sli === sli);
      verdicts[sli]!.push(j === undefined ? "." : j.crossed ? "x" : "o");
    }
  }
  return { verdicts: Object.fromEntries(SLIS.map((k) => [k, verdicts[k]!.join("")])), fired };
}

describe("SLO monitor parity with the simulator's", () => {
  it("has at least 200 sequences that fire every alert", () => {
    expect(sequences.length).toBeGreaterThanOrEqual(200);
    expect(new Set(sequences.flatMap((s) => s.fired.map(([, sli]) => sli)))).toEqual(new Set(SLIS));
  });

  it("judges every sample and fires every alert as Python does", () => {
    const differ: string[] = [];
    sequences.forEach((seq, n) => {
      const got = replay(seq);
      for (const sli of SLIS) {
        if (got.verdicts[sli] !== seq.verdicts[sli]) differ.push(`sequence ${n}: ${sli} verdicts differ`);
      }
      if (JSON.stringify(got.fired) !== JSON.stringify(seq.fired)) differ.push(`sequence ${n}: alerts differ`);
    });
    expect(differ).toEqual([]);
  });
});
