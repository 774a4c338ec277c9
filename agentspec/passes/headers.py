"""Headers and auth: the resolved model in, E0101 (a header twice), E0306, E0307, E0309 and W0308 out.

The runtime reads the caller's bearer token from `authorization` and sets `idempotency-key` and
`content-type` on tool requests itself; the platform owns `host`, `cookie`, `cf-*` and the
hop-by-hop headers. A spec header named like one of those would be shadowed or would shadow.
The agent's token map and admin secret authenticate callers and its signing key vouches for its audit log:
none may reach a tool, nor serve two of those roles; and a secret sent over plain `http://` crosses the
network in the clear.
"""

from __future__ import annotations

from collections.abc import Iterator

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, report
from agentspec.resolve import Resolution, placeholders, url_parts

# Headers of an incoming request the runtime or the platform already gives a meaning to.
_PLATFORM = frozenset({"host", "cookie", "content-length", "content-type", "transfer-encoding", "connection"})
_PLATFORM |= frozenset({"upgrade", "te", "trailer", "keep-alive", "proxy-authorization", "x-forwarded-for"})
_PLATFORM |= frozenset({"x-real-ip", "forwarded"})
REQUEST_RESERVED = _PLATFORM | {"authorization"}
# Headers of a tool request the runtime sets itself (after the spec's), or that fetch does not let a Worker set.
TOOL_RESERVED = frozenset({"idempotency-key", "content-type", "host", "content-length", "transfer-encoding"})
TOOL_RESERVED |= frozenset({"connection", "upgrade", "te", "trailer", "keep-alive"})


def reserved(name: str, table: frozenset[str]) -> bool:
    lower = name.lower()
    return lower in table or lower.startswith("cf-")


def check(res: Resolution) -> Iterator[Diagnostic]:
    yield from _request_headers(res)
    for tool in res.tools.values():
        yield from _tool_headers(tool)
        yield from _secrets_over_http(res, tool)
    yield from _identities_holding_auth(res)


def _request_headers(res: Resolution) -> Iterator[Diagnostic]:
    body = res.root.body
    if isinstance(body, m.Agent):
        for tenant in body.of(m.Tenant)[:1]:
            if reserved(tenant.header.value, REQUEST_RESERVED):
                yield report("E0306", "request", tenant.header.span, header=tenant.header.value.lower(), what="tenant")
    for site in res.sites:
        affinity = site.node.first(m.Affinity)
        if affinity and reserved(affinity.header.value, REQUEST_RESERVED):
            header = affinity.header.value.lower()
            yield report("E0306", "request", affinity.header.span, header=header, what="session affinity")


def _tool_headers(tool: m.Tool) -> Iterator[Diagnostic]:
    headers = tool.first(m.Headers)
    seen: dict[str, m.Header] = {}
    for header in headers.headers if headers else ():
        lower = header.name.value.lower()
        if lower in seen:
            first = seen[lower].name.span
            notes = [f"first given at {first}"]
            yield report("E0101", "header-twice", header.name.span, notes=notes, header=lower, tool=tool.name.value)
            continue
        seen[lower] = header
        if reserved(lower, TOOL_RESERVED):
            yield report("E0306", "tool", header.name.span, header=lower, tool=tool.name.value)


def _secrets_over_http(res: Resolution, tool: m.Tool) -> Iterator[Diagnostic]:
    endpoint = tool.first(m.Endpoint)
    headers = tool.first(m.Headers)
    parsed = url_parts(endpoint.url.value) if endpoint else None
    if endpoint is None or headers is None or parsed is None or parsed[0].scheme != "http":
        return
    for header in headers.headers:
        read = [p for p in placeholders(header.value.value) if p.startswith("secret.")]
        if read:
            secret = read[0].removeprefix("secret.")
            yield report("W0308", "plain-http", endpoint.url.span, tool=tool.name.value, secret=secret)
            return


def _identities_holding_auth(res: Resolution) -> Iterator[Diagnostic]:
    body = res.root.body
    if not isinstance(body, m.Agent):
        return
    auth_secrets: dict[str, str] = {}
    for auth in body.of(m.Auth)[:1]:
        auth_secrets[auth.tokens_secret.value] = "token map"
        if auth.admin_secret:
            auth_secrets[auth.admin_secret.value] = "admin secret"
    for audit in body.of(m.Audit)[:1]:
        secret = audit.signing_secret
        if secret.value in auth_secrets:
            # One secret cannot be both a token map (JSON) and a signing key; and a caller holding the admin token
            # would hold the key that vouches for the audit log.
            yield report("E0309", "shared", secret.span, secret=secret.value, other=auth_secrets[secret.value])
        else:
            auth_secrets[secret.value] = "signing key"
    for identity in res.identities.values():
        for secret in identity.secrets:
            if secret.value in auth_secrets:
                what = auth_secrets[secret.value]
                yield report("E0307", "auth", secret.span, identity=identity.name.value, secret=secret.value, what=what)
