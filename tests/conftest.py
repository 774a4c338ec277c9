"""Hypothesis profiles. `make test` is a landing gate, so by default every property test draws the same examples
on every run (derandomized): a red run is a regression, never a new random find. To search for new failures,
run with fresh randomness (each run draws new examples):

    HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest tests/test_fmt.py tests/test_robustness.py

and keep what it finds as an `@example` next to the property.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
