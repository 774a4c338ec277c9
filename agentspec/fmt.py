"""Print a parsed spec back as canonical text: spec text (or a `SpecFile` and its comments) in, formatted text out.

The layout is fixed: two-space indentation, one clause per line, `name {` ... `}` blocks, imports first, a blank
line around every block declared in an agent or library, clauses in source order. Values keep the text they were
written with; strings are re-escaped by one function, `quote`. Comments are never dropped: an own-line comment stays
before the construct that follows it, a trailing comment stays at the end of the line of the construct it followed.
Blank lines the author left between clauses are kept (at most one in a row).

Formatting is idempotent, and the parsed model of the output equals that of the input, spans aside.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Literal

from agentspec import model as m
from agentspec.parse import Bracketed, Comment, parse

__all__ = ["format_file", "format_text", "quote"]

INDENT = "  "

# json.dumps leaves these raw with ensure_ascii=False. Lone surrogates cannot be written as UTF-8, and editors and
# `str.splitlines` treat U+0085, U+2028 and U+2029 as line breaks, so they are escaped to keep a string on its line.
_UNSAFE = re.compile("[\ud800-\udfff\u0085\u2028\u2029]")


def quote(value: str) -> str:
    """A string literal that the parser reads back as `value`: JSON escaping, the language's own."""
    return _UNSAFE.sub(lambda c: f"\\u{ord(c.group()):04x}", json.dumps(value, ensure_ascii=False))


def format_text(text: str, path: str = "<input>") -> str | None:
    """Format one file's text; None when it does not parse (the parser's diagnostics say why)."""
    result = parse(text, path)
    if result.file is None or any(d.severity == "error" for d in result.diagnostics):
        return None
    return format_file(result.file, result.comments)


def format_file(spec: m.SpecFile, comments: list[Comment]) -> str:
    """Print a parsed file canonically, putting back the comments `parse` found in it."""
    return _merge(_Printer().file(spec), comments)


# ───────────────────────────── layout ─────────────────────────────

LineKind = Literal["open", "leaf", "close"]


@dataclass(slots=True)
class _Line:
    """One output line, with the source lines it stands for: comments are placed by those."""

    depth: int
    text: str
    start: int  # first source line of the construct (for `}`: the line of the brace)
    end: int  # last source line it covers; comments inside a collapsed multi-line clause are hoisted above it
    kind: LineKind
    blank_before: bool = False  # a blank line is required before it, whatever the source had


_BLOCKS = (m.Tier, m.Identity, m.Tool, m.Index, m.Workflow)


class _Printer:
    """Turns the syntax model into `_Line`s; knows nothing about comments."""

    def __init__(self) -> None:
        self.lines: list[_Line] = []

    def file(self, spec: m.SpecFile) -> list[_Line]:
        for imp in spec.imports:
            self._leaf(0, f"import {quote(imp.path.value)}", imp.span)
        body = spec.body
        if isinstance(body, m.Agent):
            header, header_end = f"agent {body.name.value} version {body.version.text}", body.version.span.end_line
        else:
            header, header_end = f"library {body.name.value}", body.name.span.end_line
        self._open(0, header, body.span, header_end, blank_before=bool(spec.imports))
        previous: m.Node | None = None
        for item in body.items:
            # Blocks stand apart from their neighbours; runs of one-line items (owner, auth, store...) may stay packed.
            spaced = previous is not None and (isinstance(item, _BLOCKS) or isinstance(previous, _BLOCKS))
            self._item(1, item, spaced)
            previous = item
        self._close(0, body.span)
        return self.lines

    # items ------------------------------------------------------------------

    def _item(self, depth: int, item: m.AgentItem, spaced: bool) -> None:
        match item:
            case m.Tier(name=name, clauses=clauses):
                self._block(depth, f"model tier {name.value}", item, name.span.end_line, clauses, spaced)
            case m.Tool(name=name, clauses=clauses):
                self._block(depth, f"tool {name.value}", item, name.span.end_line, clauses, spaced)
            case m.Index(name=name, store=store, clauses=clauses):
                self._block(depth, f"index {name.value} over {store.value}", item, store.span.end_line, clauses, spaced)
            case m.Workflow(name=name, klass=klass, clauses=clauses):
                header = f"workflow {name.value} class {klass.value}"
                self._block(depth, header, item, klass.span.end_line, clauses, spaced)
            case m.Identity(name=name, secrets=secrets):
                self._open(depth, f"identity {name.value}", item.span, name.span.end_line, spaced)
                # `secrets [...]` has no node of its own: it stands for every line from the header's end to its `]`
                # (the parser's bracketed list knows that line), so no line in between reads as a blank one.
                start = min(name.span.end_line + 1, item.span.end_line)
                brackets = secrets.span if isinstance(secrets, Bracketed) else None
                end = max(start, brackets.end_line if brackets else item.span.end_line)
                self.lines.append(_Line(depth + 1, f"secrets {_names(secrets)}", start, end, "leaf"))
                self._close(depth, item.span)
            case _:
                self._leaf(depth, _clause(item), item.span, spaced)

    def _block(
        self, depth: int, header: str, block: m.Node, header_end: int, clauses: tuple[m.Node, ...], spaced: bool
    ) -> None:
        self._open(depth, header, block.span, header_end, spaced)
        for clause in clauses:
            if isinstance(clause, m.Slo):
                self._block(depth + 1, "slo", clause, clause.span.line, clause.clauses, False)
            else:
                self._leaf(depth + 1, _clause(clause), clause.span)
        self._close(depth, block.span)

    def _open(self, depth: int, header: str, span: m.Span, header_end: int, blank_before: bool = False) -> None:
        self.lines.append(_Line(depth, header + " {", span.line, max(span.line, header_end), "open", blank_before))

    def _close(self, depth: int, span: m.Span) -> None:
        self.lines.append(_Line(depth, "}", span.end_line, span.end_line, "close"))

    def _leaf(self, depth: int, text: str, span: m.Span, blank_before: bool = False) -> None:
        self.lines.append(_Line(depth, text, span.line, span.end_line, "leaf", blank_before))


# ───────────────────────────── clauses ─────────────────────────────


def _names(names: tuple[m.Name, ...]) -> str:
    return "[" + ", ".join(n.value for n in names) + "]"


def _shape(fields: tuple[m.Field, ...]) -> str:
    if not fields:
        return "{}"
    return "{ " + ", ".join(f"{f.name.value}{'?' if f.optional else ''}: {f.type.value}" for f in fields) + " }"


def _pairs(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return "{}"
    return "{ " + ", ".join(f"{k}: {v}" for k, v in pairs) + " }"


def _clause(node: m.Node) -> str:
    """One clause on one line, every part in the order the grammar writes it."""
    match node:
        # agent header
        case m.Owner(value=value):
            return f"owner {quote(value.value)}"
        case m.Auth(tokens_secret=tokens, admin_secret=admin):
            return f"auth bearer secret {tokens.value}" + (f" admin secret {admin.value}" if admin else "")
        case m.Tenant(header=header):
            return f"tenant header {quote(header.value)}"
        case m.Audit(signing_secret=secret):
            return f"audit sign with secret {secret.value}"
        case m.Store(kind=kind, name=name):
            return f"store {kind.value} {name.value}"
        # tiers
        case m.Primary(model=model):
            return f"primary {quote(model.value)}"
        case m.Fallback(models=models):
            return "fallback " + " ".join(quote(s.value) for s in models)
        case m.Price(input=i, output=o):
            return f"price in {i.text} out {o.text} per Mtok"
        case m.Timeout(duration=duration):
            return f"timeout {duration.text}"
        case m.Clears(risk=risk):
            return f"clears risk {risk.value}"
        # tools
        case m.Endpoint(method=method, url=url):
            return f"{method.value} {quote(url.value)}"
        case m.Risk(level=level):
            return f"risk {level.value}"
        case m.ReadOnly():
            return "read_only"
        case m.Idempotency(key=key):
            return f"idempotency key {quote(key.value)}"
        case m.Compensate(tool=tool):
            return f"compensate {tool.value}"
        case m.RunAs(identity=identity):
            return f"as {identity.value}"
        case m.Args(fields=fields):
            return f"args {_shape(fields)}"
        case m.Returns(fields=fields):
            return f"returns {_shape(fields)}"
        case m.Headers(headers=headers):
            return "headers " + _pairs([(quote(h.name.value), quote(h.value.value)) for h in headers])
        case m.MaxResponse(size=size):
            return f"max response {size.text}"
        case m.Artifact(store=store, field=field, show=show):
            text = f"artifact in {store.value}" + (f" field {field.value}" if field else "")
            return text + (f" show {_names(show)}" if show is not None else "")
        # retrieval indexes
        case m.Keyword():
            return "keyword"
        case m.Semantic(tier=tier):
            return f"semantic with tier {tier.value}"
        # workflows
        case m.Route(risk=risk, tier=tier):
            return f"route risk {risk.value} -> tier {tier.value}"
        case m.ToolsAllow(tools=tools):
            return f"tools allow {_names(tools)}"
        case m.OutboundAllow(hosts=hosts):
            return "outbound allow [" + ", ".join(quote(h.value) for h in hosts) + "]"
        case m.Policy(mode=mode):
            return f"policy {mode.value}"
        case m.Affinity(header=header, ttl=ttl):
            return f"session affinity header {quote(header.value)}" + (f" ttl {ttl.text}" if ttl else "")
        case m.Checkpoint(every=every, tier=tier, store=store):
            text = f"checkpoint every {every.text} turns summarize with tier {tier.value}"
            return text + (f" into {store.value}" if store else "")
        case m.PiiMask(classes=classes):
            return f"pii mask {_names(classes)} before persist"
        case m.PiiPattern(name=name, regex=regex):
            return f"pii pattern {name.value} {quote(regex.value)}"
        case m.StoresWrite(stores=stores):
            return f"stores write {_names(stores)}"
        case m.IndexesAllow(indexes=indexes):
            return f"indexes allow {_names(indexes)}"
        case m.Step(name=name, action=action, clauses=options):
            return " ".join([f"step {name.value} = {_clause(action)}", *(_clause(o) for o in options)])
        # step actions and options
        case m.Call(tool=tool, args=args):
            if args is None:
                return f"call {tool.value}"
            return f"call {tool.value} with " + _pairs([(a.name.value, quote(a.template.value)) for a in args])
        case m.Infer(tier=tier, prompt=prompt):
            return f"infer tier {tier.value} {quote(prompt.value)}"
        case m.Sleep(duration=duration):
            return f"sleep {duration.text}"
        case m.WaitEvent(event=event):
            return f"wait event {quote(event.value)}"
        case m.Search(index=index, query=query, top=top):
            return f"search {index.value} {quote(query.value)}" + (f" top {top.text}" if top else "")
        case m.Retry(count=count):
            return f"retry {count.text}"
        case m.Backoff(strategy=strategy, delay=delay):
            return f"backoff {strategy.value}" + (f" {delay.text}" if delay else "")
        # service levels
        case m.Latency(percentile=p, comparator=c, bound=bound):
            return f"latency {p.value} {c.value} {bound.text}"
        case m.Ttft(percentile=p, comparator=c, bound=bound):
            return f"ttft {p.value} {c.value} {bound.text}"
        case m.Success(comparator=c, bound=bound):
            return f"success {c.value} {bound.text}"
        case m.Cost(comparator=c, bound=bound):
            return f"cost per task {c.value} {bound.text}"
        case m.CacheHit(comparator=c, bound=bound, alert_drop=drop):
            return f"cache hit {c.value} {bound.text}" + (f" alert drop {drop.text}" if drop else "")
        case m.Denied(comparator=c, bound=bound):
            return f"denied {c.value} {bound.text}"
        case m.Tokens(input=i, output=o):
            return f"tokens per task in {i.text} out {o.text}"
        case m.Webhook(url=url):
            return f"webhook {quote(url.value)}"
    raise TypeError(f"no printer for {type(node).__name__}")  # a model class added without teaching the printer


# ───────────────────────────── comments and blank lines ─────────────────────────────


def _merge(lines: list[_Line], comments: list[Comment]) -> str:
    """Weave the comments and the source's blank lines into the printed lines.

    A trailing comment joins the last output line starting at or before its source line: the construct it followed
    (several on one output line are joined: nothing is dropped). Own-line comments and blank lines come out before
    the first output line that starts after them, in source order; a comment inside a clause printed on one line
    goes above it.
    """
    starts = [line.start for line in lines]
    trailing: dict[int, list[str]] = {}
    own: list[Comment] = []
    for comment in comments:
        found = bisect_right(starts, comment.line) - 1
        if comment.own_line or found < 0:
            own.append(comment)
        else:
            trailing.setdefault(found, []).append(comment.text)

    # A source line that no printed construct covers and no comment sits on was blank (or held only a brace).
    covered = {c.line for c in own}
    for line in lines:
        covered.update(range(line.start, line.end + 1))
    last = max([line.end for line in lines] + [c.line for c in own])
    trivia: list[tuple[int, str | None]] = sorted(
        [(c.line, c.text) for c in own] + [(n, None) for n in range(1, last + 1) if n not in covered],
        key=lambda t: t[0],
    )

    out: list[str] = []
    blank = False  # a blank line is owed before the next printed line
    after_open = True  # no blank line right after `{` (nor at the top of the file)

    def put(depth: int, text: str) -> None:
        nonlocal blank, after_open
        if blank and not after_open:
            out.append("")
        out.append(INDENT * depth + text)
        blank = after_open = False

    k = 0
    for i, line in enumerate(lines):
        blank = blank or line.blank_before
        # Trivia inside a collapsed clause goes above it; inside a block, comments before `}` stay indented.
        limit = line.end if line.kind == "leaf" else line.start - 1
        depth = line.depth + 1 if line.kind == "close" else line.depth
        while k < len(trivia) and trivia[k][0] <= limit:
            text = trivia[k][1]
            if text is None:
                blank = True
            else:
                put(depth, text)
            k += 1
        if line.kind == "close":
            blank = False
        put(line.depth, line.text + "".join("  " + t for t in trailing.get(i, ())))
        after_open = line.kind == "open"
    for _, text in trivia[k:]:
        if text is None:
            blank = True
        else:
            put(0, text)
    return "\n".join(out) + "\n"
