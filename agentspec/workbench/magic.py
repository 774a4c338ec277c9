"""The IPython extension: `%load_ext agentspec` registers the `%%agentspec` cell magic.

    %%agentspec [--path specs/mine.agent] [NAME]
    agent mine version 1 { ... }

checks the spec in the cell and shows its diagnostics (as `agentspec check` renders them) or its summary; with
NAME the `Checked` result is also bound to that variable. `--path` names the cell in diagnostics and is where its
imports resolve from (default: `<cell>.agent` in the working directory).
"""

from __future__ import annotations

from typing import Any

from agentspec.workbench.views import Checked


def agentspec_cell(line: str, cell: str, user_ns: dict[str, Any] | None = None) -> Checked:
    """The magic's work, callable without IPython: parse its line, check the cell, bind NAME."""
    import argparse
    import shlex

    from agentspec.workbench import load_text

    parser = argparse.ArgumentParser(prog="%%agentspec", add_help=False, exit_on_error=False)
    parser.add_argument("--path", default="<cell>.agent")
    parser.add_argument("name", nargs="?")
    try:
        args = parser.parse_args(shlex.split(line))
    except (argparse.ArgumentError, ValueError) as exc:
        raise UsageError(f"%%agentspec [--path FILE] [NAME]: {exc}") from None
    if args.name is not None and not args.name.isidentifier():
        raise UsageError(f"%%agentspec: `{args.name}` is not a Python variable name")
    checked = load_text(cell, args.path)
    if args.name is not None and user_ns is not None:
        user_ns[args.name] = checked
    return checked


class UsageError(ValueError):
    """A `%%agentspec` line that cannot be read."""


def load_ipython_extension(ipython: Any) -> None:
    from IPython.core.error import UsageError as IPythonUsageError

    def agentspec(line: str, cell: str) -> Checked:
        try:
            return agentspec_cell(line, cell, ipython.user_ns)
        except UsageError as exc:
            raise IPythonUsageError(str(exc)) from None  # IPython shows a usage error without a traceback

    ipython.register_magic_function(agentspec, magic_kind="cell", magic_name="agentspec")
