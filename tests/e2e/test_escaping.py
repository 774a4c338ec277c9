"""Spec strings that try to break out of TypeScript arrive at runtime as data, unchanged.

The escaping fixture's strings (quotes, backticks, `${...}`, `*/`, `</script>`, newlines, U+2028/2029,
non-ASCII) are compiled, type-checked elsewhere (test_generated), and here served by the running Worker:
`/v1/policy` must return exactly the strings the checker resolved, and the Worker must still be the
one the compiler generated (no injected code ran: it answers its routes normally).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import ROOT, Runtime, _runtime


@pytest.fixture(scope="module")
def escaping(tmp_path_factory, model_stub, tool_stub) -> Iterator[Runtime]:
    yield from _runtime(ROOT / "tests" / "fixtures" / "escaping.agent", tmp_path_factory, model_stub, tool_stub)


def test_nasty_strings_reach_the_runtime_as_data(escaping: Runtime) -> None:
    spec = escaping.spec
    with escaping.client() as c:
        health = c.get("/healthz")
        served = c.get("/v1/policy", headers=escaping.headers())
    assert health.status_code == 200 and health.json()["agent"] == spec.name
    assert served.status_code == 200, served.text
    policy = served.json()

    assert policy["agent"]["owner"] == spec.owner
    assert "${process.exit(1)} */ </script> line\nbreak" in policy["agent"]["owner"]
    assert "\u2028" in policy["agent"]["owner"] and "🚀" in policy["agent"]["owner"]
    for tier in spec.tiers:
        assert policy["tiers"][tier.name]["models"] == list(tier.models)
    for tool in spec.tools:
        served_tool = policy["tools"][tool.name]
        assert served_tool["headers"] == dict(tool.headers)
        assert served_tool["idempotency_key"] == tool.idempotency_key
    for wf in spec.workflows:
        served_wf = policy["workflows"][wf.name]
        assert served_wf["pii"]["patterns"] == dict(wf.pii_patterns)
        for step, served_step in zip(wf.steps, served_wf["steps"], strict=True):
            assert served_step.get("prompt") == step.prompt
            assert [tuple(a) for a in served_step.get("args") or []] == list(step.args or [])


def test_the_runtime_still_answers_as_generated(escaping: Runtime) -> None:
    # A turn still goes through auth, policy and the model stub: no injected statement replaced the Worker.
    r = escaping.turn("s-escape", escaping.spec.workflows[0].name, "hello")
    assert r.status_code == 200, r.text
    assert r.json()["output"].startswith("reply from ")
