"""Traces of a running runtime: pull them (`client`), check their shape (`schema`) and verify the decision chain
(`verify`). What `GET /v1/traces` answers goes in; a list of located problems comes out.
"""

from agentspec.trace.client import TraceError, pull
from agentspec.trace.schema import GENESIS_HASH, Traces, load
from agentspec.trace.verify import Problem, record_hash, render, verify

__all__ = ["GENESIS_HASH", "Problem", "TraceError", "Traces", "load", "pull", "record_hash", "render", "verify"]
