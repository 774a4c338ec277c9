"""Emit a Cloudflare project: the resolved model in, a mapping of relative path to file text out.

`emit` is pure and deterministic (same spec, same compiler, same bytes); `write`
(agentspec/output.py) puts the files in place atomically, keeping the user's own files.
Everything spec-specific is lowered here into plain values and TypeScript/JSON literals,
so the templates under codegen/cloudflare/templates only loop and branch.
Every spec string reaching TypeScript or JSON crosses one boundary: `lit`.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from agentspec import __version__
from agentspec import model as m

# Writing the files into a directory (and keeping the user's) is agentspec/output.py; re-exported here.
from agentspec.output import MANIFEST as MANIFEST
from agentspec.output import OutputRefused as OutputRefused
from agentspec.output import WriteReport as WriteReport
from agentspec.output import write as write
from agentspec.policy import tables
from agentspec.signing import local_key, private_secret
from agentspec.targets import DEFAULT_TARGET, TARGETS, cloudflare
from agentspec.targets.cloudflare import binding_name, class_name, vector_binding, worker_name, workflow_binding

CODEGEN = Path(__file__).resolve().parent.parent / "codegen" / "cloudflare"
if not CODEGEN.exists():  # installed as a wheel: codegen ships inside the package
    CODEGEN = Path(__file__).resolve().parent / "codegen" / "cloudflare"


def lit(value: Any) -> str:
    """The one escaping boundary: a value as a TypeScript/JSON literal.

    JSON is valid TypeScript; `</` and the two JavaScript line terminators are escaped as
    well, so a spec string can never close a comment, a template or a script tag, nor
    break a line.
    """
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text.replace("</", "<\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def json_file(value: Any, sort_keys: bool = True) -> str:
    """A JSON file. Config files keep the order they are built in, which reads better."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=sort_keys, indent=2)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"


@cache
def _toolchain_file(name: str) -> dict[str, Any]:
    """codegen/cloudflare's package.json or package-lock.json, read once."""
    return json.loads((CODEGEN / name).read_text())


def toolchain() -> dict[str, str]:
    """The pinned toolchain of every generated project: the versions codegen/cloudflare pins."""
    return dict(sorted(_toolchain_file("package.json")["devDependencies"].items()))


def runtime_dependencies() -> dict[str, str]:
    """What the runtime library imports at run time (bundled into the Worker), pinned as codegen/cloudflare pins it."""
    return dict(sorted(_toolchain_file("package.json").get("dependencies", {}).items()))


def overrides() -> dict[str, str]:
    """The toolchain's npm overrides (one wrangler, miniflare and workerd for wrangler and the vitest plugin):
    `npm ci` checks package.json against the lockfile, overrides included."""
    return dict(sorted(_toolchain_file("package.json").get("overrides", {}).items()))


def allowed_scripts() -> dict[str, bool]:
    return dict(sorted(_toolchain_file("package.json").get("allowScripts", {}).items()))


@cache
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(CODEGEN / "templates")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # TypeScript and Markdown, not HTML: `lit` is the escaping boundary
    )


def _render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)


def _runtime_files() -> dict[str, str]:
    runtime = CODEGEN / "runtime"
    return {
        f"src/runtime/{p.relative_to(runtime).as_posix()}": p.read_text(encoding="utf-8")
        for p in sorted(runtime.rglob("*.ts"))
        if "test" not in p.relative_to(runtime).parts
    }


# ───────────────────────────── lowering ─────────────────────────────


def _secrets(spec: m.RSpec) -> list[str]:
    names = [s for s in (spec.tokens_secret, spec.admin_secret, spec.signing_secret) if s]
    for _, secrets in spec.identities:
        names.extend(secrets)
    return sorted(set(names))


def _test_secrets(spec: m.RSpec) -> dict[str, str]:
    """Placeholder secret values for the generated smoke tests; one token maps to one tenant."""
    values = {name: f"test-{name.lower()}" for name in _secrets(spec)}
    if spec.tokens_secret:
        values[spec.tokens_secret] = json.dumps({"test-token": "test-tenant"})
    if spec.signing_secret:
        values[spec.signing_secret] = private_secret(local_key(spec.name))
    return values


def _step_view(step: m.RStep, spec: m.RSpec) -> dict[str, Any]:
    view: dict[str, Any] = {"kind": step.kind, "name_lit": lit(step.name), "rollback_lit": None}
    config = {
        "retries": {"limit": step.retries, "delay": step.delay_ms, "backoff": step.backoff},
        "timeout": step.timeout_ms,
    }
    view["config_lit"] = lit(config)
    if step.kind == "call" and step.tool:
        tool = spec.tool(step.tool)
        if tool.compensate:
            # The compensation retries with the step's own delay and backoff (the spec's word on how
            # patient to be with that service), at least 3 times: giving up leaves the saga half undone,
            # and Workflows stops the remaining rollbacks at the first one that fails. Its timeout covers
            # the compensating call and the registry update after it.
            comp = spec.tool(tool.compensate)
            view["rollback_limit"] = max(step.retries, 3)  # the runtime counts a compensation's attempts to it
            view["rollback_lit"] = lit(
                {
                    "retries": {"limit": view["rollback_limit"], "delay": step.delay_ms, "backoff": step.backoff},
                    "timeout": max(step.timeout_ms, comp.timeout_ms + 1000),
                }
            )
    if step.kind == "sleep":
        view["duration_ms"] = step.duration_ms
    if step.kind == "wait":
        view["wait_lit"] = lit({"type": step.event, "timeout": step.timeout_ms})
    return view


def _context(spec: m.RSpec, policy: dict[str, Any]) -> dict[str, Any]:
    task_workflows = [w for w in spec.workflows if w.steps]
    identities = {secret: name for name, secrets in spec.identities for secret in secrets}
    return {
        "compiler": __version__,
        "agent": spec.name,
        "version": spec.version,
        "spec_hash": policy["spec_hash"],
        "tenant_header": spec.tenant_header,
        "tokens_secret": spec.tokens_secret,
        "admin_secret": spec.admin_secret,
        "signing_secret": spec.signing_secret,
        "local_signing_key": private_secret(local_key(spec.name)) if spec.signing_secret else None,
        "first_workflow": spec.workflows[0].name if spec.workflows else "",
        "first_workflow_lit": lit(spec.workflows[0].name if spec.workflows else ""),
        "agent_lit": lit(spec.name),
        "spec_hash_lit": lit(policy["spec_hash"]),
        "test_secrets_lit": lit(_test_secrets(spec)),
        "tool_origins_example": lit({spec.tools[0].host: "http://127.0.0.1:9001"} if spec.tools else {}),
        "secrets": _secrets(spec),
        "tool_secrets": [{"name": s, "identity": identities[s]} for s in sorted(identities)],
        "stores": [
            {"binding": binding_name(name), "type": "KVNamespace" if kind == "kv" else "R2Bucket"}
            for name, kind in spec.stores
        ],
        "vector_bindings": [vector_binding(i.name) for i in spec.indexes if i.semantic_tier],
        "workflows": [
            {
                "name": w.name,
                "name_lit": lit(w.name),
                "class_name": class_name(w.name),
                "binding": workflow_binding(w.name),
                "steps": [_step_view(s, spec) for s in w.steps],
                "observes_slo": _has_slo(w),
            }
            for w in task_workflows
        ],
        "any_slo": any(_has_slo(w) for w in task_workflows),
    }


def _has_slo(workflow: m.RWorkflow) -> bool:
    """Whether the workflow declares any SLO (the runtime feeds its monitor only then)."""
    return bool(workflow.slo.model_dump(exclude_none=True))


def _wrangler(spec: m.RSpec, context: dict[str, Any]) -> str:
    config = cloudflare.wrangler_config(
        spec.name,
        context["workflows"],
        list(spec.stores),
        context["spec_hash"],
        context["secrets"],
        tuple(i.name for i in spec.indexes if i.semantic_tier),
    )
    header = (
        f"// Generated by agentspec {__version__} from agent `{spec.name}` ({context['spec_hash']}).\n"
        "// Do not edit: change the spec and compile again.\n"
        "// `npm run dev` uses the top level (offline); `npm run deploy` uses env.production (Workers AI).\n"
    )
    return header + json_file(config, sort_keys=False)


def _package(spec: m.RSpec) -> str:
    return json_file(
        {
            "name": worker_name(spec.name),
            "version": f"{spec.version}.0.0",
            "private": True,
            "type": "module",
            "scripts": {
                "dev": "wrangler dev --ip 127.0.0.1",
                "start": "wrangler dev --ip 127.0.0.1",
                "test": "vitest run",
                "typecheck": "tsc --noEmit",
                "deploy": "wrangler deploy --env production",
            },
            "dependencies": runtime_dependencies(),
            "devDependencies": toolchain(),
            "overrides": overrides(),
            # npm 11 runs dependency install scripts only where allowed: `node` links its
            # binary, esbuild and workerd fetch their platform package from the registry.
            "allowScripts": allowed_scripts(),
        },
        sort_keys=False,
    )


def _lockfile(spec: m.RSpec) -> str:
    """The toolchain's own lockfile under the project's name: the generated package.json asks for exactly the
    packages codegen/cloudflare pins, so `npm ci` installs the tree the compiler was tested with."""
    lock = _toolchain_file("package-lock.json")
    name, version = worker_name(spec.name), f"{spec.version}.0.0"
    root = {"name": name, "version": version, **{k: v for k, v in lock["packages"][""].items() if k != "name"}}
    rest = {k: v for k, v in lock.items() if k not in ("name", "version", "packages")}
    return json_file(
        {"name": name, "version": version, **rest, "packages": {**lock["packages"], "": root}}, sort_keys=False
    )


def _tsconfig() -> str:
    return json_file(
        {
            "compilerOptions": {
                "target": "es2024",
                "module": "esnext",
                "moduleResolution": "bundler",
                "lib": ["es2024"],
                "types": ["@cloudflare/workers-types"],
                "resolveJsonModule": True,
                "strict": True,
                "noUncheckedIndexedAccess": True,
                "noImplicitOverride": True,
                "noFallthroughCasesInSwitch": True,
                "isolatedModules": True,
                "verbatimModuleSyntax": True,
                "skipLibCheck": True,
                "noEmit": True,
            },
            "include": ["src/**/*.ts", "test/**/*.ts"],
        },
        sort_keys=False,
    )


def emit(spec: m.RSpec, target: str = DEFAULT_TARGET) -> dict[str, str]:
    """Every file of the generated project for `target` (only `cloudflare` so far), by relative path, sorted."""
    if target not in TARGETS:
        raise ValueError(f"unknown target `{target}`; known targets are {', '.join(sorted(TARGETS))}")
    policy = tables(spec)
    context = _context(spec, policy)
    files: dict[str, str] = {
        "README.md": _render("README.md.j2", **context),
        "package.json": _package(spec),
        "package-lock.json": _lockfile(spec),
        "tsconfig.json": _tsconfig(),
        "wrangler.jsonc": _wrangler(spec, context),
        ".dev.vars.example": _render("dev.vars.example.j2", **context),
        # `node_modules` without a slash: a symlink to a shared toolchain install is ignored too.
        ".gitignore": "node_modules\n.wrangler/\n.dev.vars\ndist/\n",
        # wrangler reads its own settings from `.env`: a plain `npm run dev` stays offline (no request for
        # the `cf` object, no metrics). With a `.dev.vars` present, `.env` does not reach the Worker's `env`.
        # https://developers.cloudflare.com/workers/wrangler/system-environment-variables/
        ".env": "CLOUDFLARE_CF_FETCH_ENABLED=false\nWRANGLER_SEND_METRICS=false\n",
        "policy/policy.json": json_file(policy),
        "src/index.ts": _render("index.ts.j2", **context),
        "src/env.ts": _render("env.ts.j2", **context),
        "src/policy.ts": _render("policy.ts.j2", **context),
        "vitest.config.mts": _render("vitest.config.mts.j2", **context),
        "test/index.test.ts": _render("index.test.ts.j2", **context),
        **_runtime_files(),
    }
    if context["workflows"]:
        files["src/workflows.ts"] = _render("workflows.ts.j2", **context)
    manifest = {
        "compiler": f"agentspec {__version__}",
        "agent": spec.name,
        "spec_hash": policy["spec_hash"],
        "files": {path: hashlib.sha256(text.encode()).hexdigest() for path, text in sorted(files.items())},
    }
    files[MANIFEST] = json_file(manifest)
    return dict(sorted(files.items()))
