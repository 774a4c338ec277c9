// The session role (session.ts) through a real object of the test Worker: turns, the lock, the decision chain,
// per-turn traces, a tool call, a model outage, a checkpoint, and what survives an eviction.
import { env } from "cloudflare:workers";
import { evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { verifyChain, type ChainRecord } from "../chain";
import { sessionObjectName } from "../names";
import type { TurnRequest } from "../session";
import { policy, type TestEnv } from "./worker";

const testEnv = env as unknown as TestEnv;
let sessions = 0;

/** A fresh session's object and a request maker for it. */
function session(workflow = "triage") {
  const id = `s-${++sessions}-${crypto.randomUUID()}`;
  const stub = testEnv.SESSION.getByName(sessionObjectName("acme", id));
  const req = (input: string): TurnRequest => ({ tenant: "acme", session: id, workflow, input, affinity: id,
    traceId: crypto.randomUUID(), colo: "local" });
  const traces = async () => (await stub.traces(0)) as unknown as { records: ChainRecord[]; turns: Record<string, unknown>[] };
  return { id, stub, req, traces };
}

describe("a session's turns", () => {
  it("answers a turn, counts it, records its routing decision and keeps its trace", async () => {
    const s = session();
    const out = await s.stub.turn(s.req("hello mail me at ann@example.com"));
    expect(out).toMatchObject({ ok: true, session_id: s.id, turn: 1, output: "echo: hello mail me at ann@example.com",
      model: "@cf/zai-org/glm-4.7-flash" });
    expect(out.decisions.map((d) => [d.action, d.decision, d.rule])).toEqual([["model.route:low", "allow", "route.risk.low"]]);
    const { records, turns } = await s.traces();
    expect(verifyChain(records)).toEqual({ ok: true });
    expect(turns).toHaveLength(1);
    expect(turns[0]).toMatchObject({ turn: 1, tier: "low", "gen_ai.usage.input_tokens": 100,
      "gen_ai.usage.cache_read.input_tokens": 40, model_family: "glm", checkpoint: null });
    // The triage workflow masks no PII class, so the stored history is the input as sent.
    const state = await s.stub.state();
    expect(state.turns).toBe(1);
    expect(state.messages.map((m) => m.role)).toEqual(["user", "assistant"]);
  });

  it("answers 409 to a second turn while one runs, and the first completes", async () => {
    const s = session();
    const [first, second] = await Promise.all([s.stub.turn(s.req("slow one")), s.stub.turn(s.req("two"))]);
    expect(first).toMatchObject({ ok: true, turn: 1 });
    expect(second).toMatchObject({ ok: false, status: 409, code: "turn_in_progress", decisions: [] });
  });

  it("runs a tool call the model asks for, records its decision and outcome, and reads the result back", async () => {
    const s = session();
    const out = await s.stub.turn(s.req("look up order 42"));
    expect(out.ok).toBe(true);
    if (!out.ok) return;
    // The projected result: the undeclared `secret_field` of the answer never reaches the model.
    expect(out.output).toBe('read: {"order_id":"42","status":"shipped","total_cents":1200}');
    expect(out.decisions.map((d) => [d.action, d.decision, d.rule])).toEqual([
      ["model.route:low", "allow", "route.risk.low"],
      ["tool.call:lookup_order", "allow", "tools.allow"],
      ["tool.result:lookup_order", "ok", "tool.ok"],
    ]);
    const { turns } = await s.traces();
    expect(turns[0]).toMatchObject({ rounds: 2, tools: [{ tool: "lookup_order", outcome: "ok", status: 200, attempts: 1 }] });
  });

  it("answers 503 when every model is down, records it, and does not count the turn", async () => {
    const s = session();
    const out = await s.stub.turn(s.req("outage please"));
    expect(out).toMatchObject({ ok: false, status: 503, code: "models_unavailable" });
    expect(out.decisions.at(-1)).toMatchObject({ action: "model.call:low", decision: "deny", rule: "model.unavailable" });
    const { records, turns } = await s.traces();
    expect(records.map((r) => r.action)).toEqual(["model.route:low", "model.call:low"]);
    // The chain record says why, per model; a record with nothing to add has no `detail` at all.
    const low = policy.tiers["low"]!.models;
    expect(records[1]!.detail).toBe(low.map((m) => `${m}: HTTP 503`).join("; "));
    expect(records[0]).not.toHaveProperty("detail");
    expect(turns).toEqual([]);
    expect((await s.stub.turn(s.req("back again"))).ok && (await s.stub.state()).turns).toBe(1);
  });

  it("checkpoints every N turns: the summary goes to the store, the history is trimmed", async () => {
    const s = session("refunds"); // checkpoint every 6 turns into SUMMARIES
    for (let i = 1; i <= 6; i++) expect(await s.stub.turn(s.req(`turn ${i}`))).toMatchObject({ ok: true, turn: i });
    const state = await s.stub.state();
    expect(state).toMatchObject({ turns: 6, summary: "the summary", messages: [] });
    expect(JSON.parse((await testEnv.SUMMARIES.get(`summary/acme/${s.id}`))!)).toMatchObject({ turn: 6, summary: "the summary" });
    const { records, turns } = await s.traces();
    expect(records.at(-1)).toMatchObject({ action: "checkpoint:SUMMARIES", decision: "allow", rule: "checkpoint.every" });
    expect(turns[5]).toMatchObject({ checkpoint: { ok: true, trimmed_messages: 12 } });
    expect(verifyChain(records)).toEqual({ ok: true });
  });

  it("keeps counting turns and chaining decisions across an eviction", async () => {
    const s = session();
    await s.stub.turn(s.req("before"));
    await evictDurableObject(s.stub);
    expect(await s.stub.turn(s.req("after"))).toMatchObject({ ok: true, turn: 2 });
    const { records, turns } = await s.traces();
    expect(verifyChain(records)).toEqual({ ok: true });
    expect(records.map((r) => r.seq)).toEqual([1, 2]);
    expect(turns.map((t) => t["turn"])).toEqual([1, 2]);
    expect((await s.stub.state()).messages).toHaveLength(4);
  }, 15_000);

  it("answers the front door's RPC as the HTTP status and body the client gets", async () => {
    const s = session();
    const ok = await s.stub.turnResponse(s.req("hi"));
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ session_id: s.id, turn: 1, output: "echo: hi" });
    expect(JSON.parse(ok.body)).not.toHaveProperty("ok");
    const down = await s.stub.turnResponse(s.req("outage"));
    expect(down.status).toBe(503);
    expect(JSON.parse(down.body)).toMatchObject({ error: { code: "models_unavailable" } });
  });
});
