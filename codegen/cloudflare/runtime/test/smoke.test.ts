// Proves the tests run inside workerd (not Node): the wrangler.jsonc var is visible and navigator says so.
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";

it("runs inside workerd with the test wrangler config", () => {
  expect(navigator.userAgent).toBe("Cloudflare-Workers");
  expect((env as unknown as { TEST_MARKER: string }).TEST_MARKER).toBe("workerd");
});
