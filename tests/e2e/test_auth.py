"""Authentication and tenancy, over HTTP against the running runtime."""

from __future__ import annotations

from .conftest import Runtime


def test_healthz_needs_no_token(playground: Runtime) -> None:
    with playground.client() as c:
        r = c.get("/healthz")
    assert r.status_code == 200
    assert r.json()["spec_hash"].startswith("sha256:")


def test_missing_token_is_401(playground: Runtime) -> None:
    with playground.client() as c:
        r = c.post("/v1/sessions/s1/turns", json={"workflow": "chat", "input": "hi"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


def test_bad_token_is_401(playground: Runtime) -> None:
    r = playground.turn("s1", "chat", "hi", headers={"authorization": "Bearer nope"})
    assert r.status_code == 401


def test_token_for_another_tenant_is_403(playground: Runtime) -> None:
    headers = {"authorization": "Bearer token-acme", "x-tenant-id": "globex"}
    with playground.client() as c:
        r = c.post("/v1/sessions/s1/turns", json={"workflow": "chat", "input": "hi"}, headers=headers)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden_tenant"


def test_traces_need_the_admin_token(playground: Runtime) -> None:
    with playground.client() as c:
        r = c.get("/v1/traces", params={"session": "s1"}, headers=playground.headers("acme"))
    assert r.status_code == 401


def test_tenants_sharing_a_session_id_never_see_each_other(playground: Runtime) -> None:
    assert playground.turn("shared-id", "chat", "acme speaking", tenant="acme").status_code == 200
    second = playground.turn("shared-id", "chat", "globex speaking", tenant="globex")
    assert second.status_code == 200
    assert second.json()["turn"] == 1  # a fresh session, not acme's second turn
    acme = playground.traces("shared-id", tenant="acme")["records"]
    globex = playground.traces("shared-id", tenant="globex")["records"]
    assert {r["tenant"] for r in acme} == {"acme"}
    assert {r["tenant"] for r in globex} == {"globex"}
    # The model never saw acme's words in globex's session.
    last = playground.model.requests[-1].body["messages"]
    assert not any("acme speaking" in str(m.get("content")) for m in last)


def test_an_idle_session_expires_after_its_ttl(playground: Runtime) -> None:
    import time

    assert playground.turn("short-lived", "brief", "remember the word heron").status_code == 200
    second = playground.turn("short-lived", "brief", "what was the word?")
    assert second.status_code == 200
    assert any("heron" in str(m.get("content")) for m in playground.model.requests[-1].body["messages"])
    time.sleep(2.5)  # the workflow's ttl is 2s
    third = playground.turn("short-lived", "brief", "and now?")
    assert third.status_code == 200
    assert third.json()["turn"] == 3  # the turn count and the decision chain go on
    assert [d["rule"] for d in third.json()["decisions"]][:2] == ["route.risk.low", "session.ttl"]
    sent = playground.model.requests[-1].body["messages"]
    assert not any("heron" in str(m.get("content")) for m in sent)  # the conversation does not


def test_traces_of_an_unknown_session_are_404(playground: Runtime) -> None:
    with playground.client() as c:
        r = c.get("/v1/traces", params={"session": "never-used"}, headers=playground.admin_headers())
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_session"
