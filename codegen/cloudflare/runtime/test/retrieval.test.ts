// The retrieval index role (retrieval.ts) and artifacts (artifacts.ts) through real objects of the test Worker:
// FTS5 in the Durable Object's SQLite, the local vector table behind the stand-in embeddings endpoint, tenants
// apart, and a turn whose tool result is kept as an artifact then found from another session.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { artifactKey, listArtifacts, readArtifact, tenantPrefix } from "../artifacts";
import { indexObjectName, sessionObjectName } from "../names";
import { ftsQuery } from "../retrieval";
import type { TurnRequest } from "../session";
import { policy, type TestEnv } from "./worker";

const testEnv = env as unknown as TestEnv;
let n = 0;

function index(tenant: string) {
  return testEnv.SESSION.getByName(indexObjectName(tenant, "docs"));
}

const doc = (ref: string, title: string, text: string) => ({ ref: `sha256:${ref.padStart(64, "0")}`, title,
  tool: "fetch_doc", text });

describe("a tenant's index", () => {
  it("runs FTS5 in the object's SQLite: BM25-ranked keyword hits with snippets", async () => {
    const tenant = `t-fts-${++n}`;
    await index(tenant).indexArtifact("docs", tenant, doc("1", "Engines", "The motor engine of the automobile"));
    await index(tenant).indexArtifact("docs", tenant, doc("2", "Bread", "Bread and more bread from the bakery"));
    const hits = await index(tenant).searchIndex("docs", tenant, "bread", 5, "keyword");
    expect(hits.map((h) => h.ref)).toEqual([doc("2", "", "").ref]);
    expect(hits[0]).toMatchObject({ title: "Bread", via: "keyword" });
    expect(hits[0]!.score).toBeGreaterThan(0);
    expect(hits[0]!.snippet).toContain("bread");
    // Query syntax in the user's text is quoted, never run: no FTS5 error for quotes, dashes or `NEAR`.
    expect(await index(tenant).searchIndex("docs", tenant, 'bread" OR -NEAR(x', 5, "keyword")).toHaveLength(1);
    expect(ftsQuery('a "b" c-d')).toBe('"a" OR "b" OR "c" OR "d"');
    expect(ftsQuery("!!!")).toBeNull();
  });

  it("finds by meaning through the embeddings endpoint, and fuses both rankings", async () => {
    const tenant = `t-sem-${++n}`;
    await index(tenant).indexArtifact("docs", tenant, doc("3", "Cars", "the car and its engine"));
    await index(tenant).indexArtifact("docs", tenant, doc("4", "Sea", "fish of the ocean"));
    expect(await index(tenant).searchIndex("docs", tenant, "automobile motor", 5, "keyword")).toEqual([]);
    const semantic = await index(tenant).searchIndex("docs", tenant, "automobile motor", 5, "semantic");
    expect(semantic[0]).toMatchObject({ ref: doc("3", "", "").ref, via: "semantic" });
    expect(semantic[0]!.score).toBeGreaterThan(semantic[1]?.score ?? 0);
    const both = await index(tenant).searchIndex("docs", tenant, "salmon ocean fish", 5, "both");
    expect(both[0]).toMatchObject({ ref: doc("4", "", "").ref, via: "both" });
  });

  it("keeps a document once, and never answers another tenant", async () => {
    const a = `t-a-${++n}`;
    const b = `t-b-${n}`;
    expect(await index(a).indexArtifact("docs", a, doc("5", "Kitten", "a kitten"))).toMatchObject({ added: true });
    expect(await index(a).indexArtifact("docs", a, doc("5", "Kitten", "a kitten"))).toMatchObject({ added: false });
    expect(await index(b).searchIndex("docs", b, "kitten", 5, "both")).toEqual([]);
    expect(await index(a).indexStats("docs")).toMatchObject({ docs: 1 });
  });
});

function turnReq(tenant: string, session: string, input: string): TurnRequest {
  return { tenant, session, workflow: "research", input, affinity: session, traceId: crypto.randomUUID(),
    colo: "local" };
}

describe("artifacts of a turn", () => {
  it("keeps a tool's text masked in R2, gives the model the projection and a reference, and traces it", async () => {
    const tenant = `t-art-${++n}`;
    const stub = testEnv.SESSION.getByName(sessionObjectName(tenant, "s1"));
    const out = await stub.turn(turnReq(tenant, "s1", "fetch doc cars"));
    expect(out.ok).toBe(true);
    if (!out.ok) return;
    const read = JSON.parse(out.output.replace(/^read: /, "")) as { title: string; artifact: { ref: string; bytes: number } };
    expect(Object.keys(read)).toEqual(["title", "artifact"]);
    expect(read.title).toBe("Doc cars");
    expect(out.decisions.map((d) => d.action)).toContain("artifact.keep:artifacts");
    const key = artifactKey(tenant, read.artifact.ref)!;
    expect(key.startsWith(tenantPrefix(tenant))).toBe(true);
    const body = await (await testEnv.ARTIFACTS.get(key))!.text();
    expect(body).toContain("automobile engine");
    expect(body).not.toContain("ann@example.com");
    expect(body).not.toContain("555 0100");
    // Content-addressed: the key is the SHA-256 of the masked body.
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)));
    expect(read.artifact.ref).toBe(`sha256:${Array.from(digest, (x) => x.toString(16).padStart(2, "0")).join("")}`);
    const { turns } = (await stub.traces(0)) as unknown as { turns: { tools: Record<string, unknown>[] }[] };
    expect(turns[0]!.tools[0]!["artifact"]).toMatchObject({ store: "artifacts", key, ref: read.artifact.ref,
      bytes: body.length, indexed: ["docs"] });
    // The admin reads stay in the tenant's prefix.
    expect((await listArtifacts(testEnv, policy, tenant)).map((a) => a.ref)).toEqual([read.artifact.ref]);
    expect((await readArtifact(testEnv, policy, tenant, read.artifact.ref))!.body).toBe(body);
    expect(await readArtifact(testEnv, policy, `${tenant}-other`, read.artifact.ref)).toBeNull();
  });

  it("a later session of the tenant finds the document by keyword and by meaning; another tenant does not", async () => {
    const tenant = `t-find-${++n}`;
    await testEnv.SESSION.getByName(sessionObjectName(tenant, "s1")).turn(turnReq(tenant, "s1", "fetch doc cars"));
    const later = testEnv.SESSION.getByName(sessionObjectName(tenant, "s2"));
    const byWord = await later.turn(turnReq(tenant, "s2", "search engine"));
    const byMeaning = await later.turn(turnReq(tenant, "s2", "meaning vehicle motor"));
    for (const out of [byWord, byMeaning]) {
      expect(out.ok).toBe(true);
      if (!out.ok) return;
      const { results } = JSON.parse(out.output.replace(/^read: /, "")) as { results: { title: string }[] };
      expect(results.map((r) => r.title)).toEqual(["Doc cars"]);
      expect(out.decisions.map((d) => [d.action, d.rule])).toContainEqual(["index.search:docs", "indexes.allow"]);
    }
    const other = `${tenant}-x`;
    const theirs = await testEnv.SESSION.getByName(sessionObjectName(other, "s1")).turn(turnReq(other, "s1", "search engine"));
    expect(theirs.ok && JSON.parse(theirs.output.replace(/^read: /, ""))).toEqual({ results: [] });
  });

  it("keeps the artifact when an index cannot take it, and leaves the index without a half-written document", async () => {
    const tenant = `t-down-${++n}`;
    const stub = testEnv.SESSION.getByName(sessionObjectName(tenant, "s1"));
    const out = await stub.turn(turnReq(tenant, "s1", "fetch doc down"));
    expect(out.ok).toBe(true);
    if (!out.ok) return;
    const read = JSON.parse(out.output.replace(/^read: /, "")) as { artifact: { ref: string } };
    expect(await testEnv.ARTIFACTS.get(artifactKey(tenant, read.artifact.ref)!)).not.toBeNull();
    const { turns } = (await stub.traces(0)) as unknown as { turns: { tools: Record<string, unknown>[] }[] };
    expect(turns[0]!.tools[0]!["artifact"]).toMatchObject({ indexed: ["docs: error"] });
    // Embedded before anything is written: neither the documents table nor the full-text table has it.
    expect(await index(tenant).indexStats("docs")).toMatchObject({ docs: 0 });
    expect(await index(tenant).searchIndex("docs", tenant, "kitten", 5, "keyword")).toEqual([]);
  });

  it("gives the model neither body nor reference when the artifact cannot be kept, and records the failure", async () => {
    const tenant = `t-lost-${++n}`;
    const stub = testEnv.SESSION.getByName(sessionObjectName(tenant, "s1"));
    const out = await stub.turn(turnReq(tenant, "s1", "fetch lost cars"));
    expect(out.ok).toBe(true);
    if (!out.ok) return;
    expect(JSON.parse(out.output.replace(/^read: /, ""))).toEqual(
      { error: "the tool answered, but its result could not be kept" });
    expect(out.output).not.toContain("automobile");
    expect(out.decisions.map((d) => [d.action, d.decision, d.rule])).toContainEqual(
      ["artifact.keep:lost", "failed", "artifact.error"]);
  });

  it("denies a search of an index the workflow does not allow", async () => {
    const tenant = `t-deny-${++n}`;
    const req = { ...turnReq(tenant, "s1", "search engine"), workflow: "triage" };
    const out = await testEnv.SESSION.getByName(sessionObjectName(tenant, "s1")).turn(req);
    expect(out.ok).toBe(true);
    if (!out.ok) return;
    expect(out.decisions.map((d) => [d.action, d.decision, d.rule])).toContainEqual(
      ["index.search:docs", "deny", "indexes.allowlist"]);
  });
});
