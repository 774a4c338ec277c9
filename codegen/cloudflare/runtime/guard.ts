// The one outbound door for tool calls: a URL and an allowlist of hosts in, a fetch Response out, or
// OutboundBlockedError when the host, scheme or userinfo is not acceptable. Redirects are never followed.
// Plain Workers have no platform egress allowlist, so it is enforced here in code
// (https://developers.cloudflare.com/workers/runtime-apis/fetch/).

import { OutboundBlockedError } from "./errors";

/** The fetch signature guardedFetch calls; `fetch` itself, or a stub in tests. */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

const DEFAULT_PORT: Record<string, string> = { "http:": "80", "https:": "443" };

/** An allowlist entry: `host` (any port) or `host:port`; IPv6 literals in brackets, e.g. `[::1]:8787`. */
function parseEntry(entry: string): { host: string; port: string | null } | null {
  const m = /^(\[[0-9a-f:.]+\]|[^\s:/?#@[\]]+)(?::(\d{1,5}))?$/i.exec(entry.trim());
  if (m === null || m[1] === undefined) return null;
  return { host: m[1].toLowerCase(), port: m[2] === undefined ? null : String(Number(m[2])) };
}

/**
 * Whether `url`'s host is in `allowedHosts`: exact, case-insensitive host match (no wildcard, no subdomains);
 * an entry with a port matches only that port (the scheme's default port when the URL names none).
 */
export function isHostAllowed(allowedHosts: readonly string[], url: URL): boolean {
  const host = url.hostname.toLowerCase();
  const port = url.port !== "" ? url.port : (DEFAULT_PORT[url.protocol] ?? "");
  for (const raw of allowedHosts) {
    const entry = parseEntry(raw);
    if (entry === null || entry.host !== host) continue;
    if (entry.port === null || entry.port === port) return true;
  }
  return false;
}

/** Parse and vet a URL against the allowlist; returns the parsed URL or throws OutboundBlockedError. */
export function checkOutbound(allowedHosts: readonly string[], input: string | URL): URL {
  let url: URL;
  try {
    url = new URL(String(input));
  } catch {
    throw new OutboundBlockedError("", "not a valid absolute URL");
  }
  const shown = url.host.toLowerCase();
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OutboundBlockedError(shown, `scheme \`${url.protocol}\` is not http or https`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new OutboundBlockedError(shown, "URLs with userinfo are refused");
  }
  if (!isHostAllowed(allowedHosts, url)) {
    throw new OutboundBlockedError(shown, "host is not in the outbound allowlist");
  }
  return url;
}

/**
 * fetch, but only to allowlisted hosts, and with `redirect: "manual"`: a 3xx comes back to the caller as is,
 * so a redirect to any host (allowlisted or not) is never followed behind the allowlist's back.
 */
export async function guardedFetch(
  allowedHosts: readonly string[],
  input: string | URL,
  init?: RequestInit,
  fetcher: FetchLike = (i, r) => fetch(i, r),
): Promise<Response> {
  const url = checkOutbound(allowedHosts, input);
  return fetcher(url.toString(), { ...init, redirect: "manual" });
}
