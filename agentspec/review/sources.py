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
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

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
    large and the process may fork) NEW is checked in a forked child while this process checks OLD.

    The child sends two messages: NEW's checked model (as plain data, not the syntax model), then
    `compare.written`. This process builds NEW's policy tables from the first while the child
    works out the second: the two steps overlap instead of both waiting on the child."""
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
            with os.fdopen(write, "wb") as out:
                _child(new, out)
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
    try:
        with os.fdopen(read, "rb") as pipe:
            second = _receive(pipe)
    finally:
        _reap(pid)
    # None: the child died before sending everything, or its model does not round-trip (pydantic's
    # ValidationError): check NEW here instead.
    return first, second if second is not None else load_side(*new)


_REAPER = "agentspec-reap"


def _reap(pid: int) -> None:
    """Reap the child in a thread: the kernel takes about 0.15 s to tear down a process that held a
    checked 5,000-tool spec, and nothing here needs to wait for that."""
    threading.Thread(target=os.waitpid, args=(pid, 0), name=_REAPER, daemon=True).start()


def _child(new: tuple[str, str | None, str], out: BinaryIO) -> None:  # pragma: no cover - runs in the child
    from agentspec.review.compare import written

    path, label, prefix = new
    loaded = load(path)
    try:
        spec = _checked(loaded, label or path, prefix)
    except InputError as exc:
        _send(out, ("error", str(exc)))
        return
    side = {
        "label": label or path,
        "spec": spec.model_dump(),
        "root": loaded.root,
        "sources": loaded.sources,
        "prefix": prefix,
    }
    _send(out, ("side", side))
    _send(out, written(Side(label or path, spec, {}, loaded, prefix)))


# Each message is its length (8 bytes, big-endian) then its pickle: the parent reads exactly one
# message and can start on it while the child is still making the next.
_LENGTH = struct.Struct(">Q")


def _send(out: BinaryIO, value: object) -> None:  # pragma: no cover - runs in the child
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_LENGTH.pack(len(data)))
    out.write(data)
    out.flush()


def _message(pipe: BinaryIO) -> Any:
    """The next message, or `_MISSING` when the child ended before sending all of it."""
    head = pipe.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return _MISSING
    (size,) = _LENGTH.unpack(head)
    data = pipe.read(size)
    if len(data) < size:
        return _MISSING
    with paused():
        return pickle.loads(data)


_MISSING = object()


def _receive(pipe: BinaryIO) -> Side | None:
    """NEW as the child sends it; None when it must be checked here instead."""
    message = _message(pipe)
    if message is _MISSING:
        return None
    kind, value = message
    if kind == "error":
        raise InputError(value)
    with paused():  # the model and the tables are long-lived
        try:
            spec = _spec_of(value["spec"])
        except ValueError:  # pydantic's ValidationError: a model that does not round-trip
            return None
        tables = tables_of(spec)
    spans = _message(pipe)
    if spans is _MISSING:
        return None
    return _unpack(value, spec, tables, spans)


def _spec_of(data: dict[str, Any]) -> m.RSpec:
    return m.RSpec.model_validate(data)


def _worth_forking(*paths: str) -> bool:
    # Forking a threaded process can deadlock on a lock another thread holds; a reaper thread
    # (`_reap`) holds none while it waits in waitpid.
    if not hasattr(os, "fork") or any(
        t.name != _REAPER for t in threading.enumerate() if t is not threading.main_thread()
    ):
        return False
    if len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) < 2:
        return False
    try:
        return all(os.path.getsize(p) >= PARALLEL_BYTES for p in paths)
    except OSError:
        return False  # load_side reports it


def _unpack(data: dict[str, Any], spec: m.RSpec, tables: Tables, spans: dict[tuple[str, ...], Where]) -> Side:
    loaded = Loaded(root=data["root"], sources=data["sources"])
    return Side(data["label"], spec, tables, loaded, data["prefix"], spans=spans)


def side_from_text(text: str, path: str = "<input>") -> Side:
    """A side held in memory (a test, a notebook cell); imports resolve from the cwd."""
    return _side(load_text(text, path), path, "")


def _side(loaded: Loaded, shown: str, prefix: str) -> Side:
    spec = _checked(loaded, shown, prefix)
    with paused():  # the tables are long-lived too
        tables = tables_of(spec)
    return Side(shown, spec, tables, loaded, prefix)


def _checked(loaded: Loaded, shown: str, prefix: str) -> m.RSpec:
    """The checked agent of a loaded side; InputError when it does not check or is a library."""
    result = check(loaded)
    label = shown
    if result.spec is None:
        text = render_human(result.diagnostics, loaded.sources)
        if prefix:
            text = text.replace(prefix + os.sep, label.split(":", 1)[0] + ":")
        raise InputError(f"`{shown}` does not check, so it cannot be reviewed:\n{text}")
    if result.spec.kind != "agent":
        raise InputError(f"`{shown}` holds a library, not an agent; review an agent that imports it")
    return result.spec


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
