"""agentspec.pii: the rules of a compiled workflow, and the errors a bad class or pattern gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentspec.check import check
from agentspec.load import load
from agentspec.pii import PiiError, PiiRules, mask, mask_deep, rules_for
from agentspec.policy import tables

ROOT = Path(__file__).resolve().parent.parent


def test_rules_for_reads_the_workflow_pii_block() -> None:
    result = check(load(str(ROOT / "specs" / "ops_agent.agent")))
    assert result.spec is not None
    policy = tables(result.spec)
    workflow = next(w for w, e in policy["workflows"].items() if "access_key" in e["pii"]["classes"])
    rules = rules_for(policy, workflow)
    assert mask("EMP-123456 AKIAABCDEFGHIJKLMNOP ops@corp.example", rules) == "[employee_id] [access_key] [email]"
    assert rules_for(policy, "no_such_workflow") == PiiRules()


def test_mask_deep_masks_strings_not_keys() -> None:
    rules = PiiRules(classes=("email",))
    value = {"a@b.io": ["x a@b.io", 3, None, {"k": "c@d.org"}]}
    assert mask_deep(value, rules) == {"a@b.io": ["x [email]", 3, None, {"k": "[email]"}]}


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (PiiRules(classes=("passport",)), "unknown pii class `passport`"),
        (PiiRules(classes=("p",), patterns={"p": "("}), "pii pattern `p` is not a valid regular expression"),
        (PiiRules(classes=("p",), patterns={"p": "x*"}), "pii pattern `p` matches the empty string"),
    ],
)
def test_bad_rules_raise(rules: PiiRules, message: str) -> None:
    with pytest.raises(PiiError, match=message):
        mask("text", rules)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("card ４１１１ １１１１ １１１１ １１１１ ok", "card [card] ok"),
        ("to josé@bücher.de and 用户＠例え.jp", "to [email] and [email]"),
        ("4111.1111.1111.1111 and 4111\u00a01111\u202f1111\u20091111", "[card] and [card]"),
        ("call 415\u2014555\u20132671 or 415  555  2671", "call [phone] or [phone]"),
        ("on 2026\u201311\u201326 order 4111.1111.1111.1112", "on 2026-11-26 order 4111.1111.1111.1112"),
    ],
)
def test_masking_sees_normalized_text(text: str, masked: str) -> None:
    assert mask(text, PiiRules(classes=("email", "phone", "card", "ip", "iban"))) == masked
