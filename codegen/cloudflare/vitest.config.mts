// Runs the runtime library's tests inside workerd through the Workers Vitest integration.
// https://developers.cloudflare.com/workers/testing/vitest-integration/configuration/
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/** The stand-in for remote servers seen by the real `fetch` inside workerd. */
function outbound(request: Request): Response {
  const url = new URL(request.url);
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
