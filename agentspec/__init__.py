"""agentspec: a compiler and workbench for production LLM agents on Cloudflare."""

__version__ = "0.1.0"
