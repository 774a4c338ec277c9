"""What a workflow's `pii mask` would persist: a checked spec, a workflow and a text in, the masked text the
runtime would store as history and the `intent` its decision records would carry out.

The masking is `agentspec.pii.mask`, the Python port of the runtime's masker (`src/runtime/pii.ts`) that
`tests/test_pii_parity.py` holds to the TypeScript one; nothing is re-implemented here. The intent is the masked
input's first 200 UTF-16 code units, as the runtime's `maskedInput.slice(0, 200)` takes them.
"""

from __future__ import annotations

from agentspec.pii import PiiError, PiiRules, mask, rules_for
from agentspec.workbench.html import Display, code, esc, pre
from agentspec.workbench.views import Checked

INTENT_UNITS = 200  # session.ts `prepare`: `intent: maskedInput.slice(0, 200)`


def js_slice(text: str, units: int) -> str:
    """`text.slice(0, units)` as JavaScript counts: UTF-16 code units, so an emoji counts two and may be cut."""
    data = text.encode("utf-16-le", errors="surrogatepass")[: 2 * units]
    return data.decode("utf-16-le", errors="surrogatepass")


class MaskPreview(Display):
    def __init__(self, workflow: str, text: str, rules: PiiRules) -> None:
        self.workflow, self.text, self.rules = workflow, text, rules
        self.error: str | None = None
        try:
            self.masked: str | None = mask(text, rules)
        except PiiError as exc:  # the runtime fails such a turn (500 `internal`); say why instead
            self.masked, self.error = None, str(exc)

    @property
    def intent(self) -> str | None:
        return js_slice(self.masked, INTENT_UNITS) if self.masked is not None else None

    def _rules(self) -> str:
        patterns = ", ".join(f"{n} = {p}" for n, p in self.rules.patterns.items() if n in self.rules.classes)
        classes = ", ".join(self.rules.classes) or "nothing"
        return f"workflow `{self.workflow}` masks {classes}" + (f" (patterns: {patterns})" if patterns else "")

    @staticmethod
    def _shown(text: str) -> str:
        # A cut surrogate pair is what the runtime stores; a display shows it as U+FFFD.
        return text.encode("utf-16", errors="surrogatepass").decode("utf-16", errors="replace")

    def _text(self) -> str:
        if self.masked is None or self.intent is None:
            return f"{self._rules()}\nerror: {self.error}"
        return (
            f"{self._rules()}\n\npersisted (history):\n{self._shown(self.masked)}\n\n"
            f"intent (decision records):\n{self._shown(self.intent)}"
        )

    def _html(self) -> str:
        head = f"<p>{esc(self._rules())}</p>"
        if self.masked is None or self.intent is None:
            return f"<div class='agentspec-pii'>{head}<p style='color:crimson'>error: {esc(self.error)}</p></div>"
        return (
            f"<div class='agentspec-pii'>{head}<p><b>persisted</b> (history, summaries):</p>"
            f"{pre(self._shown(self.masked))}<p><b>intent</b> {code('decision records, first 200 units')}:</p>"
            f"{pre(self._shown(self.intent))}</div>"
        )


def preview(checked: Checked, workflow: str, text: str) -> MaskPreview:
    """What `workflow` persists of `text`; an unknown workflow is an error, not a spec that masks nothing."""
    policy = checked.policy.tables
    if workflow not in policy["workflows"]:
        known = ", ".join(f"`{w}`" for w in policy["workflows"])
        raise KeyError(f"workflow `{workflow}` is not declared; the spec declares {known}")
    return MaskPreview(workflow, text, rules_for(policy, workflow))
