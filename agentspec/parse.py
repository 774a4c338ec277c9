"""Parse the text of one `.agent` file into the syntax model (agentspec.model), with spans.

Text in, `ParseResult` out: a `SpecFile` (or None when the text does not parse), the
diagnostics met on the way (syntax errors phrased in the language's terms, bad string
escapes) and the comments, which the formatter puts back.
"""

from __future__ import annotations

import gc
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, error

GRAMMAR = Path(__file__).resolve().parent.parent / "grammar" / "agentspec.lark"
if not GRAMMAR.exists():  # installed as a wheel: the grammar ships inside the package
    GRAMMAR = Path(__file__).resolve().parent / "grammar" / "agentspec.lark"


@cache
def parser() -> Lark:
    """The one LALR parser, its tables cached on disk so a CLI run does not rebuild them."""
    cache_dir = Path.home() / ".cache" / "agentspec"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache_path: str | bool = str(cache_dir / "grammar.lark.cache")
    except OSError:
        cache_path = False
    return Lark.open(
        str(GRAMMAR),
        parser="lalr",
        strict=True,
        propagate_positions=True,
        maybe_placeholders=True,
        cache=cache_path,
    )


@dataclass(frozen=True)
class Comment:
    line: int
    column: int
    text: str
    own_line: bool  # nothing but white space before it on its line


@dataclass
class ParseResult:
    file: m.SpecFile | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)


def parse(text: str, path: str = "<input>") -> ParseResult:
    """Parse one file's text. Never raises on bad input: problems come back as diagnostics."""
    lark = parser()
    # Parsing allocates hundreds of thousands of objects that all stay alive; the cyclic
    # garbage collector would rescan them again and again (4x slower on a 50,000-line spec).
    collecting = gc.isenabled()
    gc.disable()
    try:
        try:
            tree = lark.parse(text)
        except UnexpectedInput as exc:
            return ParseResult(None, [_syntax_error(exc, text, path)], _comments(text))
        transformer = ToModel(path)
        try:
            spec = transformer.transform(tree)
        except VisitError as exc:  # pragma: no cover - a transformer bug, not bad input
            raise exc.orig_exc from exc
        return ParseResult(spec, transformer.diagnostics, _comments(text))
    finally:
        if collecting:
            gc.enable()


_COMMENT_SCAN = re.compile(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*')


def _comments(text: str) -> list[Comment]:
    """Comments, found by a regex scan that skips strings: cheaper than lexer callbacks,
    which Lark's cached parser does not take."""
    out = []
    line, counted = 1, 0  # newlines counted up to offset `counted`, so the scan stays linear
    for match in _COMMENT_SCAN.finditer(text):
        if not match.group().startswith("//"):
            continue
        start = match.start()
        line += text.count("\n", counted, start)
        counted = start
        line_start = text.rfind("\n", 0, start) + 1
        out.append(
            Comment(
                line=line,
                column=start - line_start + 1,
                text=match.group().rstrip(),
                own_line=not text[line_start:start].strip(),
            )
        )
    return out


# ───────────────────────────── spans and leaves ─────────────────────────────


def _node(cls, **fields):
    """Build a model node without validation: the transformer passes well-typed values, and
    validating a 50,000-line spec's half a million nodes costs seconds (BaseModel.model_construct
    does the same, more slowly, by also looking up defaults: every field is passed here)."""
    node = object.__new__(cls)
    object.__setattr__(node, "__dict__", fields)
    object.__setattr__(node, "__pydantic_fields_set__", set(fields))
    object.__setattr__(node, "__pydantic_extra__", None)
    object.__setattr__(node, "__pydantic_private__", None)
    return node


_STRING = json.JSONDecoder(strict=False)  # a raw tab inside a string is text, not an error

_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_SIZE_BYTES = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
_DURATION_RE = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_SIZE_RE = re.compile(r"([0-9]+)(KiB|MiB|GiB|B)")


class ToModel(Transformer):
    """One method per grammar rule, each returning one node of agentspec.model."""

    def __init__(self, path: str) -> None:
        super().__init__(visit_tokens=False)
        self.path = path
        self.diagnostics: list[Diagnostic] = []

    # helpers ----------------------------------------------------------------

    def _span(self, meta) -> m.Span:
        if meta.empty:
            return _node(m.Span, file=self.path, line=1, column=1, end_line=1, end_column=1, start=0, end=0)
        return _node(
            m.Span,
            file=self.path,
            line=meta.line,
            column=meta.column,
            end_line=meta.end_line,
            end_column=meta.end_column,
            start=meta.start_pos,
            end=meta.end_pos,
        )

    def _tspan(self, token: Token) -> m.Span:
        return _node(
            m.Span,
            file=self.path,
            line=token.line,
            column=token.column,
            end_line=token.end_line,
            end_column=token.end_column,
            start=token.start_pos,
            end=token.end_pos,
        )

    def _name(self, token: Token) -> m.Name:
        return _node(m.Name, span=self._tspan(token), value=str(token))

    def _word(self, token: Token) -> m.Word:
        return _node(m.Word, span=self._tspan(token), value=str(token))

    def _str(self, token: Token) -> m.Str:
        raw = str(token)
        try:
            value = raw[1:-1] if "\\" not in raw else _STRING.decode(raw)
        except ValueError:
            bad = re.search(r'\\(u(?![0-9a-fA-F]{4})|[^"\\/bfnrtu])', raw)
            escape = bad.group() if bad else "\\"
            self.diagnostics.append(
                error(
                    "E0004",
                    self._tspan(token),
                    f"invalid escape `{escape}` in a string",
                    "invalid escape",
                    help="write a literal backslash as `\\\\`",
                )
            )
            value = raw[1:-1]
        return _node(m.Str, span=self._tspan(token), value=value)

    # files ------------------------------------------------------------------

    @v_args(meta=True)
    def start(self, meta, children):
        *imports, body = children
        return _node(m.SpecFile, span=self._span(meta), path=self.path, imports=tuple(imports), body=body)

    @v_args(meta=True)
    def import_decl(self, meta, children):
        return _node(m.Import, span=self._span(meta), path=self._str(children[0]))

    @v_args(meta=True)
    def agent(self, meta, children):
        name, version, *items = children
        return _node(m.Agent, span=self._span(meta), name=self._name(name), version=version, items=tuple(items))

    @v_args(meta=True)
    def library(self, meta, children):
        name, *items = children
        return _node(m.Library, span=self._span(meta), name=self._name(name), items=tuple(items))

    # agent header -----------------------------------------------------------

    @v_args(meta=True)
    def owner(self, meta, children):
        return _node(m.Owner, span=self._span(meta), value=self._str(children[0]))

    @v_args(meta=True)
    def auth(self, meta, children):
        tokens, admin = children
        return _node(
            m.Auth,
            span=self._span(meta),
            tokens_secret=self._name(tokens),
            admin_secret=self._name(admin) if admin is not None else None,
        )

    @v_args(meta=True)
    def tenant(self, meta, children):
        return _node(m.Tenant, span=self._span(meta), header=self._str(children[0]))

    @v_args(meta=True)
    def store(self, meta, children):
        kind, name = children
        return _node(m.Store, span=self._span(meta), kind=self._word(kind), name=self._name(name))

    # tiers ------------------------------------------------------------------

    @v_args(meta=True)
    def tier(self, meta, children):
        name, *clauses = children
        return _node(m.Tier, span=self._span(meta), name=self._name(name), clauses=tuple(clauses))

    @v_args(meta=True)
    def primary(self, meta, children):
        return _node(m.Primary, span=self._span(meta), model=self._str(children[0]))

    @v_args(meta=True)
    def fallback(self, meta, children):
        return _node(m.Fallback, span=self._span(meta), models=tuple(self._str(c) for c in children))

    @v_args(meta=True)
    def price(self, meta, children):
        return _node(m.Price, span=self._span(meta), input=children[0], output=children[1])

    @v_args(meta=True)
    def clears(self, meta, children):
        return _node(m.Clears, span=self._span(meta), risk=self._word(children[0]))

    # identities -------------------------------------------------------------

    @v_args(meta=True)
    def identity(self, meta, children):
        name, secrets = children
        return _node(m.Identity, span=self._span(meta), name=self._name(name), secrets=secrets)

    # tools ------------------------------------------------------------------

    @v_args(meta=True)
    def tool(self, meta, children):
        name, *clauses = children
        return _node(m.Tool, span=self._span(meta), name=self._name(name), clauses=tuple(clauses))

    @v_args(meta=True)
    def endpoint(self, meta, children):
        method, url = children
        return _node(m.Endpoint, span=self._span(meta), method=self._word(method), url=self._str(url))

    @v_args(meta=True)
    def risk(self, meta, children):
        return _node(m.Risk, span=self._span(meta), level=self._word(children[0]))

    @v_args(meta=True)
    def read_only(self, meta, children):
        return _node(m.ReadOnly, span=self._span(meta))

    @v_args(meta=True)
    def idempotency(self, meta, children):
        return _node(m.Idempotency, span=self._span(meta), key=self._str(children[0]))

    @v_args(meta=True)
    def compensate(self, meta, children):
        return _node(m.Compensate, span=self._span(meta), tool=self._name(children[0]))

    @v_args(meta=True)
    def run_as(self, meta, children):
        return _node(m.RunAs, span=self._span(meta), identity=self._name(children[0]))

    @v_args(meta=True)
    def args(self, meta, children):
        return _node(m.Args, span=self._span(meta), fields=children[0])

    @v_args(meta=True)
    def returns(self, meta, children):
        return _node(m.Returns, span=self._span(meta), fields=children[0])

    @v_args(meta=True)
    def headers(self, meta, children):
        return _node(m.Headers, span=self._span(meta), headers=tuple(c for c in children if c is not None))

    @v_args(meta=True)
    def header(self, meta, children):
        name, value = children
        return _node(m.Header, span=self._span(meta), name=self._str(name), value=self._str(value))

    @v_args(meta=True)
    def max_response(self, meta, children):
        return _node(m.MaxResponse, span=self._span(meta), size=children[0])

    def shape(self, children):
        return tuple(c for c in children if c is not None)

    @v_args(meta=True)
    def field(self, meta, children):
        name, optional, kind = children
        return _node(
            m.Field, span=self._span(meta), name=self._name(name), optional=optional is not None, type=self._word(kind)
        )

    # workflows --------------------------------------------------------------

    @v_args(meta=True)
    def workflow(self, meta, children):
        name, klass, *clauses = children
        return _node(
            m.Workflow, span=self._span(meta), name=self._name(name), klass=self._name(klass), clauses=tuple(clauses)
        )

    @v_args(meta=True)
    def route(self, meta, children):
        risk, tier = children
        return _node(m.Route, span=self._span(meta), risk=self._word(risk), tier=self._name(tier))

    @v_args(meta=True)
    def tools_allow(self, meta, children):
        return _node(m.ToolsAllow, span=self._span(meta), tools=children[0])

    @v_args(meta=True)
    def outbound_allow(self, meta, children):
        return _node(m.OutboundAllow, span=self._span(meta), hosts=children[0])

    @v_args(meta=True)
    def policy(self, meta, children):
        return _node(m.Policy, span=self._span(meta), mode=self._word(children[0]))

    @v_args(meta=True)
    def affinity(self, meta, children):
        header, ttl = children
        return _node(m.Affinity, span=self._span(meta), header=self._str(header), ttl=ttl)

    @v_args(meta=True)
    def checkpoint(self, meta, children):
        every, tier, store = children
        return _node(
            m.Checkpoint,
            span=self._span(meta),
            every=every,
            tier=self._name(tier),
            store=self._name(store) if store is not None else None,
        )

    @v_args(meta=True)
    def pii_mask(self, meta, children):
        return _node(m.PiiMask, span=self._span(meta), classes=children[0])

    @v_args(meta=True)
    def pii_pattern(self, meta, children):
        name, regex = children
        return _node(m.PiiPattern, span=self._span(meta), name=self._name(name), regex=self._str(regex))

    @v_args(meta=True)
    def step(self, meta, children):
        name, action, *options = children
        return _node(m.Step, span=self._span(meta), name=self._name(name), action=action, clauses=tuple(options))

    @v_args(meta=True)
    def call(self, meta, children):
        tool, *args = children
        # `call t` has no children after the name; `call t with {}` has one placeholder.
        parsed = tuple(a for a in args if a is not None) if args else None
        return _node(m.Call, span=self._span(meta), tool=self._name(tool), args=parsed)

    @v_args(meta=True)
    def step_arg(self, meta, children):
        name, template = children
        return _node(m.StepArg, span=self._span(meta), name=self._name(name), template=self._str(template))

    @v_args(meta=True)
    def infer(self, meta, children):
        tier, prompt = children
        return _node(m.Infer, span=self._span(meta), tier=self._name(tier), prompt=self._str(prompt))

    @v_args(meta=True)
    def sleep(self, meta, children):
        return _node(m.Sleep, span=self._span(meta), duration=children[0])

    @v_args(meta=True)
    def wait_event(self, meta, children):
        return _node(m.WaitEvent, span=self._span(meta), event=self._str(children[0]))

    @v_args(meta=True)
    def retry(self, meta, children):
        return _node(m.Retry, span=self._span(meta), count=children[0])

    @v_args(meta=True)
    def backoff(self, meta, children):
        strategy, delay = children
        return _node(m.Backoff, span=self._span(meta), strategy=self._word(strategy), delay=delay)

    @v_args(meta=True)
    def timeout(self, meta, children):
        return _node(m.Timeout, span=self._span(meta), duration=children[0])

    # service levels ---------------------------------------------------------

    @v_args(meta=True)
    def slo(self, meta, children):
        return _node(m.Slo, span=self._span(meta), clauses=tuple(children))

    @v_args(meta=True)
    def latency(self, meta, children):
        pct, cmp, bound = children
        return _node(
            m.Latency, span=self._span(meta), percentile=self._word(pct), comparator=self._word(cmp), bound=bound
        )

    @v_args(meta=True)
    def ttft(self, meta, children):
        pct, cmp, bound = children
        return _node(m.Ttft, span=self._span(meta), percentile=self._word(pct), comparator=self._word(cmp), bound=bound)

    @v_args(meta=True)
    def success(self, meta, children):
        cmp, bound = children
        return _node(m.Success, span=self._span(meta), comparator=self._word(cmp), bound=bound)

    @v_args(meta=True)
    def cost(self, meta, children):
        cmp, bound = children
        return _node(m.Cost, span=self._span(meta), comparator=self._word(cmp), bound=bound)

    @v_args(meta=True)
    def cache_hit(self, meta, children):
        cmp, bound, drop = children
        return _node(m.CacheHit, span=self._span(meta), comparator=self._word(cmp), bound=bound, alert_drop=drop)

    @v_args(meta=True)
    def denied(self, meta, children):
        cmp, bound = children
        return _node(m.Denied, span=self._span(meta), comparator=self._word(cmp), bound=bound)

    @v_args(meta=True)
    def tokens(self, meta, children):
        return _node(m.Tokens, span=self._span(meta), input=children[0], output=children[1])

    @v_args(meta=True)
    def webhook(self, meta, children):
        return _node(m.Webhook, span=self._span(meta), url=self._str(children[0]))

    # shared pieces ----------------------------------------------------------

    def name_list(self, children):
        return tuple(self._name(c) for c in children if c is not None)

    def string_list(self, children):
        return tuple(self._str(c) for c in children if c is not None)

    def value(self, children):
        token: Token = children[0]
        text = str(token)
        span = self._tspan(token)
        kind = token.type
        if kind == "DURATION":
            number, unit = _DURATION_RE.fullmatch(text).groups()  # type: ignore[union-attr]
            return _node(m.Quantity, span=span, kind="duration", value=float(number) * _DURATION_MS[unit], text=text)
        if kind == "PERCENT":
            return _node(m.Quantity, span=span, kind="percent", value=float(text[:-1]), text=text)
        if kind == "MONEY":
            return _node(m.Quantity, span=span, kind="money", value=float(text[1:]), text=text)
        if kind == "SIZE":
            number, unit = _SIZE_RE.fullmatch(text).groups()  # type: ignore[union-attr]
            return _node(m.Quantity, span=span, kind="size", value=float(int(number) * _SIZE_BYTES[unit]), text=text)
        return _node(m.Quantity, span=span, kind="number", value=float(text), text=text)


# ───────────────────────────── syntax errors ─────────────────────────────

# How a terminal reads in a message. Keywords read as themselves, in backticks.
_PHRASES = {
    "NAME": "a name",
    "STRING": "a string in double quotes",
    "RISK": "a risk level (`low`, `medium` or `high`)",
    "HTTP_METHOD": "an HTTP method (`GET`, `POST`, `PUT`, `PATCH` or `DELETE`)",
    "STORE_KIND": "a store kind (`kv` or `r2`)",
    "POLICY_MODE": "a policy mode (`enforce` or `shadow`)",
    "BACKOFF": "a backoff strategy (`constant`, `linear` or `exponential`)",
    "FIELD_TYPE": "a field type (`string`, `int`, `number` or `bool`)",
    "PERCENTILE": "a percentile such as `p95`",
    "COMPARATOR": "a comparison (`<`, `<=`, `>` or `>=`)",
    "OPTIONAL": "`?`",
    "$END": "the end of the file",
}
_VALUE_TERMINALS = {"DURATION", "PERCENT", "MONEY", "SIZE", "NUMBER"}

# Which kind of value the keyword just before it asks for, to say "expected a duration
# such as `30s`" rather than listing five token kinds.
_VALUE_AFTER = [
    (
        re.compile(r"\b(timeout|ttl|sleep|backoff\s+\w+|latency\s+p[\d.]+\s*[<>]=?|ttft\s+p[\d.]+\s*[<>]=?)\s*$"),
        "a duration such as `30s`",
    ),
    (re.compile(r"\b(success\s*[<>]=?|hit\s*[<>]=?|drop|denied\s*[<>]=?)\s*$"), "a percentage such as `99.5%`"),
    (re.compile(r"\btask\s*[<>]=?\s*$"), "an amount of money such as `$0.02`"),
    (re.compile(r"\bresponse\s*$"), "a size such as `512KiB`"),
    (re.compile(r"\b(retry|every|version|in|out)\s*$"), "a number"),
]


def _describe_expected(expected: set[str], before: str) -> str:
    lark = parser()
    patterns = {t.name: t.pattern.value for t in lark.terminals}
    parts: list[str] = []
    if expected & _VALUE_TERMINALS:
        for pattern, phrase in _VALUE_AFTER:
            if pattern.search(before):
                parts.append(phrase)
                break
        else:
            parts.append("a value such as `30s`, `99.5%`, `$0.02` or `3`")
    keywords = []
    for name in sorted(expected - _VALUE_TERMINALS):
        if name in _PHRASES:
            parts.append(_PHRASES[name])
        elif name in patterns:
            keywords.append(f"`{patterns[name]}`")
    if keywords:
        if len(keywords) > 10:
            keywords = [*keywords[:10], "..."]
        if len(keywords) == 1:
            parts.append(keywords[0])
        elif len(keywords) == 2:
            parts.append(f"{keywords[0]} or {keywords[1]}")
        else:
            parts.append("one of " + ", ".join(keywords))
    if not parts:
        return "something else"
    return " or ".join(parts)


_UNITS_HELP = "durations are written `500ms`, `30s`, `5m`, `1h` or `2d`; sizes `512KiB`; percentages `99.5%`"


def _syntax_error(exc: UnexpectedInput, text: str, path: str) -> Diagnostic:
    if (isinstance(exc, UnexpectedToken) and exc.token.type == "$END") or isinstance(exc, UnexpectedEOF):
        # Point at the end of the last line that has anything on it: that line is shown.
        body = text.rstrip()
        pos = len(body)
        line = body.count("\n") + 1
        column = pos - (body.rfind("\n") + 1) + 1
        span = m.Span(file=path, line=line, column=column, end_line=line, end_column=column + 1, start=pos, end=pos)
        expected = set(getattr(exc, "expected", None) or getattr(exc, "accepts", None) or ())
        if "RBRACE" in expected:
            return error(
                "E0001",
                span,
                "unexpected end of file, expected `}` to close a block",
                "file ends here",
                help="every block opened with `{` needs its closing `}`",
            )
        what = _describe_expected(expected, text)
        return error("E0001", span, f"unexpected end of file, expected {what}", "file ends here")
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        start = token.start_pos or 0
        if token.type == "NAME" and start > 0 and text[start - 1].isdigit():
            # `5sec`: the lexer read a number and then a name; report the whole glued word.
            number = re.search(r"[-$]?[0-9.]+$", text[:start])
            begin = number.start() if number else start
            word = text[begin : token.end_pos or start]
            column = (token.column or 1) - (start - begin)
            span = m.Span(
                file=path,
                line=token.line,
                column=column,
                end_line=token.line,
                end_column=column + len(word),
                start=begin,
                end=begin + len(word),
            )
            return error(
                "E0002", span, f"`{_clip(word)}` is not a value the language knows", "unknown unit", help=_UNITS_HELP
            )
        span = m.Span(
            file=path,
            line=token.line,
            column=token.column,
            end_line=token.end_line or token.line,
            end_column=token.end_column or token.column + 1,
            start=token.start_pos or 0,
            end=token.end_pos or 0,
        )
        expected = set(exc.accepts or exc.expected or ())
        what = _describe_expected(expected, text[: token.start_pos or 0])
        found = str(token)
        label = "unexpected here"
        return error(
            "E0001",
            span,
            f"expected {what}, found `{_clip(found)}`",
            label,
            help=_syntax_help(expected, found, text[: token.start_pos or 0]),
        )
    assert isinstance(exc, UnexpectedCharacters)
    pos = exc.pos_in_stream or 0
    char = text[pos] if pos < len(text) else ""
    line, column = exc.line, exc.column
    rest = text[pos:].split("\n", 1)[0]
    if char == '"':
        length = len(rest)
        message, label, help = "unterminated string", "string starts here", 'close the string with `"` on the same line'
    elif char.isdigit() or char in "-$":
        token = re.match(r"[-$]?[0-9.]+[A-Za-z_%]*", rest)
        word = token.group() if token else char
        length = len(word)
        message = f"`{_clip(word)}` is not a value the language knows"
        label = "unknown unit"
        help = _UNITS_HELP
    else:
        length = 1
        shown = char if char.isprintable() else repr(char)[1:-1]
        message, label, help = f"unexpected character `{shown}`", "not part of the language", None
        allowed = set(exc.allowed or ())
        if allowed:
            help = f"expected {_describe_expected(allowed, text[:pos])} here"
    span = m.Span(
        file=path, line=line, column=column, end_line=line, end_column=column + length, start=pos, end=pos + length
    )
    return error("E0002", span, message, label, help=help)


def _syntax_help(expected: set[str], found: str, before: str) -> str | None:
    if "RBRACE" in expected and len(expected) > 3:
        return "each clause starts with a keyword; a block ends with `}`"
    if found.isdigit() and expected & _VALUE_TERMINALS:
        return None
    return None


def _clip(text: str, limit: int = 40) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."
