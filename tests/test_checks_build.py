"""The checker keeps its promise "it checks, so it builds": a bounded run of the property (more in
benchmarks/checks_build.py). Every generated spec the checker accepts compiles, type-checks with
`tsc` and bundles with `wrangler deploy --dry-run`."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings

from tests.checks_build import build
from tests.test_generated import BIN
from tests.valid_specs import valid_specs

pytestmark = pytest.mark.skipif(not (BIN / "node").exists(), reason="the toolchain's node is not installed")


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(valid_specs())
def test_a_spec_that_checks_builds(text: str) -> None:
    built = build(text)
    assume(built.checked)
    assert built.failures == [], text
