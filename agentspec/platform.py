"""Cloudflare platform facts and language defaults, as data, in one place.

The checker validates against these numbers and the emitter generates code from them,
so the two can never disagree. Each fact links the page it comes from.
"""

from __future__ import annotations

# Workflow instance ids: at most 64 characters, `^[a-zA-Z0-9_][a-zA-Z0-9-_]*$`.
# https://developers.cloudflare.com/workflows/reference/limits/
# The runtime names instances `<workflow>-<uuid v4>`: 1 + 36 characters after the name.
INSTANCE_ID_MAX = 64
INSTANCE_ID_SUFFIX = 37

# A Workflow step's result is persisted and limited to 1 MiB.
# https://developers.cloudflare.com/workflows/reference/limits/
STEP_RESULT_MAX = 1024 * 1024

# step.sleep accepts at most 365 days.
# https://developers.cloudflare.com/workflows/build/sleeping-and-retrying/
MAX_SLEEP_MS = 365 * 86_400_000

# Language defaults (docs/language.md, "Defaults").
DEFAULT_TIER_TIMEOUT_MS = 30_000
DEFAULT_TOOL_TIMEOUT_MS = 10_000
DEFAULT_STEP_DELAY_MS = 1_000
DEFAULT_TTL_MS = 30 * 60_000
DEFAULT_AFFINITY_HEADER = "x-session-affinity"
DEFAULT_MAX_RESPONSE = 256 * 1024

# PII classes the runtime's masker knows without a pattern.
BUILTIN_PII = ("email", "phone", "card", "ip", "iban")
