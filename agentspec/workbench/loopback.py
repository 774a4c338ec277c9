"""A loopback HTTP server for stand-ins: a handler `Seen -> (status, JSON payload, delay)` in, a threaded server
on 127.0.0.1 with an ephemeral port out, which records every request it answers.

The scripted model (`scripted_model.py`) and the tool stub (`tool_stub.py`) are built on it; the end-to-end tests
use the same two (`tests/e2e/stubs.py`), so a notebook's offline loop and the tests speak to the runtime alike.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    """One request as the server read it: the body decoded as JSON when it is JSON, else as text."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


Handle = Callable[[Seen], tuple[int, Any, float]]


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 with an ephemeral port, stopped by `close()`."""

    def __init__(self, handle: Handle) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body: Any
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                status, payload, delay = handle(seen)
                with server.lock:
                    server.requests.append(seen)
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

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a notebook cell or a test log is no place for an access log

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


class Stub:
    """What every stand-in shares: a loopback server and the requests it has seen."""

    http: LoopbackServer

    @property
    def requests(self) -> list[Seen]:
        with self.http.lock:
            return list(self.http.requests)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Stub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
