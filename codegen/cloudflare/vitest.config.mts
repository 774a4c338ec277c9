// Runs the runtime library's tests inside workerd through the Workers Vitest integration.
// https://developers.cloudflare.com/workers/testing/vitest-integration/configuration/
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/** The stand-in model server (`INFERENCE_URL` of the test Worker), for the role tests' turns: it echoes the
 * input, asks for `lookup_order` when told to look something up, reads a tool's result back, summarizes for a
 * checkpoint, is down for an input starting "outage", and answers 200 ms late to one starting "slow" (a turn
 * still in flight when the next arrives). */
async function inference(request: Request): Promise<Response> {
  const body = (await request.json()) as { messages: { role: string; content: string | null }[] };
  const last = [...body.messages].reverse().find((m) => m.role === "user")?.content ?? "";
  const usage = { prompt_tokens: 100, completion_tokens: 10, prompt_tokens_details: { cached_tokens: 40 } };
  const answer = (message: Record<string, unknown>) => Response.json({ choices: [{ message }], usage });
  const tool = body.messages.find((m) => m.role === "tool");
  if (last.startsWith("outage")) return new Response("down", { status: 503 });
  if (last.startsWith("slow")) await new Promise((resolve) => setTimeout(resolve, 200));
  const asked = /^(fetch doc|fetch lost|search|meaning) (.+)$/.exec(last);
  if (asked && !tool) {
    const [name, args] = asked[1] === "fetch doc" ? ["fetch_doc", { doc_id: asked[2] }]
      : asked[1] === "fetch lost" ? ["fetch_lost", { doc_id: asked[2] }]
      : ["docs", { query: asked[2], mode: asked[1] === "meaning" ? "semantic" : "keyword" }];
    return answer({ content: null, tool_calls: [{ id: "c1", type: "function",
      function: { name, arguments: JSON.stringify(args) } }] });
  }
  if (body.messages[0]?.content?.startsWith("Summarize")) return answer({ content: "the summary" });
  if (tool) return answer({ content: `read: ${tool.content}` });
  if (last.startsWith("look up")) {
    return answer({ content: null, tool_calls: [{ id: "c1", type: "function",
      function: { name: "lookup_order", arguments: '{"order_id":"42"}' } }] });
  }
  return answer({ content: `echo: ${last}` });
}

/** Stand-in embeddings: words folded onto a few concepts (so "automobile" is near "car"), one dimension each. */
const CONCEPTS: Record<string, number> = { car: 0, automobile: 0, vehicle: 0, engine: 1, motor: 1, ocean: 2, sea: 2,
  fish: 3, salmon: 3, paper: 4, study: 4, research: 4, bread: 5, bakery: 5, cat: 6, kitten: 6 };

async function embeddings(request: Request): Promise<Response> {
  const body = (await request.json()) as { input: string[] };
  if (body.input.some((text) => text.includes("EMBED-DOWN"))) return new Response("down", { status: 503 });
  const data = body.input.map((text, index) => {
    const v = new Array<number>(8).fill(0);
    for (const word of text.toLowerCase().match(/[a-z]+/g) ?? []) {
      const concept = CONCEPTS[word];
      if (concept !== undefined) v[concept]! += 1;
      else v[7]! += 0.01;
    }
    return { object: "embedding", index, embedding: v };
  });
  return Response.json({ object: "list", data, model: "embed-a" });
}

/** The stand-in for remote servers seen by the real `fetch` inside workerd. */
function outbound(request: Request): Response | Promise<Response> {
  const url = new URL(request.url);
  if (url.host === "inference.test" && url.pathname === "/v1/chat/completions") return inference(request);
  if (url.host === "inference.test" && url.pathname === "/v1/embeddings") return embeddings(request);
  if (url.host === "docs.example.com" && url.pathname.startsWith("/v1/docs/")) {
    const id = url.pathname.split("/").at(-1)!;
    const text = id === "cars" ? "The automobile engine: a study. Write to ann@example.com or call +1 415 555 0100."
      : id === "down" ? "A kitten document the embeddings endpoint refuses: EMBED-DOWN"
      : `Fresh bread from the bakery, document ${id}. ` + "crumb ".repeat(2000);
    return Response.json({ title: `Doc ${id}`, text });
  }
  if (url.host === "orders.example.com" && url.pathname === "/v1/orders/42") {
    return Response.json({ order_id: "42", status: "shipped", total_cents: 1200, secret_field: "dropped" });
  }
  if (url.host === "orders.example.com" && url.pathname === "/redirect") {
    return new Response(null, { status: 302, headers: { location: "https://evil.example.net/steal" } });
  }
  if (url.host === "orders.example.com" && url.pathname === "/echo") {
    return Response.json({ method: request.method, url: request.url, affinity: request.headers.get("x-session-affinity") });
  }
  if (url.host === "evil.example.net") return new Response("followed a redirect to evil", { status: 200 });
  return new Response("no such host in the test internet", { status: 502 });
}

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./runtime/test/wrangler.jsonc" },
      // Workers AI has no local simulator; nothing in these tests may reach Cloudflare.
      remoteBindings: false,
      miniflare: {
        // Every fetch the test Worker makes with the real global fetch lands here, in Node: a loopback
        // "internet" that fails closed (https://developers.cloudflare.com/workers/testing/miniflare/).
        outboundService: outbound,
      },
    }),
  ],
  test: {
    include: ["runtime/test/**/*.test.ts"],
  },
});
