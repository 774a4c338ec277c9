// runInference: the fallback chain over an OpenAI-compatible stub, per-attempt timeouts, usage, and the
// Workers AI binding path with a stand-in binding.
import { describe, expect, it } from "vitest";
import { AllModelsFailedError, PolicyError } from "../errors";
import { runInference, type ChatMessage, type ChatTool, type InferenceEnv } from "../inference";
import { hang, json, makePolicy, stubServer } from "./fixtures";

const policy = makePolicy();
const messages: ChatMessage[] = [
  { role: "system", content: "You are the support desk." },
  { role: "user", content: "Where is order 42?" },
];
const tools: ChatTool[] = [
  { type: "function", function: { name: "lookup_order", parameters: { type: "object", properties: { order_id: { type: "string" } } } } },
];
const env = { INFERENCE_URL: "http://127.0.0.1:8788/v1/" };

const completion = (content: string | null, extra: Record<string, unknown> = {}) =>
  json({
    choices: [{ index: 0, message: { role: "assistant", content, ...extra } }],
    usage: { prompt_tokens: 120, completion_tokens: 8, prompt_tokens_details: { cached_tokens: 96 } },
  });

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => { throw new Error("expected a rejection"); }, (e: unknown) => e);
}

describe("runInference over an OpenAI-compatible endpoint", () => {
  it("posts model, messages and tools with the affinity header, and reads text and usage", async () => {
    const s = stubServer(() => completion("It shipped."));
    const r = await runInference({ policy, tier: "low", messages, tools, sessionAffinity: "sess-7", env, fetcher: s.fetcher });
    expect(r.text).toBe("It shipped.");
    expect(r.model).toBe("@cf/zai-org/glm-4.7-flash");
    expect(r.usage).toEqual({ input: 120, output: 8, cached: 96 });
    expect(r.toolCalls).toEqual([]);
    expect(r.attempts).toHaveLength(1);
    expect(r.attempts[0]).toMatchObject({ model: "@cf/zai-org/glm-4.7-flash", ok: true, status: 200 });
    const req = s.seen[0]!;
    expect(req.url).toBe("http://127.0.0.1:8788/v1/chat/completions");
    expect(req.method).toBe("POST");
    expect(req.headers.get("x-session-affinity")).toBe("sess-7");
    expect(req.headers.get("content-type")).toBe("application/json");
    expect(JSON.parse(req.body!)).toEqual({ model: "@cf/zai-org/glm-4.7-flash", messages, tools });
  });

  it("omits tools when none are offered", async () => {
    const s = stubServer(() => completion("hi"));
    await runInference({ policy, tier: "low", messages, sessionAffinity: "s", env, fetcher: s.fetcher });
    expect(JSON.parse(s.seen[0]!.body!)).not.toHaveProperty("tools");
  });

  it("returns the model's tool calls with parsed arguments", async () => {
    const s = stubServer(() =>
      completion(null, {
        tool_calls: [
          { id: "call_1", type: "function", function: { name: "lookup_order", arguments: '{"order_id":"42"}' } },
          { id: "call_2", type: "function", function: { name: "lookup_order", arguments: "{not json" } },
        ],
      }),
    );
    const r = await runInference({ policy, tier: "low", messages, tools, sessionAffinity: "s", env, fetcher: s.fetcher });
    expect(r.text).toBe("");
    expect(r.toolCalls).toEqual([
      { id: "call_1", name: "lookup_order", arguments: { order_id: "42" }, raw: '{"order_id":"42"}' },
      { id: "call_2", name: "lookup_order", arguments: null, raw: "{not json" },
    ]);
  });

  it("falls back on 429 and 5xx, in tier order, recording every attempt", async () => {
    const s = stubServer((req) => {
      const model = (JSON.parse(req.body!) as { model: string }).model;
      if (model === "@cf/moonshotai/kimi-k2.6") return new Response("busy", { status: 429 });
      if (model === "@cf/openai/gpt-oss-120b") return new Response("down", { status: 503 });
      return completion("third time lucky");
    });
    const r = await runInference({ policy, tier: "high", messages, sessionAffinity: "s", env, fetcher: s.fetcher });
    expect(r.text).toBe("third time lucky");
    expect(r.model).toBe("@cf/zai-org/glm-5.2");
    expect(r.attempts.map((a) => [a.model, a.ok, a.status])).toEqual([
      ["@cf/moonshotai/kimi-k2.6", false, 429],
      ["@cf/openai/gpt-oss-120b", false, 503],
      ["@cf/zai-org/glm-5.2", true, 200],
    ]);
    expect(s.seen.every((q) => q.headers.get("x-session-affinity") === "s")).toBe(true);
  });

  it("falls back on a timeout (tier timeout_ms, per attempt) and on a network error", async () => {
    const s = stubServer((req, n) => {
      if (n === 0) return hang(req); // the high tier's timeout is 50 ms
      if (n === 1) throw new TypeError("Network connection lost.");
      return completion("ok");
    });
    const r = await runInference({ policy, tier: "high", messages, sessionAffinity: "s", env, fetcher: s.fetcher });
    expect(r.text).toBe("ok");
    expect(r.attempts[0]).toMatchObject({ ok: false, error: "timeout" });
    expect(r.attempts[0]!.ms).toBeGreaterThanOrEqual(40);
    // The cause names the host it could not reach (what an operator needs first).
    expect(r.attempts[1]).toMatchObject({ ok: false, error: "cannot reach 127.0.0.1:8788: Network connection lost." });
    expect(s.seen[0]!.signal).not.toBe(s.seen[1]!.signal); // a fresh timeout per attempt
  });

  it("throws AllModelsFailedError with the attempts when every model fails", async () => {
    const s = stubServer(() => new Response("no", { status: 500 }));
    const e = await rejection(runInference({ policy, tier: "low", messages, sessionAffinity: "s", env, fetcher: s.fetcher }));
    expect(e).toBeInstanceOf(AllModelsFailedError);
    const attempts = (e as AllModelsFailedError).attempts;
    expect(attempts.map((a) => a.model)).toEqual(policy.tiers["low"]!.models);
    expect(attempts.every((a) => !a.ok && a.status === 500)).toBe(true);
    expect(s.seen).toHaveLength(2);
  });

  it("lists each model's cause, and names INFERENCE_URL only when nothing could be reached there", async () => {
    const down = await rejection(runInference({ policy, tier: "low", messages, sessionAffinity: "s", env,
      fetcher: stubServer((_, n) => (n === 0 ? new Response("busy", { status: 503 }) : new Response("no", { status: 500 }))).fetcher }));
    const [first, second] = policy.tiers["low"]!.models;
    expect((down as AllModelsFailedError).causes()).toBe(`${first}: HTTP 503; ${second}: HTTP 500`);
    expect((down as AllModelsFailedError).hint()).toBe(""); // a server answered: the URL is right
    const refused = stubServer(() => {
      throw new TypeError("connect ECONNREFUSED");
    });
    const e = await rejection(runInference({ policy, tier: "low", messages, sessionAffinity: "s", env, fetcher: refused.fetcher }));
    expect((e as AllModelsFailedError).causes()).toBe(
      `${first}: cannot reach 127.0.0.1:8788: connect ECONNREFUSED; ${second}: cannot reach 127.0.0.1:8788: connect ECONNREFUSED`);
    expect((e as AllModelsFailedError).hint()).toContain("nothing answers at INFERENCE_URL (http://127.0.0.1:8788/v1/)");
  });

  it("stops on a non-retryable 4xx instead of trying the fallbacks", async () => {
    const s = stubServer(() => new Response("bad request", { status: 400 }));
    const e = await rejection(runInference({ policy, tier: "high", messages, sessionAffinity: "s", env, fetcher: s.fetcher }));
    expect(e).toBeInstanceOf(AllModelsFailedError);
    expect((e as AllModelsFailedError).attempts).toHaveLength(1);
    expect(s.seen).toHaveLength(1);
  });

  it("treats a malformed 200 answer as a failed attempt", async () => {
    const s = stubServer((_, n) => (n === 0 ? new Response("<html>oops</html>") : completion("fine")));
    const r = await runInference({ policy, tier: "low", messages, sessionAffinity: "s", env, fetcher: s.fetcher });
    expect(r.attempts[0]).toMatchObject({ ok: false });
    expect(r.model).toBe("@cf/google/gemma-4-26b-a4b-it");
  });

  it("rejects an unknown tier and a missing backend", async () => {
    await expect(runInference({ policy, tier: "ultra", messages, sessionAffinity: "s", env })).rejects.toBeInstanceOf(PolicyError);
    await expect(runInference({ policy, tier: "low", messages, sessionAffinity: "s", env: {} })).rejects.toThrow(/no inference backend/);
  });

  it("uses workerd's real fetch when no fetcher is given (inference is not behind the tool allowlist)", async () => {
    // vitest.config.mts's outboundService answers 502 for unknown hosts: both models fail over the real network path.
    const e = await rejection(runInference({ policy, tier: "low", messages, sessionAffinity: "s", env: { INFERENCE_URL: "http://inference.invalid/v1" } }));
    expect((e as AllModelsFailedError).attempts.map((a) => a.status)).toEqual([502, 502]);
  });
});

describe("runInference over the Workers AI binding", () => {
  it("accepts a generated Env holding the real Workers AI binding type (checked by tsc)", () => {
    interface GeneratedEnv {
      AI: Ai;
      SESSION: DurableObjectNamespace;
      INFERENCE_URL?: string;
    }
    const fits: (e: GeneratedEnv) => InferenceEnv = (e) => e;
    expect(typeof fits).toBe("function");
  });

  function fakeAi(answer: (model: string, n: number) => unknown) {
    const calls: { model: string; inputs: unknown; options: unknown }[] = [];
    return {
      calls,
      AI: {
        async run(model: string, inputs: unknown, options?: unknown): Promise<unknown> {
          calls.push({ model, inputs, options });
          const a = answer(model, calls.length - 1);
          if (a instanceof Error) throw a;
          return a;
        },
      },
    };
  }

  it("calls env.AI.run with messages, tools and the affinity header, and reads Workers AI answers", async () => {
    const ai = fakeAi(() => ({
      response: "Shipped.",
      tool_calls: [{ name: "lookup_order", arguments: { order_id: "42" } }],
      usage: { prompt_tokens: 10, completion_tokens: 2 },
    }));
    const r = await runInference({ policy, tier: "low", messages, tools, sessionAffinity: "sess-9", env: { AI: ai.AI } });
    expect(r).toMatchObject({ text: "Shipped.", model: "@cf/zai-org/glm-4.7-flash", usage: { input: 10, output: 2, cached: 0 } });
    expect(r.toolCalls).toEqual([{ id: "call_0", name: "lookup_order", arguments: { order_id: "42" }, raw: '{"order_id":"42"}' }]);
    expect(ai.calls[0]!.inputs).toEqual({ messages, tools });
    expect(ai.calls[0]!.options).toMatchObject({ extraHeaders: { "x-session-affinity": "sess-9" } });
  });

  it("falls back when the binding throws (e.g. capacity 3040) or hangs past the timeout", async () => {
    const ai = fakeAi((_, n) => (n === 0 ? new Error("3040: Capacity temporarily exceeded") : n === 1 ? new Promise(() => {}) : { response: "late but fine" }));
    const r = await runInference({ policy, tier: "high", messages, sessionAffinity: "s", env: { AI: ai.AI } });
    expect(r.text).toBe("late but fine");
    expect(r.attempts.map((a) => [a.ok, a.error])).toEqual([
      [false, "3040: Capacity temporarily exceeded"],
      [false, "timeout"],
      [true, undefined],
    ]);
  });

  it("prefers INFERENCE_URL over the binding when both are present", async () => {
    const ai = fakeAi(() => ({ response: "from binding" }));
    const s = stubServer(() => completion("from http"));
    const r = await runInference({ policy, tier: "low", messages, sessionAffinity: "s", env: { ...env, AI: ai.AI }, fetcher: s.fetcher });
    expect(r.text).toBe("from http");
    expect(ai.calls).toHaveLength(0);
  });
});
