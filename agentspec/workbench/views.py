"""What a notebook shows of a spec: a loaded and checked spec in, displays out (HTML in Jupyter, text elsewhere).

`Checked` is the entry point (`agentspec.workbench.load` / `load_text` make one). Its parts show themselves:
`diagnostics` as the CLI renders them (code, caret, help), `agent` as tables of the resolved model (workflows,
tiers and fallback chains, tools with risk, identity, idempotency and compensation, who may call what and reach
which host, steps, SLOs), `policy` as the tables the runtime reads plus the Python evaluator's decision for every
workflow and tool, and `files` as the generated project.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from agentspec import model as m
from agentspec.check import CheckResult
from agentspec.diagnostics import Diagnostic, has_errors, render_human, sort_key, summary
from agentspec.load import Loaded
from agentspec.policy import Verdict, evaluate_tool_call, spec_hash, tables
from agentspec.workbench.html import Display, Raw, code, details, esc, pre, table, text_table


class SpecHasErrors(ValueError):
    """The spec did not check cleanly, so it has no resolved model to show, compile or run."""


def ms(value: int | None) -> str:
    """A millisecond figure as a spec would write it (`2s`, `30m`, `500ms`)."""
    if value is None:
        return "—"
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return f"{value}ms"


# ───────────────────────────── diagnostics ─────────────────────────────


class Diagnostics(Display):
    """A spec's diagnostics, rendered by `agentspec.diagnostics.render_human` exactly as `agentspec check` does;
    the HTML keeps its colours (rich's ANSI export, every character escaped)."""

    def __init__(self, diagnostics: list[Diagnostic], sources: Mapping[str, str], files: int = 1) -> None:
        self.items = sorted(dict.fromkeys(diagnostics), key=sort_key)
        self.sources = dict(sources)
        self.files = files

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __getitem__(self, i: int) -> Diagnostic:
        return self.items[i]

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.items]

    @property
    def errors(self) -> bool:
        return has_errors(self.items)

    @property
    def summary(self) -> str:
        return summary(self.items, self.files)

    def _text(self) -> str:
        body = render_human(self.items, self.sources).rstrip("\n") if self.items else ""
        return (body + "\n\n" if body else "") + self.summary

    def _html(self) -> str:
        if not self.items:
            return f"<div class='agentspec-diagnostics'>{esc(self.summary)}</div>"
        from rich.console import Console
        from rich.text import Text

        console = Console(record=True, width=10_000, force_terminal=True, color_system="standard", file=io.StringIO())
        console.print(Text.from_ansi(render_human(self.items, self.sources, color=True)), soft_wrap=True)
        # rich escapes every character of the text it exports (html.escape); the format adds only the wrapper.
        rendered = console.export_html(inline_styles=True, code_format="{code}")
        return (
            "<div class='agentspec-diagnostics'><pre style='white-space:pre;line-height:1.3'>"
            f"{rendered}</pre><p>{esc(self.summary)}</p></div>"
        )


# ───────────────────────────── the checked agent ─────────────────────────────


class AgentView(Display):
    """The resolved model of a checked spec, as tables."""

    def __init__(self, spec: m.RSpec) -> None:
        self.spec = spec

    def overview(self) -> list[tuple[str, Any]]:
        s = self.spec
        return [
            ("agent", f"{s.name}" + (f" v{s.version}" if s.version is not None else "")),
            ("kind", s.kind),
            ("owner", s.owner),
            ("tokens secret", s.tokens_secret),
            ("admin secret", s.admin_secret),
            ("tenant header", s.tenant_header),
            ("stores", [f"{kind} {name}" for name, kind in s.stores]),
            ("spec hash", spec_hash(s)),
            ("files", list(s.files)),
        ]

    def tiers(self) -> list[tuple[Any, ...]]:
        return [
            (
                t.name,
                " → ".join(t.models),
                ms(t.timeout_ms),
                t.clearance,
                f"in {t.price_in:g} out {t.price_out:g} per Mtok"
                if t.price_in is not None and t.price_out is not None
                else None,
            )
            for t in self.spec.tiers
        ]

    def tools(self) -> list[tuple[Any, ...]]:
        return [
            (
                t.name,
                f"{t.method} {t.url}",
                t.risk,
                t.read_only,
                t.identity,
                list(t.secrets),
                t.idempotency_key,
                t.compensate,
                ms(t.timeout_ms),
            )
            for t in self.spec.tools
        ]

    def workflows(self) -> list[tuple[Any, ...]]:
        rows = []
        for w in self.spec.workflows:
            checkpoint = (
                f"every {w.checkpoint_every} turns, tier {w.checkpoint_tier}"
                + (f", into {w.checkpoint_store}" if w.checkpoint_store else "")
                if w.checkpoint_every is not None
                else None
            )
            rows.append(
                (
                    w.name,
                    w.klass,
                    w.mode,
                    f"{w.turn_tier} (risk {w.turn_risk})",
                    [f"risk {risk} → tier {tier}" for risk, tier in w.routes],
                    checkpoint,
                    list(w.pii_classes),
                    f"{w.affinity_header}, ttl {ms(w.ttl_ms)}",
                    [s.name for s in w.steps],
                )
            )
        return rows

    def access(self) -> list[tuple[Any, ...]]:
        """Who may call what and reach which host: the evaluator's decision for every workflow and tool."""
        policy = tables(self.spec)
        rows = []
        for w in self.spec.workflows:
            for t in self.spec.tools:
                verdict = evaluate_tool_call(policy, w.name, t.name)
                rows.append((w.name, t.name, t.host, verdict["decision"], verdict["rule"]))
        return rows

    def outbound(self) -> list[tuple[Any, ...]]:
        return [(w.name, list(w.outbound)) for w in self.spec.workflows]

    def steps(self) -> list[tuple[Any, ...]]:
        tools = {t.name: t for t in self.spec.tools}
        rows = []
        for w in self.spec.workflows:
            for s in w.steps:
                target = {
                    "call": f"tool {s.tool}",
                    "infer": f"tier {s.tier}",
                    "sleep": ms(s.duration_ms),
                    "wait": f"event {s.event}",
                    "search": f"index {s.index}",
                }[s.kind]
                tool = tools.get(s.tool or "")
                rows.append(
                    (
                        w.name,
                        s.name,
                        s.kind,
                        target,
                        s.retries,
                        f"{s.backoff} {ms(s.delay_ms)}",
                        ms(s.timeout_ms),
                        tool.idempotency_key if tool else None,
                        tool.compensate if tool else None,
                    )
                )
        return rows

    def slos(self) -> list[tuple[Any, ...]]:
        rows = []
        for w in self.spec.workflows:
            o = w.slo
            parts = [
                f"latency {o.latency_percentile} < {ms(o.latency_ms)}" if o.latency_ms is not None else None,
                f"ttft {o.ttft_percentile} < {ms(o.ttft_ms)}" if o.ttft_ms is not None else None,
                f"success ≥ {o.success_pct:g}%" if o.success_pct is not None else None,
                f"cost per task < ${o.cost_usd:g}" if o.cost_usd is not None else None,
                f"cache hit ≥ {o.cache_hit_pct:g}%" if o.cache_hit_pct is not None else None,
                f"alert on a {o.cache_drop_pct:g}% cache-hit drop" if o.cache_drop_pct is not None else None,
                f"denied ≤ {o.denied_pct:g}%" if o.denied_pct is not None else None,
                f"webhook {o.webhook}" if o.webhook else None,
            ]
            rows.append((w.name, [p for p in parts if p]))
        return rows

    _SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
        ("tiers", "Model tiers and fallback chains", ("tier", "chain", "timeout", "clears risk", "price")),
        (
            "tools",
            "Tools",
            (
                "tool",
                "endpoint",
                "risk",
                "read only",
                "identity",
                "secrets",
                "idempotency key",
                "compensate",
                "timeout",
            ),
        ),
        (
            "workflows",
            "Workflows",
            ("workflow", "class", "policy", "turn tier", "routes", "checkpoint", "pii mask", "affinity", "steps"),
        ),
        ("access", "Who may call what", ("workflow", "tool", "host", "decision", "rule")),
        ("outbound", "Hosts each workflow may reach", ("workflow", "outbound allow")),
        (
            "steps",
            "Task steps",
            ("workflow", "step", "kind", "target", "retries", "backoff", "timeout", "idempotency key", "compensate"),
        ),
        ("slos", "SLOs", ("workflow", "objectives")),
    )

    def _sections(self) -> list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
        return [(title, headers, getattr(self, attr)()) for attr, title, headers in self._SECTIONS]

    def _html(self) -> str:
        parts = [table(("", ""), self.overview(), "Agent")]
        parts += [table(headers, rows, title) for title, headers, rows in self._sections() if rows]
        return "<div class='agentspec-agent'>" + "<br>".join(parts) + "</div>"

    def _text(self) -> str:
        parts = [text_table(("", ""), self.overview(), "Agent")]
        parts += [text_table(headers, rows, title) for title, headers, rows in self._sections() if rows]
        return "\n\n".join(parts)


# ───────────────────────────── policy tables ─────────────────────────────


class VerdictView(Display):
    """One decision of the Python evaluator (the runtime's `evaluateToolCall`, decision for decision)."""

    def __init__(self, workflow: str, tool: str, url: str | None, verdict: Verdict) -> None:
        self.workflow, self.tool, self.url, self.verdict = workflow, tool, url, verdict

    @property
    def decision(self) -> str:
        return self.verdict["decision"]

    @property
    def rule(self) -> str:
        return self.verdict["rule"]

    def _text(self) -> str:
        v = self.verdict
        target = f" {self.url}" if self.url else ""
        return f"{self.workflow} → {self.tool}{target}: {v['decision']} ({v['rule']}): {v['reason']}"

    def _html(self) -> str:
        v = self.verdict
        colour = {"allow": "green", "deny": "crimson", "shadow_deny": "darkorange"}[v["decision"]]
        return (
            f"<div>{code(self.workflow)} → {code(self.tool)}{' ' + code(self.url) if self.url else ''}: "
            f"<b style='color:{colour}'>{esc(v['decision'])}</b> ({code(v['rule'])}): {esc(v['reason'])}</div>"
        )


class PolicyView(Display):
    """The policy tables (`policy/policy.json`) the runtime, the evaluator and the simulator all read."""

    def __init__(self, spec: m.RSpec) -> None:
        self.tables: dict[str, Any] = tables(spec)

    def __getitem__(self, key: str) -> Any:
        return self.tables[key]

    @property
    def json(self) -> str:
        return json.dumps(self.tables, indent=2, ensure_ascii=False)

    def evaluate(self, workflow: str, tool: str, url: str | None = None) -> VerdictView:
        return VerdictView(workflow, tool, url, evaluate_tool_call(self.tables, workflow, tool, url))

    def _rows(self) -> list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
        p = self.tables
        tiers = [(n, t["models"], t["timeout_ms"], t["clearance"], t["price"]) for n, t in p["tiers"].items()]
        tools = [
            (n, t["method"], t["host"], t["risk"], t["read_only"], t["idempotency_key"], t["identity"], t["compensate"])
            for n, t in p["tools"].items()
        ]
        workflows = [
            (n, w["mode"], w["turn_tier"], w["turn_risk"], w["tools"], w["outbound"], w["pii"]["classes"])
            for n, w in p["workflows"].items()
        ]
        matrix = []
        for wf in p["workflows"]:
            row: list[Any] = [wf]
            for tool in p["tools"]:
                v = evaluate_tool_call(p, wf, tool)
                row.append(v["decision"] if v["decision"] == "allow" else f"{v['decision']} ({v['rule']})")
            matrix.append(tuple(row))
        return [
            ("tiers", ("tier", "models", "timeout_ms", "clearance", "price"), tiers),
            (
                "tools",
                ("tool", "method", "host", "risk", "read_only", "idempotency_key", "identity", "compensate"),
                tools,
            ),
            ("workflows", ("workflow", "mode", "turn_tier", "turn_risk", "tools", "outbound", "pii"), workflows),
            ("decisions (workflow × tool)", ("workflow", *p["tools"]), matrix),
        ]

    def _head(self) -> str:
        p = self.tables
        return f"policy format {p['format']}, {p['compiler']}, spec hash {p['spec_hash']}"

    def _html(self) -> str:
        parts = [f"<p>{esc(self._head())}</p>"]
        parts += [table(headers, rows, title) for title, headers, rows in self._rows()]
        parts.append(details("policy/policy.json", pre(self.json)))
        return "<div class='agentspec-policy'>" + "".join(parts) + "</div>"

    def _text(self) -> str:
        return "\n\n".join([self._head(), *(text_table(h, r, t) for t, h, r in self._rows())])


# ───────────────────────────── generated files ─────────────────────────────


def _part(path: str) -> str:
    if path.startswith("src/runtime/"):
        return "runtime library"
    if path.startswith("policy/"):
        return "policy tables"
    if path.startswith(("src/", "test/")):
        return "glue"
    return "project"


class Files(Display, Mapping[str, str]):
    """The generated project, by relative path; the runtime library is listed but not shown inline."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def __getitem__(self, path: str) -> str:
        return self.files[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def rows(self) -> list[tuple[str, str, int, int, str]]:
        return [
            (
                path,
                _part(path),
                len(text.encode()),
                text.count("\n"),
                hashlib.sha256(text.encode()).hexdigest()[:12],
            )
            for path, text in self.files.items()
        ]

    def write(self, outdir: str | Path, force: bool = False) -> Path:
        from agentspec.emit import write

        write(self.files, str(outdir), force=force)
        return Path(outdir)

    _HEADERS = ("path", "part", "bytes", "lines", "sha256")

    def _html(self) -> str:
        shown = [details(p, pre(t)) for p, t in self.files.items() if _part(p) != "runtime library"]
        return table(self._HEADERS, self.rows(), f"{len(self.files)} files") + Raw("".join(shown))

    def _text(self) -> str:
        return text_table(self._HEADERS, self.rows(), f"{len(self.files)} files")


# ───────────────────────────── a checked spec ─────────────────────────────


@dataclass(frozen=True, eq=False)
class Checked(Display):
    """A loaded spec and its check result. Shows its diagnostics, or, when it checks, a summary of the agent."""

    loaded: Loaded
    result: CheckResult

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def path(self) -> str:
        return self.loaded.root

    @property
    def source(self) -> str:
        return self.loaded.sources.get(self.loaded.root, "")

    @cached_property
    def diagnostics(self) -> Diagnostics:
        return Diagnostics(self.result.diagnostics, self.loaded.sources)

    @property
    def spec(self) -> m.RSpec:
        """The resolved model; raises `SpecHasErrors` (with the diagnostics' summary) when there is none."""
        if self.result.spec is None:
            raise SpecHasErrors(f"`{self.path}` does not check: {self.diagnostics.summary}")
        return self.result.spec

    @cached_property
    def agent(self) -> AgentView:
        return AgentView(self.spec)

    @cached_property
    def policy(self) -> PolicyView:
        return PolicyView(self.spec)

    @cached_property
    def files(self) -> Files:
        from agentspec.emit import emit

        if self.spec.kind != "agent":
            raise SpecHasErrors(f"`{self.path}` is a library; compile the agent that imports it")
        return Files(emit(self.spec))

    def evaluate(self, workflow: str, tool: str, url: str | None = None) -> VerdictView:
        return self.policy.evaluate(workflow, tool, url)

    def compile(self, outdir: str | Path, force: bool = False) -> Path:
        """Write the generated project, atomically, as `agentspec compile` does."""
        return self.files.write(outdir, force=force)

    def _summary_rows(self) -> list[tuple[Any, ...]]:
        s = self.spec
        return [
            (w.name, w.mode, w.turn_tier, len(w.tools), len(w.outbound), len(w.steps), list(w.pii_classes))
            for w in s.workflows
        ]

    _SUMMARY = ("workflow", "policy", "turn tier", "tools", "hosts", "steps", "pii mask")

    def _headline(self) -> str:
        s = self.spec
        version = f" v{s.version}" if s.version is not None else ""
        return (
            f"{s.kind} `{s.name}`{version}: {len(s.workflows)} workflows, {len(s.tiers)} tiers, "
            f"{len(s.tools)} tools; spec hash {spec_hash(s)}"
        )

    def _text(self) -> str:
        if not self.ok:
            return self.diagnostics._text()
        parts = [self.diagnostics._text(), self._headline()]
        if self.spec.workflows:
            parts.append(text_table(self._SUMMARY, self._summary_rows()))
        return "\n\n".join(parts)

    def _html(self) -> str:
        if not self.ok:
            return self.diagnostics._html()
        parts = [self.diagnostics._html(), f"<p>{esc(self._headline())}</p>"]
        if self.spec.workflows:
            parts.append(table(self._SUMMARY, self._summary_rows()))
        return "<div class='agentspec-checked'>" + "".join(parts) + "</div>"
