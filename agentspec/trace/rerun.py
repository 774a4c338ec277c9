"""`agentspec trace replay DIR --runtime URL`: recorded traffic run again on a running runtime, decisions compared.

A fleet export (`agentspec trace pull --all -o DIR`) in; every recorded session's turns and every recorded task
re-sent to a running runtime (a candidate build under `wrangler dev`, or staging), with the recorded model answers
and tool results served by a loopback replay stub so the run is deterministic; then each session's and task's new
decision records compared with the recorded ones, and the first divergence of each shown.

What a turn needs is in its trace (docs/runtime.md, Per-turn trace records): `model_rounds` (per round the models
tried and the tool calls asked for, arguments projected and masked) and `tools` (per call its attempts and masked
result). A task's summary event holds its params (masked) and its step events each call's and infer step's outcome.
So the rerun sends the masked text the runtime kept: the decisions do not depend on what masking removed.

The stub tells whose request it is answering: a turn's model requests by their `x-session-affinity` (the rerun
sends each session's turns with an affinity key of its own, in the workflow's affinity header), a task's by the
task id; a tool request by its `traceparent`, whose trace id is the turn's (learned from the turn's first model
request) or the task id's. Within
one turn or task, model rounds are answered in the recorded order and each tool request with the next recorded
attempt of its tool (told by method and URL path), so parallel sessions never take each other's answers, a retried
call gets the recorded retry, and a call the candidate no longer makes is passed over. After a first divergence
the recording may still not fit what the candidate asks: only the first divergence per session is reported.

Not compared (the runtime's environment, not its policy): SLO alerts (`alert:*` from a monitor shared by every
session of a workflow and fed real latencies), `slo.observe` failures and `session.expired` (idle time).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from agentspec.trace.fleet import ExportError, chains_of, export_files, read_events

#: The JSON report's format.
REPORT_SCHEMA = 1
#: Actions whose records depend on the runtime's environment rather than its policy: not compared.
_ENVIRONMENTAL = ("alert:", "slo.observe", "session.expired")
#: The runtime's checkpoint prompt (session.ts `checkpoint`): how the stub tells a summary request from a turn's.
_CHECKPOINT_PROMPT = "Summarize this conversation"
_FINISHED = ("complete", "errored", "terminated")
#: The step name of an event sent to a task, in the export (runtime rerun.ts EVENT_STEP), then `.<uuid>`.
_EVENT_STEP = "agentspec.event."


class RerunError(RuntimeError):
    """The recording cannot be rerun (wrong shape, recorded without what a rerun needs), or the runtime or the
    stub cannot be reached. The message says which and what to do."""


# ── the recording ───────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Decision:
    seq: int
    action: str
    decision: str
    rule: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.action, self.decision, self.rule)

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "action": self.action, "decision": self.decision, "rule": self.rule}


@dataclass(frozen=True)
class Attempt:
    """One model request of a round: the model that failed (`ok` false, with its status) or answered."""

    model: str
    ok: bool
    status: int | None


@dataclass(frozen=True)
class ModelTurn:
    """What the stub answers for one model round (or one infer step attempt): fail the recorded failed models,
    then answer with `answer` (an OpenAI chat completion message), or fail all when `answer` is None."""

    attempts: tuple[Attempt, ...]
    answer: dict[str, Any] | None
    usage: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True)
class ToolReply:
    """One recorded tool attempt that went out: its status, failure rule (`ok` when it succeeded) and the
    projected, masked result the runtime read."""

    tool: str
    status: int | None
    rule: str
    result: Any = None


@dataclass(frozen=True)
class TurnScript:
    turn: int | None  # None: a turn that failed before it was counted (every model failed)
    workflow: str
    text: str
    rounds: tuple[ModelTurn, ...]
    checkpoint: bool | None  # None: no checkpoint ran; else whether the summarizer answered
    tools: tuple[ToolReply, ...]


@dataclass(frozen=True)
class Scope:
    """A recorded session (its turns) or task (its params and step outcomes), with its recorded decisions."""

    kind: str  # "session" | "task"
    tenant: str
    id: str
    workflow: str
    records: tuple[Decision, ...]
    turns: tuple[TurnScript, ...] = ()
    params: dict[str, Any] | None = None
    infers: tuple[ModelTurn, ...] = ()
    tools: tuple[ToolReply, ...] = ()
    #: the events sent to a task (`POST /v1/tasks/{id}/events`), in order: type and masked payload
    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: why it cannot be rerun (the export lacks part of it); None when it can
    unreplayable: str | None = None


@dataclass(frozen=True)
class Recording:
    root: Path
    scopes: tuple[Scope, ...]


def _decisions(records: Iterable[dict[str, Any]]) -> tuple[Decision, ...]:
    return tuple(
        Decision(int(r["seq"]), str(r["action"]), str(r["decision"]), str(r["rule"]))
        for r in sorted(records, key=lambda r: int(r["seq"]))
    )


def compared(records: Iterable[Decision]) -> list[Decision]:
    """The records a rerun compares: those the policy decides, not the environment."""
    return [d for d in records if not d.action.startswith(_ENVIRONMENTAL)]


def _answer(calls: list[dict[str, Any]], text: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {
                    "name": str(c.get("name", "")),
                    # Undeclared arguments were kept by name only: sent again (as null) they are dropped and
                    # recorded again, as they were.
                    "arguments": json.dumps({**dict(c.get("args") or {}), **dict.fromkeys(c.get("undeclared") or [])}),
                },
            }
            for i, c in enumerate(calls)
        ]
    return message


def _attempts(raw: Any) -> tuple[Attempt, ...]:
    out = []
    for a in raw if isinstance(raw, list) else []:
        status = a.get("status")
        out.append(Attempt(str(a.get("model", "")), bool(a.get("ok")), status if isinstance(status, int) else None))
    return tuple(out)


def _usage(raw: Any) -> tuple[int, int, int]:
    u = raw if isinstance(raw, dict) else {}
    return (int(u.get("input") or 0), int(u.get("output") or 0), int(u.get("cached") or 0))


def _turn_script(trace: dict[str, Any], text: str, where: str) -> TurnScript:
    rounds_raw = trace.get("model_rounds")
    tools_raw = trace.get("tools")
    if not isinstance(rounds_raw, list) or not isinstance(tools_raw, list):
        raise RerunError(
            f"{where} was recorded without its model rounds (`model_rounds`): the runtime that served it predates "
            "rerun recording; record the traffic again with a current build"
        )
    rounds = []
    for i, r in enumerate(rounds_raw):
        calls = [c for c in r.get("tool_calls") or [] if isinstance(c, dict)]
        final = i == len(rounds_raw) - 1
        rounds.append(
            ModelTurn(
                _attempts(r.get("attempts")),
                _answer(calls, "(replayed answer)" if final else ""),
                _usage(r.get("usage")),
            )
        )
    replies = []
    for t in tools_raw:
        for a in t.get("attempt_log") or []:
            if not a.get("sent"):
                continue  # refused before it went out: the stub never sees it
            ok = a.get("rule") == "ok"
            status = a.get("status")
            replies.append(
                ToolReply(
                    str(t.get("tool", "")),
                    status if isinstance(status, int) else None,
                    str(a.get("rule", "")),
                    t.get("result") if ok else None,
                )
            )
    checkpoint = trace.get("checkpoint")
    return TurnScript(
        int(trace["turn"]),
        str(trace.get("workflow", "")),
        text,
        tuple(rounds),
        None if not isinstance(checkpoint, dict) else bool(checkpoint.get("ok")),
        tuple(replies),
    )


def _session_scope(tenant: str, session: str, records: list[dict[str, Any]], traces: list[dict[str, Any]]) -> Scope:
    decisions = _decisions(records)
    workflow = str(records[0].get("workflow", "")) if records else ""
    by_seq = {int(r["seq"]): r for r in records}
    trace_of: dict[int, dict[str, Any]] = {}
    for recorded in traces:
        for d in recorded.get("decisions") or []:
            trace_of[int(d["seq"])] = recorded
    # A turn's records start with its routing decision; a turn that failed before it was counted has no trace.
    segments: list[list[Decision]] = []
    for d in decisions:
        if d.action.startswith("model.route:") or not segments:
            segments.append([])
        segments[-1].append(d)
    turns: list[TurnScript] = []
    for segment in segments:
        first = segment[0]
        text = str(by_seq[first.seq].get("intent", "")) or "(empty)"
        where = f"turn at seq {first.seq} of session `{session}` (tenant `{tenant}`)"
        trace = trace_of.get(first.seq)
        if trace is not None:
            turns.append(_turn_script(trace, text, where))
            continue
        if any(d.rule == "model.unavailable" and d.action.startswith("model.call:") for d in segment):
            failing = ModelTurn((), None)
            turns.append(TurnScript(None, str(by_seq[first.seq].get("workflow", workflow)), text, (failing,), None, ()))
            continue
        reason = f"{where} has no turn trace in the export (still in the export queue? pull again)"
        return Scope("session", tenant, session, workflow, decisions, tuple(turns), unreplayable=reason)
    return Scope("session", tenant, session, workflow, decisions, tuple(turns))


def _task_scope(tenant: str, task: str, records: list[dict[str, Any]], events: list[dict[str, Any]]) -> Scope:
    decisions = _decisions(records)
    summary = next((e for e in events if e["data"].get("step") is None), None)
    workflow = str(events[0].get("workflow", "")) if events else ""
    if summary is None:
        reason = f"task `{task}` (tenant `{tenant}`) has no summary in the export: not finished, or still queued"
        return Scope("task", tenant, task, workflow, decisions, unreplayable=reason)
    params = summary["data"].get("params")
    if not isinstance(params, dict):
        raise RerunError(
            f"task `{task}` was recorded without its params: the runtime that ran it predates rerun recording; "
            "record the traffic again with a current build"
        )
    infers: list[ModelTurn] = []
    tools: list[ToolReply] = []
    # Steps run one after another, so the export time orders their attempts (a step's attempts by number).
    steps = sorted((e for e in events if e["data"].get("step") is not None), key=lambda e: (e["ts"], e["seq"]))
    sent = [
        (str(e["data"].get("type", "")), dict(e["data"].get("payload") or {}))
        for e in steps
        if str(e["data"]["step"]).startswith(_EVENT_STEP)
    ]
    for e in steps:
        d = e["data"]
        status = str(d.get("status", ""))
        if str(d["step"]).startswith(_EVENT_STEP):
            continue  # an event sent to the task, above
        if "model_attempts" in d or "text" in d:  # an infer step
            attempts = _attempts(d.get("model_attempts"))
            if status == "complete":
                infers.append(ModelTurn(attempts, _answer([], str(d.get("text", ""))), _usage(d.get("usage"))))
            elif status in ("retrying", "failed"):
                infers.append(ModelTurn(attempts, None))
            continue
        if not d.get("sent"):
            continue
        tool = str(d.get("compensation") or d.get("tool") or "")
        http = d.get("http_status")
        http = http if isinstance(http, int) else None
        if status in ("complete", "compensated"):
            # A compensation's answer too: the runtime projects it onto the compensating tool's `returns`.
            tools.append(ToolReply(tool, http, "ok", d.get("result") or {}))
        elif status in ("retrying", "failed", "compensation_retrying", "compensation_failed"):
            tools.append(ToolReply(tool, http, str(d.get("failure") or "tool.status")))
    return Scope(
        "task",
        tenant,
        task,
        workflow,
        decisions,
        params=params,
        infers=tuple(infers),
        tools=tuple(tools),
        events=tuple(sent),
    )


def load_recording(root: Path) -> Recording:
    """Every session and task of a fleet export directory, as the rerun needs them. RerunError when the directory
    is not an export or was recorded without what a rerun needs; a truncated or foreign file is ExportError."""
    if not root.is_dir():
        raise RerunError(f"`{root}` is not a directory (pull a fleet export with `agentspec trace pull --all`)")
    if not any(export_files(root, kind) for kind in ("decisions", "traces", "tasks")):
        raise RerunError(f"`{root}` holds no fleet export files (traces/, decisions/, tasks/)")
    records: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    traces: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    tasks: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for path in export_files(root, "decisions"):
        for e in read_events(path):
            records[(e["tenant"], e["session"])][int(e["seq"])] = e["data"]
    for path in export_files(root, "traces"):
        for e in read_events(path):
            traces[(e["tenant"], e["session"])][e["id"]] = e["data"]
    for path in export_files(root, "tasks"):
        for e in read_events(path):
            tasks[(e["tenant"], e["session"])][e["id"]] = e
    broken = {(c.tenant, c.session): c for c in chains_of(root) if c.verified and not c.ok}
    scopes = []
    for key in sorted(set(records) | set(tasks) | set(traces)):
        tenant, sid = key
        recs = [records[key][s] for s in sorted(records.get(key, {}))]
        if key in tasks:
            scope = _task_scope(tenant, sid, recs, list(tasks[key].values()))
        else:
            scope = _session_scope(tenant, sid, recs, list(traces.get(key, {}).values()))
        if key in broken:
            first = broken[key].problems[0]
            why = f"its decision chain is broken ({first.message}); a tampered recording is not rerun"
            scope = Scope(scope.kind, tenant, sid, scope.workflow, scope.records, unreplayable=why)
        scopes.append(scope)
    return Recording(root, tuple(scopes))


# ── the replay stub ─────────────────────────────────────────────────────────


class _Cursor:
    """Where one turn or task is in its script: the next model round and the next tool reply."""

    def __init__(self, rounds: Sequence[ModelTurn], tools: Sequence[ToolReply], checkpoint: bool | None) -> None:
        self.rounds = list(rounds)
        self.round = 0
        self.failed_in_round: list[str] = []
        self.tools = list(tools)
        self.tool = 0
        self.checkpoint = checkpoint
        self.model_requests = 0


def _trace_id(traceparent: str | None) -> str | None:
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def trace_id_of(task_or_trace: str) -> str:
    """The trace id the runtime puts in a turn's or task's `traceparent` (runtime rerun.ts `traceparent`)."""
    hexed = "".join(ch for ch in task_or_trace.lower() if ch in "0123456789abcdef")
    trace = hexed[-32:].rjust(32, "0")
    return "1".rjust(32, "0") if set(trace) == {"0"} else trace


class ReplayStub:
    """The model and every tool host of a rerun, on one loopback port: OpenAI-compatible `POST
    /v1/chat/completions` for the model, anything else for the tools (TOOL_ORIGINS sends every host here)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.Lock()
        self.by_affinity: dict[str, _Cursor] = {}
        self.by_trace: dict[str, _Cursor] = {}
        self.tool_timeouts: dict[str, float] = {}
        #: per tool, its method and a pattern of its URL's path (`tool_patterns`): which tool a request is for
        self.tool_paths: dict[str, tuple[str, re.Pattern[str]]] = {}
        self.model_requests = 0
        self.tool_requests = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.command == "POST" and self.path.endswith("/chat/completions"):
                    status, payload, delay, drop = stub._model(headers, body)
                else:
                    status, payload, delay, drop = stub._tool(self.command, self.path, headers)
                if delay:
                    time.sleep(delay)
                if drop:
                    # A recorded network error: the connection ends without an answer.
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                # One request per connection: a kept-alive connection would outlive close() and be answered by
                # this stub's handler threads after a later stub took over the port.
                self.close_connection = True
                try:
                    self.send_response(status)
                    self.send_header("connection", "close")
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the runtime stopped waiting (a recorded timeout)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise RerunError(f"the replay stub cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.server.daemon_threads = True
        # A short poll: close() returns within it.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        host, port = str(self.server.server_address[0]), self.server.server_address[1]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ── what the rerun tells it ──

    def expect(self, affinity: str | None, trace: str | None, cursor: _Cursor) -> None:
        with self.lock:
            if affinity is not None:
                self.by_affinity[affinity] = cursor
            if trace is not None:
                self.by_trace[trace] = cursor

    def forget(self, affinity: str | None, trace: str | None) -> None:
        with self.lock:
            if affinity is not None:
                self.by_affinity.pop(affinity, None)
            if trace is not None:
                self.by_trace.pop(trace, None)

    # ── answering ──

    def _model(self, headers: dict[str, str], body: Any) -> tuple[int, Any, float, bool]:
        body = body if isinstance(body, dict) else {}
        model = str(body.get("model", ""))
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        summary = any(
            m.get("role") == "system" and str(m.get("content", "")).startswith(_CHECKPOINT_PROMPT) for m in messages
        )
        with self.lock:
            self.model_requests += 1
            cursor = self.by_affinity.get(headers.get("x-session-affinity", ""))
            trace = _trace_id(headers.get("traceparent"))
            if cursor is None and trace is not None:
                cursor = self.by_trace.get(trace)
            if cursor is None:
                return 503, {"error": {"message": "replay stub: no recording for this request"}}, 0, False
            cursor.model_requests += 1
            if trace is not None:
                self.by_trace.setdefault(trace, cursor)  # a turn's tool requests carry the same trace id
            if summary:
                if cursor.checkpoint is False:
                    return 503, {"error": {"message": "replay stub: the recorded summary failed"}}, 0, False
                return (
                    200,
                    _completion(model, {"role": "assistant", "content": "(replayed summary)"}, (0, 0, 0)),
                    0,
                    False,
                )
            if cursor.round >= len(cursor.rounds):
                return (
                    200,
                    _completion(model, {"role": "assistant", "content": "(no recorded answer)"}, (0, 0, 0)),
                    0,
                    False,
                )
            current = cursor.rounds[cursor.round]
            failures = [a for a in current.attempts if not a.ok]
            failing = next((a for a in failures if a.model == model and cursor.failed_in_round.count(model) < 1), None)
            if failing is not None or current.answer is None:
                cursor.failed_in_round.append(model)
                if current.answer is None and failures and len(cursor.failed_in_round) >= len(failures):
                    # Every recorded attempt failed (an infer step's attempt): the next request is the next
                    # attempt's. A round recorded without its attempts (a turn that failed before it was
                    # counted leaves no trace) fails every request instead.
                    cursor.round += 1
                    cursor.failed_in_round = []
                status = failing.status if failing is not None and failing.status else 503
                return status, {"error": {"message": "replay stub: recorded failure"}}, 0, False
            cursor.round += 1
            cursor.failed_in_round = []
            return 200, _completion(model, current.answer, current.usage), 0, False

    def _tool(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any, float, bool]:
        trace = _trace_id(headers.get("traceparent"))
        bare = path.split("?", 1)[0]
        tools = {n for n, (m, pattern) in self.tool_paths.items() if m == method and pattern.fullmatch(bare)}
        with self.lock:
            self.tool_requests += 1
            cursor = self.by_trace.get(trace) if trace is not None else None
            if trace is None:
                return 200, {}, 0, False  # an SLO webhook: the rerun does not compare alerts
            # The next recorded attempt of the tool this request is for: a recorded call the runtime did not make
            # this time (denied now) is passed over, so the calls after it still get their own answers. A request
            # no declared tool matches gets the next attempt in order.
            start = cursor.tool if cursor is not None else 0
            pending = cursor.tools[start:] if cursor is not None else []
            at = next((i for i, r in enumerate(pending) if not tools or r.tool in tools), None)
            if cursor is None or at is None:
                return 599, {"error": "replay stub: no recorded tool answer for this request"}, 0, False
            reply = pending[at]
            cursor.tool = start + at + 1
        if reply.rule == "ok":
            return reply.status or 200, reply.result if reply.result is not None else {}, 0, False
        if reply.rule == "tool.timeout":
            return 504, {}, self.tool_timeouts.get(reply.tool, 10.0) + 1.0, False
        if reply.rule == "tool.error":
            return 0, b"", 0, True
        if reply.status is not None and 200 <= reply.status < 300:
            return reply.status, b"(replayed answer that breaks the declared returns)", 0, False
        return reply.status or 500, {}, 0, False


def tool_patterns(policy: dict[str, Any]) -> dict[str, tuple[str, re.Pattern[str]]]:
    """Per declared tool, its method and its URL's path as a pattern (each `{name}` one path segment)."""
    out: dict[str, tuple[str, re.Pattern[str]]] = {}
    for name, tool in (policy.get("tools") or {}).items():
        url = str(tool.get("url", ""))
        path = re.sub(r"^[a-z][a-z0-9+.-]*://[^/?#]*", "", url, flags=re.I).split("?", 1)[0] or "/"
        parts = re.split(r"\{[^{}]*\}", path)
        out[name] = (str(tool.get("method", "GET")).upper(), re.compile("[^/]+".join(re.escape(p) for p in parts)))
    return out


def _completion(model: str, message: dict[str, Any], usage: tuple[int, int, int]) -> dict[str, Any]:
    return {
        "id": "replay",
        "model": model,
        "choices": [{"index": 0, "message": message}],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "prompt_tokens_details": {"cached_tokens": usage[2]},
        },
    }


# ── the rerun ───────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Divergence:
    index: int  # among the compared records
    turn: int | None  # the recorded turn it falls in (sessions)
    recorded: Decision | None
    rerun: Decision | None


@dataclass(frozen=True)
class ScopeResult:
    scope: Scope
    rerun_id: str
    compared: int
    skipped: int
    divergence: Divergence | None
    #: why it was not rerun (or could not be compared); None when it was
    error: str | None = None

    @property
    def identical(self) -> bool:
        return self.error is None and self.divergence is None


@dataclass
class RerunResult:
    runtime: str
    spec_hash: str
    prefix: str
    results: list[ScopeResult] = field(default_factory=list)

    @property
    def diverged(self) -> list[ScopeResult]:
        return [r for r in self.results if r.divergence is not None]

    @property
    def not_rerun(self) -> list[ScopeResult]:
        """Scopes that could not be rerun (or not to the end) and showed no divergence before stopping."""
        return [r for r in self.results if r.error is not None and r.divergence is None]


def _key_part(text: str) -> str:
    # The runtime's lengthPrefixed (worker.ts): JavaScript string length, in UTF-16 code units.
    return f"{len(text.encode('utf-16-le')) // 2}:{text}"


def rerun_task_id(workflow: str, tenant: str, key: str) -> str:
    """The task id the runtime gives `POST /v1/tasks` with this Idempotency-Key (docs/runtime.md, Tasks)."""
    return f"{workflow}-{hashlib.sha256((_key_part(tenant) + _key_part(key)).encode()).hexdigest()[:32]}"


def _rerun_session_id(prefix: str, session: str) -> str:
    sid = prefix + session
    if len(sid) <= 128:
        return sid
    return prefix + hashlib.sha256(session.encode()).hexdigest()[:32]  # the runtime's limit is 128 characters


def first_divergence(
    recorded: Sequence[Decision], new: Sequence[Decision]
) -> tuple[int, Decision | None, Decision | None] | None:
    for i in range(max(len(recorded), len(new))):
        a = recorded[i] if i < len(recorded) else None
        b = new[i] if i < len(new) else None
        if a is None or b is None or a.key != b.key:
            return i, a, b
    return None


class _Runtime:
    def __init__(self, url: str, admin_token: str, tenant_header: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.token = admin_token
        self.tenant_header = tenant_header
        self.client = httpx.Client(base_url=self.url, timeout=timeout)

    def headers(self, tenant: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}", self.tenant_header: tenant}

    def request(
        self, method: str, path: str, tenant: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        try:
            return self.client.request(method, path, headers={**self.headers(tenant), **(headers or {})}, **kw)
        except httpx.HTTPError as exc:
            raise RerunError(f"cannot reach the runtime at `{self.url}`: {exc}") from exc

    def body(self, response: httpx.Response) -> dict[str, Any]:
        """A runtime answer's JSON object; RerunError when it is none (a proxy's error page, a foreign server)."""
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            where = f"`{response.request.method} {response.request.url.path}`"
            raise RerunError(f"{where} on `{self.url}` answered {response.status_code} with no JSON object")
        return data

    def chain(self, kind: str, tenant: str, id: str) -> list[Decision]:
        r = self.request("GET", "/v1/traces", tenant, params={kind: id, "since": 0})
        if r.status_code == 404:
            return []  # no records at all: `unknown_session`
        if r.status_code != 200:
            raise RerunError(f"`GET /v1/traces` answered {r.status_code} for {kind} `{id}`: {r.text[:200]}")
        try:
            return list(_decisions(self.body(r).get("records", [])))
        except (KeyError, TypeError, ValueError) as exc:
            raise RerunError(f"`GET /v1/traces` for {kind} `{id}` answered records of another shape ({exc})") from exc


def _segment_turns(records: Sequence[Decision], turns: Sequence[TurnScript]) -> dict[int, int | None]:
    """Recorded seq -> the recorded turn it belongs to (None: a turn that was not counted)."""
    out: dict[int, int | None] = {}
    i = -1
    for d in records:
        if d.action.startswith("model.route:") or i < 0:
            i += 1
        out[d.seq] = turns[i].turn if 0 <= i < len(turns) else None
    return out


def _rerun_session(
    rt: _Runtime, stub: ReplayStub, scope: Scope, prefix: str, affinity: str, headers: dict[str, str]
) -> ScopeResult:
    sid = _rerun_session_id(prefix, scope.id)
    for turn in scope.turns:
        cursor = _Cursor(turn.rounds, turn.tools, turn.checkpoint)
        stub.expect(affinity, None, cursor)
        try:
            r = rt.request(
                "POST",
                f"/v1/sessions/{quote(sid, safe='')}/turns",
                scope.tenant,
                # The scope's own affinity key, in the workflow's affinity header: the stub tells this session's
                # model requests by it (two tenants' sessions may share an id, never an affinity key).
                headers={headers.get(turn.workflow, "x-session-affinity"): affinity},
                json={"workflow": turn.workflow, "input": turn.text},
            )
        finally:
            stub.forget(affinity, None)
            with stub.lock:
                for trace in [t for t, c in stub.by_trace.items() if c is cursor]:
                    del stub.by_trace[trace]
        if r.status_code not in (200, 503):
            try:
                detail = r.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                detail = r.text[:120]
            return _compare(
                scope, sid, rt.chain("session", scope.tenant, sid), f"turn answered {r.status_code} ({detail})"
            )
    return _compare(scope, sid, rt.chain("session", scope.tenant, sid))


def _rerun_task(rt: _Runtime, stub: ReplayStub, scope: Scope, prefix: str, timeout: float) -> ScopeResult:
    key = f"{prefix}{scope.id}"
    task_id = rerun_task_id(scope.workflow, scope.tenant, key)
    cursor = _Cursor(scope.infers, scope.tools, None)
    stub.expect(task_id, trace_id_of(task_id), cursor)
    try:
        r = rt.request(
            "POST",
            "/v1/tasks",
            scope.tenant,
            json={"workflow": scope.workflow, "params": scope.params or {}},
            headers={"idempotency-key": key},
        )
        if r.status_code != 202:
            return _compare(scope, task_id, [], f"`POST /v1/tasks` answered {r.status_code}: {r.text[:200]}")
        named = rt.body(r).get("task_id")
        if named != task_id:
            return _compare(scope, task_id, [], f"the runtime named the task `{named}`, not `{task_id}`")
        # The recorded events, in order: a task takes an event sent before its `wait` step starts.
        for type_, payload in scope.events:
            sent = rt.request(
                "POST", f"/v1/tasks/{task_id}/events", scope.tenant, json={"type": type_, "payload": payload}
            )
            if sent.status_code != 202:
                failed = f"its event `{type_}` was refused ({sent.status_code}: {sent.text[:200]})"
                return _compare(scope, task_id, rt.chain("task", scope.tenant, task_id), failed)
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            status = str(rt.body(rt.request("GET", f"/v1/tasks/{task_id}", scope.tenant)).get("status", ""))
            if status in _FINISHED:
                break
            time.sleep(0.25)
        else:
            return _compare(
                scope, task_id, rt.chain("task", scope.tenant, task_id), f"still `{status}` after {timeout:g} s"
            )
        # Rollbacks may still be recording when the status turns `errored`: wait until the chain holds as many
        # records as the recording, or stops growing.
        want = len(compared(scope.records))
        chain = rt.chain("task", scope.tenant, task_id)
        settle = time.monotonic() + min(10.0, timeout)
        while len(compared(chain)) < want and time.monotonic() < settle:
            time.sleep(0.25)
            chain = rt.chain("task", scope.tenant, task_id)
        return _compare(scope, task_id, chain)
    finally:
        stub.forget(task_id, trace_id_of(task_id))


def _compare(scope: Scope, rerun_id: str, new: Sequence[Decision], error: str | None = None) -> ScopeResult:
    recorded = compared(scope.records)
    fresh = compared(new)
    found = first_divergence(recorded, fresh)
    skipped = len(scope.records) - len(recorded)
    divergence = None
    if found is not None:
        index, a, b = found
        turns = _segment_turns(scope.records, scope.turns) if scope.kind == "session" else {}
        turn = turns.get(a.seq) if a is not None else None
        divergence = Divergence(index, turn, a, b)
    return ScopeResult(scope, rerun_id, len(recorded), skipped, divergence, error)


def rerun(
    recording: Recording,
    runtime: str,
    *,
    admin_token: str,
    stub: ReplayStub,
    prefix: str,
    tenant_header: str = "x-tenant-id",
    jobs: int = 4,
    task_timeout: float = 120.0,
    timeout: float = 60.0,
) -> RerunResult:
    """Rerun every replayable scope of `recording` on the runtime at `runtime`, answered by `stub`."""
    rt = _Runtime(runtime, admin_token, tenant_header, timeout)
    try:
        try:
            health = rt.client.get("/healthz")
            spec_hash = str(rt.body(health).get("spec_hash", ""))
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise RerunError(f"cannot reach the runtime at `{rt.url}`: {exc}") from exc
        tenant = next((s.tenant for s in recording.scopes), "")
        policy = rt.request("GET", "/v1/policy", tenant)
        if policy.status_code != 200:
            raise RerunError(
                f"the runtime at `{rt.url}` refused the admin token (`GET /v1/policy` answered {policy.status_code}); "
                "pass the runtime's admin token with --admin-token or AGENTSPEC_ADMIN_TOKEN"
            )
        tables = rt.body(policy)
        tools = tables.get("tools", {})
        stub.tool_timeouts = {n: float(t.get("timeout_ms", 10_000)) / 1000 for n, t in tools.items()}
        stub.tool_paths = tool_patterns(tables)
        result = RerunResult(rt.url, spec_hash, prefix)

        affinity_headers = {
            name: str((wf.get("affinity") or {}).get("header") or "x-session-affinity")
            for name, wf in tables.get("workflows", {}).items()
        }

        def one(index: int, scope: Scope) -> ScopeResult:
            if scope.unreplayable is not None:
                return ScopeResult(scope, "", len(compared(scope.records)), 0, None, scope.unreplayable)
            try:
                if scope.kind == "task":
                    return _rerun_task(rt, stub, scope, prefix, task_timeout)
                return _rerun_session(rt, stub, scope, prefix, f"{prefix}{index}", affinity_headers)
            except RerunError as exc:  # this scope's, not the run's: the others are still worth comparing
                return ScopeResult(scope, "", len(compared(scope.records)), 0, None, str(exc))

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            result.results = list(pool.map(one, range(len(recording.scopes)), recording.scopes))
        sent = [r for r in result.results if r.error is None or r.rerun_id]
        if sent and stub.model_requests == 0 and stub.tool_requests == 0:
            raise RerunError(
                f"the runtime at `{rt.url}` never reached the replay stub at {stub.origin}: start it with\n"
                + "".join(f"  {line}\n" for line in stub_dev_vars(tables, stub.origin))
                + "in its .dev.vars (or environment), then rerun"
            )
        return result
    finally:
        rt.client.close()


def stub_dev_vars(policy: dict[str, Any], origin: str) -> list[str]:
    """The `.dev.vars` lines that point a runtime with this policy at the stub (as devserver.stub_origins)."""
    hosts = {str(t.get("host", "")) for t in policy.get("tools", {}).values()}
    for wf in policy.get("workflows", {}).values():
        webhook = (wf.get("slo") or {}).get("webhook")
        if webhook:
            hosts.add(httpx.URL(webhook).host)
    origins = {h: origin for h in sorted(hosts) if h}
    return [f"INFERENCE_URL={origin}/v1", f"TOOL_ORIGINS={json.dumps(origins)}"]


# ── output ──────────────────────────────────────────────────────────────────


def _row(d: Decision | None) -> str:
    return "(none)" if d is None else f"{d.action}  {d.decision}  {d.rule}"


def render(result: RerunResult, root: Path) -> str:
    lines = [f"rerun of `{root}` on {result.runtime} ({result.spec_hash or 'spec hash unknown'})"]
    for r in result.results:
        s = r.scope
        name = f"{s.kind} `{s.id}` (tenant `{s.tenant}`, workflow `{s.workflow}`)"
        if r.error is not None and r.divergence is None:
            lines.append(f"not rerun: {name}: {r.error}")
            continue
        if r.divergence is None:
            continue  # counted below: a fleet's identical sessions would bury the few that are not
        d = r.divergence
        where = f"decision {d.index + 1}" + (f", turn {d.turn}" if d.turn is not None else "")
        seq = f" (recorded seq {d.recorded.seq})" if d.recorded is not None else ""
        lines.append(f"diverges: {name} at {where}{seq}")
        lines.append(f"    recorded  {_row(d.recorded)}")
        lines.append(f"    rerun     {_row(d.rerun)}")
        if r.error is not None:
            lines.append(f"    then: {r.error}")
    compared_n = sum(r.compared for r in result.results if r.error is None or r.divergence is not None)
    skipped = sum(r.skipped for r in result.results)
    lines.append("")
    identical = sum(r.identical for r in result.results)
    lines.append(
        f"{len(result.results)} recorded: {identical} identical, {len(result.diverged)} diverge, "
        f"{len(result.not_rerun)} not rerun; {compared_n} decisions compared, {skipped} environmental ones not "
        "(SLO alerts, session expiry)"
    )
    return "\n".join(lines) + "\n"


def as_json(result: RerunResult, root: Path) -> dict[str, Any]:
    def scope(r: ScopeResult) -> dict[str, Any]:
        d = r.divergence
        return {
            "kind": r.scope.kind,
            "tenant": r.scope.tenant,
            "id": r.scope.id,
            "workflow": r.scope.workflow,
            "rerun_id": r.rerun_id or None,
            "compared": r.compared,
            "not_compared": r.skipped,
            "identical": r.identical,
            "error": r.error,
            "divergence": None
            if d is None
            else {
                "index": d.index,
                "turn": d.turn,
                "recorded": None if d.recorded is None else d.recorded.as_json(),
                "rerun": None if d.rerun is None else d.rerun.as_json(),
            },
        }

    return {
        "schema": REPORT_SCHEMA,
        "recording": str(root),
        "runtime": result.runtime,
        "spec_hash": result.spec_hash,
        "prefix": result.prefix,
        "diverged": len(result.diverged),
        "not_rerun": len(result.not_rerun),
        "scopes": [scope(r) for r in result.results],
    }


# ── the command ─────────────────────────────────────────────────────────────

EXIT_OK, EXIT_DIVERGED, EXIT_USAGE = 0, 1, 2
#: The stub's default port: the one the compiled project's local (top-level) config already points INFERENCE_URL at.
DEFAULT_STUB_PORT = 11434


def add_arguments(parser: Any) -> None:
    """The options `agentspec trace replay DIR --runtime URL` adds to the replay subcommand."""
    parser.add_argument(
        "--runtime",
        metavar="URL",
        default=None,
        help="rerun the recorded turns and tasks on this running runtime (default: none, the policy replay)",
    )
    parser.add_argument(
        "--admin-token", default=None, help="the runtime's admin token (default: $AGENTSPEC_ADMIN_TOKEN)"
    )
    parser.add_argument(
        "--tenant-header", default="x-tenant-id", help="the HTTP header carrying the tenant: the spec's `tenant header`"
    )
    parser.add_argument(
        "--stub-port",
        type=int,
        default=DEFAULT_STUB_PORT,
        help="the loopback port of the replay stub the runtime's INFERENCE_URL and TOOL_ORIGINS point at "
        "(default: %(default)s)",
    )
    parser.add_argument("--jobs", type=int, default=4, help="sessions and tasks rerun at once (default: %(default)s)")
    parser.add_argument(
        "--prefix", default=None, help="prefix of the rerun's session ids and task keys (default: rerun-<time>-)"
    )
    parser.add_argument(
        "--task-timeout", type=float, default=120.0, help="seconds a rerun task may take (default: %(default)s)"
    )


def run(args: Any) -> int:
    """`agentspec trace replay DIR --runtime URL`: 0 every session and task decided as recorded, 1 one diverged
    (or could not be rerun), 2 bad input (not an export, recorded without rerun data, runtime or stub unreachable)."""
    import os
    import sys

    root = Path(args.source)
    if getattr(args, "against", None):
        sys.stderr.write("agentspec: `--runtime` replays against the running runtime; drop `--against SPEC`\n")
        return EXIT_USAGE
    token = args.admin_token or os.environ.get("AGENTSPEC_ADMIN_TOKEN")
    if not token:
        sys.stderr.write("agentspec: no admin token; pass `--admin-token` or set AGENTSPEC_ADMIN_TOKEN\n")
        return EXIT_USAGE
    if not str(args.runtime).startswith(("http://", "https://")):
        sys.stderr.write(f"agentspec: `--runtime {args.runtime}` is not an http(s) URL\n")
        return EXIT_USAGE
    if not 0 < args.stub_port < 65536:
        sys.stderr.write(f"agentspec: `--stub-port {args.stub_port}` is not a port\n")
        return EXIT_USAGE
    prefix = args.prefix if args.prefix is not None else f"rerun-{int(time.time()):x}-"
    try:
        recording = load_recording(root)
    except (RerunError, ExportError) as exc:
        sys.stderr.write(f"agentspec: {exc}\n")
        return EXIT_USAGE
    except UnicodeDecodeError as exc:
        sys.stderr.write(f"agentspec: `{root}` holds a file that is not UTF-8 ({exc.reason})\n")
        return EXIT_USAGE
    except (KeyError, TypeError, ValueError) as exc:
        # An export line of the right schema whose data is not what the runtime writes (edited by hand, or
        # written by another tool): named, not a traceback.
        what = f"field {exc}" if isinstance(exc, KeyError) else str(exc)
        sys.stderr.write(f"agentspec: `{root}` holds an export event of another shape ({what}); cannot rerun it\n")
        return EXIT_USAGE
    except OSError as exc:
        sys.stderr.write(f"agentspec: cannot read `{root}`: {exc.strerror or exc}\n")
        return EXIT_USAGE
    stub: ReplayStub | None = None
    try:
        stub = ReplayStub("127.0.0.1", args.stub_port)
        result = rerun(
            recording,
            args.runtime,
            admin_token=token,
            stub=stub,
            prefix=prefix,
            tenant_header=args.tenant_header,
            jobs=args.jobs,
            task_timeout=args.task_timeout,
        )
    except RerunError as exc:
        sys.stderr.write(f"agentspec: {exc}\n")
        return EXIT_USAGE
    finally:
        if stub is not None:
            stub.close()
    if args.format == "json":
        sys.stdout.write(json.dumps(as_json(result, root), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render(result, root))
    return EXIT_DIVERGED if result.diverged or result.not_rerun else EXIT_OK


__all__ = [
    "ExportError",
    "Recording",
    "ReplayStub",
    "RerunError",
    "RerunResult",
    "add_arguments",
    "as_json",
    "load_recording",
    "render",
    "rerun",
    "run",
]
