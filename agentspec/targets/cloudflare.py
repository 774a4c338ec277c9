"""Cloudflare Workers as a target: names in the spec in, Cloudflare's names, limits and config layout out.

Tables and small hooks only. The checker's platform pass (agentspec/passes/platform.py) checks a
resolved spec against the limits here, and the emitter (agentspec/emit.py) names bindings,
Workflows and buckets and lays out `wrangler.jsonc` with the functions here, so the two can never
disagree. Each fact links the page it comes from.
"""

from __future__ import annotations

import re
from typing import Any

NAME = "cloudflare"

# ───────────────────────────── limits ─────────────────────────────

# Workflow instance ids: at most 64 characters, `^[a-zA-Z0-9_][a-zA-Z0-9-_]*$`.
# https://developers.cloudflare.com/workflows/reference/limits/
# The runtime names instances `<workflow>-` + 32 hex digits (a UUID v4 without its dashes, or the first 32 of a
# sha256 for an Idempotency-Key): 1 + 32 characters after the name.
INSTANCE_ID_MAX = 64
INSTANCE_ID_SUFFIX = 33

# A Workflow's name (the resource, `<worker>-<workflow>` here) is limited to 64 characters.
# https://developers.cloudflare.com/workflows/reference/limits/
WORKFLOW_NAME_MAX = 64

# A Workflow step's result is persisted and limited to 1 MiB.
# https://developers.cloudflare.com/workflows/reference/limits/
STEP_RESULT_MAX = 1024 * 1024

# A step name is its cache key, limited to 256 characters.
# https://developers.cloudflare.com/workflows/reference/limits/
STEP_NAME_MAX = 256

# step.sleep accepts at most 365 days.
# https://developers.cloudflare.com/workflows/build/sleeping-and-retrying/
MAX_SLEEP_MS = 365 * 86_400_000

# `step.waitForEvent` event types: letters, digits, `_`, `-` and `.`, at most 100 characters.
# https://developers.cloudflare.com/workflows/build/events-and-parameters/
EVENT_TYPE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")

# Worker names: lowercase letters, digits and dashes, at most 63 characters.
# https://developers.cloudflare.com/workers/configuration/routing/workers-dev/
WORKER_NAME_MAX = 63

# R2 bucket names: 3-63 characters, lowercase letters, digits and dashes, no dash at either end.
# https://developers.cloudflare.com/r2/buckets/create-buckets/
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")

# Workers AI embedding models and the dimension of their vectors (a Vectorize index is created with it).
# https://developers.cloudflare.com/workers-ai/models/bge-base-en-v1.5/ (and the pages beside it)
EMBEDDING_MODELS: dict[str, int] = {
    "@cf/baai/bge-small-en-v1.5": 384,
    "@cf/baai/bge-base-en-v1.5": 768,
    "@cf/baai/bge-large-en-v1.5": 1024,
    "@cf/baai/bge-m3": 1024,
}

# Vectorize index names: lowercase letters, digits and dashes, at most 32 characters.
# https://developers.cloudflare.com/vectorize/platform/limits/
VECTORIZE_NAME_MAX = 32

# ───────────────────────────── naming ─────────────────────────────

# Bindings the runtime itself puts in `env`: a store or workflow binding must not take one.
SESSION_BINDING = "SESSION"
AI_BINDING = "AI"
# The fleet export (runtime/export.ts): its queue and the bucket its consumer writes.
EXPORT_QUEUE_BINDING = "EXPORT_QUEUE"
EXPORT_BUCKET_BINDING = "EXPORT_BUCKET"
RUNTIME_BINDINGS = frozenset(
    {
        SESSION_BINDING,
        AI_BINDING,
        EXPORT_QUEUE_BINDING,
        EXPORT_BUCKET_BINDING,
        "AGENTSPEC_SPEC_HASH",
        "INFERENCE_URL",
        "TOOL_ORIGINS",
    }
)

# The compatibility date every generated Worker pins: the newest the pinned workerd supports.
# https://developers.cloudflare.com/workers/configuration/compatibility-dates/
COMPATIBILITY_DATE = "2026-11-01"


def binding_name(name: str) -> str:
    """A store's binding in `env`: upper snake case, as Cloudflare's examples write them."""
    return name.upper()


def workflow_binding(name: str) -> str:
    """A task workflow's Workflow binding in `env`."""
    return "WF_" + name.upper()


def worker_name(agent: str) -> str:
    """Worker names are lowercase letters, digits and dashes, at most 63 characters."""
    return re.sub(r"[^a-z0-9-]", "-", agent.lower().replace("_", "-")).strip("-")[:WORKER_NAME_MAX] or "agent"


def class_name(workflow: str) -> str:
    """The generated WorkflowEntrypoint class of a task workflow."""
    pascal = "".join(part[:1].upper() + part[1:] for part in re.split(r"_+", workflow) if part)
    return f"{pascal or 'Task'}Workflow"


def workflow_resource_name(agent: str, workflow: str) -> str:
    """The Workflow's name on the account: the worker's name, then the workflow's."""
    return f"{worker_name(agent)}-{workflow.replace('_', '-').lower()}"


def export_resource_name(agent: str) -> str:
    """The fleet export's queue and bucket: the worker's name, then `-export`, cut to 63 characters."""
    return f"{worker_name(agent)}-export"[:63]


def vector_binding(index: str) -> str:
    """A semantic index's Vectorize binding in `env`."""
    return "VEC_" + index.upper()


def vectorize_index_name(agent: str, index: str) -> str:
    """A semantic index's Vectorize index on the account: the worker's name, then the index's, cut to the limit."""
    return f"{worker_name(agent)}-{index.replace('_', '-').lower()}"[:VECTORIZE_NAME_MAX].strip("-")


def bucket_name(agent: str, store: str) -> str:
    """An R2 store's bucket: the worker's name, then the store's, cut to 63 characters."""
    return f"{worker_name(agent)}-{store.replace('_', '-').lower()}"[:63]


# ───────────────────────────── wrangler layout ─────────────────────────────


def wrangler_bindings(
    agent: str,
    workflows: list[dict[str, Any]],
    stores: list[tuple[str, str]],
    spec_hash: str,
    secrets: list[str],
    *,
    local: bool,
    semantic_indexes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The bindings block of `wrangler.jsonc`, for the top level (offline) or `env.production` (deployed).

    `workflows` are the emitter's views (`name`, `binding`, `class_name`); `stores` are (name, kind) pairs;
    `semantic_indexes` the names of the indexes that declare `semantic`.
    """
    out: dict[str, Any] = {
        "durable_objects": {"bindings": [{"name": SESSION_BINDING, "class_name": "SessionDO"}]},
        "workflows": [
            {
                "name": workflow_resource_name(agent, w["name"]),
                "binding": w["binding"],
                "class_name": w["class_name"],
            }
            for w in workflows
        ],
        # No namespace id: `wrangler deploy` provisions the namespace on first deploy.
        # https://developers.cloudflare.com/workers/wrangler/configuration/#automatic-provisioning
        "kv_namespaces": [{"binding": binding_name(s)} for s, k in stores if k == "kv"],
        "r2_buckets": [
            {"binding": binding_name(s), "bucket_name": bucket_name(agent, s)} for s, k in stores if k == "r2"
        ]
        + [{"binding": EXPORT_BUCKET_BINDING, "bucket_name": export_resource_name(agent)}],
        # The fleet export (runtime/export.ts): each object keeps its commits' events and sends them to the
        # queue from an alarm (one send for several turns); its consumer, this same Worker, writes each batch to
        # the bucket as partitioned NDJSON.
        # https://developers.cloudflare.com/queues/configuration/configure-queues/
        "queues": {
            "producers": [{"binding": EXPORT_QUEUE_BINDING, "queue": export_resource_name(agent)}],
            "consumers": [
                {
                    "queue": export_resource_name(agent),
                    "max_batch_size": 100,
                    # Locally a second, so tests and `npm run dev` see their files soon.
                    "max_batch_timeout": 1 if local else 30,
                    "max_retries": 10,
                }
            ],
        },
        "vars": {"AGENTSPEC_SPEC_HASH": spec_hash},
    }
    # Vectorize has no local simulation (wrangler dev can reach it only as a remote binding), so the local top
    # level leaves it out and the runtime keeps vectors in the index's Durable Object instead (runtime/retrieval.ts).
    # https://developers.cloudflare.com/workers/local-development/bindings-per-env/
    if semantic_indexes and not local:
        out["vectorize"] = [
            {"binding": vector_binding(i), "index_name": vectorize_index_name(agent, i)} for i in semantic_indexes
        ]
    # Deployed: wrangler refuses to deploy without these secrets. Not for the local top level: with
    # `secrets.required` set, `wrangler dev` loads only the listed keys from .dev.vars, and the
    # local variables (INFERENCE_URL, TOOL_ORIGINS) would be dropped.
    if not local:
        out["secrets"] = {"required": secrets}
    # Locally an OpenAI-compatible endpoint (Workers AI has no local simulator). Deployed it is empty, which
    # the runtime reads as "use the `AI` binding" (runtime/inference.ts); it is there at all because wrangler
    # warns on every deploy about a top-level var an environment does not repeat.
    out["vars"] = {**out["vars"], "INFERENCE_URL": "http://127.0.0.1:11434/v1" if local else ""}
    return out


def wrangler_config(
    agent: str,
    workflows: list[dict[str, Any]],
    stores: list[tuple[str, str]],
    spec_hash: str,
    secrets: list[str],
    semantic_indexes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`wrangler.jsonc` as a dict, in the order it reads best.

    The top level is the offline one, what a bare `wrangler dev` (and the vitest pool) runs; production is the
    named environment `production`, which `npm run deploy` targets explicitly (`--env production`). This way
    round neither prints a warning: wrangler warns about a non-inherited key (`ai`, `secrets`, a var) that is at
    the top level but not in an environment, and about a deploy to the top level while environments exist.
    """
    return {
        "$schema": "node_modules/wrangler/config-schema.json",
        "name": worker_name(agent),
        "main": "src/index.ts",
        "compatibility_date": COMPATIBILITY_DATE,
        "compatibility_flags": ["nodejs_compat"],
        "send_metrics": False,
        "observability": {"enabled": True, "logs": {"enabled": True, "invocation_logs": True}},
        **wrangler_bindings(agent, workflows, stores, spec_hash, secrets, local=True),
        "migrations": [{"tag": "v1", "new_sqlite_classes": ["SessionDO"]}],
        "env": {
            "production": {
                # Without its own name an environment deploys as `<name>-production`.
                "name": worker_name(agent),
                # Production inference. Workers AI has no local simulator, so the top level leaves it out.
                "ai": {"binding": AI_BINDING},
                **wrangler_bindings(
                    agent, workflows, stores, spec_hash, secrets, local=False, semantic_indexes=semantic_indexes
                ),
            }
        },
    }
