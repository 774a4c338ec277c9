"""The language's defaults (docs/language.md, "Defaults"), as data, in one place.

Platform facts (Cloudflare's limits, names and config layout) live in the target module,
agentspec/targets/cloudflare.py; the names below are re-exported from it for older imports.
"""

from __future__ import annotations

from agentspec.targets.cloudflare import INSTANCE_ID_MAX, INSTANCE_ID_SUFFIX, MAX_SLEEP_MS, STEP_RESULT_MAX

__all__ = [
    "BUILTIN_PII",
    "DEFAULT_AFFINITY_HEADER",
    "DEFAULT_MAX_RESPONSE",
    "DEFAULT_STEP_DELAY_MS",
    "DEFAULT_TIER_TIMEOUT_MS",
    "DEFAULT_TOOL_TIMEOUT_MS",
    "DEFAULT_TTL_MS",
    "DEFAULT_WAIT_TIMEOUT_MS",
    "INSTANCE_ID_MAX",
    "INSTANCE_ID_SUFFIX",
    "MAX_SLEEP_MS",
    "SEARCH_FIELDS",
    "SEARCH_TOP",
    "STEP_RESULT_MAX",
]

DEFAULT_TIER_TIMEOUT_MS = 30_000
DEFAULT_TOOL_TIMEOUT_MS = 10_000
DEFAULT_STEP_DELAY_MS = 1_000
DEFAULT_WAIT_TIMEOUT_MS = 24 * 3_600_000
DEFAULT_TTL_MS = 30 * 60_000
DEFAULT_AFFINITY_HEADER = "x-session-affinity"
DEFAULT_MAX_RESPONSE = 256 * 1024

# PII classes the runtime's masker knows without a pattern.
BUILTIN_PII = ("email", "phone", "card", "ip", "iban")

# A `search` step's results, unless it says `top N`; and the fields of its result (flat, as every step's).
SEARCH_TOP = 5
SEARCH_FIELDS = ("count", "top_ref", "top_score", "top_snippet", "results_json")
