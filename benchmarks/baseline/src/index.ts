// Baseline Worker for benchmarks/runtime_load.py: the minimum a session turn needs.
// POST /v1/sessions/{id}/turns {"workflow", "input"} -> the session's Durable Object (by name) -> one
// OpenAI-compatible /chat/completions call -> {"session_id", "turn", "output", "model"}.
// Like the generated runtime it calls the object over RPC and holds an explicit per-session turn lock.

import { DurableObject } from "cloudflare:workers";

interface Env {
  SESSION: DurableObjectNamespace<SessionDO>;
  INFERENCE_URL?: string;
}

type Outcome =
  | { ok: true; session_id: string; turn: number; output: string; model: string }
  | { ok: false; status: number; message: string };

const TURN = /^\/v1\/sessions\/([^/]+)\/turns$/;
const MODEL = "@cf/baseline/model";

export class SessionDO extends DurableObject<Env> {
  private busy = false;
  private turns = 0;

  async turn(session: string, input: string): Promise<Outcome> {
    if (this.busy) return { ok: false, status: 409, message: "a turn is already running in this session" };
    this.busy = true;
    try {
      const base = (this.env.INFERENCE_URL ?? "").replace(/\/+$/, "");
      const res = await fetch(`${base}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-session-affinity": session },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: input }] }),
      });
      if (!res.ok) {
        await res.body?.cancel();
        return { ok: false, status: 503, message: `model answered ${res.status}` };
      }
      const body = (await res.json()) as { choices?: { message?: { content?: string } }[] };
      this.turns += 1;
      return { ok: true, session_id: session, turn: this.turns, output: body.choices?.[0]?.message?.content ?? "",
        model: MODEL };
    } finally {
      this.busy = false;
    }
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (path === "/healthz") return Response.json({ ok: true, agent: "baseline" });
    const match = TURN.exec(path);
    if (!match || request.method !== "POST") return Response.json({ error: { code: "not_found" } }, { status: 404 });
    const body = (await request.json()) as { input?: unknown };
    if (typeof body.input !== "string") return Response.json({ error: { code: "invalid_field" } }, { status: 400 });
    const session = decodeURIComponent(match[1]!);
    const outcome = await env.SESSION.getByName(session).turn(session, body.input);
    if (!outcome.ok) return Response.json({ error: { message: outcome.message } }, { status: outcome.status });
    const { ok: _ok, ...answer } = outcome;
    return Response.json(answer);
  },
} satisfies ExportedHandler<Env>;
