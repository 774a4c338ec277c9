"""Load a spec from disk: a root `.agent` path in, every file it reaches through imports out.

Reading, UTF-8 decoding and import resolution happen here so that `parse` stays a pure
function of text. Problems (missing file, bad bytes, import cycle, importing an agent)
are diagnostics like any other, located at the import that caused them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, error
from agentspec.parse import Comment, parse


@dataclass
class Loaded:
    """A root spec and the libraries it imports, in the order they were first reached."""

    root: str
    files: list[m.SpecFile] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    comments: dict[str, list[Comment]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def root_file(self) -> m.SpecFile | None:
        return next((f for f in self.files if f.path == self.root), None)


def _whole_file(path: str) -> m.Span:
    """A file that cannot be read has no position to point at: the diagnostic names the file alone, not 1:1."""
    return m.Span.whole(path)


def read_text(path: str) -> tuple[str | None, Diagnostic | None]:
    """The file's text, or a located E0003 saying why it cannot be read."""
    try:
        data = open(path, "rb").read()  # noqa: SIM115 - closed by refcount at once
    except IsADirectoryError:
        return None, error("E0003", _whole_file(path), f"`{path}` is a directory, not a spec file")
    except FileNotFoundError:
        return None, error("E0003", _whole_file(path), f"file `{path}` does not exist")
    except OSError as exc:
        return None, error("E0003", _whole_file(path), f"file `{path}` cannot be read: {exc.strerror or exc}")
    except ValueError:  # a NUL byte in the path: an import string can hold one
        shown = path.replace("\x00", "\\0")
        return None, error("E0003", _whole_file(path), f"`{shown}` is not a usable file name: it contains a NUL byte")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        span = m.Span(
            file=path,
            line=line,
            column=column,
            end_line=line,
            end_column=column + 1,
            start=len(before),
            end=len(before) + 1,
        )
        return None, error(
            "E0003",
            span,
            f"`{path}` is not valid UTF-8: byte 0x{data[exc.start]:02x} at line {line}, column {column}",
            "not UTF-8",
            help="save the spec as UTF-8",
        )
    if text.startswith("\ufeff"):  # a BOM is harmless; editors on some systems add one
        text = text[1:]
    return text, None


def load_text(text: str, path: str = "<input>") -> Loaded:
    """Load a spec held in memory (a notebook cell, a test); imports resolve from the cwd."""
    loaded = Loaded(root=path)
    _add(loaded, path, text, stack=[])
    return loaded


def load(path: str) -> Loaded:
    loaded = Loaded(root=path)
    text, problem = read_text(path)
    if problem:
        loaded.diagnostics.append(problem)
        return loaded
    assert text is not None
    _add(loaded, path, text, stack=[])
    return loaded


def _add(loaded: Loaded, path: str, text: str, stack: list[str]) -> None:
    loaded.sources[path] = text
    result = parse(text, path)
    loaded.comments[path] = result.comments
    loaded.diagnostics.extend(result.diagnostics)
    if result.file is None:
        return
    loaded.files.append(result.file)
    base = os.path.dirname(path)
    for imp in result.file.imports:
        target = os.path.normpath(os.path.join(base, imp.path.value))
        if target in stack or target == path:
            chain = " -> ".join([*stack, path, target])
            loaded.diagnostics.append(
                error(
                    "E0005",
                    imp.path.span,
                    f"import cycle: {chain}",
                    "imported again here",
                    help="a library must not import, directly or not, a file that imports it",
                )
            )
            continue
        if target in loaded.sources:
            continue  # reached already through another import
        text_, problem = read_text(target)
        if problem:
            reason = problem.message.replace(f"`{target}`", "it").replace("file it", "it")
            loaded.diagnostics.append(
                error(
                    "E0005",
                    imp.path.span,
                    f"cannot import `{imp.path.value}`: {reason}",
                    "imported here",
                    help=f"the path is relative to `{base or '.'}`",
                )
            )
            continue
        assert text_ is not None
        before = len(loaded.files)
        _add(loaded, target, text_, [*stack, path])
        if len(loaded.files) > before and isinstance(loaded.files[before].body, m.Agent):
            loaded.diagnostics.append(
                error(
                    "E0005",
                    imp.path.span,
                    f"`{imp.path.value}` holds an agent, not a library",
                    "imported here",
                    help="move the shared declarations into a `library` block",
                )
            )
