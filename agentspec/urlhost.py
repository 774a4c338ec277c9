"""A URL's host and port as the runtime sees them: a URL string in, the WHATWG URL parser's host and port out.

The runtime reads URLs with the WHATWG `URL` class, which canonicalizes hosts: lower case, IPv6 literals
compressed (`[0:0::1]` is `[::1]`), IPv4 written in any of its number forms (`0x7f.1`, `2130706433`) as dotted
decimal, the scheme's default port as no port. Python's `urlsplit` keeps the host as written, so the policy
evaluator and the guard's Python mirror go through `authority` here to compare hosts as the runtime does.
https://url.spec.whatwg.org/#host-parsing
"""

from __future__ import annotations

import functools
import ipaddress
import re

DEFAULT_PORT = {"http": 80, "https": 443}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


class BadUrl(ValueError):
    """The WHATWG parser would throw on this URL."""


def _ipv4_number(part: str) -> int | None:
    """One part of an IPv4 address in decimal, 0x-hex or 0-octal; None when it is not a number."""
    radix = 10
    if part[:2].lower() == "0x":
        part, radix = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, radix = part[1:], 8
    if part == "":
        return 0
    digits = {10: "0123456789", 16: "0123456789abcdefABCDEF", 8: "01234567"}[radix]
    if any(c not in digits for c in part):
        return None
    return int(part, radix)


def _ends_in_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    if last != "" and last.isascii() and last.isdigit():
        return True
    return last[:2].lower() == "0x" and _ipv4_number(last) is not None


def _ipv4(host: str) -> str:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4 or any(p == "" for p in parts):
        raise BadUrl(host)
    numbers = [_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        raise BadUrl(host)
    ns = [n for n in numbers if n is not None]
    if any(n > 255 for n in ns[:-1]) or ns[-1] >= 256 ** (5 - len(ns)):
        raise BadUrl(host)
    value = ns[-1] + sum(n * 256 ** (3 - i) for i, n in enumerate(ns[:-1]))
    return str(ipaddress.IPv4Address(value))


def canonical_host(raw: str) -> str:
    """The WHATWG serialization of a URL's host (ASCII hosts only: no percent-escapes, no IDNA)."""
    if raw.startswith("["):
        if not raw.endswith("]") or "%" in raw:
            raise BadUrl(raw)
        try:
            return f"[{ipaddress.IPv6Address(raw[1:-1]).compressed}]"
        except ValueError:
            raise BadUrl(raw) from None
    if raw == "" or not raw.isascii() or re.search(r"[\s#%/:<>?@\[\\\]^|]", raw):
        raise BadUrl(raw)
    host = raw.lower()
    return _ipv4(host) if _ends_in_number(host) else host


# `authority` and `_entry` are pure functions of a string, and a review or a simulation decides
# thousands of calls over a few hundred URLs and allowlist entries: each string is read once.
@functools.lru_cache(maxsize=65536)
def authority(url: str) -> tuple[str, str, str, int | None, bool]:
    """(scheme, host, port text, effective port, has userinfo) of an absolute URL, as `new URL(url)` sees it.

    The port text is empty when the URL names none or names the scheme's default; the effective port is the
    named one or the scheme's default (None for a scheme without one). Raises BadUrl where `new URL` throws.
    """
    m = _SCHEME.match(url)
    if m is None:
        raise BadUrl(url)
    scheme = m.group(1).lower()
    rest = url[m.end() :]
    if not rest.startswith("//"):
        raise BadUrl(url)
    auth = re.split(r"[/?#]", rest[2:], maxsplit=1)[0]
    userinfo, _, hostport = auth.rpartition("@")
    has_userinfo = userinfo not in ("", ":") and auth.count("@") > 0
    if hostport.startswith("["):
        close = hostport.find("]")
        host_raw, port_part = (hostport[: close + 1], hostport[close + 1 :]) if close >= 0 else (hostport, "")
        if port_part and not port_part.startswith(":"):
            raise BadUrl(url)
        port_raw = port_part[1:] if port_part else ""
    else:
        host_raw, _, port_raw = hostport.partition(":")
        if ":" in port_raw:
            raise BadUrl(url)
    if port_raw and not port_raw.isdigit():
        raise BadUrl(url)
    host = canonical_host(host_raw)
    port = int(port_raw) if port_raw else None
    if port is not None and port > 65535:
        raise BadUrl(url)
    default = DEFAULT_PORT.get(scheme)
    if port == default:
        port = None
    return scheme, host, "" if port is None else str(port), port if port is not None else default, has_userinfo


@functools.lru_cache(maxsize=65536)
def _entry(raw: str) -> tuple[str, str | None] | None:
    """An allowlist entry (`host` or `host:port`, IPv6 in brackets) as guard.ts `parseEntry` reads it."""
    m = re.match(r"^(\[[0-9a-f:.]+\]|[^\s:/?#@\[\]]+)(?::(\d{1,5}))?$", raw.strip(), re.IGNORECASE)
    if m is None:
        return None
    return m.group(1).lower(), None if m.group(2) is None else str(int(m.group(2)))


def host_allowed(allowed: list[str], url: str) -> bool:
    """`isHostAllowed` of guard.ts: exact host after the URL parser's canonicalization; an entry with a port
    matches only that port (the scheme's default when the URL names none). False for a URL `new URL` rejects."""
    try:
        _, host, _, port, _ = authority(url)
    except BadUrl:
        return False
    effective = "" if port is None else str(port)
    for raw in allowed:
        entry = _entry(raw)
        if entry is not None and entry[0] == host and (entry[1] is None or entry[1] == effective):
            return True
    return False


def outbound_allowed(allowed: list[str], url: str) -> bool:
    """`checkOutbound` of guard.ts does not throw: a parseable http(s) URL without userinfo to an allowed host."""
    try:
        scheme, _, _, _, userinfo = authority(url)
    except BadUrl:
        return False
    return scheme in ("http", "https") and not userinfo and host_allowed(allowed, url)
