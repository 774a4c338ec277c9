"""The catalogue of diagnostic codes: code, one-line title, and the long text `agentspec explain` prints.

Codes never change meaning once published; a retired code stays here, marked retired.
E = error (the spec is not compiled), W = warning (compiled, but look at it).
"""

from __future__ import annotations

from typing import NamedTuple


class Code(NamedTuple):
    code: str
    title: str
    explanation: str


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
    ),
    Code(
        "E0007",
        "required clause missing",
        """A declaration lacks something it cannot work without: a tool needs an
endpoint (`GET "https://..."`) and a `risk`; a model tier needs a `primary` model;
an agent needs `auth` and `tenant` to serve requests.""",
    ),
    Code(
        "E0008",
        "option the step cannot use",
        """A step option that means nothing on that kind of step would be dropped without a
word: a `sleep` is neither retried nor timed out, and a `wait event` step is not
retried (its `timeout` is how long it waits for the event).

    step hold = sleep 4h                                  // no options
    step approval = wait event "payment.approved" timeout 1h""",
    ),
    Code(
        "E0101",
        "duplicate name",
        """Two declarations of the same kind share a name (two tools `lookup_order`,
two steps `verify` in one workflow). Names are unique per kind across an agent and
everything it imports.""",
    ),
    Code(
        "E0102",
        "name not declared",
        """A tool, model tier, identity, store or step is referenced but not declared.
The help line suggests the nearest declared name.

    tools allow [lookup_order, issue_refnd]   // did you mean `issue_refund`?""",
    ),
    Code(
        "E0103",
        "secret not declared",
        """A secret is read (in a tool header such as `"Bearer {secret.BILLING_API_KEY}"`)
but no identity holds it and `auth` does not name it. Declare it on an identity:

    identity billing_writer { secrets [BILLING_API_KEY] }""",
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
    ),
    Code(
        "E0202",
        "compensating tool not idempotent",
        """A tool named by `compensate` runs during rollback, which may itself be
retried. It must declare an `idempotency key` so a compensation never runs twice.""",
    ),
    Code(
        "E0203",
        "compensation cycle",
        """Following `compensate` from tool to tool comes back to where it started
(a compensates b, b compensates a). Rollback would never end; break the cycle.""",
    ),
    Code(
        "E0204",
        "read-only tool with side-effect clauses",
        """A `read_only` tool declares a compensating action or an idempotency key,
which only mean something for a tool that changes state. Drop `read_only` or the
other clause.""",
    ),
    Code(
        "E0301",
        "host not in the outbound allowlist",
        """A tool reachable from a workflow (allowed or called by a step), or the SLO
alert webhook, sends requests to a host that the workflow's `outbound allow` list
does not contain. The runtime's guarded fetch would block every call; add the host
or remove the tool.""",
    ),
    Code(
        "E0302",
        "tool not in the tool allowlist",
        """A step calls a tool that is not in its workflow's `tools allow` list. Every
tool a workflow may use, from the agent loop or a step, must be listed.""",
    ),
    Code(
        "E0303",
        "high-risk tool routed to an uncleared tier",
        """A workflow allows a tool whose risk is above what the model tier it routes
turns to is cleared for. A turn's risk is the highest risk among the workflow's
allowed tools; `route risk R -> tier T` picks the tier, and a tier is cleared for
`low` unless it says `clears risk medium` or `clears risk high`.""",
    ),
    Code(
        "E0304",
        "high-risk tool in shadow mode",
        """`policy shadow` records would-be denials without blocking the harmless ones: a
call `policy enforce` would deny still runs (recorded `shadow_deny`) when its tool is
`read_only` and within the clearance of the workflow's turn tier; a state-changing or
over-clearance call is denied for real (`shadow.not_read_only`, `shadow.over_clearance`).
A workflow that can reach a `risk high` tool must run `policy enforce`: its would-be
denials are the ones that matter.""",
    ),
    Code(
        "E0305",
        "secret read outside its identity",
        """A tool reads a secret (`{secret.NAME}` in a header) that its identity (`as
NAME`) does not hold, or the tool has no identity at all. Tools only ever receive the
secrets of the identity they run as.""",
    ),
    Code(
        "E0401",
        "checkpoint cadence below 1",
        """`checkpoint every N turns` needs a whole number N of at least 1.""",
    ),
    Code(
        "E0402",
        "persisted state without PII masking",
        """A workflow keeps conversation state, summaries and decision records, so it
must declare which personal data is masked before anything is persisted:

    pii mask [email, phone, card] before persist""",
    ),
    Code(
        "E0403",
        "checkpoint without a KV store",
        """Checkpoint summaries are written to a KV namespace. Declare one with
`store kv summaries` and, when there are several, name it: `... into summaries`.""",
    ),
    Code(
        "E0404",
        "unknown PII class",
        """`pii mask [...]` accepts the built-in classes `email`, `phone`, `card`,
`ip`, `iban` and the names of the workflow's own `pii pattern` detectors.""",
    ),
    Code(
        "E0405",
        "invalid PII pattern",
        """A `pii pattern NAME "regex"` is not a regular expression that both Python
and JavaScript accept (no look-behind, no inline flags, no possessive quantifiers).""",
    ),
    Code(
        "W0501",
        "latency SLO cannot hold in the worst case",
        """The worst case of a workflow's steps (each step's timeout times its
attempts, plus the backoff delays between attempts) exceeds the latency SLO. The
warning shows the arithmetic; lower retries or timeouts, or relax the SLO.""",
    ),
    Code(
        "W0502",
        "cost SLO cannot hold at the declared prices",
        """The declared tokens per task, priced at the tier's declared price per
million tokens, cost more than `cost per task` allows. The warning shows the
arithmetic for the tier the workflow routes turns to.""",
    ),
    Code(
        "E0601",
        "wrong unit",
        """A value has no unit, or the wrong one, for where it stands: `timeout 30`
(a duration is needed: `30s`), `success >= 99.5` (a percentage: `99.5%`),
`cost per task < 0.02` (money: `$0.02`).""",
    ),
    Code(
        "E0602",
        "value out of range",
        """A value has the right unit but cannot be meant: a percentage above 100%, a
negative or zero duration, a fractional retry count, a negative price.""",
    ),
    Code(
        "E0603",
        "value the platform rejects",
        """Cloudflare would refuse the generated project: a workflow or step name that
cannot become a Workflow binding or instance-id prefix (64 characters, letters,
digits, `-` and `_`), a tool response larger than a Workflow step result may be
(1 MiB), a duration in fractions of a millisecond, a sleep longer than 365 days, an event
type Workflows do not accept.""",
    ),
    Code(
        "E0604",
        "bad URL or template",
        """A tool URL must be absolute `http` or `https`; placeholders `{name}` in a URL
must be declared `args`; idempotency key templates may use `{session}`,
`{workflow}` and `{args.NAME}`; step argument templates may use `{params.NAME}` and
`{STEP.FIELD}` of an earlier step.""",
    ),
]

CODES: dict[str, Code] = {c.code: c for c in _CODES}
