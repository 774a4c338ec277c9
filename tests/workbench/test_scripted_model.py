"""The scripted model ships with the package: an OpenAI-compatible chat completions endpoint on loopback."""

from __future__ import annotations

import json

import httpx

from agentspec import workbench as wb
from agentspec.workbench.scripted_model import last_user_text, tool_results


def _ask(model: wb.ScriptedModel, name: str, messages: list[dict]) -> httpx.Response:
    return httpx.post(f"{model.url}/chat/completions", json={"model": name, "messages": messages}, timeout=5)


def test_cues_per_model_then_any_then_a_default() -> None:
    with wb.ScriptedModel() as model:
        model.cue("m1", wb.Cue(text="first"), wb.Cue(tool_calls=[("look", {"id": "7"})]))
        model.cue(wb.ANY, wb.Cue(status=503))
        user = [{"role": "user", "content": "hi"}]
        assert _ask(model, "m1", user).json()["choices"][0]["message"]["content"] == "first"
        call = _ask(model, "m1", user).json()["choices"][0]["message"]["tool_calls"][0]
        assert call["function"] == {"name": "look", "arguments": json.dumps({"id": "7"})}
        assert _ask(model, "m1", user).json()["choices"][0]["message"]["tool_calls"]  # the last cue repeats
        assert _ask(model, "m2", user).status_code == 503
        model.reset()
        body = _ask(model, "m2", user).json()
        assert body["choices"][0]["message"]["content"] == "reply from m2"
        assert body["usage"]["prompt_tokens"] == 100 + len("hi") // 4 and body["usage"]["completion_tokens"] == 20
        assert [r.body["model"] for r in model.requests] == ["m2"]


def test_a_responder_reads_the_conversation() -> None:
    def respond(name: str, messages: list[dict]) -> wb.Cue | None:
        results = tool_results(messages)
        if results:
            return wb.Cue(text=f"status {results[-1]['status']}")
        return wb.Cue(text=last_user_text(messages).upper()) if "order" in last_user_text(messages) else None

    with wb.ScriptedModel(respond) as model:
        asked = [{"role": "user", "content": "my order"}]
        assert _ask(model, "m", asked).json()["choices"][0]["message"]["content"] == "MY ORDER"
        answered = [*asked, {"role": "assistant", "content": None}, {"role": "tool", "content": '{"status": "late"}'}]
        assert _ask(model, "m", answered).json()["choices"][0]["message"]["content"] == "status late"
        other = [{"role": "user", "content": "hello"}]
        assert _ask(model, "m", other).json()["choices"][0]["message"]["content"] == "reply from m"  # fell through
