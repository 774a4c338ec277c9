"""Split spec text into tokens for the LALR parser; the parser's state decides what a word is.

Text in, Lark tokens out. Keywords are contextual, as in Lark's own contextual lexer: `low`
is a risk level after `risk` and a name after `tier`. This lexer gets there with one
master regular expression and a lookup per word in the terminals the parser accepts next,
which is several times faster than Lark's general lexer on large specs. The terminals and
their patterns still come from grammar/agentspec.lark; only the coarse token shapes
(word, number with unit, string, punctuation) are fixed here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lark.common import LexerConf
from lark.exceptions import UnexpectedCharacters
from lark.lexer import Lexer, PatternStr, Token

# Every token shape but white space; agentspec/lalr.py matches these after any white space at once.
TOKEN_SHAPES = r"""
    (?P<comment>//[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<percentile>p[0-9]{1,2}\.[0-9]+(?![A-Za-z0-9_]))
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<money>\$[0-9]+(?:\.[0-9]+)?)
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
  | (?P<punct>->|<=|>=|[{}\[\](),:=<>?])
    """
WHITE_SPACE = r"[ \t\f\r\n]"
_SHAPES = re.compile(rf"(?P<ws>{WHITE_SPACE}+)|{TOKEN_SHAPES}", re.VERBOSE)

# A number's unit, right after it; the grammar's DURATION, PERCENT and SIZE terminals.
_UNIT = re.compile(r"(?:KiB|MiB|GiB|B|ms|s|m|h|d)(?![A-Za-z0-9_])|%")
_UNIT_TERMINAL = {"%": "PERCENT", "KiB": "SIZE", "MiB": "SIZE", "GiB": "SIZE", "B": "SIZE"}


class SpecLexer(Lexer):
    """A contextual lexer for the agentspec grammar (Lark's `lexer=` hook)."""

    __future_interface__ = True

    def __init__(self, conf: LexerConf) -> None:
        self.literals: dict[str, str] = {}  # keyword or punctuation text -> terminal name
        self.word_terminals: list[tuple[str, re.Pattern[str]]] = []  # RISK, HTTP_METHOD, PERCENTILE...
        for terminal in conf.terminals:
            pattern = terminal.pattern
            if isinstance(pattern, PatternStr):
                self.literals[pattern.value] = terminal.name
            elif terminal.name not in (
                "NAME",
                "STRING",
                "NUMBER",
                "DURATION",
                "PERCENT",
                "MONEY",
                "SIZE",
                "WS",
                "COMMENT",
                "COMPARATOR",
                "OPTIONAL",
            ):
                self.word_terminals.append((terminal.name, re.compile(pattern.to_regexp())))
        self.comparators = {"<", "<=", ">", ">="}

    def lex(self, lexer_state, parser_state) -> Iterator[Token]:
        source = lexer_state.text  # a lark TextSlice over the whole input
        text: str = getattr(source, "text", source)
        states = parser_state.parse_conf.parse_table.states
        match = _SHAPES.match
        literals = self.literals
        word_terminals = self.word_terminals
        pos, line, line_start, end = 0, 1, 0, len(text)
        while pos < end:
            found = match(text, pos)
            if found is None:
                accepts = states[parser_state.position]
                raise UnexpectedCharacters(
                    text, pos, line, pos - line_start + 1, allowed=set(accepts), state=parser_state.position
                )
            kind = found.lastgroup
            value = found.group()
            stop = found.end()
            if kind == "ws":
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + value.rfind("\n") + 1
                pos = stop
                continue
            if kind == "comment":
                pos = stop
                continue
            accepts = states[parser_state.position]
            if kind == "word":
                terminal = literals.get(value)
                if terminal is None or terminal not in accepts:
                    terminal = "NAME"
                    for name, pattern in word_terminals:
                        if name in accepts and pattern.fullmatch(value):
                            terminal = name
                            break
            elif kind == "number":
                unit = _UNIT.match(text, stop)
                if unit is not None:
                    suffix = unit.group()
                    terminal = _UNIT_TERMINAL.get(suffix, "DURATION")
                    if terminal == "SIZE" and value.startswith("-"):
                        terminal = "NUMBER"  # the grammar has no negative sizes: `-5` then a name
                    else:
                        value += suffix
                        stop = unit.end()
                else:
                    terminal = "NUMBER"
            elif kind == "string":
                terminal = "STRING"
            elif kind == "money":
                terminal = "MONEY"
            elif kind == "percentile":
                terminal = "PERCENTILE"
            elif value in self.comparators and "COMPARATOR" in accepts:
                terminal = "COMPARATOR"
            elif value == "?":
                terminal = "OPTIONAL"
            else:
                terminal = literals.get(value) or ("COMPARATOR" if value in self.comparators else value)
            column = pos - line_start + 1
            yield Token(terminal, value, pos, line, column, line, column + (stop - pos), stop)
            pos = stop
