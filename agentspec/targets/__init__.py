"""Compilation targets: a target's name in, the module holding that platform's facts out.

A target module is tables and small hooks (limits, naming, config layout) that the checker's
platform pass and the emitter read; a second target is a new module listed here, not edits
across the pipeline. docs/language.md lists what each target enforces.
"""

from __future__ import annotations

from types import ModuleType

from agentspec.targets import cloudflare

TARGETS: dict[str, ModuleType] = {"cloudflare": cloudflare}
DEFAULT_TARGET = "cloudflare"
