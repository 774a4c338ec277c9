"""The catalogue of diagnostic codes: code in, its title, `explain` text and message templates out.

Each code keeps the forms its diagnostics take, as Cedar keeps its messages beside its error
kinds: a form is a message, a label for the caret and a help line, each a `str.format`
template over named fields. The checker builds every diagnostic from a form
(agentspec/diagnostics.py `report`), so a message is written once, here.

Codes never change meaning once published; a retired code stays here, marked retired, and a
code split in two says so in its explanation (`agentspec explain` prints it).
E = error (the spec is not compiled), W = warning (compiled, but look at it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class Form(NamedTuple):
    """One way a diagnostic of a code reads: templates over the fields the checker passes."""

    message: str
    label: str = ""
    help: str | None = None


class Code(NamedTuple):
    code: str
    title: str
    explanation: str
    forms: Mapping[str, Form] = {}


_CODES = [
    Code(
        "E0001",
        "syntax error",
        """The parser met something the language does not allow at that place.

The message says what was expected there, in the language's own terms
("expected a duration such as `30s`", "expected `}` to close the tool").

    tool lookup_order {
      GET "https://orders.example.com/v1/orders/{order_id}"
      risk low read_only timeout 2s
    }""",
    ),
    Code(
        "E0002",
        "invalid token",
        """A character or token that cannot start anything in the language: a stray
symbol, an unterminated string, a number glued to an unknown unit (`5sec`).

Strings are written in double quotes on one line; durations as `500ms`, `30s`,
`5m`, `1h`, `2d`; percentages as `99.5%`; money as `$0.02`; sizes as `512KiB`.""",
    ),
    Code(
        "E0003",
        "file cannot be read",
        """A spec file (or a file it imports) does not exist, is not a regular file,
or is not valid UTF-8. The diagnostic points at the first byte that is not UTF-8.""",
    ),
    Code(
        "E0004",
        "invalid escape in a string",
        """Strings accept the escapes `\\"`, `\\\\`, `\\/`, `\\n`, `\\t`, `\\r`, `\\b`, `\\f` and
`\\uXXXX`. A regular expression's backslash is written doubled: `"EMP-\\\\d{6}"`.""",
    ),
    Code(
        "E0005",
        "bad import",
        """`import "path.agent"` names a file relative to the importing file. The file
must exist, must hold a `library` (not an `agent`), and imports must not form a cycle.

    import "shared/billing_tools.agent"
    agent support_desk version 3 { ... }""",
    ),
    Code(
        "E0006",
        "clause given twice",
        """Each clause of a tool, tier, step or workflow (`risk`, `timeout`, `policy`...)
may appear once; the second one would silently win. Remove one of them.""",
        {
            "twice": Form("{clause} given twice in {where}", "given again here", "keep one of them"),
            "route-twice": Form(
                "risk `{risk}` is routed twice in {where}", "routed again here", "keep one route per risk level"
            ),
        },
    ),
    Code(
        "E0007",
        "required clause missing",
        """A declaration lacks something it cannot work without: a tool needs an
endpoint (`GET "https://..."`) and a `risk`; a model tier needs a `primary` model;
an agent needs `auth` and `tenant` to serve requests.""",
        {
            "no-primary": Form(
                "{where} has no `primary` model",
                "no primary model",
                'add `primary "@cf/zai-org/glm-4.7-flash"` (or the model it should use)',
            ),
            "no-endpoint": Form(
                "{where} has no endpoint",
                "no endpoint",
                'add the method and URL it calls, for example `GET "https://api.example.com/v1/items"`',
            ),
            "no-risk": Form(
                "{where} has no `risk` level", "no risk level", "add `risk low`, `risk medium` or `risk high`"
            ),
            "no-turn-tier": Form(
                "{where} has no model tier to run turns on",
                "no tier",
                "declare a `model tier` and route to it: `route risk low -> tier NAME`",
            ),
            "no-auth": Form(
                "agent `{agent}` declares no `auth`",
                "no auth",
                "add `auth bearer secret API_TOKENS admin secret ADMIN_TOKEN`",
            ),
            "no-tenant": Form("agent `{agent}` declares no `tenant`", "no tenant", 'add `tenant header "x-tenant-id"`'),
            "no-index-kind": Form(
                "{where} is neither `keyword` nor `semantic`",
                "indexes nothing",
                "add `keyword`, or `semantic with tier TIER`, or both",
            ),
            "no-tiers": Form(
                "agent `{agent}` declares no `model tier`",
                "no model tier",
                'declare one: `model tier low {{ primary "@cf/zai-org/glm-4.7-flash" }}`',
            ),
        },
    ),
    Code(
        "E0008",
        "option the step cannot use",
        """A step option that means nothing on that kind of step would be dropped without a
word: a `sleep` is neither retried nor timed out, and a `wait event` step is not
retried (its `timeout` is how long it waits for the event).

    step hold = sleep 4h                                  // no options
    step approval = wait event "payment.approved" timeout 1h""",
        {
            "unusable": Form("{where} is {what}, which has no use for `{word}`", "would be ignored", "remove it{why}"),
        },
    ),
    Code(
        "E0101",
        "duplicate name",
        """Two declarations of the same kind share a name (two tools `lookup_order`,
two steps `verify` in one workflow, two headers `X-Key` and `x-key` on one tool). Names
are unique per kind across an agent and everything it imports; header names compare
case-insensitively.""",
        {
            "declared-twice": Form(
                "{kind} `{name}` is declared twice", "declared again here", "rename one of them or remove the duplicate"
            ),
            "model-twice": Form(
                "model `{model}` appears twice in {where}",
                "already in the chain",
                "a fallback chain tries each model once",
            ),
            "field-twice": Form("field `{field}` is declared twice in {where}", "declared again here"),
            "listed-twice": Form("tool `{tool}` is listed twice", "listed again"),
            "step-twice": Form("step `{step}` is declared twice", "declared again here"),
            "params-step": Form("`params` names the task's parameters and cannot be a step", "declared again here"),
            "argument-twice": Form("argument `{arg}` is given twice", "given again"),
            "detector-twice": Form("PII detector `{name}` is declared twice", "declared again here"),
            "detector-builtin": Form("PII detector `{name}` is declared twice", "a built-in class"),
            "kept-and-shown": Form(
                "field `{field}` is both kept as the artifact and shown to the model",
                "kept aside",
                "the kept field is what the model does not receive: leave it out of `show`",
            ),
            "listed-twice-kind": Form("{kind} `{name}` is listed twice", "listed again"),
            "index-tool": Form(
                "index `{name}` has the name of a tool",
                "named like tool `{name}`",
                "the model calls an index by its name, as a tool: rename one of them",
            ),
            "header-twice": Form(
                "header `{header}` is given twice in tool `{tool}`",
                "given again here",
                "header names are case-insensitive: keep one of them",
            ),
        },
    ),
    Code(
        "E0102",
        "name not declared",
        """A tool, model tier, identity, store or step is referenced but not declared.
The help line suggests the nearest declared name.

    tools allow [lookup_order, issue_refnd]   // did you mean `issue_refund`?""",
        {
            "undefined": Form("{kind} `{name}` is not declared", "not declared"),
        },
    ),
    Code(
        "E0103",
        "secret not declared",
        """A secret is read (in a tool header such as `"Bearer {secret.BILLING_API_KEY}"`)
but no identity holds it and `auth` does not name it. Declare it on an identity:

    identity billing_writer { secrets [BILLING_API_KEY] }""",
        {
            "undefined": Form(
                "secret `{secret}` is not declared",
                "not declared",
                "hold it in an identity: `identity NAME {{ secrets [{secret}] }}`",
            ),
        },
    ),
    Code(
        "E0201",
        "retryable tool without idempotency",
        """A tool that changes something (not `read_only`) is reachable from a retried
step or from the agent loop (it is in a workflow's `tools allow`), but declares no
`idempotency key`. A retry would repeat its side effect: a refund issued twice.
Either mark it `read_only` or give it a key that is stable across retries:

    tool issue_refund { POST "https://billing.example.com/v1/refunds" risk high
                        args { order_id: string }
                        idempotency key "{session}:{args.order_id}" }""",
        {
            "not-idempotent": Form(
                "tool `{tool}` changes state and is reachable from {where}, but has no idempotency key",
                "retries would repeat its side effect",
                "add {example}, built from an argument that identifies the change, "
                "or mark it `read_only` if it changes nothing",
            ),
        },
    ),
    Code(
        "E0202",
        "compensating tool not idempotent",
        """A tool named by `compensate` runs during rollback, which may itself be
retried. It must declare an `idempotency key` so a compensation never runs twice.""",
        {
            "not-idempotent": Form(
                "compensating tool `{tool}` has no idempotency key",
                "not idempotent",
                "a rollback can be retried: give it {example}",
            ),
        },
    ),
    Code(
        "E0203",
        "compensation cycle",
        """Following `compensate` from tool to tool comes back to where it started
(a compensates b, b compensates a). Rollback would never end; break the cycle.""",
        {
            "cycle": Form(
                "compensation cycle: {chain}",
                "closes a cycle",
                "a compensating tool must not, through others, compensate itself",
            ),
        },
    ),
    Code(
        "E0204",
        "read-only tool with side-effect clauses",
        """A `read_only` tool declares a compensating action or an idempotency key,
which only mean something for a tool that changes state. Drop `read_only` or the
other clause.""",
        {
            "key": Form(
                "{where} is `read_only` but declares an idempotency key",
                "meaningless for a read-only tool",
                "drop `read_only` or the key",
            ),
            "compensate": Form(
                "{where} is `read_only` but declares a compensating tool",
                "nothing to compensate",
                "drop `read_only` or `compensate`",
            ),
        },
    ),
    Code(
        "E0205",
        "idempotency key that does not identify the change",
        """An idempotency key built only from `{workflow}` and `{session}` is the same for
every call of the tool in a session (the agent loop may call a tool many times) or in a
task (two steps may call it). The remote service would take the second, distinct refund
for a repeat of the first and drop it. Build the key from the arguments that identify the
change as well, such as `idempotency key "{session}:{args.order_id}"`.""",
        {
            "workflow-only": Form(
                "idempotency key of tool `{tool}` is the same for every call in {where}",
                "constant for the workflow",
                "build it from the session and an argument that identifies the change: {example}",
            ),
            "session-only": Form(
                "idempotency key of tool `{tool}` is the same for two calls in one session of {where}",
                "does not identify the change",
                "add an argument that identifies the change: {example}",
            ),
        },
    ),
    Code(
        "E0206",
        "key or URL reads an optional argument",
        """An idempotency key or a URL reads `{args.NAME}` (or `{NAME}`) of an argument
declared optional (`NAME?: string`). A caller that leaves it out gets a key or URL with
nothing in its place: two different calls could share a key, or the request goes to the
wrong path. Make the argument required or leave it out of the template.""",
        {
            "optional": Form(
                "the {what} of tool `{tool}` reads `{arg}`, an optional argument",
                "may be left out",
                "make it required (`{arg}: string`) or leave it out of the {what}",
            ),
        },
    ),
    Code(
        "E0207",
        "compensation that cannot get its arguments",
        """A compensating tool runs with arguments the runtime takes, by name, from the
original call's arguments and from its result. A required argument of the compensating
tool that is in neither (not an argument of the original tool, not in its `returns`) can
never be given: the rollback would never run. Declare it in the original tool's
`returns`, or rename the argument to match.""",
        {
            "lacking": Form(
                "tool `{tool}` is compensated by `{compensation}`, whose argument `{arg}` it neither takes nor returns",
                "cannot be undone",
                "declare `{arg}` in the `returns` of `{tool}`, or take it as an argument",
            ),
        },
    ),
    Code(
        "E0301",
        "host not in the outbound allowlist",
        """A tool reachable from a workflow (allowed or called by a step), or the SLO
alert webhook, sends requests to a host that the workflow's `outbound allow` list
does not contain. The runtime's guarded fetch would block every call; add the host
or remove the tool.""",
        {
            "tool": Form(
                "tool `{tool}` calls `{host}`, which is not in the outbound allowlist of {where}",
                "host not allowed",
                'add `"{host}"` to `outbound allow`, or remove the tool',
            ),
            "webhook": Form(
                "alert webhook host `{host}` is not in the outbound allowlist of {where}",
                "host not allowed",
                'add `"{host}"` to `outbound allow`',
            ),
        },
    ),
    Code(
        "E0302",
        "tool not in the tool allowlist",
        """A step calls a tool that is not in its workflow's `tools allow` list. Every
tool a workflow may use, from the agent loop or a step, must be listed.""",
        {
            "not-allowed": Form(
                "{where} calls tool `{tool}`, which is not in the tool allowlist of workflow `{workflow}`",
                "not allowed",
                "add `{tool}` to `tools allow`",
            ),
            "index-not-allowed": Form(
                "{where} searches index `{index}`, which is not in the index allowlist of workflow `{workflow}`",
                "not allowed",
                "add `indexes allow [{index}]`",
            ),
        },
    ),
    Code(
        "E0303",
        "high-risk tool routed to an uncleared tier",
        """A workflow allows a tool whose risk is above what the model tier it routes
turns to is cleared for. A turn's risk is the highest risk among the workflow's
allowed tools; `route risk R -> tier T` picks the tier, and a tier is cleared for
`low` unless it says `clears risk medium` or `clears risk high`.""",
        {
            "uncleared": Form(
                "tool `{tool}` has risk `{risk}` but {where} runs its turns on tier `{tier}`, "
                "cleared for `{clearance}`",
                "tier not cleared",
                "route `risk {risk}` to a tier that `clears risk {risk}`, or add `clears risk {risk}` to tier `{tier}`",
            ),
        },
    ),
    Code(
        "E0304",
        "high-risk tool in shadow mode",
        """`policy shadow` records would-be denials without blocking the harmless ones: a
call `policy enforce` would deny still runs (recorded `shadow_deny`) when its tool is
`read_only` and within the clearance of the workflow's turn tier; a state-changing or
over-clearance call is denied for real (`shadow.not_read_only`, `shadow.over_clearance`).
A workflow that can reach a `risk high` tool must run `policy enforce`: its would-be
denials are the ones that matter.

What a shadow workflow can reach: the tools it allows, the tools its steps call and their
compensations, and, since a would-be-denied call still runs in shadow mode when its tool is
`read_only` and within the clearance of the tier the turns run on, every such read-only
tool, listed or not.""",
        {
            "shadow": Form(
                "{where} can reach high-risk tool `{tool}` in shadow mode",
                "would-be denials of read-only tools still run",
                "run it with `policy enforce`",
            ),
        },
    ),
    Code(
        "E0305",
        "secret read outside its identity",
        """A tool reads a secret (`{secret.NAME}` in a header) that its identity (`as
NAME`) does not hold, or the tool has no identity at all. Tools only ever receive the
secrets of the identity they run as.""",
        {
            "not-held": Form(
                "{where} reads secret `{secret}` but its identity `{identity}` does not hold it",
                "secret not held",
                "run the tool `as` an identity that holds `{secret}`",
            ),
            "no-identity": Form(
                "{where} reads secret `{secret}` but runs as no identity",
                "secret not held",
                "run the tool `as` an identity that holds `{secret}`",
            ),
            "holder": Form("", "", "run it `as {holder}`, which holds `{secret}`"),
        },
    ),
    Code(
        "E0306",
        "header the runtime or the platform reserves",
        """A header the spec names is one the runtime or the platform already gives a
meaning to. The tenant or session-affinity header cannot be `authorization` (the runtime
reads the caller's bearer token there), `host`, `cookie`, a `cf-*` header or a hop-by-hop
header. A tool header cannot be `idempotency-key` or `content-type` (the runtime sets them
after the spec's headers, so the spec's value would be lost) nor a header fetch does not
let a Worker set (`host`, `content-length`, hop-by-hop headers).""",
        {
            "request": Form(
                "the {what} header cannot be `{header}`, which the runtime or the platform reserves",
                "reserved header",
                'pick a header of its own, such as `"x-tenant-id"`',
            ),
            "tool": Form(
                "tool `{tool}` cannot set header `{header}`, which the runtime sets or fetch forbids",
                "reserved header",
                "remove it; the runtime sends `idempotency-key` from the tool's `idempotency key`",
            ),
        },
    ),
    Code(
        "E0307",
        "identity holding the agent's own credentials",
        """An identity holds the secret named by `auth` (the map of callers' tokens, or the
admin secret) or by `audit sign with secret` (the signing key). Tools receive the secrets of
the identity they run as, so a tool could send every caller's token, the admin secret or the
key that signs the audit log to a remote service. Keep the agent's own secrets out of
identities.""",
        {
            "auth": Form(
                "identity `{identity}` holds `{secret}`, the agent's {what}",
                "auth secret in an identity",
                "remove `{secret}` from the identity; give tools secrets of their own",
            ),
        },
    ),
    Code(
        "E0309",
        "one secret in two of the agent's roles",
        """`audit sign with secret NAME` names the secret that holds the agent's signing key
(docs/runtime.md, "Signed chain heads"), and `auth` already names that secret as the token
map or the admin secret. A token map is JSON and a signing key is not; and whoever holds the
admin token would hold the key that vouches for the audit log. Give the key its own secret.""",
        {
            "shared": Form(
                "secret `{secret}` is already the agent's {other}; it cannot also be its signing key",
                "already used by `auth`",
                "sign with a secret of its own, e.g. `audit sign with secret AUDIT_SIGNING_KEY`",
            ),
        },
    ),
    Code(
        "W0308",
        "secret sent over plain http",
        """A tool whose URL is `http://` sends a header that reads a secret: the secret
crosses the network unencrypted. Use `https://` (a loopback address in tests is the usual
exception, hence a warning).""",
        {
            "plain-http": Form(
                "tool `{tool}` sends secret `{secret}` over plain http",
                "not encrypted",
                "use an `https://` URL",
            ),
        },
    ),
    Code(
        "E0401",
        "checkpoint cadence below 1",
        """`checkpoint every N turns` needs a whole number N of at least 1.""",
        {
            "cadence": Form("checkpoint cadence must be a whole number of at least 1, found `{text}`", "out of range"),
        },
    ),
    Code(
        "E0402",
        "persisted state without PII masking",
        """A workflow keeps conversation state, summaries and decision records, so it
must declare which personal data is masked before anything is persisted:

    pii mask [email, phone, card] before persist""",
        {
            "no-mask": Form(
                "{where} persists conversation state without PII masking",
                "nothing masked",
                "add `pii mask [email, phone, card] before persist`",
            ),
        },
    ),
    Code(
        "E0403",
        "checkpoint without a KV store",
        """Checkpoint summaries are written to a KV namespace. Declare one with
`store kv summaries` and, when there are several, name it: `... into summaries`.""",
        {
            "r2": Form(
                "store `{store}` is an R2 bucket, but checkpoint summaries go to a KV namespace",
                "not a KV store",
                "declare `store kv summaries` and checkpoint `into summaries`",
            ),
            "no-kv": Form(
                "{where} checkpoints, but the agent declares no KV store",
                "no KV store",
                "declare one: `store kv summaries`",
            ),
            "which-kv": Form(
                "{where} checkpoints, but which of {count} KV stores?", "store not named", "name it: `... into {first}`"
            ),
        },
    ),
    Code(
        "E0404",
        "unknown PII class",
        """`pii mask [...]` accepts the built-in classes `email`, `phone`, `card`,
`ip`, `iban` and the names of the workflow's own `pii pattern` detectors.""",
        {
            "unknown": Form("unknown PII class `{name}`", "unknown class", "built-in classes are {builtins}"),
        },
    ),
    Code(
        "E0405",
        "invalid PII pattern",
        """A `pii pattern NAME "regex"` is not a regular expression the runtime's engine
(JavaScript, `new RegExp(source, "g")`) reads as written. The checker reads patterns with
ECMAScript semantics (the `regress` library, which the workbench's preview uses too), and
refuses what JavaScript rejects or reads differently from what a Python reader expects:
look-behind, inline flags (`(?i)`), atomic groups `(?>...)`, conditionals `(?(1)...)`,
possessive quantifiers (`a++`), `\\A`/`\\Z`, and `{,6}` (literal text in JavaScript, "at
most six" in Python). A pattern that matches the empty string would mask nothing.""",
        {
            "invalid": Form(
                "PII pattern `{name}` {problem}",
                "invalid pattern",
                "use a regular expression both Python and JavaScript accept",
            ),
        },
    ),
    Code(
        "E0406",
        "index fed with less PII masking than its readers",
        """An index holds the artifacts every workflow that writes its store has kept, each masked by
that workflow's `pii mask`; every workflow that may search the index (`indexes allow`, or a
`search` step) then reads them. A writer that masks fewer classes than a reader would put
into the index what the reader promises never to keep. Every writer of an indexed store must
mask at least every class (and the same `pii pattern`s) each of the index's readers masks.

    workflow intake class docs  { ... stores write [artifacts]  pii mask [email, phone] before persist }
    workflow research class docs { ... indexes allow [library]  pii mask [email, phone] before persist }""",
        {
            "weaker": Form(
                "{writer} keeps artifacts in `{store}`, indexed by `{index}`, without masking `{cls}`, "
                "which {reader} masks",
                "masks less than the index's readers",
                "add `{cls}` to this `pii mask`",
            ),
        },
    ),
    Code(
        "E0407",
        "artifacts kept outside an R2 store",
        """Artifacts are documents: they are written to an R2 bucket (content-addressed, under the
tenant's prefix), and an index reads the artifacts of an R2 store. A KV namespace holds
checkpoint summaries, not artifacts.

    store r2 artifacts
    tool fetch_document { ... artifact in artifacts field text show [url, title] }
    index library over artifacts { keyword }""",
        {
            "artifact": Form(
                "tool `{tool}` keeps its artifacts in `{store}`, a KV namespace",
                "not an R2 store",
                "declare `store r2 {store}` or name an R2 store",
            ),
            "index": Form(
                "index `{index}` is over `{store}`, a KV namespace", "not an R2 store", "index an R2 store's artifacts"
            ),
            "write": Form(
                "{where} writes `{store}`, a KV namespace, in `stores write`",
                "not an R2 store",
                "`stores write` lists the R2 stores the workflow keeps artifacts in",
            ),
        },
    ),
    Code(
        "E0408",
        "semantic index without an embedding tier",
        """`semantic with tier T` embeds every artifact and every query with the models of tier T,
tried in order as any tier's. Those models must be embedding models the target knows (the
vector index is created with their dimension), all of one dimension (a fallback writing
vectors of another size could not be searched with the first), and the tier serves
embeddings only: a chat route, an `infer` step or a checkpoint on it would ask an
embedding model to write text.

    model tier embed { primary "@cf/baai/bge-base-en-v1.5" }
    index library over artifacts { keyword semantic with tier embed }""",
        {
            "model": Form(
                "model `{model}` of tier `{tier}` is not an embedding model agentspec knows",
                "not an embedding model",
                "known embedding models: {known}",
            ),
            "dimensions": Form(
                "the models of tier `{tier}` embed in different dimensions ({dims})",
                "mixed dimensions",
                "keep one dimension in an embedding tier's chain",
            ),
            "chat": Form(
                "tier `{tier}` embeds for index `{index}` and is also used by {use}",
                "embedding tier",
                "declare a separate tier for embeddings",
            ),
        },
    ),
    Code(
        "E0409",
        "artifact store the workflow may not write",
        """A tool that keeps its result as an artifact writes to a store. A workflow that can call
the tool (from a turn or a step) must say so with `stores write [STORE]`: which buckets a
workflow writes is part of what a reviewer reads off the spec.

    workflow research class research {
      tools allow [fetch_document]
      stores write [artifacts]
      ...
    }""",
        {
            "not-listed": Form(
                "{where} can call tool `{tool}`, which keeps artifacts in `{store}`, but does not list it in "
                "`stores write`",
                "writes `{store}`",
                "add `stores write [{store}]`",
            ),
        },
    ),
    Code(
        "W0501",
        "latency SLO cannot hold in the worst case",
        """The worst case of a workflow's steps (each step's timeout times its
attempts, plus the backoff delays between attempts) exceeds the latency SLO. The
warning shows the arithmetic; lower retries or timeouts, or relax the SLO.""",
        {
            "latency": Form(
                "latency SLO of {where} cannot hold in the worst case ({worst} > {bound})",
                "worst case exceeds this",
                "lower retries or timeouts, or relax the bound",
            ),
        },
    ),
    Code(
        "W0502",
        "cost SLO cannot hold at the declared prices",
        """The declared tokens per task, priced at the tier's declared price per
million tokens, cost more than `cost per task` allows. The warning shows the
arithmetic for the tier the workflow routes turns to.""",
        {
            "cost": Form(
                "cost SLO of {where} cannot hold at tier `{tier}` prices",
                "costs more than this",
                "route to a cheaper tier, expect fewer tokens, or relax the bound",
            ),
        },
    ),
    Code(
        "W0503",
        "read-only tool with a writing method",
        """A tool marked `read_only` is called with `POST`, `PUT`, `PATCH` or `DELETE`,
methods that usually change something. `read_only` exempts a tool from idempotency keys
and compensation; if the call does change state, retries would repeat it. Drop
`read_only` and give the tool a key, or keep it if the endpoint truly only reads (a
search API behind POST, say).""",
        {
            "method": Form(
                "tool `{tool}` is `read_only` but calls `{method}`",
                "a writing method",
                "drop `read_only` and give it an `idempotency key`, unless the endpoint only reads",
            ),
        },
    ),
    Code(
        "W0504",
        "retry count beyond reason",
        """A step retries more than 100 times, or its backoff schedule adds up to more than
the 365 days a Workflow may even sleep. A service that failed that often will not answer
the next attempt; the step would hold its task open for nothing. Lower the count.""",
        {
            "retries": Form(
                "step `{step}` retries {retries} times, with backoff totalling {backoff}",
                "beyond reason",
                "retry at most {most} times, with a backoff that ends within the task's lifetime",
            ),
        },
    ),
    Code(
        "E0601",
        "wrong unit",
        """A value has no unit, or the wrong one, for where it stands: `timeout 30`
(a duration is needed: `30s`), `success >= 99.5` (a percentage: `99.5%`),
`cost per task < 0.02` (money: `$0.02`).""",
        {
            "unit": Form(
                "{what} needs {expected}, found `{text}`", "expected {kind}", "write the unit, for example `{example}`"
            ),
        },
    ),
    Code(
        "E0602",
        "value out of range",
        """A value has the right unit but cannot be meant: a percentage above 100%, a
negative or zero duration, a fractional retry count, a negative price.""",
        {
            "too-large": Form("{what} `{text}` is too large", "out of range"),
            "not-positive": Form("{what} must be longer than zero, found `{text}`", "not positive"),
            "percent": Form("{what} must be between 0% and 100%, found `{text}`", "out of range"),
            "whole": Form("{what} must be a whole number of at least {minimum}, found `{text}`", "out of range"),
            "empty-model": Form("a model name cannot be empty", "empty"),
            "negative-price": Form("a price cannot be negative, found `{text}`", "negative"),
            "response-size": Form("a response size limit must be above zero", "not positive"),
            "direction": Form(
                "this bound points the wrong way: use {right}",
                "wrong direction",
                "latency, ttft, cost and denied are ceilings; success and cache hit are floors",
            ),
            "percentile": Form("percentile `{text}` must be between p0 and p100", "out of range"),
            "cost": Form("a cost bound must be above zero", "not positive"),
        },
    ),
    Code(
        "E0603",
        "value the platform rejects",
        """Cloudflare would refuse the generated project: a workflow or step name that
cannot become a Workflow binding or instance-id prefix (64 characters, letters,
digits, `-` and `_`), a tool response larger than a Workflow step result may be
(1 MiB), a duration in fractions of a millisecond, a sleep longer than 365 days, an event
type Workflows do not accept, an R2 store whose bucket (`<worker>-<store>`) is not a valid
bucket name, a task workflow whose Workflow (`<worker>-<workflow>`) is over 64 characters.""",
        {
            "fraction-ms": Form(
                "{what} `{text}` is not a whole number of milliseconds",
                "fraction of a millisecond",
                "Workflows take durations in whole milliseconds",
            ),
            "workflow-name": Form(
                "workflow name `{name}` is {length} characters; its instance ids would exceed Cloudflare's {limit}",
                "name too long",
                "use at most {most} characters",
            ),
            "step-name": Form("a step name is limited to {limit} characters", "too long"),
            "step-result": Form(
                "{where} returns the result of `{tool}`, up to `{size}`, "
                "above the 1 MiB limit of a Workflow step result",
                "result too large",
                "lower `max response` of `{tool}` to `1MiB` or less",
            ),
            "sleep": Form("{where} sleeps longer than the 365 days a Workflow may sleep", "too long"),
            "bucket": Form(
                "store `{store}` would be the R2 bucket `{bucket}`, which is not a valid bucket name",
                "not a bucket name",
                "bucket names are 3-63 lowercase letters, digits and `-`, starting and ending with a letter or digit",
            ),
            "workflow-resource": Form(
                "workflow `{name}` would be the Workflow `{resource}`, {length} characters, over Cloudflare's {limit}",
                "name too long",
                "shorten the workflow's or the agent's name",
            ),
            "event": Form(
                "event type `{event}` is not one Workflows accept",
                "bad event type",
                "use letters, digits, `_`, `-` and `.`, at most 100",
            ),
        },
    ),
    Code(
        "E0604",
        "placeholder that names nothing",
        """A `{name}` placeholder names nothing it can read there: placeholders in a tool
URL must be declared `args`; idempotency key templates may use `{session}`,
`{workflow}` and `{args.NAME}`; header values may only read `{secret.NAME}`; step
argument templates may use `{params.NAME}` and `{STEP.FIELD}` of an earlier step.

Renamed: in agentspec 0.1.0, E0604 covered every mistake in a URL or template; it now
names this one only, and the others have codes of their own: E0605 (URL not absolute
http/https), E0606 (credentials in a URL), E0607 (placeholder in a URL's host), E0608
(constant idempotency key), E0609 (not a header name), E0610 (not a host name),
E0611 (argument the tool does not take), E0612 (required argument not given).""",
        {
            "key": Form(
                "idempotency key of {where} uses unknown `{{{placeholder}}}`",
                "unknown placeholder",
                "use `{{session}}`, `{{workflow}}` or `{{args.NAME}}` with NAME one of its `args`",
            ),
            "url": Form(
                "the URL of {where} uses `{{{placeholder}}}`, which is not among its `args`",
                "undeclared placeholder",
                "declare it: `args {{ {placeholder}: string }}`",
            ),
            "header": Form(
                "header `{header}` of {where} uses `{{{placeholder}}}`",
                "unknown placeholder",
                "headers may only read secrets, as `{{secret.NAME}}`",
            ),
            "step-field": Form(
                "{where} uses `{{{placeholder}}}`, but step `{step}` returns no `{field}`",
                "unknown field",
                "step `{step}` returns {fields}",
            ),
            "step": Form(
                "{where} uses `{{{placeholder}}}`, which names no parameter or earlier step",
                "unknown placeholder",
                "use one of {known}",
            ),
        },
    ),
    Code(
        "E0605",
        "URL not absolute http or https",
        """A tool URL or alert webhook must be an absolute `http` or `https` URL with a
host: `"https://billing.example.com/v1/refunds"`. (E0604 in agentspec 0.1.0.)""",
        {
            "not-absolute": Form(
                "{what} must be an absolute http or https URL, found `{text}`",
                "not an absolute URL",
                'write it as `"https://host.example.com/path"`',
            ),
        },
    ),
    Code(
        "E0606",
        "credentials in a URL",
        """A URL carries a user name or password (`https://user:pw@host/`). They would
sit in the policy tables and the generated code in the clear; send credentials in a
header that reads a secret instead. (E0604 in agentspec 0.1.0.)""",
        {
            "credentials": Form(
                "{what} must not carry credentials",
                "credentials in the URL",
                "send credentials in a header that reads a secret",
            ),
        },
    ),
    Code(
        "E0607",
        "placeholder in a URL's host",
        """A URL's host is a `{placeholder}`. The outbound allowlist checks fixed hosts;
a host chosen by an argument could be any host. (E0604 in agentspec 0.1.0.)""",
        {
            "host": Form(
                "the host of {what} cannot be a placeholder",
                "placeholder in the host",
                "a fixed host is what the outbound allowlist can check",
            ),
        },
    ),
    Code(
        "E0608",
        "constant idempotency key",
        """An `idempotency key` without placeholders is the same for every call, so the
remote service would treat every call after the first as a repeat and drop it. Build it
from the session and an argument that identifies the change, such as
`idempotency key "{session}:{args.order_id}"`. (E0604 in agentspec 0.1.0.)""",
        {
            "constant": Form(
                "idempotency key of {where} is the same for every call",
                "constant key",
                "include `{{session}}` and an argument: {example}",
            ),
        },
    ),
    Code(
        "E0609",
        "not a header name",
        """A tool header, the tenant header or a session-affinity header is not an HTTP
header name this language accepts: letters, digits and `-`. (E0604 in agentspec 0.1.0.)""",
        {
            "header": Form(
                "`{name}` is not an HTTP header name",
                "not a header name",
                "header names are letters, digits and `-`, such as `x-session-affinity`",
            ),
        },
    ),
    Code(
        "E0610",
        "not a host name",
        """An entry of `outbound allow` is not a host: list host names (optionally with a
port) such as `"billing.example.com"` or `"[::1]:8787"`, without scheme or path.
(E0604 in agentspec 0.1.0.)""",
        {
            "host": Form(
                "`{host}` is not a host name",
                "not a host",
                'list host names such as `"billing.example.com"`, without scheme or path',
            ),
        },
    ),
    Code(
        "E0611",
        "argument the tool does not take",
        """A `call TOOL { NAME: "..." }` step passes an argument the tool does not
declare in its `args`; the runtime would drop it. (E0604 in agentspec 0.1.0.)""",
        {
            "unknown": Form("tool `{tool}` has no argument `{arg}`", "unknown argument"),
        },
    ),
    Code(
        "E0612",
        "required argument not given",
        """A `call TOOL { ... }` step leaves out an argument the tool requires (declared
without `?`); every run of the step would fail at its first attempt. (E0604 in agentspec 0.1.0.)""",
        {
            "missing": Form(
                "{where} does not give `{arg}`, which tool `{tool}` requires",
                "missing argument",
                'add `{arg}: "{{params.{arg}}}"`',
            ),
        },
    ),
    Code(
        "E0613",
        "names that collide after code generation",
        """Two names the spec keeps apart fold to one generated name: store bindings are
upper case (`summaries` and `Summaries` are both `SUMMARIES`), task workflows become a
class (`refund_flow` and `refundFlow` are both `RefundFlowWorkflow`), a binding `WF_NAME`
and a Workflow `<worker>-name`. A store or workflow binding may also not take a binding
the runtime uses itself (`SESSION`, `AI`, `AGENTSPEC_SPEC_HASH`, `INFERENCE_URL`,
`TOOL_ORIGINS`) or a secret's name, since secrets are bindings too.""",
        {
            "binding": Form(
                "{what} would be the binding `{generated}`, already {other}",
                "collides in `env`",
                "rename it so its binding is its own",
            ),
            "generated": Form(
                "{what} would be the {kind} `{generated}`, like {other}",
                "collides after code generation",
                "rename one of them: generated names fold case and `_`",
            ),
        },
    ),
    Code(
        "E0614",
        "name JavaScript objects already have",
        """The runtime keeps tools, arguments, steps and result fields as keys of plain
JavaScript objects, where `constructor`, `__proto__`, `toString` and the other members
of `Object.prototype` already exist. A spec name equal to one would read the prototype's
member instead of the spec's value, so the checker refuses these names everywhere.""",
        {
            "name": Form(
                "{kind} `{name}` is a name JavaScript objects already have",
                "reserved by JavaScript",
                "rename it, for example `{name}_`",
            ),
            "param": Form(
                "`{{{placeholder}}}` reads a parameter JavaScript objects already have",
                "reserved by JavaScript",
                "name the parameter something else",
            ),
        },
    ),
    Code(
        "E0615",
        "host the runtime reads differently",
        """A host in a tool URL, webhook or `outbound allow` is written in a form the runtime's
URL parser (WHATWG, `new URL()`) rewrites while Python's keeps it as written: an IPv4
address as one number (`2130706433`), in hex or octal (`0x7f.0.0.1`, `0177.0.0.1`) or
with fewer parts (`127.1`); an IPv6 address not in its shortest form (`[0:0::1]` for
`[::1]`); characters a host name cannot hold. The checker, the Python evaluator and the
runtime would then disagree about which host a call goes to. Write the form the runtime
writes, which the help line gives.""",
        {
            "url": Form(
                "the host `{host}` of {what} {why}",
                "read differently by the runtime",
                "write the host as a name or a dotted-decimal IPv4 or shortest IPv6 address",
            ),
            "entry": Form(
                "`outbound allow` entry `{host}` {why}",
                "read differently by the runtime",
                "write the host as a name or a dotted-decimal IPv4 or shortest IPv6 address",
            ),
            "write": Form("", "", "write it as `{canonical}`"),
        },
    ),
]

CODES: dict[str, Code] = {c.code: c for c in _CODES}
