// guardedFetch: the allowlist, schemes, userinfo and redirects, against a recording stub server.
import { describe, expect, it } from "vitest";
import { OutboundBlockedError } from "../errors";
import { guardedFetch, isHostAllowed } from "../guard";
import { stubServer } from "./fixtures";

const allowed = ["orders.example.com", "127.0.0.1:8787", "[::1]:9000"];

async function blocked(p: Promise<unknown>): Promise<OutboundBlockedError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(OutboundBlockedError);
  return e as OutboundBlockedError;
}

describe("guardedFetch", () => {
  it("passes an allowlisted request through with redirect manual", async () => {
    const s = stubServer(() => new Response("ok"));
    const res = await guardedFetch(allowed, "https://orders.example.com/v1/x?a=1", { method: "POST", body: "b" }, s.fetcher);
    expect(await res.text()).toBe("ok");
    expect(s.seen).toHaveLength(1);
    expect(s.seen[0]!.url).toBe("https://orders.example.com/v1/x?a=1");
    expect(s.seen[0]!.method).toBe("POST");
    expect(s.seen[0]!.redirect).toBe("manual");
  });

  it("overrides a caller's redirect: follow", async () => {
    const s = stubServer(() => new Response(null));
    await guardedFetch(allowed, "https://orders.example.com/", { redirect: "follow" }, s.fetcher);
    expect(s.seen[0]!.redirect).toBe("manual");
  });

  it("matches hosts case-insensitively and accepts URL objects", async () => {
    const s = stubServer(() => new Response(null));
    await guardedFetch(["Orders.Example.com"], new URL("https://ORDERS.example.COM/a"), undefined, s.fetcher);
    expect(s.seen[0]!.url).toBe("https://orders.example.com/a");
  });

  it("refuses hosts off the list without calling out, carrying the host", async () => {
    const s = stubServer(() => new Response("should not happen"));
    for (const url of [
      "https://evil.example.net/",
      "https://orders.example.com.evil.net/",
      "https://sub.orders.example.com/",
      "https://example.com/",
    ]) {
      const e = await blocked(guardedFetch(allowed, url, undefined, s.fetcher));
      expect(e.host).toBe(new URL(url).host);
    }
    expect(s.seen).toHaveLength(0);
  });

  it("enforces ports on entries that name one", async () => {
    const s = stubServer(() => new Response(null));
    await guardedFetch(allowed, "http://127.0.0.1:8787/echo", undefined, s.fetcher);
    const e = await blocked(guardedFetch(allowed, "http://127.0.0.1:8788/echo", undefined, s.fetcher));
    expect(e.host).toBe("127.0.0.1:8788");
    await blocked(guardedFetch(allowed, "http://127.0.0.1/echo", undefined, s.fetcher));
    await guardedFetch(allowed, "http://[::1]:9000/", undefined, s.fetcher);
    await blocked(guardedFetch(allowed, "http://[::1]:9001/", undefined, s.fetcher));
    // an entry without port matches any port
    await guardedFetch(allowed, "https://orders.example.com:8443/", undefined, s.fetcher);
    expect(s.seen.map((r) => r.url)).toEqual([
      "http://127.0.0.1:8787/echo",
      "http://[::1]:9000/",
      "https://orders.example.com:8443/",
    ]);
  });

  it("treats a default port as that port", () => {
    expect(isHostAllowed(["a.example:443"], new URL("https://a.example/"))).toBe(true);
    expect(isHostAllowed(["a.example:443"], new URL("http://a.example/"))).toBe(false);
    expect(isHostAllowed(["a.example:80"], new URL("http://a.example/"))).toBe(true);
  });

  it("refuses non-http schemes, userinfo and garbage", async () => {
    const s = stubServer(() => new Response(null));
    expect((await blocked(guardedFetch(allowed, "ftp://orders.example.com/x", undefined, s.fetcher))).reason).toMatch(/scheme/);
    await blocked(guardedFetch(allowed, "file:///etc/passwd", undefined, s.fetcher));
    await blocked(guardedFetch(allowed, "data:text/plain,hi", undefined, s.fetcher));
    expect((await blocked(guardedFetch(allowed, "https://user:pw@orders.example.com/", undefined, s.fetcher))).reason).toMatch(/userinfo/);
    // userinfo that looks like the allowed host, real host elsewhere
    const e = await blocked(guardedFetch(allowed, "https://orders.example.com@evil.example.net/", undefined, s.fetcher));
    expect(e.host).toBe("evil.example.net");
    await blocked(guardedFetch(allowed, "not a url", undefined, s.fetcher));
    await blocked(guardedFetch(allowed, "/relative/path", undefined, s.fetcher));
    expect(s.seen).toHaveLength(0);
  });

  it("returns a redirect to a non-allowlisted host instead of following it", async () => {
    const s = stubServer((req) =>
      req.url.startsWith("https://orders.example.com/")
        ? new Response(null, { status: 302, headers: { location: "https://evil.example.net/steal" } })
        : new Response("followed!"),
    );
    const res = await guardedFetch(allowed, "https://orders.example.com/start", undefined, s.fetcher);
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("https://evil.example.net/steal");
    expect(s.seen.map((r) => r.url)).toEqual(["https://orders.example.com/start"]);
  });

  it("with workerd's real fetch, a redirect to a non-allowlisted host comes back unfollowed", async () => {
    // vitest.config.mts routes the Worker's real outbound fetches to a Node handler (outboundService).
    const res = await guardedFetch(allowed, "https://orders.example.com/redirect");
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("https://evil.example.net/steal");
    expect(await res.text()).not.toContain("evil");
    // control: without the guard, the platform would have followed it
    const followed = await fetch("https://orders.example.com/redirect");
    expect(await followed.text()).toBe("followed a redirect to evil");
  });

  it("with workerd's real fetch, an allowlisted request reaches the server", async () => {
    const res = await guardedFetch(allowed, "https://orders.example.com/echo", { method: "PUT", headers: { "x-session-affinity": "s1" } });
    expect(await res.json()).toEqual({ method: "PUT", url: "https://orders.example.com/echo", affinity: "s1" });
  });
});
