"""The Python PII masker (agentspec/pii.py) masks exactly as the runtime's (runtime/pii.ts) does.

`codegen/cloudflare/runtime/test/pii_parity.json` holds rule sets and texts drawn by `pii_strategies.pii_texts`
(emails, phones, cards, IBANs, IPs and look-alikes in noise), each with the text the Python masker makes of it.
This test checks that the fixture is what the Python masker makes today; `pii_parity.test.ts` checks the
TypeScript masker, inside workerd, against the same file. `python tests/test_pii_parity.py` rewrites the file
(then read the diff, and run both sides).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings

from agentspec.check import check
from agentspec.load import load
from agentspec.pii import PiiRules, mask, rules_for
from agentspec.policy import tables
from tests.pii_strategies import pii_texts

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "codegen" / "cloudflare" / "runtime" / "test" / "pii_parity.json"
CASES = 900

# Texts whose handling differs most easily between two regex engines: astral characters, empty ones. (Lone
# surrogates are refused at the HTTP boundary, and the test runner's JSON loader cannot read them.)
HAND_WRITTEN = ["😀x@y.io😀", "EMP-123456😀EMP-654321", "", "@@..--"]


def rule_sets() -> dict[str, PiiRules]:
    result = check(load(str(ROOT / "specs" / "ops_agent.agent")))
    assert result.spec is not None
    policy = tables(result.spec)
    sets = {
        "all": PiiRules(classes=("email", "phone", "card", "ip", "iban", "employee_id"),
                        patterns={"employee_id": r"EMP-\d{6}"}),
        "email_only": PiiRules(classes=("email",)),
        "cards_and_ibans": PiiRules(classes=("card", "iban")),
    }  # fmt: skip
    for workflow in policy["workflows"]:
        sets[f"ops_agent/{workflow}"] = rules_for(policy, workflow)
    return sets


def drawn_texts(n: int) -> list[str]:
    """`n` texts from the strategy, the same ones on every run (derandomized, no example database)."""
    texts: list[str] = []

    @settings(max_examples=n, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)  # fmt: skip
    @given(pii_texts())
    def collect(text: str) -> None:
        texts.append(text)

    collect()
    return texts


def fixture() -> dict:
    sets = rule_sets()
    names = list(sets)
    cases = []
    for i, text in enumerate(dict.fromkeys([*HAND_WRITTEN, *drawn_texts(CASES)])):
        # Every text under the widest rules, and under one of the others in turn.
        for name in dict.fromkeys(["all", names[1 + i % (len(names) - 1)]]):
            cases.append({"rules": name, "text": text, "masked": mask(text, sets[name])})
    return {"rules": {k: {"classes": list(v.classes), "patterns": dict(v.patterns)} for k, v in sets.items()},
            "cases": cases}  # fmt: skip


def test_fixture_is_what_the_python_masker_makes() -> None:
    """Every stored case re-masked by today's Python masker, under today's rule sets. The texts are not drawn
    again here: hypothesis's derandomized draws also depend on what else the process has loaded, so a fresh
    draw would differ in which texts it holds, not in how any of them is masked."""
    stored = json.loads(FIXTURE.read_text(encoding="utf-8"))
    sets = rule_sets()
    assert stored["rules"] == {k: {"classes": list(v.classes), "patterns": dict(v.patterns)} for k, v in sets.items()}
    wrong = [c for c in stored["cases"] if mask(c["text"], sets[c["rules"]]) != c["masked"]]
    assert not wrong, f"{len(wrong)} cases mask differently; run `python tests/test_pii_parity.py`, review the diff"


def test_fixture_exercises_every_class() -> None:
    stored = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert len({c["text"] for c in stored["cases"]}) >= 500
    masked = "".join(c["masked"] for c in stored["cases"])
    for label in ("[email]", "[phone]", "[card]", "[ip]", "[iban]", "[employee_id]"):
        assert masked.count(label) >= 20, label
    # Some drawn texts keep their look-alikes, or the fixture would not show the masker leaving things alone.
    assert sum(c["masked"] == c["text"] for c in stored["cases"] if c["rules"] == "all") >= 10


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(fixture(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE.relative_to(ROOT)}", file=sys.stderr)
