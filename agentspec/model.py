"""The syntax model: what `parse` produces from a spec file, before any name is resolved.

Every node is a frozen pydantic model carrying the `Span` it came from, so a check that
runs late can still point at the source. Blocks (tiers, tools, workflows, steps, SLOs)
keep their clauses in source order: the formatter prints them back in that order, and
the checker reads them through the convenience properties below.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

RiskLevel = Literal["low", "medium", "high"]
RISK_ORDER: dict[str, int] = {"low": 0, "medium": 1, "high": 2}
QuantityKind = Literal["duration", "percent", "money", "size", "number"]


class Span(BaseModel):
    """A region of one source file: 1-based lines and columns, 0-based offsets. Line 0 is the file as a whole,
    with no position in it (`Span.whole`): a file that cannot be read at all has no line 1 to point at."""

    model_config = ConfigDict(frozen=True)

    file: str
    line: int
    column: int
    end_line: int
    end_column: int
    start: int
    end: int

    @classmethod
    def whole(cls, file: str) -> Span:
        return cls(file=file, line=0, column=0, end_line=0, end_column=0, start=0, end=0)

    @property
    def located(self) -> bool:
        return self.line > 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}" if self.located else self.file


class Node(BaseModel):
    model_config = ConfigDict(frozen=True)

    span: Span


class Name(Node):
    """An identifier, at the place it is written (a declaration or a reference)."""

    value: str


class Str(Node):
    """A string literal, already unescaped."""

    value: str


class Quantity(Node):
    """A number with its unit. `value` is normalised: ms, percent, dollars, bytes."""

    kind: QuantityKind
    value: float
    text: str


class Word(Node):
    """A keyword chosen from a fixed set (a risk level, a policy mode, an HTTP method...)."""

    value: str


# ───────────────────────────── agent header ─────────────────────────────


class Import(Node):
    path: Str


class Owner(Node):
    value: Str


class Auth(Node):
    tokens_secret: Name
    admin_secret: Name | None = None


class Tenant(Node):
    header: Str


class Audit(Node):
    """`audit sign with secret NAME`: the secret holding the Ed25519 key that signs the decision chains' heads."""

    signing_secret: Name


class Store(Node):
    kind: Word
    name: Name


# ───────────────────────────── retrieval indexes ─────────────────────────────


class Keyword(Node):
    pass


class Semantic(Node):
    tier: Name


IndexClause = Keyword | Semantic


# ───────────────────────────── model tiers ─────────────────────────────


class Primary(Node):
    model: Str


class Fallback(Node):
    models: tuple[Str, ...]


class Price(Node):
    input: Quantity
    output: Quantity


class Clears(Node):
    risk: Word


class Timeout(Node):
    duration: Quantity


TierClause = Primary | Fallback | Price | Timeout | Clears

C = TypeVar("C")


class Block(Node):
    """A declaration whose body is a list of clauses; helpers find clauses by type."""

    if TYPE_CHECKING:
        # Every block declares its own `clauses` field, typed by the clauses it may hold; this is their common type
        # (declared for the checker only, so the fields keep the place each block gives them).
        clauses: tuple[Node, ...]

    def clauses_of(self, kind: type[C]) -> list[C]:
        return [c for c in self.clauses if isinstance(c, kind)]

    def first(self, kind: type[C]) -> C | None:
        return self.first_of_each.get(kind)  # type: ignore[return-value]

    @cached_property
    def first_of_each(self) -> dict[type, Node]:
        """The first clause that is an instance of each class (every class in a clause's MRO), made on first
        use: the checker asks a tool for a dozen kinds of clause, in several passes. A cached property is
        kept in the instance's `__dict__`, which pydantic's equality, dumps and fields ignore."""
        index: dict[type, Node] = {}
        for clause in self.clauses:
            for cls in type(clause).__mro__:
                index.setdefault(cls, clause)
        return index


class Tier(Block):
    name: Name
    clauses: tuple[TierClause, ...]


# ───────────────────────────── identities ─────────────────────────────


class Identity(Node):
    name: Name
    secrets: tuple[Name, ...]


# ───────────────────────────── tools ─────────────────────────────


class Field(Node):
    name: Name
    optional: bool
    type: Word


class Endpoint(Node):
    method: Word
    url: Str


class Risk(Node):
    level: Word


class ReadOnly(Node):
    pass


class Idempotency(Node):
    key: Str


class Compensate(Node):
    tool: Name


class RunAs(Node):
    identity: Name


class Args(Node):
    fields: tuple[Field, ...]


class Returns(Node):
    fields: tuple[Field, ...]


class Header(Node):
    name: Str
    value: Str


class Headers(Node):
    headers: tuple[Header, ...]


class MaxResponse(Node):
    size: Quantity


class Artifact(Node):
    """`artifact in STORE [field NAME] [show [NAME, ...]]`: the result (or a field) kept aside, a projection shown."""

    store: Name
    field: Name | None = None
    show: tuple[Name, ...] | None = None


ToolClause = (
    Endpoint
    | Risk
    | ReadOnly
    | Idempotency
    | Timeout
    | Compensate
    | RunAs
    | Args
    | Returns
    | Headers
    | MaxResponse
    | Artifact
)


class Tool(Block):
    name: Name
    clauses: tuple[ToolClause, ...]


# ───────────────────────────── workflows ─────────────────────────────


class Route(Node):
    risk: Word
    tier: Name


class ToolsAllow(Node):
    tools: tuple[Name, ...]


class OutboundAllow(Node):
    hosts: tuple[Str, ...]


class Policy(Node):
    mode: Word


class Affinity(Node):
    header: Str
    ttl: Quantity | None = None


class Checkpoint(Node):
    every: Quantity
    tier: Name
    store: Name | None = None


class PiiMask(Node):
    classes: tuple[Name, ...]


class PiiPattern(Node):
    name: Name
    regex: Str


class StoresWrite(Node):
    stores: tuple[Name, ...]


class IndexesAllow(Node):
    indexes: tuple[Name, ...]


class StepArg(Node):
    name: Name
    template: Str


class Call(Node):
    tool: Name
    args: tuple[StepArg, ...] | None = None


class Infer(Node):
    tier: Name
    prompt: Str


class Sleep(Node):
    duration: Quantity


class WaitEvent(Node):
    event: Str


class Search(Node):
    """`search INDEX "QUERY TEMPLATE" [top N]`: a task step querying a retrieval index."""

    index: Name
    query: Str
    top: Quantity | None = None


class Retry(Node):
    count: Quantity


class Backoff(Node):
    strategy: Word
    delay: Quantity | None = None


StepAction = Call | Infer | Sleep | WaitEvent | Search
StepOption = Retry | Backoff | Timeout


class Step(Block):
    name: Name
    action: StepAction
    clauses: tuple[StepOption, ...]


class Latency(Node):
    percentile: Word
    comparator: Word
    bound: Quantity


class Ttft(Node):
    percentile: Word
    comparator: Word
    bound: Quantity


class Success(Node):
    comparator: Word
    bound: Quantity


class Cost(Node):
    comparator: Word
    bound: Quantity


class CacheHit(Node):
    comparator: Word
    bound: Quantity
    alert_drop: Quantity | None = None


class Denied(Node):
    comparator: Word
    bound: Quantity


class Tokens(Node):
    input: Quantity
    output: Quantity


class Webhook(Node):
    url: Str


SloClause = Latency | Ttft | Success | Cost | CacheHit | Denied | Tokens | Webhook


class Slo(Block):
    clauses: tuple[SloClause, ...]


WorkflowClause = (
    Route
    | ToolsAllow
    | OutboundAllow
    | Policy
    | Affinity
    | Checkpoint
    | PiiMask
    | PiiPattern
    | StoresWrite
    | IndexesAllow
    | Step
    | Slo
)


class Workflow(Block):
    name: Name
    klass: Name
    clauses: tuple[WorkflowClause, ...]


# ───────────────────────────── files ─────────────────────────────


class Index(Block):
    name: Name
    store: Name
    clauses: tuple[IndexClause, ...]


AgentItem = Owner | Auth | Audit | Tenant | Store | Tier | Identity | Tool | Index | Workflow
LibraryItem = Tier | Identity | Tool


class Agent(Node):
    name: Name
    version: Quantity
    items: tuple[AgentItem, ...]

    def of(self, kind: type[C]) -> list[C]:
        return [i for i in self.items if isinstance(i, kind)]


class Library(Node):
    name: Name
    items: tuple[LibraryItem, ...]

    def of(self, kind: type[C]) -> list[C]:
        return [i for i in self.items if isinstance(i, kind)]


class SpecFile(Node):
    """One parsed `.agent` file: its imports and either an agent or a library."""

    path: str
    imports: tuple[Import, ...]
    body: Agent | Library


# ───────────────────────────── the resolved model ─────────────────────────────
# What `check` returns when a spec is valid: every reference resolved, every default
# applied, every quantity in its base unit. No spans: two specs that mean the same
# thing resolve to equal models, which is how the formatter proves it kept the meaning.


class Resolved(BaseModel):
    model_config = ConfigDict(frozen=True)


class RTier(Resolved):
    name: str
    models: tuple[str, ...]
    timeout_ms: int
    clearance: RiskLevel
    price_in: float | None
    price_out: float | None


class RField(Resolved):
    name: str
    type: str
    optional: bool


class RArtifact(Resolved):
    store: str
    field: str | None
    show: tuple[str, ...] | None


class RTool(Resolved):
    name: str
    method: str
    url: str
    host: str
    risk: RiskLevel
    read_only: bool
    idempotency_key: str | None
    timeout_ms: int
    identity: str | None
    secrets: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]
    compensate: str | None
    args: tuple[RField, ...]
    returns: tuple[RField, ...] | None
    max_response_bytes: int
    artifact: RArtifact | None = None


class RStep(Resolved):
    name: str
    kind: Literal["call", "infer", "sleep", "wait", "search"]
    tool: str | None = None
    index: str | None = None
    query: str | None = None
    top: int | None = None
    args: tuple[tuple[str, str], ...] | None = None
    tier: str | None = None
    prompt: str | None = None
    event: str | None = None
    duration_ms: int | None = None
    retries: int
    backoff: Literal["constant", "linear", "exponential"]
    delay_ms: int
    timeout_ms: int


class RSlo(Resolved):
    latency_percentile: str | None = None
    latency_ms: int | None = None
    ttft_percentile: str | None = None
    ttft_ms: int | None = None
    success_pct: float | None = None
    cost_usd: float | None = None
    cache_hit_pct: float | None = None
    cache_drop_pct: float | None = None
    denied_pct: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    webhook: str | None = None


class RWorkflow(Resolved):
    name: str
    klass: str
    mode: Literal["enforce", "shadow"]
    routes: tuple[tuple[RiskLevel, str], ...]
    turn_risk: RiskLevel
    turn_tier: str
    tools: tuple[str, ...]
    outbound: tuple[str, ...]
    affinity_header: str
    ttl_ms: int
    checkpoint_every: int | None
    checkpoint_tier: str | None
    checkpoint_store: str | None
    pii_classes: tuple[str, ...]
    pii_patterns: tuple[tuple[str, str], ...]
    steps: tuple[RStep, ...]
    slo: RSlo
    writes: tuple[str, ...] = ()
    indexes: tuple[str, ...] = ()


class RIndex(Resolved):
    name: str
    store: str
    keyword: bool
    semantic_tier: str | None


class RSpec(Resolved):
    """A checked agent (or library): the input of policy tables and code generation."""

    kind: Literal["agent", "library"]
    name: str
    version: int | None
    owner: str | None
    tokens_secret: str | None
    admin_secret: str | None
    tenant_header: str | None
    # The secret holding the key that signs chain heads (`audit sign with secret`); None: heads are not signed.
    signing_secret: str | None = None
    stores: tuple[tuple[str, Literal["kv", "r2"]], ...]
    tiers: tuple[RTier, ...]
    identities: tuple[tuple[str, tuple[str, ...]], ...]
    tools: tuple[RTool, ...]
    workflows: tuple[RWorkflow, ...]
    files: tuple[str, ...]
    indexes: tuple[RIndex, ...] = ()

    @cached_property
    def _tools_by_name(self) -> dict[str, RTool]:
        return {t.name: t for t in self.tools}

    def tool(self, name: str) -> RTool:
        return self._tools_by_name[name]

    def tier(self, name: str) -> RTier:
        return next(t for t in self.tiers if t.name == name)
