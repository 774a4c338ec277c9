"""The runtime's PII masker, in Python: text (or a JSON value) and a workflow's `pii` rules in, the same text
with each email, phone number, payment card, IP address, IBAN and custom-pattern match replaced by `[email]`,
`[phone]`, `[card]`, `[ip]`, `[iban]` or `[<pattern name>]` out.

It is a port of `codegen/cloudflare/runtime/pii.ts` with the same semantics, so the workbench can show what
the runtime will store. The patterns are ECMAScript regular expressions run by `regress`, so a custom pattern
means here what it means in workerd; `tests/test_pii_parity.py` and `runtime/test/pii_parity.test.ts` check
both implementations against one generated fixture.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import regress
from pydantic import BaseModel, ConfigDict

BUILTIN_CLASSES = ("email", "phone", "card", "ip", "iban")


class PiiError(ValueError):
    """A class the rules name is unknown, or a custom pattern is not a usable regular expression."""


class PiiRules(BaseModel):
    """A workflow's `pii` block: the classes to mask and its own named patterns (masked only when named)."""

    model_config = ConfigDict(frozen=True)

    classes: tuple[str, ...] = ()
    patterns: Mapping[str, str] = {}


def rules_for(policy: Mapping[str, Any], workflow: str) -> PiiRules:
    """The rules of `workflow` in the policy tables (`agentspec.policy.tables`); none for an unknown workflow."""
    entry = policy.get("workflows", {}).get(workflow)
    if entry is None:
        return PiiRules()
    pii = entry.get("pii") or {}
    return PiiRules(classes=tuple(pii.get("classes", ())), patterns=dict(pii.get("patterns", {})))


# Internationalized too: letters, marks and digits of any script in the local part and the domain labels
# (RFC 6531/IDNA), a top-level domain of letters or its punycode (`xn--`) form. Run in Unicode mode (`u`).
EMAIL = (
    r"[\p{L}\p{M}\p{N}._%+-]+@[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?"
    r"(?:\.[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?)*\.(?:xn--[A-Za-z0-9-]+|\p{L}{2,})(?![\p{L}\p{M}\p{N}])"
)
# What people type between digit groups besides ASCII: NFKC has already made full-width digits, `＠` and most
# Unicode spaces ASCII; the remaining spaces and dashes are folded, invisible characters dropped, and a run of
# separators between two digits becomes one (`-` if it has a dash), so "4111 – 1111" reads as "4111-1111".
SPACES = "[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]"
DASHES = "[\u2010-\u2015\u2212\ufe58\ufe63\uff0d]"
INVISIBLE = "[\u00ad\u200b-\u200d\u2060\ufeff]"
REPEATED = r"(?<=\d)[ -]{2,}(?=\d)"
CARD_RUN = r"(?<!\d)\d(?:[ .-]?\d){12,}(?!\d)"
PHONE = (
    r"(?<![\w+])(?:"
    r"\+\d{1,4}(?:[ .-]?\(\d{1,4}\)|[ .-]?\d{1,4}){1,6}"
    r"|(?:\(\d{2,5}\)[ .-]?|\d{2,5}[ .-])\d{2,4}(?:[ .-]\d{2,4}){0,3}"
    r")(?![\w]|[ .-]\d)"
)
IPV4 = r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])"
IPV6 = (
    r"(?<![\w:])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
    r"|(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4}"
    r"|::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4})(?![\w:])"
)
IBAN = r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"
NOT_A_PHONE = (
    r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$",  # ISO-ish dates
    r"^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$",  # dd/mm/yyyy, mm-dd-yy
    r"^\d{1,3}(?:\.\d{1,3}){3}$",  # IPv4 addresses
)


@lru_cache(maxsize=256)
def _compiled(source: str, flags: str = "") -> regress.Regex:
    return regress.Regex(source, flags)


def _replace(text: str, source: str, replacement: Callable[[str], str], flags: str = "") -> str:
    """`text.replace(/source/g, fn)` as JavaScript does it: every non-overlapping match, left to right.

    regress reports UTF-8 byte offsets, so the text is cut as bytes. A lone surrogate cannot be UTF-8, and
    none of the built-in patterns can match one, so such text is masked piece by piece between surrogates."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        pieces: list[str] = []
        start = 0
        for i, ch in enumerate(text):
            if "\ud800" <= ch <= "\udfff":
                pieces.extend((_replace(text[start:i], source, replacement, flags), ch))
                start = i + 1
        pieces.append(_replace(text[start:], source, replacement, flags))
        return "".join(pieces)
    data = text.encode("utf-8")
    out: list[str] = []
    last = 0
    for match in _compiled(source, flags).find_iter(text) or ():
        span = match.range()
        out.append(data[last : span.start].decode("utf-8"))
        out.append(replacement(data[span.start : span.stop].decode("utf-8")))
        last = span.stop
    if last == 0 and not out:
        return text
    out.append(data[last:].decode("utf-8"))
    return "".join(out)


def _constant(label: str) -> Callable[[str], str]:
    return lambda _match: label


def _test(source: str, text: str) -> bool:
    return _compiled(source).find(text) is not None


def iban_valid(candidate: str) -> bool:
    """The ISO 13616 check: move the first four characters to the end, letters to numbers, mod 97 must be 1."""
    compact = candidate.replace(" ", "")
    if len(compact) < 15 or len(compact) > 34:
        return False
    rest = 0
    for ch in compact[4:] + compact[:4]:
        value = str(ord(ch) - 55) if "A" <= ch <= "Z" else ch
        for digit in value:
            rest = (rest * 10 + (ord(digit) - 48)) % 97
    return rest == 1


def luhn_valid(digits: str) -> bool:
    """Luhn checksum over a string of ASCII digits."""
    total = 0
    double = False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if double:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        double = not double
    return len(digits) > 0 and total % 10 == 0


def normalize_for_matching(text: str) -> str:
    """The text the patterns see, and so the text stored: NFKC-normalized, separators folded (see above)."""
    out = _replace(unicodedata.normalize("NFKC", text), INVISIBLE, _constant(""))
    out = _replace(_replace(out, SPACES, _constant(" ")), DASHES, _constant("-"))
    return _replace(out, REPEATED, lambda m: "-" if "-" in m else " ")


def _split_groups(run: str) -> list[str]:
    """`run.split(/([ .-])/)`: digit groups with the single separators between them kept."""
    groups = [""]
    for ch in run:
        if ch in " .-":
            groups.extend((ch, ""))
        else:
            groups[-1] += ch
    return groups


def _mask_cards_in_run(run: str) -> str:
    """Mask the longest Luhn-valid 13-19 digit span (on group boundaries) inside a digit run; repeat on the rest."""
    groups = _split_groups(run)
    digit_groups = list(range(0, len(groups), 2))
    best: tuple[int, int, int] | None = None  # from, to, length
    for a in range(len(digit_groups)):
        digits = ""
        for b in range(a, len(digit_groups)):
            digits += groups[digit_groups[b]]
            if len(digits) > 19:
                break
            if len(digits) >= 13 and luhn_valid(digits) and (best is None or len(digits) > best[2]):
                best = (digit_groups[a], digit_groups[b], len(digits))
    if best is None:
        return run
    before = "".join(groups[: best[0]])
    after = "".join(groups[best[1] + 1 :])
    lead = before[-1:] if before.endswith((" ", ".", "-")) else ""
    trail = after[:1] if after.startswith((" ", ".", "-")) else ""
    head = before[: len(before) - len(lead)]
    tail = after[len(trail) :]
    return (
        (_mask_cards_in_run(head) if head else "")
        + lead
        + "[card]"
        + trail
        + (_mask_cards_in_run(tail) if tail else "")
    )


def _phone(match: str) -> str:
    digits = sum(1 for ch in match if "0" <= ch <= "9")
    if digits < 7 or digits > 15:
        return match
    if any(_test(source, match) for source in NOT_A_PHONE):
        return match
    return "[phone]"


def _custom_pattern(name: str, source: str) -> str:
    try:
        _compiled(source)
    except regress.RegressError as e:
        raise PiiError(f"pii pattern `{name}` is not a valid regular expression: {e}") from None
    if _test(source, ""):
        raise PiiError(f"pii pattern `{name}` matches the empty string")
    return source


def mask(text: str, rules: PiiRules) -> str:
    """Mask PII in `text`, normalized first (`normalize_for_matching`). The custom patterns named in
    `classes` run first (they are the most specific), then email, IBAN, card, IP, phone. A class that is
    neither built in nor a declared pattern raises PiiError rather than silently masking less than the spec
    asked for."""
    custom: list[tuple[str, str]] = []
    for c in rules.classes:
        if c in rules.patterns:
            custom.append((c, rules.patterns[c]))
        elif c not in BUILTIN_CLASSES:
            raise PiiError(f"unknown pii class `{c}`")
    out = normalize_for_matching(text)
    for name, source in custom:
        out = _replace(out, _custom_pattern(name, source), _constant(f"[{name}]"))
    wanted = set(rules.classes)
    if "email" in wanted:
        out = _replace(out, EMAIL, _constant("[email]"), "u")
    if "iban" in wanted:
        out = _replace(out, IBAN, lambda m: "[iban]" if iban_valid(m) else m)
    if "card" in wanted:
        out = _replace(out, CARD_RUN, _mask_cards_in_run)
    if "ip" in wanted:
        out = _replace(_replace(out, IPV4, lambda _m: "[ip]"), IPV6, lambda _m: "[ip]")
    if "phone" in wanted:
        out = _replace(out, PHONE, _phone)
    return out


def mask_deep(value: Any, rules: PiiRules) -> Any:
    """`mask` applied to every string inside a JSON value (object keys are left alone); returns a new value."""
    if isinstance(value, str):
        return mask(value, rules)
    if isinstance(value, list | tuple):
        return [mask_deep(v, rules) for v in value]
    if isinstance(value, dict):
        return {k: mask_deep(v, rules) for k, v in value.items()}
    return value
