"""Write a generated project into its directory: emitted files in, the directory updated out, the user's own
files untouched.

The ownership rule (also in every generated README): a file listed in the project's manifest
(`.agentspec-manifest.json`, with the hash of what agentspec wrote) belongs to agentspec and is replaced on
every compile; every other file or directory belongs to the user and is never touched — `.dev.vars`,
`.wrangler/` (local sessions and their chains), `node_modules` and anything the user added. A generated file
the user edited (its hash no longer matches the manifest) is not overwritten or removed silently: the write is
refused and lists them, unless `force`, which replaces them and says so.

The update is all or nothing: the new project is staged beside the directory, the user's entries are moved
into the staging directory by rename (same file system, so nothing is copied), and the staging directory then
replaces the old one in one rename. A failure at any point before that last rename moves the user's entries
back and leaves the directory as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MANIFEST = ".agentspec-manifest.json"


class OutputRefused(Exception):
    """The directory holds files agentspec must not replace without `--force`; the message lists them."""


@dataclass
class WriteReport:
    """What a write did beyond writing the generated files: what it kept, replaced or removed."""

    kept: list[str] = field(default_factory=list)  # the user's own entries, carried over
    replaced: list[str] = field(default_factory=list)  # edited generated files (or user files) overwritten, --force
    removed: list[str] = field(default_factory=list)  # files no longer generated, or a foreign directory's, --force


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _old_manifest(target: Path) -> dict[str, str] | None:
    """The hashes agentspec wrote last time, or None when the directory holds no (readable) manifest."""
    try:
        data = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
        files = data["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, dict):
        return None
    return {str(k): str(v) for k, v in files.items()}


def _entries(target: Path, owned: set[str]) -> tuple[list[str], list[str]]:
    """The target's files that agentspec owns (by manifest path) and the user's entries: whole directories
    where no owned file lies below them (`.wrangler/`, `node_modules`), single files elsewhere."""
    owned_dirs = {str(parent) for path in owned for parent in PurePosixPath(path).parents if str(parent) != "."}
    generated: list[str] = []
    users: list[str] = []

    def walk(directory: Path, prefix: str) -> None:
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            rel = f"{prefix}{entry.name}"
            if rel in owned and (entry.is_file() or entry.is_symlink()):
                generated.append(rel)
            elif rel in owned_dirs and entry.is_dir() and not entry.is_symlink():
                walk(entry, rel + "/")
            else:
                users.append(rel)

    walk(target, "")
    return generated, users


def _plan(target: Path, files: dict[str, str], force: bool) -> tuple[list[str], WriteReport]:
    """Which of the target's entries move into the new project, and what the write will report; refuses
    (OutputRefused) what needs `force`."""
    report = WriteReport()
    old = _old_manifest(target)
    if old is None:
        if not force:
            raise OutputRefused(f"`{target}` is not empty and was not created by agentspec; pass --force to replace it")
        report.removed = sorted(str(p.relative_to(target)) for p in target.rglob("*") if not p.is_dir())
        return [], report
    generated, users = _entries(target, set(old) | {MANIFEST})
    edited = [
        rel
        for rel in generated
        if rel != MANIFEST
        and _digest(target / rel) != old[rel]
        and (rel not in files or files[rel].encode() != (target / rel).read_bytes())
    ]
    shadowed = [rel for rel in users if rel in files or any(p.startswith(rel + "/") for p in files)]
    conflicts = sorted(edited + shadowed)
    if conflicts and not force:
        listing = "".join(f"\n  {rel}" for rel in conflicts)
        raise OutputRefused(
            f"these files in `{target}` were changed by hand and the compile would replace them:{listing}\n"
            "move your changes elsewhere (files agentspec did not write are kept), or pass --force to replace them"
        )
    report.replaced = sorted(rel for rel in conflicts if rel in files)
    report.removed = sorted(
        {rel for rel in generated if rel not in files and rel != MANIFEST and rel in edited}
        | {rel for rel in conflicts if rel not in files}
    )
    keep = [rel for rel in users if rel not in shadowed]
    report.kept = keep
    return keep, report


def write(files: dict[str, str], outdir: str, force: bool = False, in_place: bool = False) -> WriteReport:
    """Write the project into OUTDIR atomically, keeping the user's files (see the module's docstring).

    `in_place` (for `agentspec dev`, whose running wrangler watches the files it serves) updates an existing
    project file by file instead — each changed file replaced atomically, unchanged ones not touched — so the
    watcher sees one edit per changed file rather than a directory swapped under it.
    """
    target = Path(outdir)
    if target.exists() and not target.is_dir():
        raise OutputRefused(f"`{outdir}` exists and is not a directory")
    report = WriteReport()
    keep: list[str] = []
    if target.is_dir() and any(target.iterdir()):
        keep, report = _plan(target, files, force)
        if in_place and (target / MANIFEST).exists():
            _update_in_place(target, files)
            return report
    parent = target.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    moved: list[str] = []
    try:
        for path, text in files.items():
            dest = staging / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text, encoding="utf-8", newline="\n")
        for rel in keep:
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(target / rel, dest)
            moved.append(rel)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=parent))
            os.rename(target, old / "out")
            os.rename(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, target)
    except BaseException:
        for rel in reversed(moved):  # give the user's entries back before the staging directory goes
            if (staging / rel).exists() or (staging / rel).is_symlink():
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                os.rename(staging / rel, target / rel)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _update_in_place(target: Path, files: dict[str, str]) -> None:
    old = _old_manifest(target) or {}
    for rel, text in files.items():
        dest = target / rel
        data = text.encode()
        if dest.is_file() and dest.read_bytes() == data:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.agentspec-tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    for rel in old:
        if rel not in files:
            (target / rel).unlink(missing_ok=True)
