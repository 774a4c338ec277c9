"""The fast path of `parse`: one loop that lexes, runs Lark's LALR tables and builds the model.

Text in, the transformer's result out, or `None` when the text does not parse. A 50,000-line
spec is about 280,000 tokens; Lark's own pipeline spends most of its time between them (a
generator per token, a `feed_token` call, a parse tree that `ToModel` then walks again). This
loop does the same steps inline: the lexer's token shapes (agentspec/lex.py, whose keyword
choice it repeats word for word), the LALR shift/reduce on the tables Lark built from
grammar/agentspec.lark, and Lark's own callbacks (`ParseTreeBuilder.create_callback`), which
call the `ToModel` rule methods as each rule is reduced, as `Lark(transformer=...)` does.

It is only a fast path: on any problem it returns `None`, and `parse` runs Lark's parser on the
same text for the exact syntax error (tests/test_parse_fast.py checks that both agree).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Tree
from lark.parse_tree_builder import ChildFilterLALR_NoPlaceholders, ExpandSingleChild
from lark.parsers.lalr_analysis import Shift

from agentspec.lex import _UNIT, _UNIT_TERMINAL, TOKEN_SHAPES, WHITE_SPACE, SpecLexer

# SpecLexer's shapes, each with the white space before it: one match per token, not two.
_TOKEN = re.compile(rf"{WHITE_SPACE}*(?:{TOKEN_SHAPES})", re.VERBOSE)

# A reduce action: (children taken, rule number, the rule's nonterminal, how it is reduced).
Reduce = tuple[int, int, str, int]
# How: the rule's callback; `?rule` passing its one child through; or one of the two rules Lark makes
# for a repetition `x*` (`__rule_star_N: x | __rule_star_N x`, a tree every parent inlines), whose
# tree the loop starts or extends itself, as Lark's default callback and child filter would.
CALL, PASS, LIST_START, LIST_APPEND = 0, 1, 2, 3


@dataclass(frozen=True)
class Tables:
    """Lark's parse table renumbered for the loop: a shift is the next state (an int), a reduce a tuple."""

    actions: list[dict[str, int | Reduce]]
    start: int
    end: int
    rules: list[Any]  # lark.grammar.Rule, in the order of the reduce tuples' rule numbers
    lexer: SpecLexer


_TABLES: dict[int, Tables] = {}


def tables(lark: Lark) -> Tables:
    """The renumbered tables of one Lark instance, made once."""
    found = _TABLES.get(id(lark))
    if found is not None:
        return found
    table = lark.parser.parser.parser.parse_table
    numbers = {state: n for n, state in enumerate(table.states)}
    builders = lark._parse_tree_builder.rule_builders
    rules = [rule for rule, _ in builders]
    # `?rule: a | b` reduced from one symbol returns that child unchanged (ExpandSingleChild alone): the
    # loop skips the call. Any other chain (a placeholder, an inlined `_rule`) runs Lark's callback.
    how = {rule: _how(rule, chain) for rule, chain in builders}
    index = {rule: n for n, rule in enumerate(rules)}
    actions: list[dict[str, int | Reduce]] = []
    for state in table.states:
        row: dict[str, int | Reduce] = {}
        for symbol, (action, arg) in table.states[state].items():
            if action is Shift:
                row[symbol] = numbers[arg]
            else:
                row[symbol] = (len(arg.expansion), index[arg], arg.origin.name, how[arg])
        actions.append(row)
    made = Tables(
        actions=actions,
        start=numbers[table.start_states["start"]],
        end=numbers[table.end_states["start"]],
        rules=rules,
        lexer=SpecLexer(lark.lexer_conf),
    )
    _TABLES[id(lark)] = made
    return made


def _how(rule: Any, chain: list[Any]) -> int:
    expansion = rule.expansion
    if chain == [ExpandSingleChild] and len(expansion) == 1:
        return PASS
    name = rule.origin.name
    if not name.startswith("__") or expansion[-1].name.startswith("_"):
        return CALL  # not a repetition of Lark's, or its item is itself inlined
    if len(expansion) == 1 and chain == []:
        return LIST_START
    if (
        len(expansion) == 2
        and expansion[0] == rule.origin
        and len(chain) == 1
        and getattr(chain[0], "func", None) is ChildFilterLALR_NoPlaceholders
        and chain[0].args == ([(0, True), (1, False)],)
    ):
        return LIST_APPEND
    return CALL


def run(lark: Lark, text: str, transformer: object) -> Any | None:
    """Parse `text` and apply `transformer`'s rule methods; None if the text does not parse."""
    t = tables(lark)
    by_rule = lark._parse_tree_builder.create_callback(transformer)
    callbacks: list[Callable[[list[Any]], Any]] = [by_rule[rule] for rule in t.rules]
    # A repetition the transformer handles itself is left to its callback.
    own_methods = {rule.origin.name for rule in t.rules if hasattr(transformer, rule.origin.name)}
    actions = t.actions
    lexer = t.lexer
    literals = lexer.literals
    word_terminals = lexer.word_terminals
    comparators = lexer.comparators
    # The word terminals (RISK, HTTP_METHOD...) each word matches, in the lexer's order: a spec
    # repeats its few such words thousands of times.
    word_shapes: dict[str, list[str]] = {}
    match = _TOKEN.match
    unit_match = _UNIT.match
    new_str = str.__new__
    states = [t.start]
    values: list[Any] = []
    pos, line, line_start, end = 0, 1, 0, len(text)
    token = None
    while True:
        found = match(text, pos) if pos < end else None
        if found is None and text[pos:].strip(" \t\f\r\n"):
            return None  # a character no token starts with
        if found is not None:
            kind: str = found.lastgroup  # type: ignore[assignment]  # every alternative is a named group
            start = found.start(kind)
            if start != pos:  # white space before the token
                newlines = text.count("\n", pos, start)
                if newlines:
                    line += newlines
                    line_start = text.rfind("\n", pos, start) + 1
                pos = start
            value = found.group(kind)
            stop = found.end()
            if kind == "comment":
                pos = stop
                continue
            accepts = actions[states[-1]]
            # The same choice as SpecLexer.lex, kind by kind.
            if kind == "word":
                terminal = literals.get(value)
                if terminal is None or terminal not in accepts:
                    terminal = "NAME"
                    shapes = word_shapes.get(value)
                    if shapes is None:
                        shapes = word_shapes[value] = [n for n, pattern in word_terminals if pattern.fullmatch(value)]
                    for name in shapes:
                        if name in accepts:
                            terminal = name
                            break
            elif kind == "number":
                unit = unit_match(text, stop)
                if unit is not None:
                    suffix = unit.group()
                    terminal = _UNIT_TERMINAL.get(suffix, "DURATION")
                    if terminal == "SIZE" and value.startswith("-"):
                        terminal = "NUMBER"
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
            elif value in comparators and "COMPARATOR" in accepts:
                terminal = "COMPARATOR"
            elif value == "?":
                terminal = "OPTIONAL"
            else:
                terminal = literals.get(value) or ("COMPARATOR" if value in comparators else value)
            column = pos - line_start + 1
            # Token(terminal, value, pos, line, column, line, end column, stop), without its
            # constructor's argument handling.
            token = new_str(Token, value)
            token.type = terminal
            token.start_pos = pos
            token.value = value
            token.line = line
            token.column = column
            token.end_line = line
            token.end_column = column + (stop - pos)
            token.end_pos = stop
            pos = stop
            at_end = False
        else:
            terminal = "$END"
            at_end = True
        # Shift the token, after as many reductions as it calls for (Lark's ParserState.feed_token).
        while True:
            action = actions[states[-1]].get(terminal)
            if action is None:
                return None
            if type(action) is int:
                if at_end:
                    return None
                states.append(action)
                values.append(token)
                break
            size, rule, origin, how = action  # type: ignore[misc]
            if how == PASS:
                states[-1] = actions[states[-2]][origin]  # type: ignore[assignment]
            elif how == LIST_APPEND and origin not in own_methods:
                item = values.pop()
                values[-1].children.append(item)
                del states[-2:]
                states.append(actions[states[-1]][origin])  # type: ignore[arg-type]
            elif how == LIST_START and origin not in own_methods:
                values[-1] = Tree(origin, [values[-1]])
                states[-1] = actions[states[-2]][origin]  # type: ignore[assignment]
            else:
                if size:
                    children = values[-size:]
                    del states[-size:]
                    del values[-size:]
                else:
                    children = []
                values.append(callbacks[rule](children))
                states.append(actions[states[-1]][origin])  # type: ignore[arg-type]
            if at_end and states[-1] == t.end:
                return values[-1]
        if at_end:  # pragma: no cover - the end token is never shifted
            return None
