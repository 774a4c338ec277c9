"""An httpx client for a running runtime's `GET /v1/traces`: base URL, session (or task), tenant and admin token
in, the traces (records oldest first, turn traces) out, stamped with where they came from.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx

from agentspec.trace.schema import SchemaError, Traces, parse


class TraceError(RuntimeError):
    """The runtime did not answer with traces (network error, bad token, unknown session)."""


def answer_detail(response: httpx.Response, tenant_header: str) -> str:
    """A runtime's error answer, as `code: message`, then which CLI flag fixes it when one does: the runtime
    names the HTTP header it wanted, but what the user types is `--tenant-header` (or `--tenant`)."""
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
    detail = f"{code}: {message}"
    if code == "missing_tenant":
        wanted = re.search(r"`([^`]+)`", message)
        flag = f"--tenant-header {wanted.group(1)}" if wanted else "--tenant-header NAME"
        return f"{detail}; pass `{flag}` (the spec's `tenant header`; this pull sent `{tenant_header}`)"
    if code == "unknown_session":
        return f"{detail}; is `--tenant` the session's tenant?"
    return detail


def pull(
    url: str,
    session: str | None,
    tenant: str,
    admin_token: str,
    *,
    task: str | None = None,
    since: int = 0,
    tenant_header: str = "x-tenant-id",
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> Traces:
    """A session's traces, or with `task` (and no session) a task's decision chain."""
    if (session is None) == (task is None):
        raise ValueError("pull one session or one task")
    headers = {"authorization": f"Bearer {admin_token}", tenant_header: tenant}
    scope = {"session": session} if task is None else {"task": task}
    params: dict[str, Any] = {**scope, "since": since}
    try:
        with httpx.Client(base_url=url, timeout=timeout, transport=transport) as client:
            response = client.get("/v1/traces", params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise TraceError(f"cannot reach `{url}`: {exc}") from exc
    if response.status_code != 200:
        detail = answer_detail(response, tenant_header)
        raise TraceError(f"`GET /v1/traces` answered {response.status_code} ({detail})")
    try:
        traces = parse(response.text)
    except SchemaError as exc:
        raise TraceError(f"`GET /v1/traces` answered something else: {exc}") from exc
    traces["source"] = {
        "url": url,
        **scope,
        "tenant": tenant,
        "since": since,
        "pulled_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return traces
