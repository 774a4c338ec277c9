"""Hypothesis strategies for spec text: `specs()` draws random `.agent` files that parse (not that check).

Every construct of grammar/agentspec.lark is reachable: agents and libraries, imports, every tier, tool, workflow,
step and SLO clause, optional parts present and absent, trailing commas, empty lists and shapes. On top of that the
text is made awkward on purpose: comments between any two tokens, odd but legal white space (tabs, form feeds,
CRLF, newlines inside clauses, no space around punctuation), keywords used as names, and strings full of quotes,
backslashes, escapes, unicode and `${`.

A spec is drawn as a list of tokens, then joined by drawn separators, so the grammar's shape is easy to read here.
"""

from __future__ import annotations

import re

from hypothesis import strategies as st

from agentspec.parse import GRAMMAR

Draw = st.DrawFn
Tokens = list[str]

# Keywords are contextual (see the grammar's header): every word the grammar quotes is also a legal name.
KEYWORDS = sorted({*re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', GRAMMAR.read_text()), "p95", "ms", "_"})

# Punctuation needs no white space around it; any other pair of neighbouring tokens does.
PUNCTUATION = frozenset({"{", "}", "[", "]", ",", ":", "=", "->", "?"})

names = st.one_of(st.sampled_from(KEYWORDS), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True))

_DIGITS = r"[0-9]{1,4}(\.[0-9]{1,3})?"
values = st.one_of(
    st.from_regex(rf"-?{_DIGITS}(ms|s|m|h|d)", fullmatch=True),
    st.from_regex(rf"-?{_DIGITS}%", fullmatch=True),
    st.from_regex(rf"\${_DIGITS}", fullmatch=True),
    st.from_regex(r"[0-9]{1,5}(KiB|MiB|GiB|B)", fullmatch=True),
    st.from_regex(rf"-?{_DIGITS}", fullmatch=True),
)

# Characters a string's value is made of: anything but lone surrogates, weighted towards the troublesome ones.
_string_chars = st.one_of(
    st.sampled_from(['"', "\\", "/", "$", "{", "}", "${", "//", "\n", "\t", "\r", "\x00", "\u2028", "é", "😀", " "]),
    st.characters(exclude_categories=["Cs"]),
)


@st.composite
def string_literals(draw: Draw) -> str:
    """A STRING token: a drawn value, each character written raw or escaped, as JSON allows."""
    out = ['"']
    for char in draw(st.lists(_string_chars, max_size=12)):
        for c in char:
            out.append(draw(st.sampled_from(_spellings(c))))
    if draw(st.integers(0, 20)) == 0:
        out.append("\\ud800")  # a lone surrogate, only expressible as an escape
    out.append('"')
    return "".join(out)


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _spellings(c: str) -> list[str]:
    """How one character of a string's value may be written between the quotes."""
    code = ord(c)
    if code > 0xFFFF:  # astral: raw, or a surrogate pair of escapes
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        return [c, f"\\u{high:04x}\\u{low:04X}"]
    escaped = [f"\\u{code:04x}", f"\\u{code:04X}"]
    if c in _SHORT_ESCAPES:
        escaped.append(_SHORT_ESCAPES[c])
    # Raw control characters are left out: the parser rejects even a raw tab (see test_fmt.py).
    if c in '"\\' or code < 0x20:
        return escaped
    return [c, *escaped]


comment_texts = st.lists(
    st.one_of(
        st.sampled_from([*'"\\/{}[]$ ', "//", "${", "é", "😀", "\t"]),
        st.characters(exclude_categories=["Cs", "Cc"]),
    ),
    max_size=12,
).map(lambda parts: "//" + "".join(parts))


# ───────────────────────────── grammar ─────────────────────────────


def _comma_list(draw: Draw, items: list[Tokens]) -> Tokens:
    """Items separated by commas, with an optional trailing comma when there is at least one."""
    out: Tokens = []
    for i, item in enumerate(items):
        if i:
            out.append(",")
        out += item
    if items and draw(st.booleans()):
        out.append(",")
    return out


def _name_list(draw: Draw) -> Tokens:
    return ["[", *_comma_list(draw, [[n] for n in draw(st.lists(names, max_size=4))]), "]"]


def _string_list(draw: Draw) -> Tokens:
    return ["[", *_comma_list(draw, [[s] for s in draw(st.lists(string_literals(), max_size=3))]), "]"]


def _shape(draw: Draw) -> Tokens:
    fields = [
        [
            draw(names),
            *(["?"] if draw(st.booleans()) else []),
            ":",
            draw(st.sampled_from(["string", "int", "number", "bool"])),
        ]
        for _ in range(draw(st.integers(0, 4)))
    ]
    return ["{", *_comma_list(draw, fields), "}"]


def _optional(draw: Draw, tokens: Tokens) -> Tokens:
    return tokens if draw(st.booleans()) else []


def _block(header: Tokens, clauses: list[Tokens]) -> Tokens:
    return [*header, "{", *(t for clause in clauses for t in clause), "}"]


def _risk(draw: Draw) -> str:
    return draw(st.sampled_from(["low", "medium", "high"]))


def _cmp(draw: Draw) -> str:
    return draw(st.sampled_from(["<", "<=", ">", ">="]))


def _percentile(draw: Draw) -> str:
    return draw(st.from_regex(r"p[0-9]{1,2}(\.[0-9]{1,2})?", fullmatch=True))


@st.composite
def tier_clauses(draw: Draw) -> Tokens:
    kind = draw(st.sampled_from(["primary", "fallback", "price", "timeout", "clears"]))
    if kind == "primary":
        return ["primary", draw(string_literals())]
    if kind == "fallback":
        return ["fallback", *draw(st.lists(string_literals(), min_size=1, max_size=3))]
    if kind == "price":
        return ["price", "in", draw(values), "out", draw(values), "per", "Mtok"]
    if kind == "timeout":
        return ["timeout", draw(values)]
    return ["clears", "risk", _risk(draw)]


@st.composite
def tiers(draw: Draw) -> Tokens:
    return _block(["model", "tier", draw(names)], draw(st.lists(tier_clauses(), max_size=5)))


@st.composite
def identities(draw: Draw) -> Tokens:
    return ["identity", draw(names), "{", "secrets", *_name_list(draw), "}"]


@st.composite
def tool_clauses(draw: Draw) -> Tokens:
    kind = draw(
        st.sampled_from(
            [
                "endpoint",
                "risk",
                "read_only",
                "idempotency",
                "timeout",
                "compensate",
                "as",
                "args",
                "returns",
                "headers",
                "max",
            ]
        )
    )
    match kind:
        case "endpoint":
            return [draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])), draw(string_literals())]
        case "risk":
            return ["risk", _risk(draw)]
        case "read_only":
            return ["read_only"]
        case "idempotency":
            return ["idempotency", "key", draw(string_literals())]
        case "timeout":
            return ["timeout", draw(values)]
        case "compensate" | "as":
            return [kind, draw(names)]
        case "args" | "returns":
            return [kind, *_shape(draw)]
        case "headers":
            pairs = [[draw(string_literals()), ":", draw(string_literals())] for _ in range(draw(st.integers(0, 3)))]
            return ["headers", "{", *_comma_list(draw, pairs), "}"]
        case _:
            return ["max", "response", draw(values)]


@st.composite
def tools(draw: Draw) -> Tokens:
    return _block(["tool", draw(names)], draw(st.lists(tool_clauses(), max_size=8)))


@st.composite
def steps(draw: Draw) -> Tokens:
    kind = draw(st.sampled_from(["call", "call_with", "infer", "sleep", "wait"]))
    if kind == "call":
        action = ["call", draw(names)]
    elif kind == "call_with":
        args = [[draw(names), ":", draw(string_literals())] for _ in range(draw(st.integers(0, 3)))]
        action = ["call", draw(names), "with", "{", *_comma_list(draw, args), "}"]
    elif kind == "infer":
        action = ["infer", "tier", draw(names), draw(string_literals())]
    elif kind == "sleep":
        action = ["sleep", draw(values)]
    else:
        action = ["wait", "event", draw(string_literals())]
    options: Tokens = []
    for option in draw(st.lists(st.sampled_from(["retry", "backoff", "timeout"]), max_size=3)):
        if option == "backoff":
            options += ["backoff", draw(st.sampled_from(["constant", "linear", "exponential"]))]
            options += _optional(draw, [draw(values)])
        else:
            options += [option, draw(values)]
    return ["step", draw(names), "=", *action, *options]


@st.composite
def slo_clauses(draw: Draw) -> Tokens:
    kind = draw(st.sampled_from(["latency", "ttft", "success", "cost", "cache", "denied", "tokens", "webhook"]))
    match kind:
        case "latency" | "ttft":
            return [kind, _percentile(draw), _cmp(draw), draw(values)]
        case "success" | "denied":
            return [kind, _cmp(draw), draw(values)]
        case "cost":
            return ["cost", "per", "task", _cmp(draw), draw(values)]
        case "cache":
            return ["cache", "hit", _cmp(draw), draw(values), *_optional(draw, ["alert", "drop", draw(values)])]
        case "tokens":
            return ["tokens", "per", "task", "in", draw(values), "out", draw(values)]
        case _:
            return ["webhook", draw(string_literals())]


@st.composite
def workflow_clauses(draw: Draw) -> Tokens:
    kind = draw(
        st.sampled_from(
            ["route", "tools", "outbound", "policy", "affinity", "checkpoint", "mask", "pattern", "step", "step", "slo"]
        )
    )
    match kind:
        case "route":
            return ["route", "risk", _risk(draw), "->", "tier", draw(names)]
        case "tools":
            return ["tools", "allow", *_name_list(draw)]
        case "outbound":
            return ["outbound", "allow", *_string_list(draw)]
        case "policy":
            return ["policy", draw(st.sampled_from(["enforce", "shadow"]))]
        case "affinity":
            return ["session", "affinity", "header", draw(string_literals()), *_optional(draw, ["ttl", draw(values)])]
        case "checkpoint":
            head = ["checkpoint", "every", draw(values), "turns", "summarize", "with", "tier", draw(names)]
            return head + _optional(draw, ["into", draw(names)])
        case "mask":
            return ["pii", "mask", *_name_list(draw), "before", "persist"]
        case "pattern":
            return ["pii", "pattern", draw(names), draw(string_literals())]
        case "step":
            return draw(steps())
        case _:
            return _block(["slo"], draw(st.lists(slo_clauses(), max_size=5)))


@st.composite
def workflows(draw: Draw) -> Tokens:
    return _block(["workflow", draw(names), "class", draw(names)], draw(st.lists(workflow_clauses(), max_size=8)))


@st.composite
def header_items(draw: Draw) -> Tokens:
    kind = draw(st.sampled_from(["owner", "auth", "tenant", "store"]))
    match kind:
        case "owner":
            return ["owner", draw(string_literals())]
        case "auth":
            return ["auth", "bearer", "secret", draw(names), *_optional(draw, ["admin", "secret", draw(names)])]
        case "tenant":
            return ["tenant", "header", draw(string_literals())]
        case _:
            return ["store", draw(st.sampled_from(["kv", "r2"])), draw(names)]


@st.composite
def file_tokens(draw: Draw) -> Tokens:
    """The tokens of one file, before separators are drawn."""
    out: Tokens = []
    for path in draw(st.lists(string_literals(), max_size=3)):
        out += ["import", path]
    if draw(st.booleans()):
        items = draw(st.lists(st.one_of(header_items(), tiers(), identities(), tools(), workflows()), max_size=7))
        return out + _block(["agent", draw(names), "version", draw(values)], items)
    items = draw(st.lists(st.one_of(tiers(), identities(), tools()), max_size=6))
    return out + _block(["library", draw(names)], items)


# ───────────────────────────── layout ─────────────────────────────

_SPACES = [" ", " ", " ", " ", "  ", "\t", "\n", "\n  ", "\n\n", "\n\n\n    ", " \t\n", "\r\n", "\f", "\n \n"]


@st.composite
def separators(draw: Draw, required: bool, last: bool = False) -> str:
    """White space and comments between two tokens; `required` when both are words."""
    parts: list[str] = []
    if draw(st.integers(0, 9)) == 0:  # a comment, own-line or trailing depending on what came before
        parts += [draw(st.sampled_from(["", " ", "\n", "\n\n  "])), draw(comment_texts)]
        if not last or draw(st.booleans()):  # only the end of the file may end a comment without a newline
            parts.append(draw(st.sampled_from(["\n", "\n\n", "\r\n", "\n  "])))
        return "".join(parts)
    if required or draw(st.booleans()):
        return draw(st.sampled_from(_SPACES))
    return ""


@st.composite
def specs(draw: Draw) -> str:
    """The text of one random `.agent` file that parses without errors."""
    tokens = draw(file_tokens())
    out = [draw(separators(required=False))]
    for i, token in enumerate(tokens):
        if i:
            words = tokens[i - 1] not in PUNCTUATION and token not in PUNCTUATION
            out.append(draw(separators(required=words)))
        out.append(token)
    out.append(draw(separators(required=False, last=True)))
    return "".join(out)
