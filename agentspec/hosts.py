"""Host forms as the runtime reads them: a URL's host as written in, the WHATWG URL parser's reading out.

Python's `urlsplit` keeps a host as written; the runtime's `new URL()` (WHATWG) rewrites it:
`2130706433`, `0x7f.1` and `0177.0.0.1` are all `127.0.0.1`; `[0:0::1]` is `[::1]`; `:443` on
https is no port at all. A host the two read differently would make the checker, the Python
evaluator and the runtime's allowlist disagree, so the checker accepts only hosts already in
the form WHATWG writes them (`canonical_problem`), and reports the form to write instead.
"""

from __future__ import annotations

import ipaddress
import re

_DNS = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")
_DEFAULT_PORT = {"http": 80, "https": 443}


def _ipv4_number(part: str) -> int | None:
    """One part of a WHATWG IPv4 address (decimal, `0x` hex or `0` octal), or None when it is not a number."""
    if part[:2].lower() == "0x":
        digits, base = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if digits == "":
        return 0
    try:
        return int(digits, base) if re.fullmatch(r"[0-9a-fA-F]+", digits) else None
    except ValueError:
        return None


def ends_in_number(host: str) -> bool:
    """WHATWG's "ends in a number": the last label is decimal digits or `0x` hex, so the host is read as IPv4."""
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]
    last = labels[-1]
    return bool(re.fullmatch(r"[0-9]+", last) or re.fullmatch(r"0[xX][0-9a-fA-F]*", last))


def whatwg_ipv4(host: str) -> str | None:
    """The dotted-decimal address WHATWG reads `host` as, or None when WHATWG refuses it."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]
    if len(parts) > 4 or "" in parts:
        return None
    numbers = [_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    address = values[-1]
    for i, n in enumerate(values[:-1]):
        address += n * 256 ** (3 - i)
    return str(ipaddress.IPv4Address(address))


def canonical_problem(hostname: str) -> tuple[str, str | None] | None:
    """Why a URL's host (lowercase, IPv6 without brackets) is not in the form WHATWG writes it.

    None when it is; otherwise (what is wrong, the form to write or None when WHATWG refuses the host).
    """
    if ":" in hostname:
        try:
            canonical = ipaddress.IPv6Address(hostname).compressed
        except ValueError:
            return "is not an IPv6 address the runtime's URL parser accepts", None
        if "%" in hostname:
            return "has a zone id, which the runtime's URL parser refuses", None
        return (
            None if canonical == hostname else ("is an IPv6 address the runtime writes differently", f"[{canonical}]")
        )
    if ends_in_number(hostname):
        ipv4 = whatwg_ipv4(hostname)
        if ipv4 is None:
            return "ends in a number but is not an IPv4 address the runtime's URL parser accepts", None
        return None if ipv4 == hostname else ("is an IPv4 address in a form the runtime rewrites", ipv4)
    if not _DNS.fullmatch(hostname):
        return "has characters the runtime's URL parser would rewrite", None
    return None


def whatwg_host(scheme: str, hostname: str, port: int | None) -> str:
    """`URL.host` of a canonical host: IPv6 in brackets, the port unless it is the scheme's default."""
    host = f"[{hostname}]" if ":" in hostname else hostname
    return f"{host}:{port}" if port is not None and port != _DEFAULT_PORT.get(scheme) else host
