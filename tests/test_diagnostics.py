"""Golden tests for diagnostics: every spec in specs/invalid/ through load + check, rendered.

Each `specs/invalid/<CODE>-<slug>.agent` must report <CODE>, at a real location, and its
human rendering is pinned by a snapshot under __snapshots__/test_diagnostics/. Adding a
file adds a case; a code in agentspec/codes.py without a file fails `test_every_code_has_a_spec`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from agentspec.check import CheckResult, check
from agentspec.codes import CODES
from agentspec.diagnostics import Diagnostic, render_human, to_json, to_sarif
from agentspec.load import Loaded, load, load_text

ROOT = Path(__file__).resolve().parent.parent
INVALID_DIR = ROOT / "specs" / "invalid"
INVALID = sorted(INVALID_DIR.glob("*.agent"))

# Specs whose code the checker does not report yet; strict, so a fix turns the case red
# until the entry is removed here.
KNOWN_BUGS: dict[str, str] = {}


def _code(spec: Path) -> str:
    return spec.name.split("-", 1)[0]


def _rel(spec: Path) -> str:
    return spec.relative_to(ROOT).as_posix()


def _param(spec: Path, *, known_bugs: bool = False) -> object:
    marks = []
    if known_bugs and spec.stem in KNOWN_BUGS:
        marks.append(pytest.mark.xfail(reason=KNOWN_BUGS[spec.stem], strict=True))
    return pytest.param(spec, id=spec.stem, marks=marks)


class TextSnapshot(SingleFileSnapshotExtension):
    """One readable .txt file per snapshot, so a review reads them like compiler output."""

    _write_mode = WriteMode.TEXT
    file_extension = "txt"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    # Paths in diagnostics are as given; relative ones keep snapshots machine-independent.
    monkeypatch.chdir(ROOT)


@pytest.fixture
def text_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(TextSnapshot)


def _run(spec: Path) -> tuple[Loaded, CheckResult]:
    loaded = load(_rel(spec))
    return loaded, check(loaded)


# ───────────────────────────── one case per invalid spec ─────────────────────────────


def test_every_code_has_a_spec() -> None:
    covered = {_code(p) for p in INVALID}
    assert sorted(set(CODES) - covered) == []


def test_every_spec_is_named_for_a_known_code() -> None:
    unknown = [p.name for p in INVALID if _code(p) not in CODES]
    assert unknown == []


@pytest.mark.parametrize("spec", [_param(p, known_bugs=True) for p in INVALID])
def test_spec_reports_its_code(spec: Path) -> None:
    _, result = _run(spec)
    codes = [d.code for d in result.diagnostics]
    assert _code(spec) in codes


@pytest.mark.parametrize("spec", [_param(p) for p in INVALID])
def test_errors_block_and_warnings_do_not(spec: Path) -> None:
    _, result = _run(spec)
    assert result.diagnostics
    if _code(spec).startswith("W"):
        # Warning-only specs still compile (the CLI exits 0 on them).
        assert result.ok
        assert result.spec is not None
        assert {d.severity for d in result.diagnostics} == {"warning"}
    else:
        assert not result.ok
        assert result.spec is None


@pytest.mark.parametrize("spec", [_param(p) for p in INVALID])
def test_every_diagnostic_is_located(spec: Path) -> None:
    loaded, result = _run(spec)
    allowed = {_rel(spec), *loaded.sources}
    for d in result.diagnostics:
        assert d.span.file in allowed, d
        assert d.span.line >= 1, d
        assert d.span.column >= 1, d
        assert (d.span.end_line, d.span.end_column) >= (d.span.line, d.span.column), d
        source = loaded.sources.get(d.span.file)
        if source is not None:
            # The end of the file is a place too (unexpected end of file).
            assert d.span.line <= source.count("\n") + 1, d


@pytest.mark.parametrize("spec", [_param(p) for p in INVALID])
def test_human_rendering(spec: Path, text_snapshot: SnapshotAssertion) -> None:
    loaded, result = _run(spec)
    assert render_human(result.diagnostics, loaded.sources, color=False) == text_snapshot


# ───────────────────────────── focused behaviour ─────────────────────────────


@pytest.mark.parametrize(
    ("spec", "wrong", "meant"),
    [
        ("E0102-misspelled-tool.agent", "issue_refnd", "issue_refund"),
        ("E0102-misspelled-tier.agent", "hgih", "high"),
        ("E0102-misspelled-identity.agent", "billing_writr", "billing_writer"),
        ("E0103-secret-name-typo.agent", "BILLING_KEY", "BILLING_API_KEY"),
        ("E0604-url-placeholder-not-an-arg.agent", "orderId", "order_id"),
        pytest.param(
            "E0604-step-template-typo.agent",
            "verfy.order_id",
            "verify",
        ),
    ],
)
def test_did_you_mean(spec: str, wrong: str, meant: str) -> None:
    loaded, result = _run(INVALID_DIR / spec)
    [d] = [d for d in result.diagnostics if f"`{wrong}`" in d.message or f"{{{wrong}}}" in d.message]
    assert d.help == f"did you mean `{meant}`?"
    # The caret sits under the misspelled name (or the string holding it).
    line = loaded.sources[d.span.file].splitlines()[d.span.line - 1]
    assert wrong in line[d.span.column - 1 : d.span.end_column - 1]
    assert f"= help: did you mean `{meant}`?" in render_human([d], loaded.sources)


def test_no_suggestion_when_nothing_is_close() -> None:
    text = (INVALID_DIR / "E0102-misspelled-tool.agent").read_text().replace("issue_refnd", "wire_transfer")
    result = check(load_text(text, "specs/invalid/far.agent"))
    [d] = [d for d in result.diagnostics if d.code == "E0102"]
    assert d.help is None


MULTI = """\
agent order_help version 1 {
  auth bearer secret API_TOKENS
  tenant header "x-tenant-id"

  model tier low {
    primary "@cf/zai-org/glm-4.7-flash"
    timeout 30
  }

  tool lookup_order {
    GET "https://orders.example.com/v1/orders/{order_id}"
    risk low
    read_only
    args { order_id: string }
  }

  workflow orders class support {
    route risk low -> tier low
    tools allow [lookup_ordr]
  }
}
"""


def test_all_errors_are_collected() -> None:
    loaded = load_text(MULTI, "multi.agent")
    result = check(loaded)
    found = {(d.code, d.span.line) for d in result.diagnostics}
    assert ("E0601", 7) in found  # timeout 30
    assert ("E0102", 19) in found  # lookup_ordr
    assert ("E0402", 17) in found  # no pii mask on workflow `orders`
    rendered = render_human(result.diagnostics, loaded.sources)
    assert rendered.count("error[") == len(result.diagnostics) >= 3


def _all_invalid_diagnostics() -> list[Diagnostic]:
    return [d for spec in INVALID for d in _run(spec)[1].diagnostics]


def test_json_output() -> None:
    diagnostics = _all_invalid_diagnostics()
    data = json.loads(to_json(diagnostics))
    items = data["diagnostics"]
    assert len(items) == len(diagnostics)
    for item in items:
        assert item["code"] in CODES
        assert item["severity"] in ("error", "warning")
        assert isinstance(item["file"], str) and item["file"]
        assert isinstance(item["line"], int) and item["line"] >= 1
        assert isinstance(item["column"], int) and item["column"] >= 1
    by_place = {(i["file"], i["line"], i["column"], i["code"]) for i in items}
    assert by_place == {(d.span.file, d.span.line, d.span.column, d.code) for d in diagnostics}


@pytest.mark.parametrize("spec", [_param(p) for p in INVALID])
def test_message_style(spec: Path) -> None:
    """docs/architecture.md, "How a diagnostic reads": lowercase start (an acronym is fine), no final period."""
    for d in _run(spec)[1].diagnostics:
        first = d.message.split(" ", 1)[0]
        assert d.message[0].islower() or d.message[0] == "`" or first.isupper(), d.message
        assert not d.message.endswith("."), d.message
        assert d.label == "" or not d.label.endswith("."), d.label


def test_json_output_for_a_clean_spec() -> None:
    assert json.loads(to_json([])) == {"diagnostics": []}


def _check_sarif(log: dict, diagnostics: list[Diagnostic]) -> None:
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    [run] = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "agentspec"
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    assert set(rule_ids) == {d.code for d in diagnostics}
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] == CODES[rule["id"]].title
    results = run["results"]
    assert len(results) == len(diagnostics)
    for result in results:
        assert result["ruleId"] in rule_ids
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning")
        assert result["message"]["text"]
        [location] = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"]
        region = physical["region"]
        assert region["startLine"] >= 1
        assert region["startColumn"] >= 1
        assert region["endLine"] >= region["startLine"]


def test_sarif_output() -> None:
    diagnostics = _all_invalid_diagnostics()
    _check_sarif(json.loads(to_sarif(diagnostics)), diagnostics)


def test_sarif_output_for_a_clean_spec() -> None:
    log = json.loads(to_sarif([]))
    _check_sarif(log, [])
    assert log["runs"][0]["results"] == []


def test_warning_shows_its_arithmetic() -> None:
    _, result = _run(INVALID_DIR / "W0501-latency-slo-too-tight.agent")
    [d] = result.diagnostics
    assert d.notes == (
        "step `refund`: 6 x 15s + backoff 1s + 2s + 4s + 8s + 16s = 121s",
        "worst case 121s > p95 bound 10s",
    )


def test_valid_example_is_clean() -> None:
    # The invalid specs are trimmed from this one; if it breaks, every case above means less.
    _, result = _run(ROOT / "specs" / "support_desk.agent")
    assert result.diagnostics == []
    assert result.spec is not None


# ───────────────────────────── the catalogue ─────────────────────────────


def test_every_form_is_a_template_over_named_fields() -> None:
    """A literal `{` in a form must be doubled; a field must be a plain name the checker passes."""
    import string

    for code in CODES.values():
        for name, form in code.forms.items():
            for text in (form.message, form.label, form.help or ""):
                fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
                assert all(f.isidentifier() for f in fields), (code.code, name, fields)
                text.format(**{f: "x" for f in fields})


def test_cost_warning_prices_every_tier_a_task_infers_on() -> None:
    """W0502 prices the tiers of `infer` steps too, not only the tier turns run on."""
    text = (INVALID_DIR / "W0502-cost-slo-below-tier-price.agent").read_text()
    cheap = text.replace("tools allow [issue_refund]", "tools allow []").replace("route risk high -> tier high\n", "")
    cheap = cheap.replace("cost per task < $0.002", "cost per task < $0.001")
    assert check(load_text(cheap, "cheap.agent")).diagnostics == []  # low tier: $0.00068 per task
    inferring = cheap.replace("    slo {", '    step think = infer tier high "summarise {params.ticket}"\n\n    slo {')
    [d] = check(load_text(inferring, "inferring.agent")).diagnostics
    assert (d.code, d.message) == ("W0502", "cost SLO of workflow `refunds` cannot hold at tier `high` prices")
    assert d.notes[-1] == "$0.0056 > bound $0.001"


SHADOW = """\
agent ledger version 1 {
  auth bearer secret API_TOKENS
  tenant header "x-tenant-id"
  model tier top { primary "@cf/moonshotai/kimi-k2.6" clears risk high }

  tool lookup_order {
    GET "https://orders.example.com/v1/orders/{order_id}"
    risk low
    read_only
    args { order_id: string }
  }

  tool export_ledger {
    GET "https://billing.example.com/v1/ledger"
    risk high
    read_only
  }

  workflow orders class support {
    route risk low -> tier top
    tools allow [lookup_order]
    outbound allow ["orders.example.com"]
    policy MODE
    pii mask [email] before persist
  }
}
"""


def test_shadow_mode_checks_the_read_only_tools_it_can_execute_unlisted() -> None:
    """The runtime's shadow rule runs a would-be-denied call of a read-only tool within the turn tier's
    clearance, so a shadow workflow can execute `export_ledger` though it lists only `lookup_order`."""
    assert check(load_text(SHADOW.replace("MODE", "enforce"), "enforce.agent")).diagnostics == []
    [d] = check(load_text(SHADOW.replace("MODE", "shadow"), "shadow.agent")).diagnostics
    assert (d.code, d.message) == ("E0304", "workflow `orders` can reach high-risk tool `export_ledger` in shadow mode")
