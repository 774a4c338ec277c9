"""The two sides of a review: a spec file, or the same file at a git revision, in; a checked side out.

A side is the checked model (`agentspec.check`), its policy tables, and where each declaration is
written, so a change can point at both sides. A revision is read with `git show` into a scratch
directory holding every `.agent` file of that revision, so its imports resolve as they did then.
Anything that keeps a side from being reviewed raises `InputError` with a located, rendered message.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agentspec import model as m
from agentspec.check import check
from agentspec.diagnostics import render_human
from agentspec.gcpause import paused
from agentspec.load import Loaded, load, load_text
from agentspec.review.tables import Tables, tables_of


class InputError(Exception):
    """A side cannot be reviewed; the message is ready to print."""


# Where a key is written: (file, line, column), what a review reads of a span; plain tuples are
# cheap to send between processes.
Where = tuple[str, int, int]


@dataclass
class Side:
    """One checked side. A side checked in a worker process (`load_sides`) carries no syntax model
    (`loaded.files` is empty): `spans` then holds where each of its keys is written instead."""

    label: str  # how the side is named in a report: a path, or REV:path
    spec: m.RSpec
    tables: Tables
    loaded: Loaded
    prefix: str = ""  # a scratch directory to strip from span file names
    locator: object = None  # the side's `compare.Locator`, made once on first use
    spans: dict[tuple[str, ...], Where] | None = None  # every key's place, from `compare.written`

    def display(self, path: str) -> str:
        if self.prefix and path.startswith(self.prefix):
            return self.label.split(":", 1)[0] + ":" + os.path.relpath(path, self.prefix)
        return path


def load_side(path: str, label: str | None = None, prefix: str = "") -> Side:
    """Load and check one spec file; it must check without errors and be an agent."""
    return _side(load(path), label or path, prefix)


# Two sides at least this large (root files, in bytes) are checked at once, in two processes: a
# 5,000-tool spec takes about a second to check, and forking and sending the checked model back
# about a tenth of that. Smaller sides are checked one after the other.
PARALLEL_BYTES = 256 * 1024


def load_sides(
    old: tuple[str, str | None, str], new: tuple[str, str | None, str], parallel: bool | None = None
) -> tuple[Side, Side]:
    """Both sides of a review, each given as `load_side`'s (path, label, prefix); the same as two
    `load_side` calls, errors included (OLD's first). When `parallel` (by default: when both are
    large and the process may fork) NEW is checked in a forked child while this process checks OLD;
    the child sends back the checked model, the tables and `compare.written`, not the syntax model."""
    if parallel is None:
        parallel = _worth_forking(old[0], new[0])
    if not parallel:
        return load_side(*old), load_side(*new)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; coverage does not follow a fork
        os.close(read)
        gc.disable()  # the child ends when it has sent its side: nothing to collect
        try:
            try:
                payload: tuple[str, object] = ("side", _portable(load_side(*new)))
            except InputError as exc:
                payload = ("error", str(exc))
            with os.fdopen(write, "wb") as out:
                pickle.dump(payload, out, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            os._exit(0)  # never the parent's exit handlers, buffers or test runner
    os.close(write)
    try:
        first = load_side(*old)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.close(read)
        os.waitpid(pid, 0)
        raise
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    if not data:  # the child died before sending anything: check NEW here instead
        return first, load_side(*new)
    with paused():
        kind, value = pickle.loads(data)
        if kind == "error":
            raise InputError(value)
        try:
            return first, _unpack(value)
        except ValueError:  # pydantic's ValidationError: a model that does not round-trip; check NEW here
            return first, load_side(*new)


def _worth_forking(*paths: str) -> bool:
    if not hasattr(os, "fork") or threading.active_count() > 1:  # forking a threaded process can deadlock
        return False
    if len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) < 2:
        return False
    try:
        return all(os.path.getsize(p) >= PARALLEL_BYTES for p in paths)
    except OSError:
        return False  # load_side reports it


def _portable(side: Side) -> dict[str, object]:
    """A side as plain data, without its syntax model (which costs ten times more to send than to
    check again): pickling plain dicts and tuples is several times faster than pickling models."""
    from agentspec.review.compare import written

    return {
        "label": side.label,
        "spec": side.spec.model_dump(),
        "tables": side.tables,
        "root": side.loaded.root,
        "sources": side.loaded.sources,
        "prefix": side.prefix,
        "spans": written(side),
    }


def _unpack(data: dict[str, Any]) -> Side:
    loaded = Loaded(root=data["root"], sources=data["sources"])
    spec = m.RSpec.model_validate(data["spec"])
    return Side(data["label"], spec, data["tables"], loaded, data["prefix"], spans=data["spans"])


def side_from_text(text: str, path: str = "<input>") -> Side:
    """A side held in memory (a test, a notebook cell); imports resolve from the cwd."""
    return _side(load_text(text, path), path, "")


def _side(loaded: Loaded, shown: str, prefix: str) -> Side:
    result = check(loaded)
    label = shown
    if result.spec is None:
        text = render_human(result.diagnostics, loaded.sources)
        if prefix:
            text = text.replace(prefix + os.sep, label.split(":", 1)[0] + ":")
        raise InputError(f"`{shown}` does not check, so it cannot be reviewed:\n{text}")
    if result.spec.kind != "agent":
        raise InputError(f"`{shown}` holds a library, not an agent; review an agent that imports it")
    with paused():  # the tables are long-lived too
        tables = tables_of(result.spec)
    return Side(shown, result.spec, tables, loaded, prefix)


# ───────────────────────────── git ─────────────────────────────


def _git(args: list[str], cwd: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise InputError("`git` is not installed; `--base` needs it") from exc
    if done.returncode != 0:
        raise InputError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"git {args[0]} failed")
    return done.stdout


def repo_root(path: str) -> str:
    where = path if os.path.isdir(path) else (os.path.dirname(path) or ".")
    try:
        return _git(["rev-parse", "--show-toplevel"], where).strip()
    except InputError as exc:
        raise InputError(f"`{path}` is not inside a git repository: {exc}") from exc


def check_revision(root: str, rev: str) -> str:
    """The commit a revision names, or an InputError saying it does not exist."""
    try:
        return _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], root).strip()
    except InputError as exc:
        raise InputError(f"revision `{rev}` does not exist in `{root}`") from exc


def agent_files_at(root: str, rev: str) -> list[str]:
    """Every `.agent` path (relative to the repository root) tracked at a revision."""
    names = _git(["ls-tree", "-r", "--name-only", "-z", rev], root).split("\0")
    return sorted(n for n in names if n.endswith(".agent"))


@contextmanager
def revision_tree(root: str, rev: str) -> Iterator[str]:
    """A scratch directory holding every `.agent` file of `rev`, removed afterwards."""
    check_revision(root, rev)
    with tempfile.TemporaryDirectory(prefix="agentspec-base-") as tmp:
        for name in agent_files_at(root, rev):
            done = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=root, capture_output=True, check=False)
            if done.returncode != 0:
                raise InputError(
                    f"cannot read `{name}` at revision `{rev}`: {done.stderr.decode(errors='replace').strip()}"
                )
            data = done.stdout
            target = os.path.join(tmp, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as out:
                out.write(data)
        yield os.path.realpath(tmp)
