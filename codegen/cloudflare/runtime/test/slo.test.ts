// SLO window arithmetic, alert transitions and webhook delivery, as pure functions inside workerd.
import { describe, expect, it } from "vitest";
import {
  alertPayload, cacheDrop, cacheHitRate, deliver, DROP_MIN_BASELINE, DROP_RECENT, judge, MIN_SAMPLES,
  parsePercentile, percentile, policyDenials, sloTable, transitions, type Judgement, type SliSample,
} from "../slo";
import { hang, makePolicy, stubServer } from "./fixtures";

const sample = (over: Partial<SliSample> = {}): SliSample => ({
  ok: true, latency_ms: 100, ttft_ms: 50, cost_usd: 0.001, input_tokens: 100, cached_tokens: 80,
  denied: 0, decisions: 2, ...over,
});
const many = (n: number, over: Partial<SliSample> = {}): SliSample[] => Array.from({ length: n }, () => sample(over));
const byName = (js: Judgement[], sli: string): Judgement | undefined => js.find((j) => j.sli === sli);

describe("policyDenials", () => {
  it("counts the policy's denials and blocks, not a model outage", () => {
    const d = (decision: string, rule: string) => ({ decision, rule });
    expect(policyDenials([
      d("allow", "route.risk.low"), d("deny", "tools.allowlist"), d("deny", "outbound.guard"),
      d("shadow_deny", "tools.allowlist"), d("deny", "model.unavailable"), d("failed", "tool.status"),
    ])).toBe(2);
    expect(policyDenials([])).toBe(0);
  });
});

describe("percentile", () => {
  it("is nearest-rank", () => {
    const v = Array.from({ length: 20 }, (_, i) => i + 1); // 1..20
    expect(percentile(v, 95)).toBe(19);
    expect(percentile(v, 50)).toBe(10);
    expect(percentile(v, 100)).toBe(20);
    expect(percentile(v, 1)).toBe(1);
    expect(percentile([5, 1, 3], 95)).toBe(5);
    expect(percentile([], 95)).toBeNull();
  });

  it("does not reorder its input", () => {
    const v = [3, 1, 2];
    percentile(v, 50);
    expect(v).toEqual([3, 1, 2]);
  });

  it("parses percentile words", () => {
    expect(parsePercentile("p95")).toBe(95);
    expect(parsePercentile("p99.9")).toBe(99.9);
    expect(parsePercentile("p0")).toBeNull();
    expect(parsePercentile("95")).toBeNull();
    expect(parsePercentile(undefined)).toBeNull();
  });
});

describe("sloTable", () => {
  it("keeps known keys of the right type only", () => {
    expect(sloTable({ latency_percentile: "p95", latency_ms: 2000, success_pct: "x", webhook: "https://a/h" }))
      .toEqual({ latency_percentile: "p95", latency_ms: 2000, webhook: "https://a/h" });
    expect(sloTable(null)).toEqual({});
  });
});

describe("cache-hit rate", () => {
  it("is token-weighted and clamps cached to input", () => {
    expect(cacheHitRate([sample({ input_tokens: 100, cached_tokens: 100 }), sample({ input_tokens: 300, cached_tokens: 0 })]))
      .toBe(25);
    expect(cacheHitRate([sample({ input_tokens: 10, cached_tokens: 50 })])).toBe(100);
    expect(cacheHitRate([sample({ input_tokens: 0, cached_tokens: 0 })])).toBeNull();
  });

  it("needs DROP_MIN_BASELINE earlier samples besides the DROP_RECENT recent ones", () => {
    expect(cacheDrop(many(DROP_RECENT + DROP_MIN_BASELINE - 1))).toBeNull();
    expect(cacheDrop(many(DROP_RECENT + DROP_MIN_BASELINE))).toEqual({ baseline: 80, current: 80, drop_pct: 0 });
  });

  it("compares the recent samples with the earlier ones, relative to the baseline", () => {
    const window = [...many(15, { cached_tokens: 90 }), ...many(DROP_RECENT, { cached_tokens: 45 })];
    const d = cacheDrop(window)!;
    expect(d.baseline).toBe(90);
    expect(d.current).toBe(45);
    expect(d.drop_pct).toBeCloseTo(50);
    // a rise is no drop
    expect(cacheDrop([...many(15, { cached_tokens: 10 }), ...many(DROP_RECENT, { cached_tokens: 90 })])!.drop_pct).toBe(0);
    // a zero baseline cannot drop
    expect(cacheDrop(many(25, { cached_tokens: 0 }))).toBeNull();
  });
});

describe("judge", () => {
  const slo = sloTable({ latency_percentile: "p95", latency_ms: 2000, ttft_percentile: "p50", ttft_ms: 500,
    success_pct: 90, denied_pct: 10, cost_usd: 0.01, cache_hit_pct: 50, cache_drop_pct: 20 });

  it("judges nothing before MIN_SAMPLES", () => {
    expect(judge(many(MIN_SAMPLES - 1, { latency_ms: 9999, ok: false }), slo)).toEqual([]);
  });

  it("finds healthy traffic within every bound", () => {
    const js = judge(many(30), slo);
    expect(js.map((j) => j.sli).sort()).toEqual(
      ["cache_hit", "cache_hit_drop", "cost", "denied", "latency", "success", "ttft"]);
    expect(js.filter((j) => j.crossed)).toEqual([]);
  });

  it("crosses the latency percentile only when enough samples are slow", () => {
    // 20 samples: p95 is the 19th smallest, so one slow sample is tolerated and two are not
    const one = [...many(19), sample({ latency_ms: 5000 })];
    expect(byName(judge(one, slo), "latency")).toMatchObject({ value: 100, crossed: false });
    const two = [...many(18), ...many(2, { latency_ms: 5000 })];
    expect(byName(judge(two, slo), "latency")).toMatchObject({ value: 5000, bound: 2000, crossed: true, unit: "ms" });
  });

  it("treats a value equal to its bound as within", () => {
    expect(byName(judge(many(10, { latency_ms: 2000 }), slo), "latency")!.crossed).toBe(false);
    const half = [...many(9), sample({ ok: false })];
    expect(byName(judge(half, slo), "success")).toMatchObject({ value: 90, crossed: false });
  });

  it("judges success, denied, cost and the cache-hit floor", () => {
    const js = judge([...many(8), ...many(2, { ok: false, denied: 2, cost_usd: 0.1, cached_tokens: 0 })], slo);
    expect(byName(js, "success")).toMatchObject({ value: 80, bound: 90, crossed: true });
    expect(byName(js, "denied")).toMatchObject({ value: 20, bound: 10, crossed: true }); // 4 of 20 decisions
    expect(byName(js, "cost")!.value).toBeCloseTo((8 * 0.001 + 2 * 0.1) / 10);
    expect(byName(js, "cost")!.crossed).toBe(true);
    expect(byName(js, "cache_hit")).toMatchObject({ value: 64, crossed: false }); // 640 of 1000 tokens
    expect(byName(judge(many(10, { cached_tokens: 20 }), slo), "cache_hit")!.crossed).toBe(true);
  });

  it("takes ttft from answered turns only, latency from every turn", () => {
    const js = judge([...many(6, { ttft_ms: 100 }), ...many(4, { ok: false, ttft_ms: 0, latency_ms: 9000 })], slo);
    expect(byName(js, "ttft")).toMatchObject({ value: 100, crossed: false });
    expect(byName(js, "latency")).toMatchObject({ value: 9000, crossed: true });
    expect(byName(judge([...many(4), ...many(6, { ok: false })], slo), "ttft")).toBeUndefined();
  });

  it("skips cost when the tier has no price", () => {
    expect(byName(judge(many(10, { cost_usd: null }), slo), "cost")).toBeUndefined();
  });

  it("crosses the cache drop at the declared relative drop", () => {
    const base = many(20, { cached_tokens: 90 });
    const at = judge([...base, ...many(DROP_RECENT, { cached_tokens: 72 })], slo); // 20% below 90
    expect(byName(at, "cache_hit_drop")).toMatchObject({ bound: 20, crossed: true });
    expect(byName(at, "cache_hit_drop")!.value).toBeCloseTo(20);
    const within = judge([...base, ...many(DROP_RECENT, { cached_tokens: 73 })], slo);
    expect(byName(within, "cache_hit_drop")!.crossed).toBe(false);
    expect(byName(at, "cache_hit_drop")!.detail).toMatchObject({ baseline_pct: 90, current_pct: 72 });
  });

  it("ignores SLOs the table does not declare", () => {
    expect(judge(many(30, { latency_ms: 1e6, ok: false }), sloTable({ cache_hit_pct: 10 })).map((j) => j.sli))
      .toEqual(["cache_hit"]);
  });
});

describe("transitions", () => {
  const j = (sli: Judgement["sli"], crossed: boolean): Judgement => ({ sli, value: 1, bound: 1, crossed, unit: "%" });

  it("fires on the way in, stays quiet while crossed, re-arms on the way out", () => {
    let firing = new Set<string>();
    const step = (js: Judgement[]) => {
      const t = transitions(js, firing);
      firing = new Set([...firing, ...t.fire.map((f) => f.sli)].filter((s) => !t.rearm.includes(s as Judgement["sli"])));
      return t;
    };
    expect(step([j("latency", false)]).fire).toEqual([]);
    expect(step([j("latency", true)]).fire.map((f) => f.sli)).toEqual(["latency"]);
    expect(step([j("latency", true)])).toEqual({ fire: [], rearm: [] });
    expect(step([])).toEqual({ fire: [], rearm: [] }); // not judged: state kept
    expect(firing.has("latency")).toBe(true);
    expect(step([j("latency", false)]).rearm).toEqual(["latency"]);
    expect(step([j("latency", true)]).fire.map((f) => f.sli)).toEqual(["latency"]);
  });

  it("walks a rolling window: one cache-drop firing while the drop lasts", () => {
    const slo = sloTable({ cache_drop_pct: 20 });
    let window: SliSample[] = [];
    const firing = new Set<string>();
    const fired: number[] = [];
    const rearmed: number[] = [];
    const push = (s: SliSample, i: number) => {
      window = [...window, s].slice(-100);
      const t = transitions(judge(window, slo), firing);
      for (const f of t.fire) { firing.add(f.sli); fired.push(i); }
      for (const r of t.rearm) { firing.delete(r); rearmed.push(i); }
    };
    for (let i = 0; i < 30; i++) push(sample({ cached_tokens: 90 }), i);
    for (let i = 30; i < 60; i++) push(sample({ cached_tokens: 30 }), i);
    expect(fired).toHaveLength(1);
    expect(fired[0]).toBeGreaterThanOrEqual(30);
    expect(fired[0]).toBeLessThan(30 + DROP_RECENT);
    // the drop has not yet become the baseline of a 100-sample window
    expect(rearmed).toEqual([]);
    for (let i = 60; i < 200; i++) push(sample({ cached_tokens: 30 }), i);
    expect(rearmed).toHaveLength(1); // the lower rate became the new normal
    expect(fired).toHaveLength(1);
  });
});

describe("delivery", () => {
  const policy = makePolicy();
  const j: Judgement = { sli: "latency", value: 3000, bound: 2000, crossed: true, unit: "ms", detail: { percentile: "p95" } };
  const payload = alertPayload(policy, "refunds", j, 20, "2026-01-01T00:00:00.000Z");

  it("builds the alert body", () => {
    expect(payload).toEqual({ type: "agentspec.slo_alert", agent: "support_desk", workflow: "refunds", sli: "latency",
      value: 3000, bound: 2000, unit: "ms", window: 20, detail: { percentile: "p95" }, spec_hash: policy.spec_hash,
      ts: "2026-01-01T00:00:00.000Z" });
  });

  it("POSTs JSON to an allowlisted webhook and reports 2xx as delivered", async () => {
    const s = stubServer(() => new Response("ok", { status: 202 }));
    expect(await deliver("https://orders.example.com/hooks/slo", ["orders.example.com"], payload, s.fetcher)).toBe(true);
    expect(s.seen).toHaveLength(1);
    expect(s.seen[0]!.method).toBe("POST");
    expect(s.seen[0]!.redirect).toBe("manual");
    expect(s.seen[0]!.headers.get("content-type")).toBe("application/json");
    expect(JSON.parse(s.seen[0]!.body!)).toEqual(payload);
  });

  it("never throws: off-list host, error status, network failure, no webhook", async () => {
    const ok = stubServer(() => new Response("ok"));
    expect(await deliver("https://evil.example.net/h", ["orders.example.com"], payload, ok.fetcher)).toBe(false);
    expect(ok.seen).toHaveLength(0);
    const err = stubServer(() => new Response("no", { status: 500 }));
    expect(await deliver("https://orders.example.com/h", ["orders.example.com"], payload, err.fetcher)).toBe(false);
    const boom = stubServer(() => { throw new TypeError("connection refused"); });
    expect(await deliver("https://orders.example.com/h", ["orders.example.com"], payload, boom.fetcher)).toBe(false);
    expect(await deliver(undefined, ["orders.example.com"], payload, ok.fetcher)).toBe(false);
  });

  it("gives up on a hung webhook with a timeout signal", async () => {
    const s = stubServer(hang);
    const started = Date.now();
    expect(await deliver("https://orders.example.com/h", ["orders.example.com"], payload, s.fetcher, 50)).toBe(false);
    expect(s.seen[0]!.signal).not.toBeNull();
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
