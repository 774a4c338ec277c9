"""Robustness: `agentspec check` survives whatever bytes it is handed.

Every example spec (`specs/**/*.agent`, globbed at collection) is mutated at random —
characters deleted and inserted, tokens swapped, truncation, random and non-UTF-8 bytes,
100k-character lines, deep braces, NUL bytes, BOMs, CRLF — and checked in-process through
`agentspec.cli.main`. The contract:

* the exit code is 0 or 1, and no exception escapes;
* exit 1 exactly when an error-severity diagnostic is reported;
* every diagnostic names the checked file (or a file it imports) and has line >= 1, column >= 1;
* nothing hangs: each check runs under a SIGALRM time guard.

Mutants are written into a copy of the `specs/` tree, next to the original, so relative
imports resolve as they do for the real file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentspec.cli import main
from agentspec.load import load

ROOT = Path(__file__).resolve().parent.parent
SPECS_DIR = ROOT / "specs"
SPEC_FILES: list[Path] = sorted(SPECS_DIR.glob("**/*.agent"))
# (path relative to specs/, original bytes), read once at collection.
SPECS: list[tuple[Path, bytes]] = [(p.relative_to(SPECS_DIR), p.read_bytes()) for p in SPEC_FILES]

TIME_GUARD_S = 10.0
# ROBUSTNESS_EXAMPLES=5000 turns the suite into a longer fuzzing run.
EXAMPLES = int(os.environ.get("ROBUSTNESS_EXAMPLES", "150"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A mutant: which spec it came from, and its bytes.
Mutant = tuple[Path, bytes]


# ───────────────────────────── harness ─────────────────────────────


class Hang(BaseException):
    """Raised by the time guard. A BaseException so no `except Exception` in the code under
    test swallows it, and so Hypothesis reports it at once instead of shrinking a hang."""


@contextlib.contextmanager
def time_guard(seconds: float, what: str) -> Iterator[None]:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"check did not finish within {seconds:g}s: {what}")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of specs/, so mutants can sit beside the files they import."""
    dest = tmp_path_factory.mktemp("robustness") / "specs"
    shutil.copytree(SPECS_DIR, dest)
    return dest


def write_mutant(tree: Path, mutant: Mutant) -> str:
    rel, data = mutant
    path = tree / rel.parent / f"__mutant__{rel.name}"
    path.write_bytes(data)
    return str(path)


def run_cli(path: str, fmt: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        with time_guard(TIME_GUARD_S, path), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["check", path, "--format", fmt])
    except Hang as exc:
        # Keep the input that hung: Hypothesis does not shrink a BaseException.
        data = Path(path).read_bytes()
        keep = Path(path).with_name(f"hang-{hashlib.sha1(data).hexdigest()[:12]}.agent")
        keep.write_bytes(data)
        raise Hang(f"{exc}; input kept at {keep} ({len(data)} bytes, starts {data[:120]!r})") from None
    return code, out.getvalue()


def check_mutant(tree: Path, mutant: Mutant) -> None:
    """The body of each property: the contract holds for the mutant."""
    assert_check_contract(tree, mutant)


def assert_check_contract(tree: Path, mutant: Mutant) -> None:
    path = write_mutant(tree, mutant)
    code, out = run_cli(path, "json")
    assert code in (0, 1), f"exit code {code}"
    diagnostics = json.loads(out)["diagnostics"]
    errors = [d for d in diagnostics if d["severity"] == "error"]
    assert (code == 1) == bool(errors), f"exit {code} with {len(errors)} error(s)"
    imported = set(load(path).sources) - {path}
    lines_in_file = mutant[1].count(b"\n") + 1
    for d in diagnostics:
        where = f"{d['code']} {d['message']!r} at {d['file']}:{d['line']}:{d['column']}"
        assert d["file"] == path or (d["file"] in imported and os.path.isfile(d["file"])), where
        assert isinstance(d["line"], int) and d["line"] >= 1, where
        assert isinstance(d["column"], int) and d["column"] >= 1, where
        if d["file"] == path:
            assert d["line"] <= lines_in_file, f"{where}: the file has {lines_in_file} line(s)"


# ───────────────────────────── mutations ─────────────────────────────

specs = st.sampled_from(SPECS)

# Characters that matter to the lexer, plus a few that do not belong anywhere.
INTERESTING = '{}[]()"\\:,=?<>-$%/.*#@!;\n\r\t \x0c' + "aAzZ_09émtkspG" + "\u2028\u00a0\u200b\ufeff\U0001f600"
snippets = st.one_of(
    st.text(alphabet=INTERESTING, min_size=1, max_size=8),
    st.text(min_size=1, max_size=4),
    st.sampled_from(["tool", "workflow", "step", "call", "import", "agent", "library", "->", "//", '"', "{", "}"]),
)


@st.composite
def deletions(draw: st.DrawFn) -> Mutant:
    rel, data = draw(specs)
    for _ in range(draw(st.integers(1, 5))):
        if not data:
            break
        start = draw(st.integers(0, len(data) - 1))
        length = draw(st.one_of(st.just(1), st.integers(1, 40)))
        data = data[:start] + data[start + length :]
    return rel, data


@st.composite
def insertions(draw: st.DrawFn) -> Mutant:
    rel, data = draw(specs)
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(snippets).encode("utf-8") + data[at:]
    return rel, data


@st.composite
def token_swaps(draw: st.DrawFn) -> Mutant:
    rel, data = draw(specs)
    parts = re.split(rb"(\s+)", data)
    words = [i for i, p in enumerate(parts) if p and not p.isspace()]
    if len(words) < 2:
        return rel, data
    for _ in range(draw(st.integers(1, 3))):
        i, j = draw(st.lists(st.sampled_from(words), min_size=2, max_size=2, unique=True))
        parts[i], parts[j] = parts[j], parts[i]
    return rel, b"".join(parts)


@st.composite
def truncations(draw: st.DrawFn) -> Mutant:
    rel, data = draw(specs)
    return rel, data[: draw(st.integers(0, len(data)))]


@st.composite
def spliced_bytes(draw: st.DrawFn) -> Mutant:
    rel, data = draw(specs)
    at = draw(st.integers(0, len(data)))
    replace = draw(st.integers(0, 8))
    return rel, data[:at] + draw(st.binary(min_size=1, max_size=32)) + data[at + replace :]


BAD_UTF8 = [
    b"\xff",
    b"\xfe\xff",
    b"\x80",
    b"\xc3",  # a lead byte with no continuation
    b"\xc0\xaf",  # overlong `/`
    b"\xed\xa0\x80",  # a UTF-16 surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xe2\x82",  # truncated 3-byte sequence
    "café".encode("latin-1"),
]


@st.composite
def non_utf8(draw: st.DrawFn) -> Mutant:
    rel, data = draw(specs)
    how = draw(st.sampled_from(["insert", "utf16", "latin1"]))
    if how == "utf16":
        return rel, data.decode("utf-8", errors="replace").encode("utf-16")
    if how == "latin1":
        return rel, data.decode("utf-8", errors="replace").encode("latin-1", errors="replace") + "é".encode("latin-1")
    at = draw(st.integers(0, len(data)))
    return rel, data[:at] + draw(st.sampled_from(BAD_UTF8)) + data[at:]


# Digits too: a 100k-digit number in a value position once crashed the checker.
LONG_FILLERS = ["9", "a", "x_", " ", "\t", '"', '"abc', "/", "// c", "{", "}", "-", "é", "name, ", "->", "\\", "😀"]


@st.composite
def long_lines(draw: st.DrawFn) -> Mutant:
    rel, data = draw(specs)
    filler = draw(st.sampled_from(LONG_FILLERS))
    line = (filler * (100_000 // len(filler) + 1))[:100_000]
    wrap = draw(st.sampled_from(["{}", "{}\n", "\n{}\n", '"{}"', "// {}\n", "tool {} {{ }}\n"]))
    at = draw(st.integers(0, len(data)))
    return rel, data[:at] + wrap.format(line).encode("utf-8") + data[at:]


@st.composite
def deep_braces(draw: st.DrawFn) -> Mutant:
    rel, data = draw(specs)
    depth = draw(st.sampled_from([100, 1_000, 10_000, 50_000]))
    shape = draw(st.sampled_from(["open", "balanced", "close", "square", "shape"]))
    nest = {
        "open": "{" * depth,
        "balanced": "{" * depth + "}" * depth,
        "close": "}" * depth,
        "square": "[" * depth + "]" * depth,
        "shape": "args { a: " * depth + "}" * depth,
    }[shape]
    at = draw(st.integers(0, len(data)))
    return rel, data[:at] + nest.encode("utf-8") + data[at:]


@st.composite
def nul_bytes(draw: st.DrawFn) -> Mutant:
    rel, data = draw(specs)
    how = draw(st.sampled_from(["insert", "only", "replace_whitespace"]))
    if how == "only":
        return rel, b"\x00" * draw(st.integers(1, 1000))
    if how == "replace_whitespace":
        return rel, data.replace(b" ", b"\x00", draw(st.integers(1, 50)))
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\x00" * draw(st.integers(1, 3)) + data[at:]
    return rel, data


BOM = b"\xef\xbb\xbf"


@st.composite
def boms(draw: st.DrawFn) -> Mutant:
    rel, data = draw(specs)
    how = draw(st.sampled_from(["lone", "prefix", "double", "inside", "bom_newline"]))
    if how == "lone":
        return rel, BOM
    if how == "prefix":
        return rel, BOM + data
    if how == "double":
        return rel, BOM + BOM + data
    if how == "bom_newline":
        return rel, BOM + b"\n"
    at = draw(st.integers(0, len(data)))
    return rel, data[:at] + BOM + data[at:]


@st.composite
def line_endings(draw: st.DrawFn) -> Mutant:
    rel, data = draw(specs)
    how = draw(st.sampled_from(["crlf", "cr", "mixed", "crlf_no_final"]))
    if how == "crlf":
        return rel, data.replace(b"\n", b"\r\n")
    if how == "cr":
        return rel, data.replace(b"\n", b"\r")
    if how == "crlf_no_final":
        return rel, data.rstrip(b"\n").replace(b"\n", b"\r\n")
    lines = data.split(b"\n")
    ends = draw(st.lists(st.sampled_from([b"\n", b"\r\n", b"\r", b"\n\r"]), min_size=len(lines), max_size=len(lines)))
    return rel, b"".join(line + end for line, end in zip(lines, ends, strict=True))


any_mutant = st.one_of(
    deletions(),
    insertions(),
    token_swaps(),
    truncations(),
    spliced_bytes(),
    non_utf8(),
    long_lines(),
    deep_braces(),
    nul_bytes(),
    boms(),
    line_endings(),
)


# ───────────────────────────── properties ─────────────────────────────


def test_unmutated_examples(tree: Path) -> None:
    """The baseline the mutations start from: every example, valid or not, meets the contract."""
    assert SPECS, "no example specs found under specs/"
    for mutant in SPECS:
        assert_check_contract(tree, mutant)


@PROPERTY
@given(mutant=deletions())
def test_deleted_characters(tree: Path, mutant: Mutant) -> None:
    check_mutant(tree, mutant)


@PROPERTY
@given(mutant=insertions())
def test_inserted_characters(tree: Path, mutant: Mutant) -> None:
    check_mutant(tree, mutant)


@PROPERTY
@given(mutant=token_swaps())
def test_swapped_tokens(tree: Path, mutant: Mutant) -> None:
    check_mutant(tree, mutant)


@PROPERTY
@given(mutant=truncations())
def test_truncated(tree: Path, mutant: Mutant) -> None:
    check_mutant(tree, mutant)


@PROPERTY
@given(mutant=spliced_bytes())
def test_random_bytes_spliced(tree: Path, mutant: Mutant) -> None:
    check_mutant(tree, mutant)


@PROPERTY
@given(mutant=non_utf8())
def test_non_utf8(tree: Path, mutant: Mutant) -> None:
    check_mutant(tree, mutant)


@PROPERTY
@given(mutant=long_lines())
def test_very_long_lines(tree: Path, mutant: Mutant) -> None:
    check_mutant(tree, mutant)


@PROPERTY
@given(mutant=deep_braces())
def test_deeply_nested_braces(tree: Path, mutant: Mutant) -> None:
    check_mutant(tree, mutant)


@PROPERTY
@given(mutant=nul_bytes())
def test_nul_bytes(tree: Path, mutant: Mutant) -> None:
    check_mutant(tree, mutant)


@PROPERTY
@given(mutant=boms())
def test_byte_order_marks(tree: Path, mutant: Mutant) -> None:
    check_mutant(tree, mutant)


@PROPERTY
@given(mutant=line_endings())
def test_line_endings(tree: Path, mutant: Mutant) -> None:
    check_mutant(tree, mutant)


@PROPERTY
@given(mutant=any_mutant)
def test_human_format_never_raises(tree: Path, mutant: Mutant) -> None:
    path = write_mutant(tree, mutant)
    code, out = run_cli(path, "human")
    assert code in (0, 1), f"exit code {code}"
    assert out.rstrip().splitlines()[-1].startswith("checked 1 file"), out[-300:]


def test_lone_bom_is_a_located_syntax_error(tree: Path) -> None:
    path = write_mutant(tree, (Path("lone_bom.agent"), BOM))
    code, out = run_cli(path, "json")
    assert code == 1
    [d] = json.loads(out)["diagnostics"]
    assert (d["code"], d["file"], d["line"], d["column"]) == ("E0001", path, 1, 1)


def test_crlf_spec_checks_like_lf(tree: Path) -> None:
    for rel, data in SPECS:
        if "invalid" in rel.parts:
            continue
        lf = run_cli(write_mutant(tree, (rel, data)), "json")[0]
        crlf = run_cli(write_mutant(tree, (rel, data.replace(b"\n", b"\r\n"))), "json")[0]
        assert lf == crlf, rel


# ───────────────────────────── crashes found, now fixed ─────────────────────────────
# Found by the properties above; each is a minimal reproducer kept as a regression test.

SUPPORT_DESK = (SPECS_DIR / "support_desk.agent").read_text(encoding="utf-8")

FOUND_CRASHES = [
    pytest.param(
        ("    read_only\n", "    read_only\n    max response " + "1" * 5000 + "KiB\n"),
        id="size-over-4300-digits",
    ),
    pytest.param(
        ("    read_only\n", "    read_only\n    max response " + "9" * 400 + "KiB\n"),
        id="size-over-float-range",
    ),
    pytest.param(
        ("timeout 2s", "timeout " + "9" * 400 + "s"),
        id="infinite-duration",
    ),
    pytest.param(
        ("retry 3 backoff exponential 500ms", "retry " + "9" * 400 + " backoff exponential 500ms"),
        id="infinite-retry-count",
    ),
    pytest.param(
        ("retry 3 backoff exponential 500ms", "retry 3000 backoff exponential 500ms"),
        id="exponential-backoff-overflow",
    ),
]


def test_nul_in_import_path(tree: Path) -> None:
    text = '{}\nimport "\x00shared/billing_tools.agent"\n{}'.format(*SUPPORT_DESK.split("\n", 1))
    assert_check_contract(tree, (Path("support_desk.agent"), text.encode("utf-8")))


@pytest.mark.parametrize("edit", FOUND_CRASHES)
def test_found_crash(tree: Path, edit: tuple[str, str]) -> None:
    old, new = edit
    assert old in SUPPORT_DESK
    text = SUPPORT_DESK.replace(old, new, 1)
    assert_check_contract(tree, (Path("support_desk.agent"), text.encode("utf-8")))


def test_huge_retry_count_does_not_hang(tree: Path) -> None:
    text = SUPPORT_DESK.replace("retry 3 backoff exponential 500ms", "retry 300000 backoff constant 500ms", 1)
    path = write_mutant(tree, (Path("support_desk.agent"), text.encode("utf-8")))
    out = io.StringIO()
    with time_guard(3.0, path), contextlib.redirect_stdout(out):
        code = main(["check", path, "--format", "json"])
    assert code in (0, 1)


def test_lone_surrogate_pii_pattern_is_a_diagnostic() -> None:
    """`"\\ud800"` decodes to a lone surrogate, which the regex engine cannot take as UTF-8: E0405, not a crash
    (found by the formatter's property test)."""
    from agentspec.check import check
    from agentspec.load import load_text

    text = (
        'agent a version 1 { auth bearer secret T tenant header "x-t" model tier t { primary "m" }\n'
        '  workflow w class c { pii pattern d "\\ud800" pii mask [d] before persist } }\n'
    )
    found = [(d.code, d.message) for d in check(load_text(text, "s.agent")).diagnostics]
    assert found == [("E0405", "PII pattern `d` contains a lone UTF-16 surrogate, which is not text")]
