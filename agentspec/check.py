"""Semantic checks: parsed spec files in, the resolved model (agentspec.model.RSpec) and every diagnostic out.

The checker never stops at the first problem. It resolves every reference, applies the
defaults documented in docs/language.md, and runs each guarantee of DESIGN.md as its own
pass with its own diagnostic code (agentspec/codes.py). The resolved model is returned
only when there is no error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urlsplit

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, did_you_mean, error, has_errors, warning
from agentspec.gcpause import paused
from agentspec.load import Loaded

# ───────────────────────────── defaults and platform facts ─────────────────────────────
# Cloudflare facts live in agentspec/platform.py so the compiler and the checker agree.
from agentspec.platform import (
    BUILTIN_PII,
    DEFAULT_AFFINITY_HEADER,
    DEFAULT_MAX_RESPONSE,
    DEFAULT_STEP_DELAY_MS,
    DEFAULT_TIER_TIMEOUT_MS,
    DEFAULT_TOOL_TIMEOUT_MS,
    DEFAULT_TTL_MS,
    INSTANCE_ID_MAX,
    INSTANCE_ID_SUFFIX,
    MAX_SLEEP_MS,
    STEP_RESULT_MAX,
)


@dataclass
class CheckResult:
    spec: m.RSpec | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def check(loaded: Loaded) -> CheckResult:
    """Check a loaded spec (a root file and its imports)."""
    if loaded.root_file is None:
        return CheckResult(None, list(loaded.diagnostics))
    checker = _Checker(loaded.root_file, [f for f in loaded.files if f.path != loaded.root])
    with paused():
        spec = checker.run()
    diagnostics = [*loaded.diagnostics, *checker.diagnostics]
    return CheckResult(spec if not has_errors(diagnostics) else None, diagnostics)


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_RISKS: tuple[m.RiskLevel, ...] = ("low", "medium", "high")


def _placeholders(text: str) -> list[str]:
    return _PLACEHOLDER.findall(text)


def _ms(value: float) -> str:
    """A millisecond figure as a reader would write it, for the arithmetic in warnings."""
    if not math.isfinite(value):
        return "unbounded"
    for unit, size in (("h", 3_600_000), ("m", 60_000)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    if value >= 1000 and value % 1000 == 0:
        return f"{value / 1000:g}s"
    if value >= 1000:
        return f"{value / 1000:.1f}s"
    return f"{value:g}ms"


class _Checker:
    def __init__(self, root: m.SpecFile, libraries: list[m.SpecFile]) -> None:
        self.root = root
        self.libraries = libraries
        self.diagnostics: list[Diagnostic] = []
        self.tiers: dict[str, m.Tier] = {}
        self.identities: dict[str, m.Identity] = {}
        self.tools: dict[str, m.Tool] = {}
        self.stores: dict[str, m.Store] = {}
        self.workflows: dict[str, m.Workflow] = {}
        self.r_tiers: dict[str, m.RTier] = {}
        self.r_tools: dict[str, m.RTool] = {}

    # reporting ---------------------------------------------------------------

    def err(self, code: str, span: m.Span, message: str, label: str = "", help: str | None = None) -> None:
        self.diagnostics.append(error(code, span, message, label, help))

    def undefined(self, kind: str, ref: m.Name, known: Iterable[str]) -> None:
        self.err(
            "E0102", ref.span, f"{kind} `{ref.value}` is not declared", "not declared", did_you_mean(ref.value, known)
        )

    # quantities --------------------------------------------------------------

    _EXAMPLES: ClassVar[dict[str, str]] = {
        "duration": "a duration such as `30s`",
        "percent": "a percentage such as `99.5%`",
        "money": "an amount of money such as `$0.02`",
        "size": "a size such as `512KiB`",
        "number": "a plain number such as `3`",
    }

    def quantity(self, q: m.Quantity, *kinds: str, what: str) -> float | None:
        if q.kind not in kinds:
            expected = " or ".join(self._EXAMPLES[k] for k in kinds)
            self.err(
                "E0601",
                q.span,
                f"{what} needs {expected}, found `{q.text}`",
                f"expected {kinds[0]}",
                help=self._unit_help(q, kinds[0]),
            )
            return None
        if not math.isfinite(q.value):
            text = q.text if len(q.text) <= 20 else q.text[:17] + "..."
            self.err("E0602", q.span, f"{what} `{text}` is too large", "out of range")
            return None
        return q.value

    def _unit_help(self, q: m.Quantity, kind: str) -> str | None:
        if q.kind == "number":
            suggestion = {
                "duration": f"{q.text}s",
                "percent": f"{q.text}%",
                "money": f"${q.text}",
                "size": f"{q.text}KiB",
            }.get(kind)
            if suggestion:
                return f"write the unit, for example `{suggestion}`"
        return None

    def duration(self, q: m.Quantity | None, what: str, default: int | None = None) -> int | None:
        if q is None:
            return default
        value = self.quantity(q, "duration", what=what)
        if value is None:
            return default
        if value <= 0:
            self.err("E0602", q.span, f"{what} must be longer than zero, found `{q.text}`", "not positive")
            return default
        if value != int(value):
            self.err(
                "E0603",
                q.span,
                f"{what} `{q.text}` is not a whole number of milliseconds",
                "fraction of a millisecond",
                help="Workflows take durations in whole milliseconds",
            )
            return default
        return int(value)

    def percent(self, q: m.Quantity | None, what: str) -> float | None:
        if q is None:
            return None
        value = self.quantity(q, "percent", what=what)
        if value is not None and not 0 <= value <= 100:
            self.err("E0602", q.span, f"{what} must be between 0% and 100%, found `{q.text}`", "out of range")
            return None
        return value

    def whole(self, q: m.Quantity, what: str, minimum: int, code: str = "E0602") -> int | None:
        value = self.quantity(q, "number", what=what)
        if value is None:
            return None
        if value != int(value) or value < minimum:
            self.err(
                code, q.span, f"{what} must be a whole number of at least {minimum}, found `{q.text}`", "out of range"
            )
            return None
        return int(value)

    # clauses -----------------------------------------------------------------

    def once(self, block: m.Block, kinds: Iterable[type[m.Node]], where: str) -> None:
        """E0006 for a clause given twice: the second would silently win."""
        for kind in kinds:
            found = block.clauses_of(kind)
            for extra in found[1:]:
                self.err(
                    "E0006",
                    extra.span,
                    f"{self._clause_name(kind)} given twice in {where}",
                    "given again here",
                    help="keep one of them",
                )

    @staticmethod
    def _clause_name(kind: type[m.Node]) -> str:
        names: dict[type[m.Node], str] = {
            m.Endpoint: "the endpoint",
            m.Risk: "`risk`",
            m.ReadOnly: "`read_only`",
            m.Idempotency: "`idempotency key`",
            m.Timeout: "`timeout`",
            m.Compensate: "`compensate`",
            m.RunAs: "`as`",
            m.Args: "`args`",
            m.Returns: "`returns`",
            m.Headers: "`headers`",
            m.MaxResponse: "`max response`",
            m.Primary: "`primary`",
            m.Fallback: "`fallback`",
            m.Price: "`price`",
            m.Clears: "`clears risk`",
            m.ToolsAllow: "`tools allow`",
            m.OutboundAllow: "`outbound allow`",
            m.Policy: "`policy`",
            m.Affinity: "`session affinity`",
            m.Checkpoint: "`checkpoint`",
            m.PiiMask: "`pii mask`",
            m.Slo: "`slo`",
            m.Retry: "`retry`",
            m.Backoff: "`backoff`",
            m.Latency: "`latency`",
            m.Ttft: "`ttft`",
            m.Success: "`success`",
            m.Cost: "`cost per task`",
            m.CacheHit: "`cache hit`",
            m.Denied: "`denied`",
            m.Tokens: "`tokens per task`",
            m.Webhook: "`webhook`",
        }
        return names.get(kind, kind.__name__.lower())

    # the passes --------------------------------------------------------------

    def run(self) -> m.RSpec | None:
        body = self.root.body
        items = [item for lib in self.libraries for item in lib.body.items] + list(body.items)
        self.declare(items)
        for tier in self.tiers.values():
            self.r_tiers[tier.name.value] = self.resolve_tier(tier)
        secrets_declared = self.declared_secrets(body)
        for tool in self.tools.values():
            resolved = self.resolve_tool(tool, secrets_declared)
            if resolved is not None:
                self.r_tools[tool.name.value] = resolved
        self.check_compensation()
        workflows = [self.resolve_workflow(w) for w in self.workflows.values()]
        if isinstance(body, m.Agent):
            return self.resolve_agent(body, [w for w in workflows if w is not None])
        return m.RSpec(
            kind="library",
            name=body.name.value,
            version=None,
            owner=None,
            tokens_secret=None,
            admin_secret=None,
            tenant_header=None,
            stores=(),
            tiers=tuple(self.r_tiers.values()),
            identities=self.r_identities(),
            tools=tuple(self.r_tools.values()),
            workflows=(),
            files=self.files(),
        )

    def files(self) -> tuple[str, ...]:
        return (self.root.path, *(f.path for f in self.libraries))

    def r_identities(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple((i.name.value, tuple(s.value for s in i.secrets)) for i in self.identities.values())

    def declare(self, items: Sequence[m.Node]) -> None:
        tables: dict[type, tuple[dict, str]] = {
            m.Tier: (self.tiers, "model tier"),
            m.Identity: (self.identities, "identity"),
            m.Tool: (self.tools, "tool"),
            m.Store: (self.stores, "store"),
            m.Workflow: (self.workflows, "workflow"),
        }
        for item in items:
            if type(item) not in tables:
                continue
            table, kind = tables[type(item)]
            name: m.Name = item.name  # type: ignore[attr-defined]
            if name.value in table:
                first = table[name.value].name.span
                self.diagnostics.append(
                    error(
                        "E0101",
                        name.span,
                        f"{kind} `{name.value}` is declared twice",
                        "declared again here",
                        help="rename one of them or remove the duplicate",
                    ).model_copy(update={"notes": (f"first declared at {first}",)})
                )
                continue
            table[name.value] = item

    def declared_secrets(self, body: m.Agent | m.Library) -> set[str]:
        secrets = {s.value for i in self.identities.values() for s in i.secrets}
        if isinstance(body, m.Agent):
            for auth in body.of(m.Auth):
                secrets.add(auth.tokens_secret.value)
                if auth.admin_secret:
                    secrets.add(auth.admin_secret.value)
        return secrets

    # tiers -------------------------------------------------------------------

    def resolve_tier(self, tier: m.Tier) -> m.RTier:
        where = f"model tier `{tier.name.value}`"
        self.once(tier, (m.Primary, m.Fallback, m.Price, m.Timeout, m.Clears), where)
        primary = tier.first(m.Primary)
        if primary is None:
            self.err(
                "E0007",
                tier.name.span,
                f"{where} has no `primary` model",
                "no primary model",
                help='add `primary "@cf/zai-org/glm-4.7-flash"` (or the model it should use)',
            )
        fallback = tier.first(m.Fallback)
        models = ([primary.model.value] if primary else []) + [s.value for s in (fallback.models if fallback else ())]
        seen: set[str] = set()
        for model_str in ([primary.model] if primary else []) + list(fallback.models if fallback else ()):
            if model_str.value in seen:
                self.err(
                    "E0101",
                    model_str.span,
                    f"model `{model_str.value}` appears twice in {where}",
                    "already in the chain",
                    help="a fallback chain tries each model once",
                )
            seen.add(model_str.value)
            if not model_str.value.strip():
                self.err("E0602", model_str.span, "a model name cannot be empty", "empty")
        price = tier.first(m.Price)
        price_in = price_out = None
        if price:
            price_in = self.quantity(price.input, "number", "money", what="an input price")
            price_out = self.quantity(price.output, "number", "money", what="an output price")
            for q, value in ((price.input, price_in), (price.output, price_out)):
                if value is not None and value < 0:
                    self.err("E0602", q.span, f"a price cannot be negative, found `{q.text}`", "negative")
        timeout = tier.first(m.Timeout)
        clears = tier.first(m.Clears)
        return m.RTier(
            name=tier.name.value,
            models=tuple(models),
            timeout_ms=self.duration(timeout.duration if timeout else None, "a model timeout", DEFAULT_TIER_TIMEOUT_MS)
            or DEFAULT_TIER_TIMEOUT_MS,
            clearance=clears.risk.value if clears else "low",
            price_in=price_in,
            price_out=price_out,
        )

    # tools -------------------------------------------------------------------

    def resolve_tool(self, tool: m.Tool, secrets_declared: set[str]) -> m.RTool | None:
        name = tool.name.value
        where = f"tool `{name}`"
        self.once(
            tool,
            (
                m.Endpoint,
                m.Risk,
                m.ReadOnly,
                m.Idempotency,
                m.Timeout,
                m.Compensate,
                m.RunAs,
                m.Args,
                m.Returns,
                m.Headers,
                m.MaxResponse,
            ),
            where,
        )
        endpoint = tool.first(m.Endpoint)
        risk = tool.first(m.Risk)
        if endpoint is None:
            self.err(
                "E0007",
                tool.name.span,
                f"{where} has no endpoint",
                "no endpoint",
                help='add the method and URL it calls, for example `GET "https://api.example.com/v1/items"`',
            )
        if risk is None:
            self.err(
                "E0007",
                tool.name.span,
                f"{where} has no `risk` level",
                "no risk level",
                help="add `risk low`, `risk medium` or `risk high`",
            )
        args = tool.first(m.Args)
        arg_fields = args.fields if args else ()
        arg_names = self.fields(arg_fields, f"the arguments of {where}")
        returns = tool.first(m.Returns)
        if returns:
            self.fields(returns.fields, f"the result of {where}")

        host = ""
        if endpoint:
            host = self.check_url(endpoint.url, "a tool URL", arg_names, where)

        read_only = tool.first(m.ReadOnly)
        idem = tool.first(m.Idempotency)
        compensate = tool.first(m.Compensate)
        if read_only and idem:
            self.err(
                "E0204",
                idem.span,
                f"{where} is `read_only` but declares an idempotency key",
                "meaningless for a read-only tool",
                help="drop `read_only` or the key",
            )
        if read_only and compensate:
            self.err(
                "E0204",
                compensate.span,
                f"{where} is `read_only` but declares a compensating tool",
                "nothing to compensate",
                help="drop `read_only` or `compensate`",
            )
        if idem:
            for placeholder in _placeholders(idem.key.value):
                if placeholder in ("session", "workflow"):
                    continue
                if placeholder.startswith("args.") and placeholder[5:] in arg_names:
                    continue
                # Suggest by the argument's own name: `args.` shared by every candidate makes any two
                # look alike (`args.order_id` is no misspelling of `args.body`).
                close = did_you_mean(placeholder.removeprefix("args."), arg_names)
                self.err(
                    "E0604",
                    idem.key.span,
                    f"idempotency key of {where} uses unknown `{{{placeholder}}}`",
                    "unknown placeholder",
                    help=close.replace("`", "`args.", 1)
                    if close and placeholder.startswith("args.")
                    else "use `{session}`, `{workflow}` or `{args.NAME}` with NAME one of its `args`",
                )
            if not _placeholders(idem.key.value):
                self.err(
                    "E0604",
                    idem.key.span,
                    f"idempotency key of {where} is the same for every call",
                    "constant key",
                    help=f"include `{{session}}` and an argument: {_example_key(tool)}",
                )
        if compensate and compensate.tool.value not in self.tools:
            self.undefined("tool", compensate.tool, self.tools)

        run_as = tool.first(m.RunAs)
        identity: m.Identity | None = None
        if run_as:
            identity = self.identities.get(run_as.identity.value)
            if identity is None:
                self.undefined("identity", run_as.identity, self.identities)
        headers = tool.first(m.Headers)
        secrets_read: list[str] = []
        for header in headers.headers if headers else ():
            self.header_name(header.name)
            for placeholder in _placeholders(header.value.value):
                if not placeholder.startswith("secret."):
                    self.err(
                        "E0604",
                        header.value.span,
                        f"header `{header.name.value}` of {where} uses `{{{placeholder}}}`",
                        "unknown placeholder",
                        help="headers may only read secrets, as `{secret.NAME}`",
                    )
                    continue
                secret = placeholder[len("secret.") :]
                if secret not in secrets_declared:
                    self.err(
                        "E0103",
                        header.value.span,
                        f"secret `{secret}` is not declared",
                        "not declared",
                        help=did_you_mean(secret, secrets_declared)
                        or f"hold it in an identity: `identity NAME {{ secrets [{secret}] }}`",
                    )
                    continue
                held = {s.value for s in identity.secrets} if identity else set()
                if secret not in held:
                    holders = [i.name.value for i in self.identities.values() if secret in {x.value for x in i.secrets}]
                    self.err(
                        "E0305",
                        header.value.span,
                        f"{where} reads secret `{secret}` but its identity `{identity.name.value}` does not hold it"
                        if identity
                        else f"{where} reads secret `{secret}` but runs as no identity",
                        "secret not held",
                        help=f"run it `as {holders[0]}`, which holds `{secret}`"
                        if holders
                        else f"run the tool `as` an identity that holds `{secret}`",
                    )
                    continue
                secrets_read.append(secret)
        timeout = tool.first(m.Timeout)
        max_response = tool.first(m.MaxResponse)
        max_bytes = DEFAULT_MAX_RESPONSE
        if max_response:
            value = self.quantity(max_response.size, "size", what="a response size limit")
            if value is not None:
                max_bytes = int(value)
                if value <= 0:
                    self.err(
                        "E0602", max_response.size.span, "a response size limit must be above zero", "not positive"
                    )
        if endpoint is None or risk is None:
            return None
        return m.RTool(
            name=name,
            method=endpoint.method.value,
            url=endpoint.url.value,
            host=host,
            risk=risk.level.value,
            read_only=read_only is not None,
            idempotency_key=idem.key.value if idem else None,
            timeout_ms=self.duration(timeout.duration if timeout else None, "a tool timeout", DEFAULT_TOOL_TIMEOUT_MS)
            or DEFAULT_TOOL_TIMEOUT_MS,
            identity=run_as.identity.value if run_as else None,
            secrets=tuple(sorted(set(secrets_read))),
            headers=tuple((h.name.value.lower(), h.value.value) for h in (headers.headers if headers else ())),
            compensate=compensate.tool.value if compensate else None,
            args=tuple(m.RField(name=f.name.value, type=f.type.value, optional=f.optional) for f in arg_fields),
            returns=tuple(m.RField(name=f.name.value, type=f.type.value, optional=f.optional) for f in returns.fields)
            if returns
            else None,
            max_response_bytes=max_bytes,
        )

    def header_name(self, name: m.Str) -> None:
        # Letters, digits and dashes: every header name in practice, and safe to quote in the generated docs'
        # shell examples (HTTP would also allow `!#$%&'*+.^_|~` and backticks).
        if not re.fullmatch(r"[A-Za-z0-9-]+", name.value):
            self.err(
                "E0604",
                name.span,
                f"`{name.value}` is not an HTTP header name",
                "not a header name",
                help="header names are letters, digits and `-`, such as `x-session-affinity`",
            )

    def fields(self, fields: tuple[m.Field, ...], where: str) -> set[str]:
        names: set[str] = set()
        for f in fields:
            if f.name.value in names:
                self.err(
                    "E0101", f.name.span, f"field `{f.name.value}` is declared twice in {where}", "declared again here"
                )
            names.add(f.name.value)
        return names

    def check_url(self, url: m.Str, what: str, arg_names: set[str] | None, where: str) -> str:
        """Validate an absolute http(s) URL template; return its host (lowercase, with any port)."""
        text = url.value
        try:
            parts = urlsplit(_PLACEHOLDER.sub("x", text))
            port = parts.port
        except ValueError:
            parts, port = None, None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            self.err(
                "E0604",
                url.span,
                f"{what} must be an absolute http or https URL, found `{text}`",
                "not an absolute URL",
                help='write it as `"https://host.example.com/path"`',
            )
            return ""
        if parts.username or parts.password:
            self.err(
                "E0604",
                url.span,
                f"{what} must not carry credentials",
                "credentials in the URL",
                help="send credentials in a header that reads a secret",
            )
        authority = urlsplit(text).netloc
        if "{" in authority:
            self.err(
                "E0604",
                url.span,
                f"the host of {what} cannot be a placeholder",
                "placeholder in the host",
                help="a fixed host is what the outbound allowlist can check",
            )
        if arg_names is not None:
            for placeholder in _placeholders(text):
                if placeholder not in arg_names:
                    self.err(
                        "E0604",
                        url.span,
                        f"the URL of {where} uses `{{{placeholder}}}`, which is not among its `args`",
                        "undeclared placeholder",
                        help=did_you_mean(placeholder, arg_names) or f"declare it: `args {{ {placeholder}: string }}`",
                    )
        host = parts.hostname.lower()
        return f"{host}:{port}" if port else host

    def check_compensation(self) -> None:
        cycles: set[frozenset[str]] = set()
        for name, tool in self.tools.items():
            compensate = tool.first(m.Compensate)
            if compensate is None or compensate.tool.value not in self.tools:
                continue
            target = self.tools[compensate.tool.value]
            if target.first(m.Idempotency) is None:
                # Reported here, and not again as E0201 when a workflow reaches the tool.
                self.__dict__.setdefault("_reported_idempotency", set()).add(target.name.value)
                self.err(
                    "E0202",
                    compensate.tool.span,
                    f"compensating tool `{target.name.value}` has no idempotency key",
                    "not idempotent",
                    help=f"a rollback can be retried: give it {_example_key(target)}",
                )
            # Follow the chain; a cycle is reported once, at the tool where it closes.
            chain = [name]
            current = target
            while True:
                if current.name.value in chain:
                    if current.name.value == name and frozenset(chain) not in cycles:
                        cycles.add(frozenset(chain))
                        self.err(
                            "E0203",
                            compensate.span,
                            f"compensation cycle: {' -> '.join([*chain, name])}",
                            "closes a cycle",
                            help="a compensating tool must not, through others, compensate itself",
                        )
                    break
                chain.append(current.name.value)
                nxt = current.first(m.Compensate)
                if nxt is None or nxt.tool.value not in self.tools:
                    break
                current = self.tools[nxt.tool.value]

    # workflows ---------------------------------------------------------------

    def resolve_workflow(self, wf: m.Workflow) -> m.RWorkflow | None:
        name = wf.name.value
        where = f"workflow `{name}`"
        self.once(wf, (m.ToolsAllow, m.OutboundAllow, m.Policy, m.Affinity, m.Checkpoint, m.PiiMask, m.Slo), where)
        # Platform: instance ids are `<workflow>-<uuid>`, at most 64 characters.
        if len(name) + INSTANCE_ID_SUFFIX > INSTANCE_ID_MAX:
            self.err(
                "E0603",
                wf.name.span,
                f"workflow name `{name}` is {len(name)} characters; its instance ids would exceed "
                f"Cloudflare's {INSTANCE_ID_MAX}",
                "name too long",
                help=f"use at most {INSTANCE_ID_MAX - INSTANCE_ID_SUFFIX} characters",
            )

        # tool allowlist
        allow = wf.first(m.ToolsAllow)
        allowed: list[str] = []
        allow_refs: dict[str, m.Name] = {}
        for ref in allow.tools if allow else ():
            if ref.value not in self.tools:
                self.undefined("tool", ref, self.tools)
                continue
            if ref.value in allow_refs:
                self.err("E0101", ref.span, f"tool `{ref.value}` is listed twice", "listed again")
                continue
            allow_refs[ref.value] = ref
            allowed.append(ref.value)

        # outbound allowlist
        outbound = wf.first(m.OutboundAllow)
        hosts: list[str] = []
        for host in outbound.hosts if outbound else ():
            value = host.value.strip().lower()
            if "/" in value or not re.fullmatch(r"[a-z0-9.-]+(:[0-9]{1,5})?|\[[0-9a-f:]+\](:[0-9]{1,5})?", value):
                self.err(
                    "E0604",
                    host.span,
                    f"`{host.value}` is not a host name",
                    "not a host",
                    help='list host names such as `"billing.example.com"`, without scheme or path',
                )
                continue
            hosts.append(value)

        # policy mode
        policy = wf.first(m.Policy)
        mode = policy.mode.value if policy else "enforce"

        # routes and the turn's tier
        routes: dict[str, str] = {}
        route_nodes: dict[str, m.Route] = {}
        for route in wf.clauses_of(m.Route):
            if route.risk.value in routes:
                self.err(
                    "E0006",
                    route.span,
                    f"risk `{route.risk.value}` is routed twice in {where}",
                    "routed again here",
                    help="keep one route per risk level",
                )
                continue
            if route.tier.value not in self.tiers:
                self.undefined("model tier", route.tier, self.tiers)
                continue
            routes[route.risk.value] = route.tier.value
            route_nodes[route.risk.value] = route
        reachable = self.reachable_tools(wf, allowed)
        risks = [self.r_tools[t].risk for t in allowed if t in self.r_tools]
        turn_risk: m.RiskLevel = max(risks, key=m.RISK_ORDER.__getitem__) if risks else "low"
        turn_tier = self.route_for(turn_risk, routes)
        if turn_tier is None and self.tiers:
            self.err(
                "E0007",
                wf.name.span,
                f"{where} has no model tier to run turns on",
                "no tier",
                help="declare a `model tier` and route to it: `route risk low -> tier NAME`",
            )
        elif turn_tier in self.r_tiers:
            clearance = self.r_tiers[turn_tier].clearance
            if m.RISK_ORDER[clearance] < m.RISK_ORDER[turn_risk]:
                riskiest = next(t for t in allowed if t in self.r_tools and self.r_tools[t].risk == turn_risk)
                span = route_nodes[turn_risk].span if turn_risk in route_nodes else allow_refs[riskiest].span
                self.err(
                    "E0303",
                    span,
                    f"tool `{riskiest}` has risk `{turn_risk}` but {where} runs its turns on tier "
                    f"`{turn_tier}`, cleared for `{clearance}`",
                    "tier not cleared",
                    help=f"route `risk {turn_risk}` to a tier that `clears risk {turn_risk}`, or add "
                    f"`clears risk {turn_risk}` to tier `{turn_tier}`",
                )
        if mode == "shadow" and policy is not None:
            high = [t for t in reachable if t in self.r_tools and self.r_tools[t].risk == "high"]
            if high:
                self.err(
                    "E0304",
                    policy.span,
                    f"{where} can reach high-risk tool `{high[0]}` in shadow mode",
                    "blocks nothing",
                    help="run it with `policy enforce`",
                )

        # steps
        steps = self.resolve_steps(wf, allowed, allow_refs)

        # idempotency and outbound, over everything the workflow can reach
        for tool_name in reachable:
            tool = self.r_tools.get(tool_name)
            if tool is None:
                continue
            if not tool.read_only and tool.idempotency_key is None:
                self.report_not_idempotent(tool_name, where)
            if tool.host and tool.host not in hosts and tool.host.split(":")[0] not in hosts:
                allowed_by = allow_refs.get(tool_name)
                span = allowed_by.span if allowed_by else (outbound.span if outbound else wf.name.span)
                self.err(
                    "E0301",
                    span,
                    f"tool `{tool_name}` calls `{tool.host}`, which is not in the outbound allowlist of {where}",
                    "host not allowed",
                    help=f'add `"{tool.host}"` to `outbound allow`, or remove the tool',
                )

        # sessions, checkpoints, PII
        affinity = wf.first(m.Affinity)
        if affinity:
            self.header_name(affinity.header)
        ttl = self.duration(affinity.ttl if affinity else None, "a session ttl", DEFAULT_TTL_MS) or DEFAULT_TTL_MS
        checkpoint = wf.first(m.Checkpoint)
        every = tier_name = store = None
        if checkpoint:
            every = self.whole(checkpoint.every, "checkpoint cadence", 1, code="E0401")
            if checkpoint.tier.value not in self.tiers:
                self.undefined("model tier", checkpoint.tier, self.tiers)
            else:
                tier_name = checkpoint.tier.value
            store = self.checkpoint_store(checkpoint, where)
        pii_classes, pii_patterns = self.resolve_pii(wf, where)

        slo = self.resolve_slo(wf, where, steps, turn_tier, hosts)
        if turn_tier is None:
            return None
        return m.RWorkflow(
            name=name,
            klass=wf.klass.value,
            mode=mode,
            routes=tuple((r, routes[r]) for r in _RISKS if r in routes),
            turn_risk=turn_risk,
            turn_tier=turn_tier,
            tools=tuple(allowed),
            outbound=tuple(hosts),
            affinity_header=(affinity.header.value.lower() if affinity else DEFAULT_AFFINITY_HEADER),
            ttl_ms=ttl,
            checkpoint_every=every,
            checkpoint_tier=tier_name,
            checkpoint_store=store,
            pii_classes=pii_classes,
            pii_patterns=pii_patterns,
            steps=tuple(steps),
            slo=slo,
        )

    def route_for(self, risk: str, routes: dict[str, str]) -> str | None:
        """The tier a risk level routes to: its own route, else the nearest lower one, else the first tier."""
        for level in reversed(_RISKS[: _RISKS.index(risk) + 1]):
            if level in routes:
                return routes[level]
        # Unrouted: the first tier the agent itself declares, so an imported library's tier never
        # becomes the default by accident; a library checked alone falls back to its own first tier.
        own = [i.name.value for i in self.root.body.items if isinstance(i, m.Tier) and i.name.value in self.tiers]
        return own[0] if own else next(iter(self.tiers), None)

    def reachable_tools(self, wf: m.Workflow, allowed: list[str]) -> list[str]:
        """Allowed tools, tools that steps call, and everything their compensations reach."""
        out: list[str] = []
        todo = list(allowed) + [s.action.tool.value for s in wf.clauses_of(m.Step) if isinstance(s.action, m.Call)]
        while todo:
            name = todo.pop(0)
            if name in out or name not in self.tools:
                continue
            out.append(name)
            compensate = self.tools[name].first(m.Compensate)
            if compensate:
                todo.append(compensate.tool.value)
        return out

    _reported_idempotency: set[str]

    def report_not_idempotent(self, tool_name: str, where: str) -> None:
        reported = self.__dict__.setdefault("_reported_idempotency", set())
        if tool_name in reported:
            return
        reported.add(tool_name)
        tool = self.tools[tool_name]
        self.err(
            "E0201",
            tool.name.span,
            f"tool `{tool_name}` changes state and is reachable from {where}, but has no idempotency key",
            "retries would repeat its side effect",
            help=f"add {_example_key(tool)}, built from an argument that identifies the change, "
            "or mark it `read_only` if it changes nothing",
        )

    def checkpoint_store(self, checkpoint: m.Checkpoint, where: str) -> str | None:
        kv = [s for s in self.stores.values() if s.kind.value == "kv"]
        if checkpoint.store is not None:
            store = self.stores.get(checkpoint.store.value)
            if store is None:
                self.undefined("store", checkpoint.store, self.stores)
                return None
            if store.kind.value != "kv":
                self.err(
                    "E0403",
                    checkpoint.store.span,
                    f"store `{store.name.value}` is an R2 bucket, but checkpoint summaries go to a KV namespace",
                    "not a KV store",
                    help=did_you_mean(checkpoint.store.value, [s.name.value for s in kv])
                    or "declare `store kv summaries` and checkpoint `into summaries`",
                )
                return None
            return store.name.value
        if len(kv) == 1:
            return kv[0].name.value
        if not kv:
            self.err(
                "E0403",
                checkpoint.span,
                f"{where} checkpoints, but the agent declares no KV store",
                "no KV store",
                help="declare one: `store kv summaries`",
            )
        else:
            self.err(
                "E0403",
                checkpoint.span,
                f"{where} checkpoints, but which of {len(kv)} KV stores?",
                "store not named",
                help=f"name it: `... into {kv[0].name.value}`",
            )
        return None

    def resolve_pii(self, wf: m.Workflow, where: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
        patterns: dict[str, str] = {}
        invalid: set[str] = set()
        for pattern in wf.clauses_of(m.PiiPattern):
            if pattern.name.value in patterns or pattern.name.value in BUILTIN_PII:
                self.err(
                    "E0101",
                    pattern.name.span,
                    f"PII detector `{pattern.name.value}` is declared twice",
                    "declared again here" if pattern.name.value in patterns else "a built-in class",
                )
                continue
            problem = _regex_problem(pattern.regex.value)
            if problem:
                invalid.add(pattern.name.value)
                self.err(
                    "E0405",
                    pattern.regex.span,
                    f"PII pattern `{pattern.name.value}` {problem}",
                    "invalid pattern",
                    help="use a regular expression both Python and JavaScript accept",
                )
                continue
            patterns[pattern.name.value] = pattern.regex.value
        mask = wf.first(m.PiiMask)
        if mask is None or not mask.classes:
            self.err(
                "E0402",
                (mask or wf).span if mask else wf.name.span,
                f"{where} persists conversation state without PII masking",
                "nothing masked",
                help="add `pii mask [email, phone, card] before persist`",
            )
            return (), tuple(patterns.items())
        classes: list[str] = []
        known = [*BUILTIN_PII, *patterns]
        for cls in mask.classes:
            if cls.value in invalid:
                continue  # its pattern is reported as E0405 already
            if cls.value not in known:
                self.err(
                    "E0404",
                    cls.span,
                    f"unknown PII class `{cls.value}`",
                    "unknown class",
                    help=did_you_mean(cls.value, known)
                    or f"built-in classes are {', '.join(f'`{c}`' for c in BUILTIN_PII)}",
                )
                continue
            if cls.value not in classes:
                classes.append(cls.value)
        return tuple(classes), tuple(patterns.items())

    # steps -------------------------------------------------------------------

    def resolve_steps(self, wf: m.Workflow, allowed: list[str], allow_refs: dict[str, m.Name]) -> list[m.RStep]:
        out: list[m.RStep] = []
        earlier: dict[str, set[str] | None] = {}  # step name -> fields its result has (None: unknown)
        for step in wf.clauses_of(m.Step):
            name = step.name.value
            where = f"step `{name}`"
            self.once(step, (m.Retry, m.Backoff, m.Timeout), where)
            if name in earlier or name == "params":
                self.err(
                    "E0101",
                    step.name.span,
                    f"step `{name}` is declared twice"
                    if name != "params"
                    else "`params` names the task's parameters and cannot be a step",
                    "declared again here",
                )
                continue
            if len(name) > 256:
                self.err("E0603", step.name.span, "a step name is limited to 256 characters", "too long")
            retry = step.first(m.Retry)
            retries = self.whole(retry.count, "a retry count", 0) if retry else 0
            backoff = step.first(m.Backoff)
            delay = self.duration(backoff.delay if backoff else None, "a backoff delay", DEFAULT_STEP_DELAY_MS)
            timeout_clause = step.first(m.Timeout)
            action = step.action
            self.unusable_options(step, action, where)
            kind: str
            fields: set[str] | None = None
            extra: dict = {}
            default_timeout = DEFAULT_TOOL_TIMEOUT_MS
            if isinstance(action, m.Call):
                kind = "call"
                tool_name = action.tool.value
                tool = self.r_tools.get(tool_name)
                if tool_name not in self.tools:
                    self.undefined("tool", action.tool, self.tools)
                elif tool_name not in allow_refs:
                    self.err(
                        "E0302",
                        action.tool.span,
                        f"{where} calls tool `{tool_name}`, which is not in the "
                        f"tool allowlist of workflow `{wf.name.value}`",
                        "not allowed",
                        help=f"add `{tool_name}` to `tools allow`",
                    )
                if tool is not None:
                    default_timeout = tool.timeout_ms
                    fields = {f.name for f in tool.returns} if tool.returns is not None else None
                    if tool.max_response_bytes > STEP_RESULT_MAX:
                        decl = self.tools[tool_name].first(m.MaxResponse)
                        self.err(
                            "E0603",
                            action.tool.span,
                            f"{where} returns the result of `{tool_name}`, up to `{decl.size.text if decl else '?'}`, "
                            "above the 1 MiB limit of a Workflow step result",
                            "result too large",
                            help=f"lower `max response` of `{tool_name}` to `1MiB` or less",
                        )
                args = None
                if action.args is not None:
                    args = []
                    seen: set[str] = set()
                    for arg in action.args:
                        if arg.name.value in seen:
                            self.err(
                                "E0101", arg.name.span, f"argument `{arg.name.value}` is given twice", "given again"
                            )
                        seen.add(arg.name.value)
                        if tool is not None and arg.name.value not in {f.name for f in tool.args}:
                            self.err(
                                "E0604",
                                arg.name.span,
                                f"tool `{tool_name}` has no argument `{arg.name.value}`",
                                "unknown argument",
                                help=did_you_mean(arg.name.value, [f.name for f in tool.args]),
                            )
                        self.check_template(arg.template, earlier, where)
                        args.append((arg.name.value, arg.template.value))
                    if tool is not None:
                        missing = [f.name for f in tool.args if not f.optional and f.name not in seen]
                        if missing:
                            self.err(
                                "E0604",
                                action.span,
                                f"{where} does not give `{missing[0]}`, which tool `{tool_name}` requires",
                                "missing argument",
                                help=f'add `{missing[0]}: "{{params.{missing[0]}}}"`',
                            )
                extra = {"tool": tool_name, "args": tuple(args) if args is not None else None}
            elif isinstance(action, m.Infer):
                kind = "infer"
                if action.tier.value not in self.tiers:
                    self.undefined("model tier", action.tier, self.tiers)
                else:
                    tier = self.r_tiers[action.tier.value]
                    default_timeout = tier.timeout_ms * max(1, len(tier.models))
                self.check_template(action.prompt, earlier, where)
                fields = {"text"}
                extra = {"tier": action.tier.value, "prompt": action.prompt.value}
            elif isinstance(action, m.Sleep):
                kind = "sleep"
                duration = self.duration(action.duration, "a sleep")
                if duration is not None and duration > MAX_SLEEP_MS:
                    self.err(
                        "E0603",
                        action.duration.span,
                        f"{where} sleeps longer than the 365 days a Workflow may sleep",
                        "too long",
                    )
                extra = {"duration_ms": duration}
                fields = set()
            else:
                assert isinstance(action, m.WaitEvent)
                kind = "wait"
                event = action.event.value
                if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", event):
                    self.err(
                        "E0603",
                        action.event.span,
                        f"event type `{event}` is not one Workflows accept",
                        "bad event type",
                        help="use letters, digits, `_`, `-` and `.`, at most 100",
                    )
                extra = {"event": event}
                default_timeout = 24 * 3_600_000
            timeout = (
                self.duration(timeout_clause.duration if timeout_clause else None, "a step timeout", default_timeout)
                or default_timeout
            )
            earlier[name] = fields
            out.append(
                m.RStep(
                    name=name,
                    kind=kind,
                    retries=retries or 0,
                    backoff=(backoff.strategy.value if backoff else "exponential"),
                    delay_ms=delay or DEFAULT_STEP_DELAY_MS,
                    timeout_ms=timeout,
                    **extra,
                )
            )
        return out

    def unusable_options(self, step: m.Step, action: m.Node, where: str) -> None:
        """A sleep is neither retried nor timed out, and a wait is not retried (its `timeout` is how long it
        waits): an option written there would be dropped without a word."""
        if isinstance(action, m.Sleep):
            unusable: tuple[type[m.Node], ...] = (m.Retry, m.Backoff, m.Timeout)
            what = "a `sleep` step"
        elif isinstance(action, m.WaitEvent):
            unusable, what = (m.Retry, m.Backoff), "a `wait event` step"
        else:
            return
        for option in step.clauses:
            if isinstance(option, unusable):
                word = {m.Retry: "retry", m.Backoff: "backoff", m.Timeout: "timeout"}[type(option)]
                self.err(
                    "E0008",
                    option.span,
                    f"{where} is {what}, which has no use for `{word}`",
                    "would be ignored",
                    help="remove it"
                    + (" (a wait's `timeout` is how long it waits)" if isinstance(action, m.WaitEvent) else ""),
                )

    def check_template(self, template: m.Str, earlier: dict[str, set[str] | None], where: str) -> None:
        for placeholder in _placeholders(template.value):
            head, _, rest = placeholder.partition(".")
            if head == "params" and rest:
                continue
            if head in earlier and rest:
                fields = earlier[head]
                if fields is None or rest.split(".")[0] in fields:
                    continue
                self.err(
                    "E0604",
                    template.span,
                    f"{where} uses `{{{placeholder}}}`, but step `{head}` returns no `{rest}`",
                    "unknown field",
                    help=did_you_mean(rest, fields)
                    or f"step `{head}` returns {', '.join(f'`{f}`' for f in sorted(fields)) or 'nothing'}",
                )
                continue
            known = ["params.NAME", *(f"{s}.FIELD" for s in earlier)]
            self.err(
                "E0604",
                template.span,
                f"{where} uses `{{{placeholder}}}`, which names no parameter or earlier step",
                "unknown placeholder",
                help=did_you_mean(head, list(earlier)) or f"use one of {', '.join(f'`{{{k}}}`' for k in known)}",
            )

    # service levels ----------------------------------------------------------

    def resolve_slo(
        self, wf: m.Workflow, where: str, steps: list[m.RStep], turn_tier: str | None, hosts: list[str]
    ) -> m.RSlo:
        slo = wf.first(m.Slo)
        if slo is None:
            return m.RSlo()
        self.once(
            slo,
            (m.Latency, m.Ttft, m.Success, m.Cost, m.CacheHit, m.Denied, m.Tokens, m.Webhook),
            f"the `slo` of {where}",
        )
        values: dict = {}
        # An SLO bounds latency, cost and denials from above and success and cache hits from below;
        # the feasibility arithmetic relies on it.
        for clause, upper in (
            (slo.first(m.Latency), True),
            (slo.first(m.Ttft), True),
            (slo.first(m.Cost), True),
            (slo.first(m.Denied), True),
            (slo.first(m.Success), False),
            (slo.first(m.CacheHit), False),
        ):
            if clause is None:
                continue
            if (clause.comparator.value in ("<", "<=")) != upper:
                right = "`<` or `<=`" if upper else "`>` or `>=`"
                self.err(
                    "E0602",
                    clause.comparator.span,
                    f"this bound points the wrong way: use {right}",
                    "wrong direction",
                    help="latency, ttft, cost and denied are ceilings; success and cache hit are floors",
                )
        latency = slo.first(m.Latency)
        if latency:
            values["latency_percentile"] = self.percentile(latency.percentile)
            values["latency_ms"] = self.duration(latency.bound, "a latency bound")
        ttft = slo.first(m.Ttft)
        if ttft:
            values["ttft_percentile"] = self.percentile(ttft.percentile)
            values["ttft_ms"] = self.duration(ttft.bound, "a time-to-first-token bound")
        success = slo.first(m.Success)
        if success:
            values["success_pct"] = self.percent(success.bound, "a success rate")
        denied = slo.first(m.Denied)
        if denied:
            values["denied_pct"] = self.percent(denied.bound, "a denied ratio")
        cache = slo.first(m.CacheHit)
        if cache:
            values["cache_hit_pct"] = self.percent(cache.bound, "a cache-hit rate")
            values["cache_drop_pct"] = self.percent(cache.alert_drop, "an alert threshold")
        cost = slo.first(m.Cost)
        if cost:
            value = self.quantity(cost.bound, "money", what="a cost bound")
            if value is not None and value <= 0:
                self.err("E0602", cost.bound.span, "a cost bound must be above zero", "not positive")
            values["cost_usd"] = value
        tokens = slo.first(m.Tokens)
        if tokens:
            values["tokens_in"] = self.whole(tokens.input, "an input token count", 0)
            values["tokens_out"] = self.whole(tokens.output, "an output token count", 0)
        webhook = slo.first(m.Webhook)
        if webhook:
            host = self.check_url(webhook.url, "an alert webhook", None, where)
            if host and host not in hosts and host.split(":")[0] not in hosts:
                self.err(
                    "E0301",
                    webhook.url.span,
                    f"alert webhook host `{host}` is not in the outbound allowlist of {where}",
                    "host not allowed",
                    help=f'add `"{host}"` to `outbound allow`',
                )
            values["webhook"] = webhook.url.value
        resolved = m.RSlo(**{k: v for k, v in values.items() if v is not None})
        self.feasibility(wf, where, steps, turn_tier, resolved, slo)
        return resolved

    def percentile(self, word: m.Word) -> str | None:
        value = float(word.value[1:])
        if not 0 < value < 100:
            self.err("E0602", word.span, f"percentile `{word.value}` must be between p0 and p100", "out of range")
            return None
        return word.value

    def feasibility(
        self, wf: m.Workflow, where: str, steps: list[m.RStep], turn_tier: str | None, slo: m.RSlo, node: m.Slo
    ) -> None:
        """W0501/W0502: the worst case against the declared bounds, with the arithmetic shown."""
        latency = node.first(m.Latency)
        if slo.latency_ms and steps and latency:
            lines, total = [], 0.0
            for step in steps:
                worst, formula = _worst_case(step)
                total += worst
                lines.append(f"step `{step.name}`: {formula} = {_ms(worst)}")
            if total > slo.latency_ms:
                lines.append(f"worst case {_ms(total)} > {slo.latency_percentile} bound {_ms(slo.latency_ms)}")
                self.diagnostics.append(
                    warning(
                        "W0501",
                        latency.span,
                        f"latency SLO of {where} cannot hold in the worst case ({_ms(total)} > {_ms(slo.latency_ms)})",
                        "worst case exceeds this",
                        help="lower retries or timeouts, or relax the bound",
                        notes=lines,
                    )
                )
        cost = node.first(m.Cost)
        if cost and slo.cost_usd and slo.tokens_in is not None and slo.tokens_out is not None and turn_tier:
            tier = self.r_tiers.get(turn_tier)
            if tier and tier.price_in is not None and tier.price_out is not None:
                spend = slo.tokens_in / 1e6 * tier.price_in + slo.tokens_out / 1e6 * tier.price_out
                if spend > slo.cost_usd + 1e-12:
                    notes = [
                        f"tier `{tier.name}`: {slo.tokens_in} in x ${tier.price_in:g}/Mtok + {slo.tokens_out} out x "
                        f"${tier.price_out:g}/Mtok = ${spend:.6f}".rstrip("0"),
                        f"${spend:.6f}".rstrip("0") + f" > bound ${slo.cost_usd:g}",
                    ]
                    self.diagnostics.append(
                        warning(
                            "W0502",
                            cost.span,
                            f"cost SLO of {where} cannot hold at tier `{tier.name}` prices",
                            "costs more than this",
                            help="route to a cheaper tier, expect fewer tokens, or relax the bound",
                            notes=notes,
                        )
                    )

    # the agent ---------------------------------------------------------------

    def resolve_agent(self, agent: m.Agent, workflows: list[m.RWorkflow]) -> m.RSpec:
        for kind, label in ((m.Owner, "`owner`"), (m.Auth, "`auth`"), (m.Tenant, "`tenant`")):
            for extra in agent.of(kind)[1:]:
                self.err(
                    "E0006",
                    extra.span,
                    f"{label} given twice in agent `{agent.name.value}`",
                    "given again here",
                    help="keep one of them",
                )
        version = self.whole(agent.version, "an agent version", 1)
        auth = next(iter(agent.of(m.Auth)), None)
        tenant = next(iter(agent.of(m.Tenant)), None)
        if auth is None:
            self.err(
                "E0007",
                agent.name.span,
                f"agent `{agent.name.value}` declares no `auth`",
                "no auth",
                help="add `auth bearer secret API_TOKENS admin secret ADMIN_TOKEN`",
            )
        if tenant is None:
            self.err(
                "E0007",
                agent.name.span,
                f"agent `{agent.name.value}` declares no `tenant`",
                "no tenant",
                help='add `tenant header "x-tenant-id"`',
            )
        else:
            self.header_name(tenant.header)
        if not self.tiers:
            self.err(
                "E0007",
                agent.name.span,
                f"agent `{agent.name.value}` declares no `model tier`",
                "no model tier",
                help='declare one: `model tier low { primary "@cf/zai-org/glm-4.7-flash" }`',
            )
        owner = next(iter(agent.of(m.Owner)), None)
        return m.RSpec(
            kind="agent",
            name=agent.name.value,
            version=version,
            owner=owner.value.value if owner else None,
            tokens_secret=auth.tokens_secret.value if auth else None,
            admin_secret=auth.admin_secret.value if auth and auth.admin_secret else None,
            tenant_header=tenant.header.value.lower() if tenant else None,
            stores=tuple((s.name.value, s.kind.value) for s in self.stores.values()),
            tiers=tuple(self.r_tiers.values()),
            identities=self.r_identities(),
            tools=tuple(self.r_tools.values()),
            workflows=tuple(workflows),
            files=self.files(),
        )


def _example_key(tool: m.Tool) -> str:
    """An idempotency key clause to suggest for `tool`, from its own first declared argument."""
    args = tool.first(m.Args)
    if args and args.fields:
        return f'`idempotency key "{{session}}:{{args.{args.fields[0].name.value}}}"`'
    return 'an argument that identifies the change (`args { ID: string }`) and `idempotency key "{session}:{args.ID}"`'


def _worst_case(step: m.RStep) -> tuple[float, str]:
    """A step's worst-case duration and the formula that gives it, for W0501's notes.

    Closed forms, so `retry 100000` costs nothing to evaluate; the formula names at most
    six backoff delays.
    """
    if step.kind == "sleep":
        return float(step.duration_ms or 0), f"sleep {_ms(step.duration_ms or 0)}"
    n, delay = step.retries, float(step.delay_ms)
    attempts = n + 1
    if step.backoff == "constant":
        backoff = delay * n
    elif step.backoff == "linear":
        backoff = delay * n * (n + 1) / 2
    else:
        backoff = delay * (2.0**n - 1) if n < 1024 else math.inf
    total = attempts * step.timeout_ms + backoff
    formula = f"{attempts} x {_ms(step.timeout_ms)}"
    if n:
        factor = {"constant": lambda a: 1.0, "linear": float, "exponential": lambda a: 2.0 ** (a - 1)}[step.backoff]
        shown = n if n <= 6 else 4  # every delay while they fit on a line, else the first four
        formula += " + backoff " + " + ".join(_ms(delay * factor(a)) for a in range(1, shown + 1))
        if shown < n:
            formula += f" + ... ({n} delays)"
    return total, formula


def _regex_problem(pattern: str) -> str | None:
    """Why a PII pattern will not work in both Python (the simulator) and JavaScript (the runtime)."""
    if not pattern:
        return "is empty"
    for construct, why in (
        ("(?<=", "uses a look-behind, which not every JavaScript runtime accepts"),
        ("(?<!", "uses a negative look-behind, which not every JavaScript runtime accepts"),
        ("(?<", "uses a named group `(?<name>`, which Python does not accept"),
        ("(?P", "uses Python-only named-group syntax"),
        ("(?#", "uses an inline comment"),
        ("\\A", "uses `\\A`, which JavaScript does not know"),
        ("\\Z", "uses `\\Z`, which JavaScript does not know"),
        ("++", "uses a possessive quantifier"),
        ("*+", "uses a possessive quantifier"),
    ):
        if construct in pattern:
            return why
    if re.search(r"\(\?[a-zA-Z]", pattern):
        return "uses inline flags, which JavaScript does not accept"
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"is not a valid regular expression: {exc}"
    if compiled.match(""):
        return "matches the empty string, so it would mask nothing and loop"
    return None
