"""`%load_ext agentspec` and `%%agentspec` in a real IPython shell; the widgets driven as a notebook drives them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from agentspec import workbench as wb
from agentspec.pii import mask, rules_for
from agentspec.workbench.pii_preview import js_slice, preview
from agentspec.workbench.widgets import PiiPreview, SpecEditor

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "specs" / "support_desk.agent"
TINY = (ROOT / "tests" / "fixtures" / "chat_only.agent").read_text()


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "agentspec")
    yield shell
    InteractiveShell.clear_instance()


def test_cell_magic_checks_the_cell_and_binds_the_result(shell: InteractiveShell) -> None:
    ok = shell.run_cell_magic("agentspec", "tiny", TINY)
    assert isinstance(ok, wb.Checked) and ok.ok and shell.user_ns["tiny"] is ok
    assert "agent `tiny` v1" in str(ok)
    broken = shell.run_cell_magic("agentspec", "--path specs/draft.agent", TINY.replace("[look]", "[lok]"))
    assert broken.diagnostics.codes == ["E0102"]
    assert "--> specs/draft.agent:" in str(broken) and "did you mean `look`?" in str(broken)


def test_cell_magic_refuses_a_bad_line(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="not a Python variable name"):
        shell.run_cell_magic("agentspec", "not-a-name", TINY)
    with pytest.raises(UsageError, match=r"expected one argument"):
        shell.run_cell_magic("agentspec", "--path", TINY)


def test_editor_rechecks_on_every_edit() -> None:
    source = SUPPORT.read_text()
    editor = SpecEditor(source, path=str(SUPPORT))
    seen: list[wb.Checked] = []
    editor.on_check(seen.append)
    assert editor.checked.ok and "no problems" in editor.shown.value
    editor.area.value = source.replace("tools allow [lookup_order]", "tools allow [lookup_ordr]")  # as typing does
    assert not editor.checked.ok and "E0102" in editor.shown.value and len(seen) == 1
    editor.view.value = "policy"
    assert "E0102" in editor.shown.value  # a spec with errors keeps showing them
    editor.set_text(source)
    assert editor.checked.ok and "policy/policy.json" in editor.shown.value and len(seen) == 2


def test_pii_preview_shows_what_the_runtime_persists() -> None:
    checked = wb.load(SUPPORT)
    text = "Ann, ann@example.com, card 4111 1111 1111 1111, call +44 20 7946 0958"
    shown = preview(checked, "orders", text)
    assert shown.masked == mask(text, rules_for(checked.policy.tables, "orders"))
    assert "ann@example.com" not in shown.masked and "[email]" in shown.masked
    widget = PiiPreview(checked, "orders")
    widget.area.value = text
    assert widget.result is not None and widget.result.masked == shown.masked
    assert "[email]" in widget.shown.value and "ann@example.com" not in widget.shown.value
    with pytest.raises(KeyError, match="`nope` is not declared"):
        preview(checked, "nope", text)


def test_intent_is_cut_as_javascript_cuts_it() -> None:
    assert js_slice("a" * 199 + "😀b", 200) == "a" * 199 + "\ud83d"  # half an emoji, as String.slice leaves it
    assert js_slice("é" * 300, 200) == "é" * 200
    checked = wb.load(SUPPORT)
    assert preview(checked, "orders", "x" * 250).intent == "x" * 200


class _Agent:
    """Just what ChatPanel reads of a LiveAgent: its spec and `turn`; answers with markup the model wrote."""

    def __init__(self) -> None:
        self.spec = wb.load(SUPPORT).spec

    def turn(self, session: str, workflow: str, text: str) -> wb.Turn:
        if text == "fail":
            error = {"error": {"code": "models_unavailable", "message": "x"}}
            return wb.Turn(session, workflow, text, 503, error, None)
        body = {"turn": 1, "output": "<script>steal()</script>", "model": "m", "decisions": []}
        trace = {"tier": "low", "gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 3, "cost_usd": 0.5}
        return wb.Turn(session, workflow, text, 200, body, trace)


def test_chat_panel_shows_turns_escaped() -> None:
    from agentspec.workbench.widgets import ChatPanel

    panel = ChatPanel(_Agent(), workflow="refunds")  # type: ignore[arg-type]
    assert panel.send("   ") is None and panel.turns == []
    turn = panel.send("<b>hi</b>")
    assert turn is not None and turn.workflow == "refunds" and panel.message.value == ""
    for markup in (panel.transcript.value, panel.detail.value):
        assert "<script>" not in markup and "<b>hi" not in markup and "&lt;script&gt;" in markup
    assert "tier low, 7+3 tokens, $0.500000" in panel.transcript.value
    panel.send("fail")
    assert "HTTP 503 models_unavailable" in panel.transcript.value
