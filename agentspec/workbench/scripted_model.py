"""A scripted model: an OpenAI-compatible `/v1/chat/completions` endpoint on loopback, so a compiled agent runs
with no model server at all. Cues in (per model: text, tool calls, an error status, a stall), chat completions out.
It also answers `/v1/embeddings` (what a semantic index calls locally, src/runtime/retrieval.ts) with
`concept_embedding`: deterministic vectors in which words of one concept ("car", "automobile", "vehicle") share a
dimension, so a search "by meaning" finds a document that shares no word with the query.

The runtime's local adapter (`src/runtime/inference.ts`) POSTs `{INFERENCE_URL}/chat/completions` with
`{model, messages, tools?}` and reads `choices[0].message` (`content`, `tool_calls`) and `usage` (`prompt_tokens`,
`completion_tokens`, `prompt_tokens_details.cached_tokens`). Usage is counted the same way on every run (100 tokens
plus a quarter of the prompt's characters in, 20 out), so a turn's tokens and cost are reproducible.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentspec.targets.cloudflare import EMBEDDING_MODELS
from agentspec.workbench.loopback import LoopbackServer, Seen, Stub

ANY = "*"  # the model name a cue for every model is queued under


@dataclass
class Cue:
    """How the model answers one request: text, tool calls, an error status, or a stall (seconds)."""

    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    stall: float = 0.0
    cached_tokens: int = 0


# Words that mean one thing, each group one dimension of `concept_embedding`'s vectors.
CONCEPTS: tuple[tuple[str, ...], ...] = (
    ("car", "cars", "automobile", "automobiles", "vehicle", "vehicles"),
    ("engine", "engines", "motor", "motors"),
    ("ocean", "oceans", "sea", "seas", "marine"),
    ("fish", "salmon", "trout", "tuna"),
    ("paper", "papers", "study", "studies", "research", "article"),
    ("bread", "bakery", "baking", "loaf"),
    ("cat", "cats", "kitten", "kittens", "feline"),
    ("money", "refund", "payment", "invoice"),
)
_CONCEPT_OF = {word: i for i, group in enumerate(CONCEPTS) for word in group}


def concept_embedding(text: str, dims: int) -> list[float]:
    """A unit vector for `text`: one dimension per concept it mentions (counted), every other word spread thinly
    over the remaining dimensions by a stable hash, so unrelated texts are nearly orthogonal to a concept query."""
    vector = [0.0] * dims
    for word in re.findall(r"[a-z]+", text.lower()):
        concept = _CONCEPT_OF.get(word)
        if concept is not None and concept < dims:
            vector[concept] += 1.0
        else:
            slot = len(CONCEPTS) + int(hashlib.sha256(word.encode()).hexdigest(), 16) % max(1, dims - len(CONCEPTS))
            vector[min(slot, dims - 1)] += 0.05
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


# A responder reads the request (model name, messages) and returns a cue, or None to fall back to the queues.
Responder = Callable[[str, list[dict[str, Any]]], Cue | None]


class ScriptedModel(Stub):
    """Answers each request from, in order: the responder (if set), the model's own cue queue, the `ANY` queue,
    else `reply from <model>`. `cue(model, *answers)` queues answers (one per request, the last repeats)."""

    def __init__(self, respond: Responder | None = None) -> None:
        self.queues: dict[str, list[Cue]] = defaultdict(list)
        self.cached_tokens = 0
        self.respond = respond
        self.http = LoopbackServer(self._handle)

    @property
    def url(self) -> str:
        """The base URL the runtime's INFERENCE_URL takes."""
        return f"{self.http.origin}/v1"

    def reset(self) -> None:
        with self.http.lock:
            self.http.requests.clear()
            self.queues.clear()
            self.cached_tokens = 0

    def cue(self, model: str, *answers: Cue) -> None:
        with self.http.lock:
            self.queues[model] = list(answers)

    def _next(self, model: str, messages: list[dict[str, Any]]) -> Cue:
        if self.respond is not None:
            cue = self.respond(model, messages)
            if cue is not None:
                return cue
        with self.http.lock:
            queue = self.queues.get(model) or self.queues.get(ANY)
            if not queue:
                return Cue(text=f"reply from {model}", cached_tokens=self.cached_tokens)
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _embeddings(self, body: dict[str, Any]) -> tuple[int, Any, float]:
        model = str(body.get("model", ""))
        raw = body.get("input", [])
        texts = [raw] if isinstance(raw, str) else [str(x) for x in raw] if isinstance(raw, list) else []
        dims = EMBEDDING_MODELS.get(model, 768)
        data = [
            {"object": "embedding", "index": i, "embedding": concept_embedding(t, dims)} for i, t in enumerate(texts)
        ]
        tokens = sum(len(t) // 4 + 1 for t in texts)
        return 200, {"object": "list", "model": model, "data": data, "usage": {"prompt_tokens": tokens}}, 0

    def _handle(self, seen: Seen) -> tuple[int, Any, float]:
        if seen.method == "POST" and seen.path.endswith("/embeddings"):
            return self._embeddings(seen.body if isinstance(seen.body, dict) else {})
        if seen.method != "POST" or not seen.path.endswith("/chat/completions"):
            return 404, {"error": {"message": "not found"}}, 0
        body = seen.body if isinstance(seen.body, dict) else {}
        model = str(body.get("model", ""))
        messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
        cue = self._next(model, messages)
        if cue.status != 200:
            return cue.status, {"error": {"message": f"cued {cue.status}"}}, cue.stall
        message: dict[str, Any] = {"role": "assistant", "content": cue.text}
        if cue.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for i, (name, args) in enumerate(cue.tool_calls)
            ]
        prompt_tokens = 100 + sum(len(str(m.get("content") or "")) // 4 for m in messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": min(cue.cached_tokens, prompt_tokens)},
        }
        return (
            200,
            {"id": "cmpl", "model": model, "choices": [{"index": 0, "message": message}], "usage": usage},
            cue.stall,
        )


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The newest user message of a request: what a responder usually answers."""
    return next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")


def tool_results(messages: list[dict[str, Any]]) -> list[Any]:
    """The tool results the runtime fed back since the newest user message (decoded JSON where it is JSON)."""
    out: list[Any] = []
    for m in reversed(messages):
        if m.get("role") == "user":
            break
        if m.get("role") == "tool":
            content = m.get("content")
            try:
                out.append(json.loads(content) if isinstance(content, str) else content)
            except ValueError:
                out.append(content)
    return out[::-1]
