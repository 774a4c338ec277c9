"""The policy tables' one definition: frozen pydantic models of `policy.json`, and their exports.

In: nothing (the models are the definition). Out: `PolicyTables` and its parts, which
`agentspec.policy.tables` fills and `load_policy` reads back; the JSON Schema exported from
them (committed as codegen/cloudflare/runtime/policy.schema.json); and the TypeScript types
and the schema constant the runtime imports (codegen/cloudflare/runtime/policy_types.ts, a
generated file), made by `agentspec.policy_ts`. A test regenerates both and compares them
with the committed files; regenerate with

    python -m agentspec.policy_schema --write

A field the runtime tolerates missing has a default (the schema leaves it out of `required`);
every other field is required. `Step`, `SloTable` and `Price` leave out a field that is None
when dumped, as the tables have always done, so `policy.json` names only what the spec says.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator
from typing_extensions import TypeAliasType

FORMAT = 1

RUNTIME = Path(__file__).resolve().parent.parent / "codegen" / "cloudflare" / "runtime"
SCHEMA_FILE = RUNTIME / "policy.schema.json"
TYPES_FILE = RUNTIME / "policy_types.ts"

RiskLevel = TypeAliasType("RiskLevel", Literal["low", "medium", "high"])
FieldSpec = TypeAliasType(
    "FieldSpec",
    Literal["string", "int", "number", "bool", "string?", "int?", "number?", "bool?"],
    # The declared type of a tool argument or return field; a trailing "?" marks it optional.
)
Backoff = TypeAliasType("Backoff", Literal["constant", "linear", "exponential"])
StepKind = TypeAliasType("StepKind", Literal["call", "infer", "sleep", "wait", "search"])
Mode = TypeAliasType("Mode", Literal["enforce", "shadow"])


class Table(BaseModel):
    """A part of the tables: frozen, and no key the schema does not name (a typo fails at load)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class _OmitNone(Table):
    """A table whose unset fields are left out rather than written as null: its keys are never null."""

    @model_validator(mode="before")
    @classmethod
    def _no_null(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None:
                    raise ValueError(f"`{key}` is null; an unset key is left out")
        return data

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class Agent(Table):
    name: str
    version: int
    owner: str | None


class Auth(Table):
    scheme: Literal["bearer"]
    tokens_secret: str
    admin_secret: str | None
    tenant_header: str


class Audit(Table):
    """How the runtime vouches for its decision chains (docs/runtime.md, "Signed chain heads")."""

    signing_secret: str = Field(
        description="The Worker secret holding the Ed25519 private key (PKCS#8, PEM or base64) that signs chain heads."
    )


class Limits(Table):
    max_body_bytes: int
    max_session_id: int


class Store(Table):
    kind: Literal["kv", "r2"]
    binding: str


class Price(_OmitNone):
    """Dollars per million tokens."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = Field(
        default=None, description="Price of cached input tokens, when the model discounts them."
    )


class Tier(Table):
    models: list[str] = Field(description="Primary model first, then the fallbacks, in the order they are tried.")
    timeout_ms: int
    clearance: RiskLevel
    price: Price | None = None


class Identity(Table):
    secrets: list[str]


def _empty(value: Any) -> bool:
    """Left out of the tables when unset: a spec that keeps no artifacts has the tables it always had."""
    return value is None or value == [] or value == {}


class ArtifactSpec(Table):
    """What a tool keeps aside: its result, or one field of it, written to an R2 store; the model gets `show`."""

    store: str = Field(description="The store's name in the spec (its key in `stores`).")
    binding: str = Field(description="The R2 bucket's binding in `env`.")
    field: str | None = Field(description="The result field kept as the artifact's body; null: the whole result.")
    show: list[str] | None = Field(
        description="The result fields the model receives beside the reference; null: every field but `field`."
    )


class SemanticSpec(Table):
    tier: str = Field(description="The tier whose models embed documents and queries, tried in order.")
    dimensions: int
    vector_binding: str = Field(
        description="The Vectorize binding in `env` (deployed); absent there, vectors stay in the index's object."
    )


class IndexSpec(Table):
    """A retrieval index over the artifacts of one R2 store, per tenant."""

    store: str
    keyword: bool = Field(description="Full-text (SQLite FTS5, BM25) over each artifact's body.")
    semantic: SemanticSpec | None = None


class ToolSpec(Table):
    method: str
    url: str = Field(description="URL template; `{name}` placeholders are filled from the call's arguments.")
    host: str = Field(
        description="Host of `url` (with `:port` when the URL names one), checked against the outbound allowlist."
    )
    risk: RiskLevel
    read_only: bool
    idempotency_key: str | None = Field(
        default=None, description="Template over `{session}`, `{workflow}`, `{args.NAME}`; null when read-only."
    )
    timeout_ms: int
    identity: str | None = None
    secrets: list[str]
    headers: dict[str, str] = Field(
        description="Header templates; `{secret.NAME}` reads a secret of the tool's identity."
    )
    compensate: str | None = None
    args: dict[str, FieldSpec]
    returns: dict[str, FieldSpec] | None = Field(
        description="The declared result shape; null when the tool declares none (its JSON object is passed on whole)."
    )
    max_response_bytes: int | None = None
    artifact: ArtifactSpec | None = Field(default=None, exclude_if=_empty)


class Step(_OmitNone):
    name: str
    kind: StepKind
    tool: str | None = Field(default=None, description="kind call: the tool to call.")
    args: list[tuple[str, str]] | None = Field(
        default=None,
        description="kind call: argument templates, `[name, template]`, over `{params.NAME}` and `{STEP.FIELD}`; "
        "null: the task's params.",
    )
    tier: str | None = Field(default=None, description="kind infer: the tier to run on.")
    prompt: str | None = Field(default=None, description="kind infer: the prompt template.")
    event: str | None = Field(default=None, description="kind wait: the event type the step waits for.")
    duration_ms: int | None = Field(default=None, description="kind sleep: how long the step sleeps.")
    index: str | None = Field(default=None, description="kind search: the index to query.")
    query: str | None = Field(default=None, description="kind search: the query template.")
    top: int | None = Field(default=None, description="kind search: how many results at most.")
    retries: int
    backoff: Backoff
    delay_ms: int
    timeout_ms: int


class SloTable(_OmitNone):
    """A workflow's objectives; every key optional (an empty table: no SLO)."""

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


class Affinity(Table):
    header: str
    ttl_ms: int


class Checkpoint(Table):
    every: int
    tier: str
    store: str = Field(description="The store's binding in `env`.")


class Pii(Table):
    classes: list[str]
    patterns: dict[str, str]


class Workflow(Table):
    # `class` is a Python keyword: the field is `klass`, named `class` in the tables.
    klass: str = Field(alias="class")
    mode: Mode
    turn_risk: RiskLevel
    turn_tier: str
    routes: dict[RiskLevel, str] = Field(description="Risk level -> tier name.")
    tools: list[str]
    outbound: list[str]
    affinity: Affinity
    checkpoint: Checkpoint | None = None
    pii: Pii
    steps: list[Step]
    task_binding: str | None = Field(
        default=None, description="The Workflow binding in `env` that runs the steps; null when there are none."
    )
    slo: SloTable | None = None
    writes: list[str] = Field(
        default_factory=list, exclude_if=_empty, description="The stores the workflow may keep artifacts in."
    )
    indexes: list[str] = Field(
        default_factory=list, exclude_if=_empty, description="The indexes its turns and steps may search."
    )

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class PolicyTables(Table):
    """`policy.json`: everything an allow/deny decision, a route or a limit reads, stamped with the spec hash."""

    format: Literal[1]
    spec_hash: str
    compiler: str
    agent: Agent
    auth: Auth
    audit: Audit | None = Field(
        default=None, description="Present when the spec says `audit sign with secret`: heads are signed and anchored."
    )
    stores: dict[str, Store] = {}
    limits: Limits
    tiers: dict[str, Tier]
    identities: dict[str, Identity]
    tools: dict[str, ToolSpec]
    workflows: dict[str, Workflow]
    indexes: dict[str, IndexSpec] = Field(default_factory=dict, exclude_if=_empty)

    @model_serializer(mode="wrap")
    def _omit_unsigned(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # `audit` is left out when unset, so an unsigned spec's policy.json reads as it always has.
        data = handler(self)
        if data.get("audit") is None:
            data.pop("audit", None)
        return data


def load_policy(data: dict[str, Any]) -> PolicyTables:
    """Read policy tables (as `tables(spec)` returns them, or a parsed `policy.json`); a pydantic
    ValidationError names the field that does not fit."""
    return PolicyTables.model_validate(data)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of `policy.json`, as committed beside the runtime."""
    schema = PolicyTables.model_json_schema(mode="validation", by_alias=True)
    omitted = {model.__name__ for model in _OmitNone.__subclasses__()}
    for name, node in [("", schema), *schema["$defs"].items()]:
        for prop in node.get("properties", {}).values():
            # A property's title is its key in words ("Turn Tier"): noise in the schema and the generated types.
            prop.pop("title", None)
            if name in omitted and prop.get("default", ...) is None:
                # Never null in these tables (see _OmitNone): unset is absent, so the schema says only the type.
                (present,) = [option for option in prop.pop("anyOf") if option != {"type": "null"}]
                del prop["default"]
                prop.update(present)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$comment"] = "Generated by `python -m agentspec.policy_schema --write` from agentspec/policy_schema.py."
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"  # in the models' order, as they read


def generated() -> dict[Path, str]:
    """Every generated file, by path: the schema and the TypeScript types made from it."""
    from agentspec.policy_ts import typescript

    return {SCHEMA_FILE: schema_text(), TYPES_FILE: typescript(json_schema())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agentspec.policy_schema", description="Check or write the policy schema files"
    )
    parser.add_argument("--write", action="store_true", help="write the generated files (default: check them)")
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated().items():
        if args.write:
            path.write_text(text, encoding="utf-8", newline="\n")
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(path)
    for path in stale:
        print(f"error: `{path}` is out of date; run `python -m agentspec.policy_schema --write`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
