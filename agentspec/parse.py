"""Parse the text of one `.agent` file into the syntax model (agentspec.model), with spans.

Text in, `ParseResult` out: a `SpecFile` (or None when the text does not parse), the
diagnostics met on the way (syntax errors phrased in the language's terms, bad string
escapes) and the comments, which the formatter puts back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from pydantic import BaseModel

from agentspec import lalr
from agentspec import model as m
from agentspec.diagnostics import Diagnostic, error
from agentspec.gcpause import paused
from agentspec.lex import SpecLexer

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
        keep_all_tokens=True,  # spans from tokens; see ToModel
        maybe_placeholders=True,
        lexer=SpecLexer,
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
    with paused():
        transformer = ToModel(path)
        spec = lalr.run(lark, text, transformer)
        if spec is not None:
            return ParseResult(spec, transformer.diagnostics, _comments(text))
        # Lark's own parser, for the syntax error it raises (or, should the fast path ever refuse
        # what Lark accepts, for the model).
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


# The four slots every pydantic model instance has, set through their descriptors (cheaper than
# object.__setattr__ by name, half a million times).
_SLOTS = BaseModel.__dict__
_set_dict = _SLOTS["__dict__"].__set__
_set_fields_set = _SLOTS["__pydantic_fields_set__"].__set__
_set_extra = _SLOTS["__pydantic_extra__"].__set__
_set_private = _SLOTS["__pydantic_private__"].__set__
_new = object.__new__
_FIELDS_SET: dict[type, set[str]] = {}


def _node(cls, **fields):
    """Build a model node without validation: the transformer passes well-typed values, and
    validating a 50,000-line spec's half a million nodes costs seconds (BaseModel.model_construct
    does the same, more slowly, by also looking up defaults: every field is passed here)."""
    node = _new(cls)
    _set_dict(node, fields)
    # Every node of a class sets the same fields, so they share one set: pydantic only reads it (a
    # model_copy copies it first), and making half a million equal sets costs a tenth of a second.
    names = _FIELDS_SET.get(cls)
    if names is None:
        names = _FIELDS_SET[cls] = set(fields)
    _set_fields_set(node, names)
    _set_extra(node, None)
    _set_private(node, None)
    return node


_STRING = json.JSONDecoder(strict=False)  # a raw tab inside a string is text, not an error

_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_SIZE_BYTES = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
_DURATION_RE = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_SIZE_RE = re.compile(r"([0-9]+)(KiB|MiB|GiB|B)")


# Terminals that carry content. The parser keeps every token (keep_all_tokens) so that a
# node's span can run from its first keyword to its last brace without Lark's
# propagate_positions, which costs more than the whole parse; keywords and punctuation
# are then dropped here, before a rule method sees its children.
_CONTENT = frozenset(
    {
        "NAME", "STRING", "NUMBER", "DURATION", "PERCENT", "MONEY", "SIZE", "PERCENTILE", "COMPARATOR",
        "OPTIONAL", "HTTP_METHOD", "RISK", "STORE_KIND", "POLICY_MODE", "BACKOFF", "FIELD_TYPE",
    }
)  # fmt: skip


class Bracketed(tuple):
    """A bracketed list: a tuple that also knows where its brackets are, for its parent's span."""

    span: m.Span


def _seq(items, span: m.Span) -> tuple:
    seq = Bracketed(items)
    seq.span = span
    return seq


def _rule(method):
    """Give a rule method its span and its content children (keywords and Nones dropped)."""

    def wrapper(self: ToModel, children: list):
        # A rule's first and last children are rarely placeholders (None): look past them only then.
        first = children[0] if children else None
        if first is None:
            first = next((c for c in children if c is not None), None)
        last = children[-1] if children else None
        if last is None:
            last = next((c for c in reversed(children) if c is not None), None)
        kids = [c for c in children if c is not None and not (type(c) is Token and c.type not in _CONTENT)]
        return method(self, self._between(first, last), kids)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


class ToModel(Transformer):
    """One method per grammar rule, each returning one node of agentspec.model."""

    def __init__(self, path: str) -> None:
        super().__init__(visit_tokens=False)
        self.path = path
        self.diagnostics: list[Diagnostic] = []

    # helpers ----------------------------------------------------------------

    def _between(self, first, last) -> m.Span:
        if first is None or last is None:
            return _node(m.Span, file=self.path, line=1, column=1, end_line=1, end_column=1, start=0, end=0)
        a = first.span if not isinstance(first, Token) else None
        b = last.span if not isinstance(last, Token) else None
        return _node(
            m.Span,
            file=self.path,
            line=a.line if a else first.line,
            column=a.column if a else first.column,
            end_line=b.end_line if b else last.end_line,
            end_column=b.end_column if b else last.end_column,
            start=a.start if a else first.start_pos,
            end=b.end if b else last.end_pos,
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

    @_rule
    def start(self, span, kids):
        *imports, body = kids
        return _node(m.SpecFile, span=span, path=self.path, imports=tuple(imports), body=body)

    @_rule
    def import_decl(self, span, kids):
        return _node(m.Import, span=span, path=self._str(kids[0]))

    @_rule
    def agent(self, span, kids):
        name, version, *items = kids
        return _node(m.Agent, span=span, name=self._name(name), version=version, items=tuple(items))

    @_rule
    def library(self, span, kids):
        name, *items = kids
        return _node(m.Library, span=span, name=self._name(name), items=tuple(items))

    # agent header -----------------------------------------------------------

    @_rule
    def owner(self, span, kids):
        return _node(m.Owner, span=span, value=self._str(kids[0]))

    @_rule
    def auth(self, span, kids):
        tokens, *admin = kids
        return _node(
            m.Auth,
            span=span,
            tokens_secret=self._name(tokens),
            admin_secret=self._name(admin[0]) if admin else None,
        )

    @_rule
    def audit(self, span, kids):
        return _node(m.Audit, span=span, signing_secret=self._name(kids[0]))

    @_rule
    def tenant(self, span, kids):
        return _node(m.Tenant, span=span, header=self._str(kids[0]))

    @_rule
    def store(self, span, kids):
        kind, name = kids
        return _node(m.Store, span=span, kind=self._word(kind), name=self._name(name))

    # retrieval indexes --------------------------------------------------------

    @_rule
    def index(self, span, kids):
        name, store, *clauses = kids
        return _node(m.Index, span=span, name=self._name(name), store=self._name(store), clauses=tuple(clauses))

    @_rule
    def keyword(self, span, kids):
        return _node(m.Keyword, span=span)

    @_rule
    def semantic(self, span, kids):
        return _node(m.Semantic, span=span, tier=self._name(kids[0]))

    # tiers ------------------------------------------------------------------

    @_rule
    def tier(self, span, kids):
        name, *clauses = kids
        return _node(m.Tier, span=span, name=self._name(name), clauses=tuple(clauses))

    @_rule
    def primary(self, span, kids):
        return _node(m.Primary, span=span, model=self._str(kids[0]))

    @_rule
    def fallback(self, span, kids):
        return _node(m.Fallback, span=span, models=tuple(self._str(c) for c in kids))

    @_rule
    def price(self, span, kids):
        return _node(m.Price, span=span, input=kids[0], output=kids[1])

    @_rule
    def clears(self, span, kids):
        return _node(m.Clears, span=span, risk=self._word(kids[0]))

    # identities -------------------------------------------------------------

    @_rule
    def identity(self, span, kids):
        name, secrets = kids
        return _node(m.Identity, span=span, name=self._name(name), secrets=secrets)

    # tools ------------------------------------------------------------------

    @_rule
    def tool(self, span, kids):
        name, *clauses = kids
        return _node(m.Tool, span=span, name=self._name(name), clauses=tuple(clauses))

    @_rule
    def endpoint(self, span, kids):
        method, url = kids
        return _node(m.Endpoint, span=span, method=self._word(method), url=self._str(url))

    @_rule
    def risk(self, span, kids):
        return _node(m.Risk, span=span, level=self._word(kids[0]))

    @_rule
    def read_only(self, span, kids):
        return _node(m.ReadOnly, span=span)

    @_rule
    def idempotency(self, span, kids):
        return _node(m.Idempotency, span=span, key=self._str(kids[0]))

    @_rule
    def compensate(self, span, kids):
        return _node(m.Compensate, span=span, tool=self._name(kids[0]))

    @_rule
    def run_as(self, span, kids):
        return _node(m.RunAs, span=span, identity=self._name(kids[0]))

    @_rule
    def args(self, span, kids):
        return _node(m.Args, span=span, fields=kids[0])

    @_rule
    def returns(self, span, kids):
        return _node(m.Returns, span=span, fields=kids[0])

    @_rule
    def headers(self, span, kids):
        return _node(m.Headers, span=span, headers=tuple(kids))

    @_rule
    def header(self, span, kids):
        name, value = kids
        return _node(m.Header, span=span, name=self._str(name), value=self._str(value))

    @_rule
    def max_response(self, span, kids):
        return _node(m.MaxResponse, span=span, size=kids[0])

    @_rule
    def artifact(self, span, kids):
        # `field NAME` is a token, `show [...]` a bracketed list: each optional, in this order.
        store, *rest = kids
        field = next((self._name(k) for k in rest if isinstance(k, Token)), None)
        show = next((k for k in rest if isinstance(k, Bracketed)), None)
        return _node(m.Artifact, span=span, store=self._name(store), field=field, show=show)

    @_rule
    def shape(self, span, kids):
        return _seq(kids, span)

    @_rule
    def field(self, span, kids):
        name, *rest = kids
        return _node(m.Field, span=span, name=self._name(name), optional=len(rest) == 2, type=self._word(rest[-1]))

    # workflows --------------------------------------------------------------

    @_rule
    def workflow(self, span, kids):
        name, klass, *clauses = kids
        return _node(m.Workflow, span=span, name=self._name(name), klass=self._name(klass), clauses=tuple(clauses))

    @_rule
    def route(self, span, kids):
        risk, tier = kids
        return _node(m.Route, span=span, risk=self._word(risk), tier=self._name(tier))

    @_rule
    def tools_allow(self, span, kids):
        return _node(m.ToolsAllow, span=span, tools=kids[0])

    @_rule
    def outbound_allow(self, span, kids):
        return _node(m.OutboundAllow, span=span, hosts=kids[0])

    @_rule
    def policy(self, span, kids):
        return _node(m.Policy, span=span, mode=self._word(kids[0]))

    @_rule
    def affinity(self, span, kids):
        header, *ttl = kids
        return _node(m.Affinity, span=span, header=self._str(header), ttl=ttl[0] if ttl else None)

    @_rule
    def checkpoint(self, span, kids):
        every, tier, *store = kids
        return _node(
            m.Checkpoint,
            span=span,
            every=every,
            tier=self._name(tier),
            store=self._name(store[0]) if store else None,
        )

    @_rule
    def pii_mask(self, span, kids):
        return _node(m.PiiMask, span=span, classes=kids[0])

    @_rule
    def pii_pattern(self, span, kids):
        name, regex = kids
        return _node(m.PiiPattern, span=span, name=self._name(name), regex=self._str(regex))

    @_rule
    def stores_write(self, span, kids):
        return _node(m.StoresWrite, span=span, stores=kids[0])

    @_rule
    def indexes_allow(self, span, kids):
        return _node(m.IndexesAllow, span=span, indexes=kids[0])

    @_rule
    def step(self, span, kids):
        name, action, *options = kids
        return _node(m.Step, span=span, name=self._name(name), action=action, clauses=tuple(options))

    def call(self, children):
        # `call t` ends at the name; `call t with { ... }` goes on to a closing brace.
        with_args = len(children) > 2
        return self._call(children, with_args)

    def _call(self, children, with_args):
        first, last = children[0], children[-1]
        kids = [c for c in children if c is not None and not (type(c) is Token and c.type not in _CONTENT)]
        tool, *args = kids
        return _node(
            m.Call,
            span=self._between(first, last),
            tool=self._name(tool),
            args=tuple(args) if with_args else None,
        )

    @_rule
    def step_arg(self, span, kids):
        name, template = kids
        return _node(m.StepArg, span=span, name=self._name(name), template=self._str(template))

    @_rule
    def infer(self, span, kids):
        tier, prompt = kids
        return _node(m.Infer, span=span, tier=self._name(tier), prompt=self._str(prompt))

    @_rule
    def sleep(self, span, kids):
        return _node(m.Sleep, span=span, duration=kids[0])

    @_rule
    def wait_event(self, span, kids):
        return _node(m.WaitEvent, span=span, event=self._str(kids[0]))

    @_rule
    def search(self, span, kids):
        index, query, *top = kids
        return _node(m.Search, span=span, index=self._name(index), query=self._str(query), top=top[0] if top else None)

    @_rule
    def retry(self, span, kids):
        return _node(m.Retry, span=span, count=kids[0])

    @_rule
    def backoff(self, span, kids):
        strategy, *delay = kids
        return _node(m.Backoff, span=span, strategy=self._word(strategy), delay=delay[0] if delay else None)

    @_rule
    def timeout(self, span, kids):
        return _node(m.Timeout, span=span, duration=kids[0])

    # service levels ---------------------------------------------------------

    @_rule
    def slo(self, span, kids):
        return _node(m.Slo, span=span, clauses=tuple(kids))

    @_rule
    def latency(self, span, kids):
        pct, cmp, bound = kids
        return _node(m.Latency, span=span, percentile=self._word(pct), comparator=self._word(cmp), bound=bound)

    @_rule
    def ttft(self, span, kids):
        pct, cmp, bound = kids
        return _node(m.Ttft, span=span, percentile=self._word(pct), comparator=self._word(cmp), bound=bound)

    @_rule
    def success(self, span, kids):
        cmp, bound = kids
        return _node(m.Success, span=span, comparator=self._word(cmp), bound=bound)

    @_rule
    def cost(self, span, kids):
        cmp, bound = kids
        return _node(m.Cost, span=span, comparator=self._word(cmp), bound=bound)

    @_rule
    def cache_hit(self, span, kids):
        cmp, bound, *drop = kids
        return _node(
            m.CacheHit, span=span, comparator=self._word(cmp), bound=bound, alert_drop=drop[0] if drop else None
        )

    @_rule
    def denied(self, span, kids):
        cmp, bound = kids
        return _node(m.Denied, span=span, comparator=self._word(cmp), bound=bound)

    @_rule
    def tokens(self, span, kids):
        return _node(m.Tokens, span=span, input=kids[0], output=kids[1])

    @_rule
    def webhook(self, span, kids):
        return _node(m.Webhook, span=span, url=self._str(kids[0]))

    # shared pieces ----------------------------------------------------------

    @_rule
    def name_list(self, span, kids):
        return _seq((self._name(c) for c in kids), span)

    @_rule
    def string_list(self, span, kids):
        return _seq((self._str(c) for c in kids), span)

    @_rule
    def value(self, span, kids):
        token: Token = kids[0]
        text = str(token)
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
            return _node(m.Quantity, span=span, kind="size", value=float(number) * _SIZE_BYTES[unit], text=text)
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
    (re.compile(r"\b(retry|every|version|in|out|top)\s*$"), "a number"),
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
            help=_syntax_help(expected),
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


def _syntax_help(expected: set[str]) -> str | None:
    """A hint where a whole clause could have started: inside a block, before its `}`."""
    if "RBRACE" in expected and len(expected) > 3:
        return "each clause starts with a keyword; a block ends with `}`"
    return None


def _clip(text: str, limit: int = 40) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."
