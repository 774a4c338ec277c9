"""Loopback stand-ins for the only remote parts of an agent: the model and the tools' endpoints.

`ModelStub` speaks the OpenAI-compatible chat completions API the runtime uses locally; each
model name can be told to answer with text or tool calls, fail, stall or rate-limit. `ToolStub`
answers every tool host (the runtime's TOOL_ORIGINS sends them here) and keeps what a real
idempotent API keeps: the first successful response per `Idempotency-Key`, replayed on retries,
so "exactly one side effect per key" can be counted. Both record every request they see.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _Server:
    """A threaded HTTP server on 127.0.0.1 with an ephemeral port, stopped by `close()`."""

    def __init__(self, handle) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                status, payload, delay = handle(seen)
                with stub.lock:
                    stub.requests.append(seen)
                if delay:
                    time.sleep(delay)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the runtime gave up waiting (a stall): nothing to answer

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: object) -> None:
                pass

        self.lock = threading.Lock()
        self.requests: list[Seen] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Stub:
    """What both stubs share: a loopback server and the requests it has seen."""

    http: _Server

    @property
    def requests(self) -> list[Seen]:
        with self.http.lock:
            return list(self.http.requests)

    def close(self) -> None:
        self.http.close()


@dataclass
class Cue:
    """How one model answers: text, tool calls, an error status, or a stall (seconds)."""

    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    stall: float = 0.0
    cached_tokens: int = 0


class ModelStub(_Stub):
    """An OpenAI-compatible `/v1/chat/completions` endpoint with per-model cues.

    `cue(model, *answers)` queues answers for a model (one per request, the last repeats);
    with nothing queued a model answers `reply from <model>`.
    """

    def __init__(self) -> None:
        self.queues: dict[str, list[Cue]] = defaultdict(list)
        self.cached_tokens = 0
        self.http = _Server(self._handle)

    @property
    def url(self) -> str:
        return f"{self.http.origin}/v1"

    def reset(self) -> None:
        with self.http.lock:
            self.http.requests.clear()
            self.queues.clear()
            self.cached_tokens = 0

    def cue(self, model: str, *answers: Cue) -> None:
        with self.http.lock:
            self.queues[model] = list(answers)

    def _next(self, model: str) -> Cue:
        with self.http.lock:
            queue = self.queues.get(model)
            if not queue:
                return Cue(text=f"reply from {model}", cached_tokens=self.cached_tokens)
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _handle(self, seen: Seen) -> tuple[int, Any, float]:
        if seen.method != "POST" or not seen.path.endswith("/chat/completions"):
            return 404, {"error": {"message": "not found"}}, 0
        model = (seen.body or {}).get("model", "")
        cue = self._next(model)
        if cue.status != 200:
            return cue.status, {"error": {"message": f"cued {cue.status}"}}, cue.stall
        message: dict[str, Any] = {"role": "assistant", "content": cue.text}
        if cue.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for i, (name, args) in enumerate(cue.tool_calls)
            ]
        prompt_tokens = 100 + sum(len(str(m.get("content") or "")) // 4 for m in (seen.body or {}).get("messages", []))
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


@dataclass
class ToolAnswer:
    status: int = 200
    body: Any = None
    times: int = 1  # how many requests this answer serves before the next queued one


class ToolStub(_Stub):
    """Every tool host at once. Answers are queued per path prefix; idempotency is honoured.

    `effects[key]` counts the side effects actually performed per Idempotency-Key: a request
    whose key already succeeded gets the recorded answer again and performs nothing.
    """

    def __init__(self) -> None:
        self.answers: dict[str, list[ToolAnswer]] = defaultdict(list)
        self.recorded: dict[str, tuple[int, Any]] = {}
        self.effects: dict[str, int] = defaultdict(int)
        self.http = _Server(self._handle)

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
