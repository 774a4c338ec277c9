"""A tool stub: every tool host at once, on loopback. Queued answers per path prefix in, JSON answers out; the
runtime's TOOL_ORIGINS (`docs/runtime.md`) sends each tool host's requests here, path and query kept.

It keeps what a real idempotent API keeps: the first successful response per `Idempotency-Key`, replayed on
retries, so "exactly one side effect per key" can be counted in `effects`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from agentspec.workbench.loopback import LoopbackServer, Seen, Stub


@dataclass
class ToolAnswer:
    status: int = 200
    body: Any = None
    times: int = 1  # how many requests this answer serves before the next queued one


class ToolStub(Stub):
    """Answers are queued per path prefix (the longest matching prefix wins; the last answer repeats); with none
    queued a request gets `{"ok": true, "path": ...}`. `effects[key]` counts side effects performed per key."""

    def __init__(self) -> None:
        self.answers: dict[str, list[ToolAnswer]] = defaultdict(list)
        self.recorded: dict[str, tuple[int, Any]] = {}
        self.effects: dict[str, int] = defaultdict(int)
        self.http = LoopbackServer(self._handle)

    @property
    def origin(self) -> str:
        return self.http.origin

    def reset(self) -> None:
        with self.http.lock:
            self.http.requests.clear()
            self.answers.clear()
            self.recorded.clear()
            self.effects.clear()

    def answer(self, path_prefix: str, *answers: ToolAnswer) -> None:
        with self.http.lock:
            self.answers[path_prefix] = list(answers)

    def calls(self, path_prefix: str) -> list[Seen]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    def _handle(self, seen: Seen) -> tuple[int, Any, float]:
        key = seen.headers.get("idempotency-key")
        with self.http.lock:
            if key and key in self.recorded:
                status, body = self.recorded[key]
                return status, body, 0
            status, body = 200, {"ok": True, "path": seen.path}
            for prefix in sorted(self.answers, key=len, reverse=True):
                if seen.path.startswith(prefix) and self.answers[prefix]:
                    queue = self.answers[prefix]
                    head = queue[0]
                    status, body = head.status, head.body
                    head.times -= 1
                    if head.times <= 0 and len(queue) > 1:
                        queue.pop(0)
                    break
            if 200 <= status < 300 and seen.method != "GET":
                self.effects[key or f"(no key) {seen.path}"] += 1
                if key:
                    self.recorded[key] = (status, body)
        return status, body, 0
