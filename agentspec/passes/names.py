"""Names after code generation: the resolved model in, E0613, E0614 and E0603 (bucket and Workflow names) out.

The emitter folds names: a store `summaries` becomes the binding `SUMMARIES`, a workflow
`refund_flow` the class `RefundFlowWorkflow`, the binding `WF_REFUND_FLOW` and the Workflow
`<worker>-refund-flow` (agentspec/targets/cloudflare.py). Two names that fold to one generated
name, or one that folds onto a binding the runtime itself uses (the session object, `AI`, a
secret), would make a project that does not build or that mixes two things up.

The runtime keeps names as keys of plain JavaScript objects (tools, arguments, step results,
return fields); a key JavaScript objects already have (`constructor`, `__proto__`, `toString`)
would read the prototype's member. The checker refuses such names everywhere (E0614), so every
runtime lookup stays a plain property lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from agentspec import model as m
from agentspec.diagnostics import Diagnostic, report
from agentspec.resolve import Resolution, placeholders
from agentspec.targets import cloudflare as target

# Object.getOwnPropertyNames(Object.prototype) in the runtime's V8 (tests/test_names.py asks node for it).
OBJECT_PROTOTYPE = frozenset(
    {
        "constructor",
        "__defineGetter__",
        "__defineSetter__",
        "hasOwnProperty",
        "__lookupGetter__",
        "__lookupSetter__",
        "isPrototypeOf",
        "propertyIsEnumerable",
        "toString",
        "valueOf",
        "__proto__",
        "toLocaleString",
    }
)


def check(res: Resolution) -> Iterator[Diagnostic]:
    yield from _prototype_names(res)
    yield from _env_collisions(res)
    yield from _class_collisions(res)
    yield from _resource_names(res)


def _declared_names(res: Resolution) -> Iterator[tuple[str, m.Name]]:
    """Every name the spec declares that the runtime uses as an object key, with what it names."""
    tables = (("tool", res.tools), ("model tier", res.tiers), ("workflow", res.workflows), ("index", res.indexes))
    for kind, table in tables:
        for decl in table.values():
            yield kind, decl.name
    for store in res.stores.values():
        yield "store", store.name
    for tool in res.tools.values():
        for clause, kind in ((tool.first(m.Args), "argument"), (tool.first(m.Returns), "result field")):
            for f in clause.fields if clause else ():
                yield kind, f.name
    for wf in res.workflows.values():
        for step in wf.clauses_of(m.Step):
            yield "step", step.name
            for arg in step.action.args or () if isinstance(step.action, m.Call) else ():
                yield "argument", arg.name
        for pattern in wf.clauses_of(m.PiiPattern):
            yield "PII detector", pattern.name


def _prototype_names(res: Resolution) -> Iterator[Diagnostic]:
    for kind, name in _declared_names(res):
        if name.value in OBJECT_PROTOTYPE:
            yield report("E0614", "name", name.span, kind=kind, name=name.value)
    for wf in res.workflows.values():
        for step in wf.clauses_of(m.Step):
            for template in _templates(step):
                for placeholder in placeholders(template.value):
                    parts = placeholder.split(".")
                    if parts[0] == "params" and any(p in OBJECT_PROTOTYPE for p in parts[1:]):
                        yield report("E0614", "param", template.span, placeholder=placeholder)


def _templates(step: m.Step) -> Iterable[m.Str]:
    action = step.action
    if isinstance(action, m.Call):
        return [a.template for a in action.args or ()]
    if isinstance(action, m.Infer):
        return [action.prompt]
    return []


def _env_collisions(res: Resolution) -> Iterator[Diagnostic]:
    """E0613: stores, task workflows and secrets share `env` with the runtime's own bindings."""
    taken: dict[str, str] = {b: f"the runtime's `{b}` binding" for b in sorted(target.RUNTIME_BINDINGS)}
    for secret in sorted(res.secrets_declared):
        taken.setdefault(secret, f"secret `{secret}`")
    named: list[tuple[str, m.Name, str]] = [
        (target.binding_name(s.name.value), s.name, f"store `{s.name.value}`") for s in res.stores.values()
    ]
    for index in res.indexes.values():
        if index.first(m.Semantic):
            named.append((target.vector_binding(index.name.value), index.name, f"index `{index.name.value}`"))
    for wf in res.workflows.values():
        if wf.clauses_of(m.Step):
            binding = target.workflow_binding(wf.name.value)
            named.append((binding, wf.name, f"workflow `{wf.name.value}`"))
    for binding, name, what in named:
        if binding in taken:
            yield report("E0613", "binding", name.span, what=what, generated=binding, other=taken[binding])
        else:
            taken[binding] = what


def _class_collisions(res: Resolution) -> Iterator[Diagnostic]:
    """E0613: two task workflows whose classes or Workflow names fold to one."""
    classes: dict[str, str] = {}
    resources: dict[str, str] = {}
    agent = res.root.body.name.value
    for wf in res.workflows.values():
        if not wf.clauses_of(m.Step):
            continue
        name = wf.name.value
        for generated, seen, what in (
            (target.class_name(name), classes, "class"),
            (target.workflow_resource_name(agent, name), resources, "Workflow name"),
        ):
            if generated in seen:
                yield report(
                    "E0613",
                    "generated",
                    wf.name.span,
                    what=f"workflow `{name}`",
                    kind=what,
                    generated=generated,
                    other=seen[generated],
                )
                break
            seen[generated] = f"workflow `{name}`"


def _resource_names(res: Resolution) -> Iterator[Diagnostic]:
    """E0603: names Cloudflare refuses once the emitter prefixes them with the worker's name."""
    body = res.root.body
    if not isinstance(body, m.Agent):
        return
    agent = body.name.value
    for store in res.stores.values():
        bucket = target.bucket_name(agent, store.name.value)
        if store.kind.value == "r2" and not target.BUCKET_NAME.fullmatch(bucket):
            yield report("E0603", "bucket", store.name.span, store=store.name.value, bucket=bucket)
    for wf in res.workflows.values():
        resource = target.workflow_resource_name(agent, wf.name.value)
        if wf.clauses_of(m.Step) and len(resource) > target.WORKFLOW_NAME_MAX:
            yield report(
                "E0603",
                "workflow-resource",
                wf.name.span,
                name=wf.name.value,
                resource=resource,
                length=len(resource),
                limit=target.WORKFLOW_NAME_MAX,
            )
