"""Artifacts and retrieval in workerd (issue 15): a tool's fetched document is kept as an artifact (masked, in R2,
under the tenant's prefix) and indexed; the model reads a projection and a reference, not the body; a later turn
in another session of the same tenant finds it by keyword and by meaning (the scripted model's embeddings
endpoint); a task step finds it too; another tenant never does; and no raw PII is in the artifact, the index, or
any file the runtime persisted (R2 blobs, every object's SQLite, the engine's store).

tests/e2e/specs/retrieval.agent: `fetch_document` keeps its `text` in `artifacts`; index `library` is keyword and
semantic (bge-small, 384 dimensions); workflows `research` (turns) and `digest` (a `search` step).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from agentspec.workbench.scripted_model import tool_results

from .conftest import SPECS, Runtime, _runtime, persisted_rows
from .stubs import Cue, ToolAnswer

CHAT = "@cf/test/low-primary"
EMAIL, PHONE = "jane.roe@example.org", "+1 415 555 2671"
RAW = [EMAIL, PHONE, "4155552671", "jane.roe"]
BODY = (
    "A study of automobile engines and their efficiency. "
    + f"Correspondence: {EMAIL}, telephone {PHONE}. "
    + "Combustion, torque and gearing are measured on a test bench. " * 400
)


@pytest.fixture(scope="module")
def library(tmp_path_factory, model_stub, tool_stub) -> Iterator[Runtime]:
    yield from _runtime(SPECS / "retrieval.agent", tmp_path_factory, model_stub, tool_stub)


def leaks(data: bytes) -> list[str]:
    return [raw for raw in RAW if raw.encode() in data]


def chats(library: Runtime) -> list[dict[str, Any]]:
    """The chat completion requests the model stub saw (it also answers the index's embeddings requests)."""
    return [r.body for r in library.model.requests if r.path.endswith("/chat/completions")]


def fetch(library: Runtime, session: str, tenant: str = "acme") -> dict[str, Any]:
    """A turn in which the model fetches the document: answers what the model read back from the tool."""
    library.tools.answer("/v1/extract", ToolAnswer(body={"url": "https://papers.example.com/engines",
                                                          "title": "Automobile engines", "text": BODY}))  # fmt: skip
    library.model.cue(CHAT, Cue(tool_calls=[("fetch_document", {"url": "https://papers.example.com/engines"})]),
                      Cue(text="kept it"))  # fmt: skip
    r = library.turn(session, "research", "fetch the engines paper", tenant=tenant)
    assert r.status_code == 200, r.text
    (read,) = tool_results(chats(library)[-1]["messages"])
    return read


def search(library: Runtime, session: str, query: str, mode: str, tenant: str = "acme") -> list[dict[str, Any]]:
    library.model.reset()
    library.model.cue(CHAT, Cue(tool_calls=[("library", {"query": query, "mode": mode})]), Cue(text="found"))
    r = library.turn(session, "research", f"what do we have on {query}?", tenant=tenant)
    assert r.status_code == 200, r.text
    (answer,) = tool_results(chats(library)[-1]["messages"])
    return answer["results"]


def test_a_fetched_document_is_kept_indexed_and_found_by_its_tenant_only(library: Runtime) -> None:
    read = fetch(library, "s-fetch")
    # The model read the projection and the reference, never the body (nor its PII).
    assert set(read) == {"url", "title", "artifact"}
    ref = read["artifact"]["ref"]
    assert ref.startswith("sha256:") and read["artifact"]["store"] == "artifacts"
    prompt = json.dumps(chats(library)[-1])
    assert "Combustion, torque" not in prompt and leaks(prompt.encode()) == []

    # The turn's trace: key, size, bytes kept out of the prompt, the index it went to.
    (tool,) = library.traces("s-fetch")["turns"][0]["tools"]
    artifact = tool["artifact"]
    assert artifact["key"] == f"artifacts/acme/{ref.removeprefix('sha256:')}"
    assert artifact["bytes"] == len(BODY.replace(EMAIL, "[email]").replace(PHONE, "[phone]").encode())
    assert artifact["kept_out_bytes"] > 20_000 and artifact["indexed"] == ["library"]

    # A later turn in another session of the same tenant finds it by keyword...
    by_word = search(library, "s-later", "combustion torque", "keyword")
    assert [h["ref"] for h in by_word] == [ref]
    assert by_word[0]["title"] == "Automobile engines" and "combustion" in by_word[0]["snippet"].lower()
    assert leaks(json.dumps(by_word).encode()) == []
    # ...and by meaning: no word of this query is in the document, so keyword search finds nothing.
    assert search(library, "s-later", "vehicle motor", "keyword") == []
    by_meaning = search(library, "s-later", "vehicle motor", "semantic")
    assert [h["ref"] for h in by_meaning] == [ref] and by_meaning[0]["via"] == "semantic"
    # Both rankings together (the default): found by both.
    assert search(library, "s-later", "automobile engines", "both")[0]["via"] == "both"

    # Another tenant never sees it, by any ranking.
    for mode in ("keyword", "semantic", "both"):
        assert search(library, "g-1", "automobile engine", mode, tenant="globex") == []

    # The embeddings endpoint was sent masked text only.
    embedded = [r.body for r in library.model.http.requests if r.path.endswith("/embeddings")]
    assert leaks(json.dumps(embedded).encode()) == []


def test_admin_routes_list_and_read_a_tenants_artifacts(library: Runtime) -> None:
    ref = fetch(library, "s-admin")["artifact"]["ref"]
    with library.client() as c:
        listed = c.get("/v1/artifacts", headers=library.admin_headers("acme"))
        assert listed.status_code == 200, listed.text
        entry = next(a for a in listed.json()["artifacts"] if a["ref"] == ref)
        assert entry["store"] == "artifacts" and entry["tool"] == "fetch_document"
        assert entry["title"] == "Automobile engines"
        body = c.get(f"/v1/artifacts/{ref}", headers=library.admin_headers("acme"))
        assert body.status_code == 200 and "automobile engines" in body.text
        assert "[email]" in body.text and leaks(body.content) == []
        # Not another tenant's, not without the admin token, not a malformed reference.
        assert c.get(f"/v1/artifacts/{ref}", headers=library.admin_headers("globex")).status_code == 404
        assert c.get("/v1/artifacts", headers=library.admin_headers("globex")).json() == {"artifacts": []}
        assert c.get("/v1/artifacts", headers=library.headers("acme")).status_code == 401
        bad = c.get("/v1/artifacts/sha256:xyz", headers=library.admin_headers("acme"))
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_artifact"


def test_a_task_step_searches_its_tenants_index(library: Runtime) -> None:
    ref = fetch(library, "s-task")["artifact"]["ref"]
    library.model.cue(CHAT, Cue(text="a digest"))
    found: dict[str, dict[str, Any]] = {}
    tasks: dict[str, dict[str, Any]] = {}
    params = {"topic": "combustion engines", "url": "https://papers.example.com/engines"}
    for tenant in ("acme", "globex"):
        with library.client() as c:
            r = c.post("/v1/tasks", json={"workflow": "digest", "params": params}, headers=library.headers(tenant))
        assert r.status_code == 202, r.text
        task = library.wait_task(r.json()["task_id"], tenant=tenant)
        assert task["status"] == "complete", task
        found[tenant], tasks[tenant] = task["output"]["results"]["recall"], task
    assert found["acme"]["count"] >= 1 and found["acme"]["top_ref"] == ref
    assert json.loads(found["acme"]["results_json"])[0]["ref"] == ref
    assert found["globex"]["count"] == 0 and found["globex"]["top_ref"] == ""
    # The call step kept the same document as an artifact of each tenant: its result keeps every field (masked
    # in the answer) and gains the reference; its step record keeps the projection, not the body.
    for tenant, task in tasks.items():
        read = task["output"]["results"]["read"]
        assert read["artifact_ref"] == ref and "Combustion, torque" in read["text"]
        (step,) = [s for s in task["steps"] if s["name"] == "read"]
        assert step["artifact"]["key"] == f"artifacts/{tenant}/{ref.removeprefix('sha256:')}"
        assert "text" not in step["result"] and step["result"]["artifact"]["ref"] == ref
    prompts = [m["content"] for body in chats(library) for m in body["messages"] if m["role"] == "user"]
    assert any(p.startswith("Digest of 1 document(s):") for p in prompts), prompts


def test_no_raw_pii_in_artifacts_index_or_any_persisted_file(library: Runtime) -> None:
    fetch(library, "s-disk")
    files = [p for p in library.state.rglob("*") if p.is_file()]
    # The index's SQLite (FTS5 and the local vectors) is among the files scanned, and holds the masked text.
    indexed = [rows for _, rows in persisted_rows(library, "SELECT body FROM idx_fts") if rows]
    assert indexed and all("[email]" in body and "[phone]" in body for rows in indexed for (body,) in rows)
    vectors = [rows for _, rows in persisted_rows(library, "SELECT count(*) FROM idx_vectors") if rows and rows[0][0]]
    assert vectors
    # The artifact's R2 blob is among them too, masked.
    blobs = [p for p in files if "r2" in p.relative_to(library.state).parts]
    kept = [p for p in blobs if b"Combustion, torque" in p.read_bytes()]
    assert kept and all(b"[email]" in p.read_bytes() for p in kept), [str(p) for p in blobs][:5]
    found = {str(p.relative_to(library.state)): leaks(p.read_bytes()) for p in files}
    assert {k: v for k, v in found.items() if v} == {}
