"""Soundness of the permission verdicts, by property: checked against the Python policy evaluator.

For drawn spec pairs, every request (workflow, tool, URL) over the whole universe of names, hosts
and ports is put to `agentspec.policy.evaluate_tool_call` under OLD and NEW, by brute force and
without the review's shortcuts. "Allowed" is "the call executes": any decision but `deny` (an allow,
or a shadow pass-through). The review must report a permission widening (R0001) for exactly the
(workflow, tool, host) triples where some URL is denied by OLD and executes under NEW, likewise
R0002 for narrowings, and every counterexample it gives must be one.
"""

from __future__ import annotations

from unittest import mock
from urllib.parse import urlsplit

from hypothesis import given, reject, settings
from hypothesis import strategies as st

from agentspec import policy
from agentspec.model import RISK_ORDER
from agentspec.review import review
from agentspec.review.sources import InputError, side_from_text
from tests.review.spec_pairs import HOSTS, TOOLS, WORKFLOWS, meanings, render, spec_pairs

UNLISTED = "nowhere.example.org"
URLS = [
    url
    for host in (*HOSTS, UNLISTED)
    for url in (f"https://{host}/x", f"http://{host}/x", f"https://{host}:8443/x", f"https://{host}:9999/x")
]


def _executes(tables: dict, w: str, t: str, url: str) -> bool:  # type: ignore[type-arg]
    return policy.evaluate_tool_call(tables, w, t, url)["decision"] != "deny"


def _brute_force(old: dict, new: dict) -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]]]:  # type: ignore[type-arg]
    wider, narrower = set(), set()
    for w in (*WORKFLOWS, "w_undeclared"):
        for t in (*TOOLS, "t_undeclared"):
            for url in URLS:
                a, b = _executes(old, w, t, url), _executes(new, w, t, url)
                if not a and b:
                    wider.add((w, t, urlsplit(url).hostname or ""))
                if a and not b:
                    narrower.add((w, t, urlsplit(url).hostname or ""))
    return wider, narrower


def _named(old: dict, new: dict, w: str, t: str) -> set[str]:  # type: ignore[type-arg]
    """The hosts a (workflow, tool) names on either side: its outbound entries and the tool's URL."""
    named = set()
    for tables in (old, new):
        for entry in tables["workflows"].get(w, {}).get("outbound", []):
            named.add(urlsplit("//" + entry).hostname or "")
        if t in tables["tools"]:
            named.add(urlsplit(tables["tools"][t]["url"]).hostname or "")
    return named


def _reported(changes: list, code: str, old: dict, new: dict) -> set[tuple[str, str, str]]:  # type: ignore[type-arg]
    """The triples the review reports; "any other host" stands for every host the pair does not name."""
    out = set()
    for c in changes:
        if c.code == code:
            _, w, t, *hosts = c.subject
            for h in hosts:
                if h == "any other host":
                    out |= {(w, t, other) for other in (*HOSTS, UNLISTED) if other not in _named(old, new, w, t)}
                else:
                    out.add((w, t, h))
    return out


@given(spec_pairs())
@settings(max_examples=150, deadline=None)
def test_widening_reported_exactly_when_the_evaluator_shows_one(pair: tuple[str, str]) -> None:
    _check_soundness(pair)


_EVALUATOR = policy.evaluate_tool_call


def _strict_shadow(tables: dict, workflow: str, tool: str, url: str | None = None) -> policy.Verdict:  # type: ignore[type-arg]
    """Shadow mode as it is being changed: a would-be denial runs only for a read-only tool within the
    workflow's tier clearance; anything else is denied for real."""
    verdict = _EVALUATOR(tables, workflow, tool, url)
    if verdict["decision"] != "shadow_deny":
        return verdict
    wf, t = tables["workflows"][workflow], tables["tools"][tool]
    clearance = tables["tiers"][wf["turn_tier"]]["clearance"]
    if t["read_only"] and RISK_ORDER[t["risk"]] <= RISK_ORDER[clearance]:
        return verdict
    return {"decision": "deny", "rule": verdict["rule"], "reason": verdict["reason"]}


@given(spec_pairs())
@settings(max_examples=100, deadline=None)
def test_soundness_follows_the_evaluator_when_shadow_mode_changes(pair: tuple[str, str]) -> None:
    # The review reads decisions only through the evaluator, so a stricter shadow mode needs no change here.
    with mock.patch.object(policy, "evaluate_tool_call", _strict_shadow):
        _check_soundness(pair)


def _check_soundness(pair: tuple[str, str]) -> None:
    old_text, new_text = pair
    try:
        old, new = side_from_text(old_text, "old.agent"), side_from_text(new_text, "new.agent")
    except InputError:
        # The generator draws some pairs the checker refuses (e.g. E0304: a shadow workflow that could
        # execute a high-risk read-only tool); only checked specs are reviewed, so such a draw is discarded.
        reject()
    result = review(old, new)
    wider, narrower = _brute_force(old.tables, new.tables)
    assert _reported(result.changes, "R0001", old.tables, new.tables) == wider
    assert _reported(result.changes, "R0002", old.tables, new.tables) == narrower
    assert any(c.code == "R0001" for c in result.changes) == bool(wider)
    for c in result.changes:
        for ex in c.counterexamples:
            runs_old = _executes(old.tables, ex.workflow, ex.tool, ex.url)
            runs_new = _executes(new.tables, ex.workflow, ex.tool, ex.url)
            if c.classification == "widening":
                assert not runs_old and runs_new, ex
            elif c.code == "R0002":
                assert runs_old and not runs_new, ex


@given(meanings())
@settings(max_examples=50, deadline=None)
def test_a_spec_against_itself_has_no_change(meaning) -> None:  # type: ignore[no-untyped-def]
    text = render(meaning)
    assert review(side_from_text(text, "a.agent"), side_from_text(text, "b.agent")).changes == []


def test_the_strategy_draws_widenings_and_non_widenings() -> None:
    # The property above means little unless both outcomes occur among the drawn pairs.
    seen = set()

    @given(spec_pairs())
    @settings(max_examples=60, deadline=None, database=None)
    def probe(pair: tuple[str, str]) -> None:
        try:
            old, new = side_from_text(pair[0], "o.agent"), side_from_text(pair[1], "n.agent")
        except InputError:
            reject()
        seen.add(bool(_brute_force(old.tables, new.tables)[0]))

    probe()
    assert seen == {True, False}


_ = st  # strategies are composed in spec_pairs.py
