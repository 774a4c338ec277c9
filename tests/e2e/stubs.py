"""Loopback stand-ins for the only remote parts of an agent: the model and the tools' endpoints.

They ship with the package (`agentspec/workbench/`), so a notebook's offline prototype loop and these tests drive
the runtime through the same servers. `ModelStub` speaks the OpenAI-compatible chat completions API the runtime
uses locally; each model name can be told to answer with text or tool calls, fail, stall or rate-limit. `ToolStub`
answers every tool host (the runtime's TOOL_ORIGINS sends them here) and keeps what a real idempotent API keeps:
the first successful response per `Idempotency-Key`, replayed on retries, so "exactly one side effect per key"
can be counted. Both record every request they see.
"""

from __future__ import annotations

from agentspec.workbench.loopback import Seen
from agentspec.workbench.scripted_model import Cue
from agentspec.workbench.scripted_model import ScriptedModel as ModelStub
from agentspec.workbench.tool_stub import ToolAnswer, ToolStub

__all__ = ["Cue", "ModelStub", "Seen", "ToolAnswer", "ToolStub"]
