"""The workbench's displays: what `agentspec.workbench` shows of a spec, in HTML and in text."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from agentspec import workbench as wb
from agentspec.cli import main
from agentspec.emit import emit
from agentspec.policy import evaluate_tool_call, tables

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "specs" / "support_desk.agent"
TYPO = ROOT / "specs" / "invalid" / "E0102-misspelled-tool.agent"


def _visible(markup: str) -> str:
    """What a browser shows of some HTML: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def test_diagnostics_render_as_the_cli_renders_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(TYPO), "--color", "never"]) == 1
    cli = capsys.readouterr().out.strip()
    checked = wb.load(TYPO)
    assert not checked.ok and checked.diagnostics.codes == ["E0102"]
    assert str(checked).strip() == cli
    shown = _visible(checked._repr_html_())
    for line in cli.splitlines():
        assert line in shown
    bundle = checked._repr_mimebundle_()
    assert bundle["text/plain"] == str(checked) and bundle["text/html"] == checked._repr_html_()


def test_a_spec_with_errors_has_nothing_to_show_or_compile() -> None:
    checked = wb.load(TYPO)
    with pytest.raises(wb.SpecHasErrors, match="1 error"):
        _ = checked.agent
    with pytest.raises(wb.SpecHasErrors):
        checked.compile("never-written")
    assert not Path("never-written").exists()


# A spec whose strings are markup: every one must reach the page as text.
HOSTILE = """
agent hostile version 1 {
  owner "<script>alert('owner')</script>"
  auth bearer secret API_TOKENS
  tenant header "x-tenant-id"
  model tier low { primary "@cf/<b>bold</b>" }
  tool look { GET "https://a.example.com/{id}?q=<i>" risk low read_only args { id: string } }
  workflow chat class c {
    tools allow [look]
    outbound allow ["a.example.com"]
    pii mask [email] before persist
  }
}
"""


def test_spec_strings_are_escaped_in_every_display() -> None:
    checked = wb.load_text(HOSTILE, "hostile.agent")
    assert checked.ok, str(checked)
    for shown in (checked, checked.diagnostics, checked.agent, checked.policy, checked.files):
        markup = shown._repr_html_()
        assert "<script>" not in markup and "<b>bold" not in markup and "<i>" not in markup
    agent = checked.agent._repr_html_()
    assert "&lt;script&gt;alert(&#x27;owner&#x27;)&lt;/script&gt;" in agent
    assert "@cf/&lt;b&gt;bold&lt;/b&gt;" in agent


def test_diagnostics_escape_the_source_they_quote() -> None:
    bad = HOSTILE.replace('outbound allow ["a.example.com"]', 'outbound allow ["a.example.com", "<img src=x>"]')
    checked = wb.load_text(bad, "hostile.agent")
    assert not checked.ok
    markup = checked._repr_html_()
    assert "<img" not in markup and "&lt;img src=x&gt;" in markup


def test_agent_tables_show_who_may_call_what() -> None:
    checked = wb.load(SUPPORT)
    spec = checked.spec
    policy = tables(spec)
    rows = checked.agent.access()
    assert len(rows) == len(spec.workflows) * len(spec.tools)
    for workflow, tool, host, decision, rule in rows:
        verdict = evaluate_tool_call(policy, workflow, tool)
        assert (decision, rule) == (verdict["decision"], verdict["rule"])
        assert host == next(t.host for t in spec.tools if t.name == tool)
    allowed = {(w, t) for w, t, _, d, _ in rows if d == "allow"}
    assert allowed == {(w.name, t) for w in spec.workflows for t in w.tools}
    tiers = {row[0]: row[1] for row in checked.agent.tiers()}
    assert tiers["high"] == " → ".join(next(t.models for t in spec.tiers if t.name == "high"))
    tools = {row[0]: row for row in checked.agent.tools()}
    assert tools["issue_refund"][4:8] == (
        "billing_writer",
        ["BILLING_API_KEY"],
        "{session}:{args.order_id}",
        "cancel_refund",
    )
    text = str(checked.agent)
    for title in ("Model tiers and fallback chains", "Tools", "Workflows", "Who may call what", "Task steps", "SLOs"):
        assert title in text and title in checked.agent._repr_html_()


def test_policy_view_is_the_runtime_tables_and_the_evaluator() -> None:
    checked = wb.load(SUPPORT)
    assert checked.policy.tables == tables(checked.spec)
    verdict = checked.evaluate("orders", "issue_refund")
    assert (verdict.decision, verdict.rule) == ("deny", "tools.allowlist")
    assert checked.evaluate("refunds", "lookup_order", "https://evil.example.com/x").rule == "outbound.allowlist"
    assert "deny (tools.allowlist)" in str(checked.policy)


def test_files_are_the_compiled_project(tmp_path: Path) -> None:
    checked = wb.load(SUPPORT)
    files = checked.files
    assert dict(files) == emit(checked.spec)
    markup = files._repr_html_()
    assert "<summary>policy/policy.json</summary>" in markup
    assert "<summary>src/runtime/session.ts</summary>" not in markup  # listed, not inlined
    out = checked.compile(tmp_path / "out")
    assert (out / "policy" / "policy.json").read_text() == files["policy/policy.json"]


def test_load_text_resolves_imports_from_its_path() -> None:
    checked = wb.load_text(SUPPORT.read_text(), SUPPORT)
    assert checked.ok and checked.spec == wb.load(SUPPORT).spec
    assert not wb.load_text(SUPPORT.read_text(), "elsewhere/support.agent").ok  # its import is not there
