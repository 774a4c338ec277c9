"""Golden and behaviour tests for `emit` and `agentspec compile`: spec in, project tree out.

Every generated file of every example spec (and of the escaping fixture) is pinned by one
snapshot under __snapshots__/test_compile/, so a change of the generated output shows up as
a reviewable diff per file. `src/runtime/*` is not snapshotted: it must be a byte-for-byte
copy of codegen/cloudflare/runtime. The rest checks determinism, the escaping boundary and
how `write` treats an existing OUTDIR. Type-checking and bundling are in test_generated.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from agentspec import model as m
from agentspec.check import check
from agentspec.cli import main
from agentspec.emit import CODEGEN, MANIFEST, emit, lit
from agentspec.fmt import format_text
from agentspec.load import load
from agentspec.policy import spec_hash

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "specs").glob("*.agent"))
ESCAPING = ROOT / "tests" / "fixtures" / "escaping.agent"
CHAT_ONLY = ROOT / "tests" / "fixtures" / "chat_only.agent"
RUNTIME = CODEGEN / "runtime"
RUNTIME_PREFIX = "src/runtime/"
LOCKFILE = "package-lock.json"  # the toolchain's, renamed: compared to it below rather than snapshotted


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _resolve(spec: Path) -> m.RSpec:
    result = check(load(_rel(spec)))
    assert result.spec is not None, result.diagnostics
    return result.spec


def _emit(spec: Path) -> dict[str, str]:
    return emit(_resolve(spec))


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under root (symlinks not followed), by relative path: what a directory holds."""
    return {
        p.relative_to(root).as_posix(): (b"-> " + str(p.readlink()).encode()) if p.is_symlink() else p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


# ───────────────────────────── snapshots ─────────────────────────────


class TextSnapshot(SingleFileSnapshotExtension):
    """One text file per generated file, so a review reads the diff of that file alone."""

    _write_mode = WriteMode.TEXT
    file_extension = "txt"


def _generated_cases() -> list[Any]:
    cases = []
    for spec in [*EXAMPLES, ESCAPING]:
        result = check(load(str(spec)))
        for path in emit(result.spec) if result.spec else []:  # a spec that fails to check fails below
            if not path.startswith(RUNTIME_PREFIX) and path != LOCKFILE:
                cases.append(pytest.param(spec, path, id=f"{spec.stem}--{path.replace('/', '--')}"))
    return cases


@pytest.mark.parametrize(("spec", "path"), _generated_cases())
def test_generated_file(spec: Path, path: str, snapshot: SnapshotAssertion) -> None:
    text = _emit(spec)[path]
    if path == MANIFEST:
        # The runtime's hashes change with every runtime edit; that the runtime is copied
        # verbatim, and hashed right, is asserted below. The snapshot keeps the glue's hashes.
        manifest = json.loads(text)
        stand_in = {LOCKFILE: "<toolchain lock>"}  # compared to the toolchain's lock below
        manifest["files"] = {
            name: "<runtime copy>" if name.startswith(RUNTIME_PREFIX) else stand_in.get(name, digest)
            for name, digest in manifest["files"].items()
        }
        text = json.dumps(manifest, indent=2) + "\n"
    assert text == snapshot.use_extension(TextSnapshot)


@pytest.mark.parametrize("spec", [*EXAMPLES, ESCAPING], ids=lambda p: p.stem)
def test_lockfile_is_the_toolchains_under_the_projects_name(spec: Path) -> None:
    files = _emit(spec)
    package, lock = json.loads(files["package.json"]), json.loads(files[LOCKFILE])
    toolchain = json.loads((CODEGEN / LOCKFILE).read_text())
    assert (lock["name"], lock["version"]) == (package["name"], package["version"])
    root = lock["packages"][""]
    assert (root["name"], root["version"]) == (package["name"], package["version"])
    assert root["dependencies"] == package["dependencies"] and root["devDependencies"] == package["devDependencies"]
    # Everything else, every installed package above all, is the toolchain's lock as tested.
    assert {k: v for k, v in lock["packages"].items() if k} == {k: v for k, v in toolchain["packages"].items() if k}
    assert {k: v for k, v in lock.items() if k not in ("name", "version", "packages")} == {
        k: v for k, v in toolchain.items() if k not in ("name", "version", "packages")
    }


@pytest.mark.parametrize("spec", [*EXAMPLES, ESCAPING], ids=lambda p: p.stem)
def test_runtime_is_a_verbatim_copy(spec: Path) -> None:
    files = _emit(spec)
    copied = {
        path.removeprefix(RUNTIME_PREFIX): text for path, text in files.items() if path.startswith(RUNTIME_PREFIX)
    }
    library = {
        p.relative_to(RUNTIME).as_posix(): p
        for p in RUNTIME.rglob("*.ts")
        if "test" not in p.relative_to(RUNTIME).parts
    }
    assert sorted(copied) == sorted(library)
    assert "index.ts" in copied and "policy.ts" in copied
    for name, source in library.items():
        assert copied[name].encode() == source.read_bytes(), name
    assert not any(re.search(r"(^|/)test/|\.test\.ts$|fixtures\.ts$", name) for name in copied)


@pytest.mark.parametrize("spec", [*EXAMPLES, ESCAPING, CHAT_ONLY], ids=lambda p: p.stem)
def test_project_layout(spec: Path) -> None:
    resolved = _resolve(spec)
    files = emit(resolved)
    has_tasks = any(w.steps for w in resolved.workflows)
    expected = {
        ".agentspec-manifest.json",
        ".dev.vars.example",
        ".env",
        ".gitignore",
        "README.md",
        "package-lock.json",
        "package.json",
        "policy/policy.json",
        "src/env.ts",
        "src/index.ts",
        "src/policy.ts",
        "test/index.test.ts",
        "tsconfig.json",
        "vitest.config.mts",
        "wrangler.jsonc",
    } | ({"src/workflows.ts"} if has_tasks else set())
    assert {p for p in files if not p.startswith(RUNTIME_PREFIX)} == expected
    assert list(files) == sorted(files)
    assert all(text.endswith("\n") and "\r\n" not in text.replace("\\r\\n", "") for text in files.values())


def _wrangler(files: dict[str, str]) -> dict[str, Any]:
    text = files["wrangler.jsonc"]
    body = "\n".join(line for line in text.splitlines() if not line.startswith("//"))
    return json.loads(body)  # the generated file is JSON after its header comments


@pytest.mark.parametrize("spec", [*EXAMPLES, ESCAPING, CHAT_ONLY], ids=lambda p: p.stem)
def test_wrangler_bindings_match_env_and_exports(spec: Path) -> None:
    files = _emit(spec)
    config = _wrangler(files)
    env_ts, index_ts = files["src/env.ts"], files["src/index.ts"]
    for workflow in config["workflows"]:
        assert f"  {workflow['binding']}: Workflow;" in env_ts
        assert f"  {workflow['class_name']},\n" in index_ts
        assert f"export class {workflow['class_name']} extends WorkflowEntrypoint" in files["src/workflows.ts"]
    for kv in config["kv_namespaces"]:
        assert f"  {kv['binding']}: KVNamespace;" in env_ts
    for r2 in config["r2_buckets"]:
        assert f"  {r2['binding']}: R2Bucket;" in env_ts
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", r2["bucket_name"])
    production = config["env"]["production"]
    for secret in production["secrets"]["required"]:
        assert f"  {secret}: string;" in env_ts
    assert config["durable_objects"]["bindings"] == [{"name": "SESSION", "class_name": "SessionDO"}]
    assert config["migrations"][0]["new_sqlite_classes"] == ["SessionDO"]
    assert production["ai"] == {"binding": "AI"} and "ai" not in config


# wrangler does not inherit these from the top level into a named environment: each must be
# repeated under env.production, or the deployed Worker runs without it (and wrangler warns on deploy).
# `ai` and `secrets` are only in production (the top level is offline: see below).
NON_INHERITED = ["durable_objects", "workflows", "kv_namespaces", "r2_buckets", "queues", "vars"]


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_required_secrets_are_declared_for_deploys_only(spec: Path) -> None:
    # With `secrets.required` at the top level, `wrangler dev` loads only those keys from .dev.vars and
    # would drop INFERENCE_URL and TOOL_ORIGINS; deploys are where a missing secret must stop things.
    config = _wrangler(_emit(spec))
    assert config["env"]["production"]["secrets"]["required"]
    assert "secrets" not in config


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_production_env_repeats_non_inherited_keys(spec: Path) -> None:
    config = _wrangler(_emit(spec))
    assert list(config["env"]) == ["production"]
    production = config["env"]["production"]
    assert production["name"] == config["name"]  # not `<name>-production`
    for key in NON_INHERITED:
        assert key in production, key
        if key not in ("vars", "queues"):
            assert production[key] == config[key], key
    # Locally a second per export batch, so tests see their files soon; deployed, wrangler's 30 s.
    assert [c["max_batch_timeout"] for c in config["queues"]["consumers"]] == [1]
    assert [c["max_batch_timeout"] for c in production["queues"]["consumers"]] == [30]
    assert config["vars"] == {**production["vars"], "INFERENCE_URL": "http://127.0.0.1:11434/v1"}
    assert production["vars"]["INFERENCE_URL"] == ""  # empty: Workers AI (runtime/inference.ts)


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_npm_scripts_name_the_environment(spec: Path) -> None:
    scripts = json.loads(_emit(spec)["package.json"])["scripts"]
    assert scripts["deploy"] == "wrangler deploy --env production"
    assert "--env" not in scripts["dev"] and "--env" not in scripts["start"]


_README_PATH = re.compile(r"`((?:src|policy)/[\w./-]+|wrangler\.jsonc)`")


@pytest.mark.parametrize(
    "spec",
    [
        *EXAMPLES,
        ESCAPING,
        CHAT_ONLY,
    ],
    ids=lambda p: p.stem,
)
def test_readme_names_only_generated_files(spec: Path) -> None:
    files = _emit(spec)
    named = _README_PATH.findall(files["README.md"])
    assert "src/index.ts" in named
    assert [path for path in named if path not in files] == []


# ───────────────────────────── determinism ─────────────────────────────


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_emit_is_deterministic(spec: Path) -> None:
    assert _emit(spec) == _emit(spec)


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_compile_twice_gives_identical_trees(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", _rel(spec), "-o", str(tmp_path / "a")]) == 0
    assert main(["compile", _rel(spec), "-o", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    first, second = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert first == second
    assert {path: text.encode() for path, text in _emit(spec).items()} == first


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_manifest_hashes_every_file(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", _rel(spec), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    tree = _tree(tmp_path / "out")
    manifest = json.loads(tree.pop(MANIFEST))
    assert manifest["files"] == {path: hashlib.sha256(data).hexdigest() for path, data in tree.items()}
    assert manifest["spec_hash"] == spec_hash(_resolve(spec))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", manifest["spec_hash"])
    assert f"spec hash: {manifest['spec_hash']}\n" in out
    policy = json.loads(tree["policy/policy.json"])
    assert policy["spec_hash"] == manifest["spec_hash"]
    assert manifest["spec_hash"] in tree["wrangler.jsonc"].decode()


def _reformatted(text: str) -> str:
    """The same spec with comments added at line ends, blank lines doubled and indentation widened."""
    lines = []
    for line in text.splitlines():
        stripped = line.rstrip()
        if stripped and "//" not in stripped:
            stripped += "    // a comment that changes nothing"
        lines.extend(["    " + stripped, ""])
    return "// a new leading comment\n\n" + "\n".join(lines) + "\n"


def _hash_of(text: str, directory: Path) -> str:
    path = directory / "variant.agent"
    path.write_text(text, encoding="utf-8")
    result = check(load(str(path)))
    assert result.spec is not None, result.diagnostics
    return spec_hash(result.spec)


def test_spec_hash_follows_meaning_not_layout(tmp_path: Path) -> None:
    source = ROOT / "specs" / "support_desk.agent"
    shutil.copytree(ROOT / "specs" / "shared", tmp_path / "shared")  # imports resolve beside the file
    text = source.read_text(encoding="utf-8")
    original = spec_hash(_resolve(source))

    assert _hash_of(text, tmp_path) == original  # a different path alone changes nothing
    assert _hash_of(_reformatted(text), tmp_path) == original
    formatted = format_text(text)
    assert formatted is not None
    assert _hash_of(formatted, tmp_path) == original

    assert "timeout 8s" in text
    assert _hash_of(text.replace("timeout 8s", "timeout 9s", 1), tmp_path) != original
    assert _hash_of(text.replace("retry 5 backoff", "retry 4 backoff", 1), tmp_path) != original
    assert _hash_of(text.replace('owner "support-platform"', 'owner "support"', 1), tmp_path) != original


# ───────────────────────────── escaping ─────────────────────────────


def _string_literals(source: str) -> list[str]:
    """Every string literal of a spec, decoded: spec strings use JSON's escapes (docs/language.md)."""
    code = "\n".join(re.sub(r'^((?:[^"/]|"(?:[^"\\]|\\.)*")*)//.*$', r"\1", line) for line in source.splitlines())
    return [json.loads(lit_) for lit_ in re.findall(r'"(?:[^"\\\n]|\\.)*"', code)]


def _json_strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set(value) | {s for v in value.values() for s in _json_strings(v)}
    if isinstance(value, list):
        return {s for v in value for s in _json_strings(v)}
    return set()


NASTY = [s for s in _string_literals(ESCAPING.read_text(encoding="utf-8")) if re.search(r"[\"`$*<\n\u2028\\]", s)]


def test_escaping_fixture_is_nasty() -> None:
    """Guards the fixture itself: it must keep every way out of a string it was written with."""
    joined = "".join(NASTY)
    for needle in ['"', "`", "${", "*/", "</script>", "\n", "\r", "\u2028", "\u2029", "\\", "🚀"]:
        assert needle in joined, needle


def test_escaping_fixture_compiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", _rel(ESCAPING), "-o", str(tmp_path / "out")]) == 0
    assert "compiled `escape_hatch` v1" in capsys.readouterr().out
    files = (tmp_path / "out" / "policy" / "policy.json").read_text(encoding="utf-8")
    policy = json.loads(files)
    strings = _json_strings(policy)
    missing = [s for s in _string_literals(ESCAPING.read_text(encoding="utf-8")) if s not in strings]
    assert missing == []
    assert policy["agent"]["owner"] == (
        'team "quotes" `backticks` ${process.exit(1)} */ </script> line\nbreak — ünïcödé 🚀 \u2028'
    )
    assert policy["tiers"]["low"]["models"] == [
        '@cf/zai-org/glm-4.7-flash"; throw 1; //',
        "`${globalThis}`*/",
        "*/ </script> `${x}` {secret.WRITE_KEY}",
    ]
    assert policy["tools"]["write_note"]["idempotency_key"] == '{session}:"{args.note_id}":`*/`'
    # JSON files stay one value per line: no raw line terminator ever reaches them.
    assert "\u2028" not in files and "\u2029" not in files and "\r" not in files


_TS_STRING = re.compile(r'"(?:[^"\\\n\u2028\u2029]|\\.)*"')
_TS_COMMENT = re.compile(r"//.*$|/\*.*?\*/")


@pytest.mark.parametrize("spec", [*EXAMPLES, ESCAPING], ids=lambda p: p.stem)
def test_generated_typescript_has_no_injected_code(spec: Path) -> None:
    for path, text in _emit(spec).items():
        if not path.endswith(".ts") or path.startswith(RUNTIME_PREFIX):
            continue
        assert "\u2028" not in text and "\u2029" not in text and "</script" not in text, path
        for nasty in NASTY:
            assert nasty not in text, (path, nasty)
        for number, line in enumerate(text.splitlines(), 1):
            code = _TS_COMMENT.sub("", _TS_STRING.sub("STR", line))
            # Every quote belongs to a literal closed on its line; no template literal, no
            # comment left open or closed by a spec string.
            assert not re.search(r"[\"'`]|\*/|/\*", code), f"{path}:{number}: {line}"


@pytest.mark.parametrize("value", NASTY)
def test_lit_round_trips_and_escapes(value: str) -> None:
    text = lit(value)
    assert json.loads(text) == value
    assert "\n" not in text and "\r" not in text and "\u2028" not in text and "\u2029" not in text
    assert "</" not in text
    assert text.startswith('"') and text.endswith('"')


# ───────────────────────────── writing ─────────────────────────────

SUPPORT = "specs/support_desk.agent"


def _compile(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["compile", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _beside(outdir: Path) -> list[str]:
    return sorted(p.name for p in outdir.parent.iterdir())


def test_refuses_a_foreign_nonempty_outdir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious\n")
    (out / "sub").mkdir()
    (out / "sub" / "data.json").write_text("{}\n")
    before = _tree(out)
    code, stdout, err = _compile(capsys, SUPPORT, "-o", str(out))
    assert code == 1
    assert stdout == ""
    assert "refused" in err and "--force" in err
    assert _tree(out) == before
    assert _beside(out) == ["mine"]


def test_force_replaces_a_foreign_outdir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious\n")
    code, _, err = _compile(capsys, SUPPORT, "-o", str(out), "--force")
    assert (code, err) == (0, "")
    assert not (out / "notes.txt").exists()
    assert _tree(out) == {p: t.encode() for p, t in _emit(ROOT / SUPPORT).items()}
    assert _beside(out) == ["mine"]


def test_empty_outdir_is_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert _compile(capsys, SUPPORT, "-o", str(out))[0] == 0
    assert (out / MANIFEST).is_file()


def test_missing_parents_are_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a" / "b" / "out"
    assert _compile(capsys, SUPPORT, "-o", str(out))[0] == 0
    assert (out / "src" / "index.ts").is_file()
    assert _beside(out) == ["out"]


@pytest.mark.parametrize("kind", ["symlink", "directory"])
def test_recompile_replaces_output_and_keeps_node_modules(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _compile(capsys, "specs/ops_agent.agent", "-o", str(out))[0] == 0
    modules = out / "node_modules"
    if kind == "symlink":
        (tmp_path / "shared_modules").mkdir()
        (tmp_path / "shared_modules" / "marker").write_text("installed\n")
        modules.symlink_to(tmp_path / "shared_modules", target_is_directory=True)
    else:
        (modules / ".bin").mkdir(parents=True)
        (modules / ".bin" / "tsc").write_text("#!/bin/sh\n")
    (out / "src" / "mine.ts").write_text("export {};\n")  # the user's own file, which no compile writes
    kept = _tree(modules) if kind == "directory" else None

    code, stdout, err = _compile(capsys, SUPPORT, "-o", str(out))
    assert (code, err) == (0, "")
    assert "compiled `support_desk` v3" in stdout
    assert (out / "src" / "mine.ts").read_text() == "export {};\n"
    assert "kept:      node_modules, src/mine.ts" in stdout
    if kind == "symlink":
        assert modules.is_symlink() and modules.readlink() == tmp_path / "shared_modules"
        assert (modules / "marker").read_text() == "installed\n"
    else:
        assert not modules.is_symlink() and _tree(modules) == kept
    tree = {p: d for p, d in _tree(out).items() if not p.startswith("node_modules") and p != "src/mine.ts"}
    assert tree == {p: t.encode() for p, t in _emit(ROOT / SUPPORT).items()}
    assert sorted(_beside(out)) == sorted(["out", *(["shared_modules"] if kind == "symlink" else [])])


# ── the ownership rule: files in the manifest are agentspec's, everything else is the user's ──


def _user_state(out: Path) -> dict[str, bytes]:
    """What a user keeps in a project: local variables, local state, a file of their own."""
    (out / ".dev.vars").write_text("INFERENCE_URL=http://127.0.0.1:9999\nMY_OWN=1\n")
    (out / ".wrangler" / "state" / "v3" / "do").mkdir(parents=True)
    (out / ".wrangler" / "state" / "v3" / "do" / "session.sqlite").write_bytes(b"SQLite format 3\x00...")
    (out / "notes" / "runbook.md").parent.mkdir()
    (out / "notes" / "runbook.md").write_text("# on call\n")
    return {p: d for p, d in _tree(out).items() if p == ".dev.vars" or p.startswith((".wrangler/", "notes/"))}


def test_recompile_keeps_every_user_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _compile(capsys, "specs/ops_agent.agent", "-o", str(out))[0] == 0
    theirs = _user_state(out)
    code, stdout, err = _compile(capsys, SUPPORT, "-o", str(out))
    assert (code, err) == (0, "")
    assert {p: d for p, d in _tree(out).items() if p in theirs} == theirs
    assert "kept:      .dev.vars, .wrangler, notes" in stdout
    generated = {p: d for p, d in _tree(out).items() if p not in theirs}
    assert generated == {p: t.encode() for p, t in _emit(ROOT / SUPPORT).items()}  # stale ops files are gone


def test_an_edited_generated_file_is_not_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _compile(capsys, SUPPORT, "-o", str(out))[0] == 0
    theirs = _user_state(out)
    (out / "src" / "index.ts").write_text("// my fix\n")
    (out / "wrangler.jsonc").write_text("{}\n")
    before = _tree(out)
    code, stdout, err = _compile(capsys, "specs/ops_agent.agent", "-o", str(out))
    assert (code, stdout) == (1, "")
    assert "changed by hand" in err and "\n  src/index.ts\n  wrangler.jsonc\n" in err and "--force" in err
    assert _tree(out) == before
    assert _beside(out) == ["out"]

    code, stdout, err = _compile(capsys, "specs/ops_agent.agent", "-o", str(out), "--force")
    assert (code, err) == (0, "")
    assert "replaced:  src/index.ts (--force)" in stdout and "replaced:  wrangler.jsonc (--force)" in stdout
    assert {p: d for p, d in _tree(out).items() if p in theirs} == theirs
    assert (out / "src" / "index.ts").read_text() == _emit(ROOT / "specs/ops_agent.agent")["src/index.ts"]


def test_an_unedited_recompile_needs_no_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Recompiling the same spec twice, or a file edited back to what the compiler writes, is no conflict."""
    out = tmp_path / "out"
    assert _compile(capsys, SUPPORT, "-o", str(out))[0] == 0
    assert _compile(capsys, SUPPORT, "-o", str(out))[0] == 0
    (out / "README.md").write_text("mine\n")
    (out / "README.md").write_text(_emit(ROOT / SUPPORT)["README.md"])
    assert _compile(capsys, SUPPORT, "-o", str(out))[0] == 0


def test_a_user_file_where_a_generated_one_goes_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A chat-only agent has no `src/workflows.ts`; the user's file of that name meets support_desk's."""
    out = tmp_path / "out"
    assert _compile(capsys, str(CHAT_ONLY), "-o", str(out))[0] == 0
    (out / "src" / "workflows.ts").write_text("// mine\n")
    before = _tree(out)
    code, _, err = _compile(capsys, SUPPORT, "-o", str(out))
    assert code == 1 and "\n  src/workflows.ts\n" in err
    assert _tree(out) == before
    code, stdout, _ = _compile(capsys, SUPPORT, "-o", str(out), "--force")
    assert code == 0 and "replaced:  src/workflows.ts (--force)" in stdout


@pytest.mark.parametrize("with_modules", [False, True], ids=["plain", "node_modules"])
def test_failure_midway_leaves_outdir_untouched(
    with_modules: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _compile(capsys, "specs/ops_agent.agent", "-o", str(out))[0] == 0
    if with_modules:
        (out / "node_modules" / "pkg").mkdir(parents=True)
        (out / "node_modules" / "pkg" / "index.js").write_text("module.exports = 1;\n")
    before = _tree(out)

    real_write_text = Path.write_text
    calls = {"n": 0}

    def flaky(self: Path, *args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(28, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", flaky)
    code, stdout, err = _compile(capsys, SUPPORT, "-o", str(out))
    monkeypatch.undo()

    assert calls["n"] == 4  # it did fail midway, after writing three files
    assert code == 1
    assert "No space left on device" in err and "nothing written" in err
    assert "compiled" not in stdout
    assert _tree(out) == before
    assert _beside(out) == ["out"]


def test_failure_midway_on_a_fresh_outdir_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "parent" / "out"
    real_write_text = Path.write_text
    calls = {"n": 0}

    def flaky(self: Path, *args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(13, "Permission denied")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", flaky)
    assert _compile(capsys, SUPPORT, "-o", str(out))[0] == 1
    monkeypatch.undo()
    assert not out.exists()
    assert list((tmp_path / "parent").iterdir()) == []


def test_invalid_spec_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, stdout, err = _compile(
        capsys, "specs/invalid/E0201-refund-without-idempotency.agent", "-o", str(out), "--color", "never"
    )
    assert code == 1
    assert stdout == ""
    assert "error[E0201]" in err and err.rstrip().endswith("nothing written")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_invalid_spec_leaves_previous_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _compile(capsys, SUPPORT, "-o", str(out))[0] == 0
    before = _tree(out)
    assert _compile(capsys, "specs/invalid/E0102-misspelled-tool.agent", "-o", str(out))[0] == 1
    assert _tree(out) == before


def test_library_is_not_compiled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, stdout, err = _compile(capsys, "specs/shared/billing_tools.agent", "-o", str(out))
    assert code == 1
    assert stdout == ""
    assert "`specs/shared/billing_tools.agent` is a library; compile the agent that imports it" in err
    assert not out.exists()


def test_outdir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.write_text("not a directory\n")
    for extra in ([], ["--force"]):
        code, stdout, err = _compile(capsys, SUPPORT, "-o", str(out), *extra)
        assert code == 1
        assert stdout == ""
        assert "is not a directory" in err
        assert out.read_text() == "not a directory\n"
    assert _beside(out) == ["out"]


def test_missing_spec_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, _, err = _compile(capsys, "specs/no_such.agent", "-o", str(out))
    assert code == 1
    assert "E0003" in err and "does not exist" in err
    assert not out.exists()


def test_gitignore_covers_a_symlinked_toolchain(tmp_path: Path) -> None:
    """The READMEs suggest linking node_modules to the shared install: git must ignore the link as well."""
    project = tmp_path / "p"
    assert main(["compile", SUPPORT, "-o", str(project)]) == 0
    (project / "node_modules").symlink_to(CODEGEN, target_is_directory=True)
    (project / ".dev.vars").write_text("X=1\n")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    argv = ["git", "check-ignore", "node_modules", ".dev.vars", "package.json"]
    ignored = subprocess.run(argv, cwd=project, capture_output=True, text=True, check=False)
    assert ignored.stdout.split() == ["node_modules", ".dev.vars"]
