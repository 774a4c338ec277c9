// Runs the runtime library's tests inside workerd through the Workers Vitest integration.
// https://developers.cloudflare.com/workers/testing/vitest-integration/configuration/
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./runtime/test/wrangler.jsonc" },
      // Workers AI has no local simulator; nothing in these tests may reach Cloudflare.
      remoteBindings: false,
    }),
  ],
  test: {
    include: ["runtime/test/**/*.test.ts"],
  },
});
