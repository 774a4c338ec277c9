"""agentspec: a compiler and workbench for production LLM agents on Cloudflare."""

from typing import Any

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext agentspec`: the `%%agentspec` cell magic (IPython is imported only here, never by the CLI)."""
    from agentspec.workbench.magic import load_ipython_extension as load

    load(ipython)
