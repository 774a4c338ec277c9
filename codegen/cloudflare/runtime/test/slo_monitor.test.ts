// The SLO monitor role (slo.ts `SloMonitor`) through a real object: one window per workflow, alerts fired once.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sloMonitorName } from "../names";
import { MIN_SAMPLES, type SliSample } from "../slo";
import type { TestEnv } from "./worker";

const testEnv = env as unknown as TestEnv;
const sample = (latency: number): SliSample => ({ ok: true, latency_ms: latency, ttft_ms: 10, cost_usd: null,
  input_tokens: 0, cached_tokens: 0, denied: 0, decisions: 1 });

describe("a workflow's SLO monitor", () => {
  it("fires the latency alert once the window is judged and crossed, and not again while it stays crossed", async () => {
    // refunds: p95 latency <= 2500 ms, no webhook (so the alert is undelivered).
    const monitor = testEnv.SESSION.getByName(sloMonitorName("refunds"));
    const alerts = [];
    for (let i = 0; i < MIN_SAMPLES + 2; i++) alerts.push(await monitor.observe("refunds", sample(9000)));
    expect(alerts.slice(0, MIN_SAMPLES - 1).every((a) => a.length === 0)).toBe(true);
    expect(alerts[MIN_SAMPLES - 1]).toEqual([{ sli: "latency", value: 9000, bound: 2500, delivered: false }]);
    expect(alerts.slice(MIN_SAMPLES)).toEqual([[], []]);
  });

  it("judges nothing for a workflow without SLOs", async () => {
    const monitor = testEnv.SESSION.getByName(sloMonitorName("triage"));
    for (let i = 0; i < MIN_SAMPLES + 1; i++) expect(await monitor.observe("triage", sample(9000))).toEqual([]);
  });
});
