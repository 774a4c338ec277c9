// Shared helper: local runs send a tool's (or a webhook's) request to the loopback origin standing in for its
// host, from the `TOOL_ORIGINS` JSON map. Used by the session's tool calls, task steps and the SLO webhook.

import { type FetchLike } from "./guard";

let parsedOrigins: { source: string; origins: Record<string, string> } | null = null;

/** A fetch that sends a tool's request to the loopback origin standing in for its host (local runs). */
export function toolFetcher(env: { TOOL_ORIGINS?: string }): FetchLike | undefined {
  if (!env.TOOL_ORIGINS) return undefined;
  // Parsed once per isolate and value, not once per turn.
  if (parsedOrigins?.source !== env.TOOL_ORIGINS) {
    parsedOrigins = { source: env.TOOL_ORIGINS, origins: JSON.parse(env.TOOL_ORIGINS) as Record<string, string> };
  }
  const { origins } = parsedOrigins;
  return (input, init) => {
    const url = new URL(input);
    const origin = origins[url.host] ?? origins[url.hostname];
    return fetch(origin ? new URL(url.pathname + url.search, origin).toString() : input, init);
  };
}
