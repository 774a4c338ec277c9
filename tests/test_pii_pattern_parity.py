"""PII patterns: the checker reads a detector as the runtime's engine does.

Hypothesis builds patterns from fragments where Python and ECMAScript differ (`{,3}`, atomic
groups, conditionals, possessive quantifiers, look-behind, `\\p{L}` without `u`, back-references).
For every pattern the checker accepts, node's V8 (`new RegExp(p, "g")`, as src/runtime/pii.ts
compiles it) must accept it too, and `regress` (the checker's and the workbench preview's
engine) must find exactly the matches V8 finds on sample texts: 100% agreement.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentspec.passes.state import compile_pattern, regex_problem

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "codegen" / "cloudflare" / "node_modules" / ".bin" / "node"

pytestmark = pytest.mark.skipif(not NODE.exists(), reason="the toolchain's node is not installed")

FRAGMENTS = [
    "a", "b", "E", "-", "\\d", "\\w", "\\s", "\\D", ".", "[a-c]", "[^a]", "(a|b)", "(?:ab)", "(?<n>a)", "\\k<n>",
    "{2}", "{1,3}", "{,3}", "{2,}", "*", "+", "?", "*?", "+?", "++", "\\b", "^", "$", "(?=a)", "(?!b)", "(?<=a)",
    "(?>a)", "(?(1)a|b)", "\\p{L}", "\\1", "[", "]", "(", ")", "{", "}", "\\u0041", "\\x41", "\\cA", "\\A", "\\Z",
    "|", "(?i)", "\\.", "@", "[0-9]{4}",
]  # fmt: skip
TEXTS = ["", "a", "ab", "aab b", "EMP-1234 a@b.c", "Ap{L} x{,3}", "bbbaaa 42 ---", "A\u0001 {2}"]

_RUNNER = """
const { patterns, texts } = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(patterns.map((p) => {
  let re;
  try { re = new RegExp(p, "g"); } catch { return null; }
  return texts.map((t) => [...t.matchAll(re)].map((m) => [m.index, m.index + m[0].length]));
})));
"""

PATTERNS = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=5).map("".join)


def _regress_spans(pattern: str, text: str) -> list[list[int]]:
    found = compile_pattern(pattern).find_iter(text)
    return [[r.start, r.stop] for r in (m.range() for m in found)]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PATTERNS, min_size=60, max_size=60))
def test_accepted_patterns_read_alike_in_the_runtime(patterns: list[str]) -> None:
    accepted = [p for p in patterns if regex_problem(p) is None]
    payload = json.dumps({"patterns": accepted, "texts": TEXTS})
    run = subprocess.run([str(NODE), "-e", _RUNNER], input=payload, capture_output=True, text=True, check=True)
    for pattern, runtime in zip(accepted, json.loads(run.stdout), strict=True):
        assert runtime is not None, f"the runtime refuses {pattern!r}"
        assert [_regress_spans(pattern, t) for t in TEXTS] == runtime, pattern


@pytest.mark.parametrize("pattern", ["a{,6}", "(?>ab)", "(?(1)a|b)", "a++", "[", "(?i)a", "x*"])
def test_the_issue_cases_are_refused(pattern: str) -> None:
    assert regex_problem(pattern) is not None
