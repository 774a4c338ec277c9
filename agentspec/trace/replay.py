"""`agentspec trace replay`: recorded decisions re-evaluated by the Python evaluator. A pulled fleet export (or one
pulled session) in; out, per decision key, whether the policy the runtime reported still gives the recorded
verdict (**drift** when it does not) and, with a candidate spec, which recorded decisions it would decide otherwise
(**flips**), grouped by workflow, tool and rule with a count and one example record each.

Chains are verified first (`agentspec.trace.fleet.chains_of`, `agentspec.trace.verify`): a broken chain is
reported before any replay result and none of its records are replayed; a chain with records still missing (in
the queue, or removed) cannot be judged and is not replayed either.

What is re-evaluated (docs/replay.md):

- `tool.call:TOOL` records, except the runtime's per-answer and per-turn caps (`tool.limit.*`, constants of the
  runtime, not of the policy): `evaluate_tool_call(policy, workflow, TOOL)`. The runtime passes no URL (the tool's
  declared URL is decided), so neither does this. In a task's chain a compensation `Y` of step tool `X` is decided
  as `X` (task.ts `invoke(..., decidedAs)`); its intent reads `compensate X with Y`.
- `model.route:TIER` records: the workflow's turn tier and turn risk (`route.risk.RISK`).
- Everything else (`tool.result`, `model.fallback`, checkpoints, alerts, ...) is an outcome of the world, not a
  decision of the policy: counted, not re-evaluated.

The reported policy is the `policy.json` a runtime answers at `GET /v1/policy`; `trace pull --all --url` keeps one
per spec hash under `DIR/policies/`, and `--policy FILE` adds more. A record is checked against the policy of its
own `spec_hash`.

Exit codes: 0 no drift (and, with `--fail-on flips`, no flip); 1 drift, a broken chain, records whose spec hash
has no reported policy, or a flip under `--fail-on flips`; 2 bad input (an unreadable or truncated export, another
export schema, a candidate spec that does not check).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentspec.trace.fleet import (
    CHAINS_FILE,
    EXPORT_SCHEMA,
    POLICIES_DIR,
    ChainCheck,
    ChainTally,
    ExportError,
    chains_of,
    export_files,
)

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


_COMPENSATE = re.compile(r"^compensate (\S+) with \S+$")


class ReplayInputError(RuntimeError):
    """The input cannot be replayed (unreadable, truncated, another schema, a candidate that does not check)."""


# ── the decision keys ─────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Key:
    """Everything a re-evaluated decision depends on, and what was recorded for it. Decisions with one key are
    evaluated once: `evaluate_tool_call` and the route rule are pure functions of (policy, workflow, tool), and
    the policy is fixed by `spec_hash` (a reported policy) or by the candidate."""

    spec_hash: str
    workflow: str
    kind: str  # "tool" | "route"
    target: str  # the tool called, or the tier routed to
    decided_as: str  # the tool the policy decides (a compensation is decided as the call it undoes)
    decision: str
    rule: str


@dataclass(frozen=True)
class Example:
    tenant: str
    session: str
    seq: int
    ts: str
    intent: str
    action: str
    decision: str
    rule: str

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "session": self.session,
            "seq": self.seq,
            "ts": self.ts,
            "intent": self.intent,
            "action": self.action,
            "decision": self.decision,
            "rule": self.rule,
        }


@dataclass(frozen=True)
class Group:
    key: Key
    count: int
    example: Example


@dataclass(frozen=True)
class Recorded(ChainTally):
    """What a source holds: the grouped decisions of every replayable chain, the chains, and the outcome count."""

    source: str
    groups: tuple[Group, ...]
    outcomes: int
    chains: tuple[ChainCheck, ...]
    policies: Mapping[str, Mapping[str, Any]]

    @property
    def decisions(self) -> int:
        return sum(g.count for g in self.groups)


# ── verdicts ──────────────────────────────────────────────────────────────────


Verdict = tuple[str, str, str]  # decision, rule, target


def evaluate(policy: Mapping[str, Any], key: Key) -> Verdict:
    """What `policy` decides for a decision of this key, as (decision, rule, target)."""
    from agentspec.policy import evaluate_tool_call

    if key.kind == "tool":
        v = evaluate_tool_call(policy, key.workflow, key.decided_as)  # type: ignore[arg-type]
        return v["decision"], v["rule"], key.target
    wf = policy["workflows"].get(key.workflow)
    if wf is None:
        return "deny", "workflow.unknown", ""
    return "allow", f"route.risk.{wf['turn_risk']}", str(wf["turn_tier"])


def recorded(key: Key) -> Verdict:
    return key.decision, key.rule, key.target


@dataclass(frozen=True)
class Change:
    """Recorded decisions that `policy` decides otherwise, grouped by workflow, tool (or tier) and rule."""

    workflow: str
    kind: str
    target: str
    was: Verdict
    now: Verdict
    count: int
    example: Example

    def as_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "kind": self.kind,
            self.kind if self.kind == "tool" else "tier": self.target,
            "recorded": {"decision": self.was[0], "rule": self.was[1], "target": self.was[2]},
            "now": {"decision": self.now[0], "rule": self.now[1], "target": self.now[2]},
            "count": self.count,
            "example": self.example.as_json(),
        }


def changes(groups: Iterable[Group], policy_of: Any) -> list[Change]:
    """Every group whose verdict under `policy_of(key)` (a policy, or None: not checked) differs from the
    recorded one, merged by (workflow, kind, target, recorded verdict, new verdict), in a stable order."""
    merged: dict[tuple[str, str, str, Verdict, Verdict], tuple[int, Example]] = {}
    cache: dict[tuple[int, Key], Verdict] = {}
    for g in groups:
        policy = policy_of(g.key)
        if policy is None:
            continue
        memo = (id(policy), g.key)
        now = cache.get(memo)
        if now is None:
            now = cache[memo] = evaluate(policy, g.key)
        was = recorded(g.key)
        if now == was:
            continue
        k = (g.key.workflow, g.key.kind, g.key.target, was, now)
        count, example = merged.get(k, (0, g.example))
        merged[k] = (count + g.count, min(example, g.example, key=_example_order))
    return [
        Change(wf, kind, target, was, now, count, example)
        for (wf, kind, target, was, now), (count, example) in sorted(merged.items(), key=lambda kv: kv[0])
    ]


def _example_order(e: Example) -> tuple[str, str, int]:
    return (e.tenant, e.session, e.seq)


# ── reading a source ──────────────────────────────────────────────────────────


def load_policy_file(path: Path) -> dict[str, Any]:
    """A `policy.json` (what `GET /v1/policy` answers): validated against the policy schema, as a dict."""
    from pydantic import ValidationError

    from agentspec.policy_schema import load_policy

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayInputError(f"cannot read policy `{path}`: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        data = json.loads(text)
        checked = dict(data) if isinstance(data, dict) else data
        audit = checked.get("audit") if isinstance(checked, dict) else None
        if isinstance(audit, dict):
            # With signing on, the runtime reports the public key beside the secret's name (worker.ts
            # `policyTables`): not part of policy.json, and nothing a decision reads.
            checked["audit"] = {k: v for k, v in audit.items() if k == "signing_secret"}
        load_policy(checked)
    except ValueError as exc:  # JSON and pydantic ValidationError are both ValueErrors
        first = str(exc).splitlines()[:3] if not isinstance(exc, ValidationError) else [str(exc.errors()[0])]
        raise ReplayInputError(f"`{path}` is not a policy.json: {' '.join(first)}") from exc
    return dict(data)


def policies_in(root: Path) -> dict[str, dict[str, Any]]:
    """The reported policies kept under `root/policies/`, by spec hash."""
    out: dict[str, dict[str, Any]] = {}
    folder = root / POLICIES_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        policy = load_policy_file(path)
        out[str(policy["spec_hash"])] = policy
    return out


def load(path: str | Path, extra_policies: Sequence[Path] = ()) -> Recorded:
    """A pulled export directory or one pulled session's traces file, verified and grouped."""
    p = Path(path)
    if p.is_dir():
        recorded_ = _load_export(p)
    elif p.is_file():
        recorded_ = _load_session(p)
    else:
        raise ReplayInputError(f"`{p}` is neither an export directory nor a traces file")
    policies = dict(recorded_.policies)
    for extra in extra_policies:
        policy = load_policy_file(extra)
        policies[str(policy["spec_hash"])] = policy
    return Recorded(recorded_.source, recorded_.groups, recorded_.outcomes, recorded_.chains, policies)


def _load_session(path: Path) -> Recorded:
    from agentspec.trace import schema
    from agentspec.trace.verify import verify

    try:
        traces = schema.load(path)
    except OSError as exc:
        raise ReplayInputError(f"cannot read `{path}`: {exc.strerror or exc}") from exc
    except schema.SchemaError as exc:
        raise ReplayInputError(f"`{path}` is not a traces file: {exc}") from exc
    records = traces["records"]
    problems = tuple(verify(traces))
    first: Mapping[str, Any] = records[0] if records and isinstance(records[0], Mapping) else {}
    tenant, session = str(first.get("tenant", "")), str(first.get("session", ""))
    chain = ChainCheck(tenant, session, str(first.get("workflow", "")), len(records), problems)
    source = traces.get("source") or {}
    policies = policies_in(path.parent)
    if not chain.ok:
        return Recorded(str(path), (), 0, (chain,), policies)
    is_task = "task" in source or not any(r["action"].startswith("model.route:") for r in records)
    groups: dict[Key, tuple[int, Example]] = {}
    outcomes = 0
    for r in records:
        key = _key(r["spec_hash"], r["workflow"], r["action"], r["decision"], r["rule"], r["intent"], is_task)
        if key is None:
            outcomes += 1
            continue
        example = Example(r["tenant"], r["session"], r["seq"], r["ts"], r["intent"], r["action"], r["decision"],
                          r["rule"])  # fmt: skip
        count, ex = groups.get(key, (0, example))
        groups[key] = (count + 1, ex)
    grouped = tuple(Group(k, c, e) for k, (c, e) in groups.items())
    return Recorded(str(path), grouped, outcomes, (chain,), policies)


def _key(spec: str, workflow: str, action: str, decision: str, rule: str, intent: str, is_task: bool) -> Key | None:
    """The decision key of one record, or None for an outcome (not re-evaluated). Mirrors `_KEY_SQL`."""
    kind, _, target = action.partition(":")
    if kind == "tool.call" and not rule.startswith("tool.limit."):
        m = _COMPENSATE.match(intent) if is_task else None
        return Key(spec, workflow, "tool", target, m.group(1) if m else target, decision, rule)
    if kind == "model.route":
        return Key(spec, workflow, "route", target, "", decision, rule)
    return None


# The decision records are read once into DuckDB (in parallel, no Python loop over rows), then grouped by key:
# decisions with the same key are evaluated once (see `Key`).
_READ_SQL = """
CREATE TABLE d AS
SELECT schema, tenant, session, seq, data.spec_hash AS spec_hash, data.workflow AS workflow,
       data.action AS action, data.decision AS decision, data.rule AS rule, data.intent AS intent, data.ts AS ts
FROM read_json({glob}, format = 'newline_delimited',
               columns = {{schema: 'INTEGER', tenant: 'VARCHAR', session: 'VARCHAR', seq: 'BIGINT',
                          data: 'STRUCT(spec_hash VARCHAR, workflow VARCHAR, action VARCHAR, decision VARCHAR,
                                        rule VARCHAR, intent VARCHAR, ts VARCHAR)'}})
"""

# A batch the queue delivered twice holds the same events again: each (tenant, session, seq) is kept once (any
# copy: they are the same event). Only
# run when the rows outnumber the records the chain check counted (each chain's seqs, once), which they never do
# in an export without redeliveries; the sort it costs is then saved.
_DEDUP_SQL = """
CREATE OR REPLACE TABLE d AS
SELECT * FROM d QUALIFY row_number() OVER (PARTITION BY tenant, session, seq) = 1
"""

# A compensation `Y` of step tool `X` is decided as `X`; only a task's chain records one, and a task's chain is the
# one with no `model.route:` record (a session's every turn starts with one). Few rows have such an intent, so
# only their sessions are looked up.
_KEY_SQL = """
WITH c AS (
  SELECT *, split_part(action, ':', 1) AS kind, substr(action, strpos(action, ':') + 1) AS target,
         CASE WHEN starts_with(action, 'tool.call:') AND starts_with(intent, 'compensate ')
              THEN regexp_extract(intent, '^compensate (\\S+) with \\S+$', 1) END AS comp
  FROM d {where}
),
routed AS (
  SELECT DISTINCT tenant, session FROM d
  WHERE starts_with(action, 'model.route:')
    AND (tenant, session) IN (SELECT DISTINCT tenant, session FROM c WHERE comp IS NOT NULL AND comp <> '')
),
keyed AS (
  SELECT c.*, CASE WHEN comp IS NOT NULL AND comp <> '' AND r.session IS NULL THEN comp
                   WHEN kind = 'tool.call' THEN target ELSE '' END AS decided_as
  FROM c LEFT JOIN routed r ON c.tenant = r.tenant AND c.session = r.session AND c.comp IS NOT NULL
)
SELECT spec_hash, workflow, k, target, decided_as, decision, rule, count(*) AS n,
       arg_min({{'tenant': tenant, 'session': session, 'seq': seq, 'ts': ts, 'intent': intent}},
               (tenant, session, seq)) AS example
FROM (
  -- an outcome is only counted: its key is left empty, so all outcomes make one group per workflow
  SELECT spec_hash, workflow, tenant, session, seq, ts, intent,
         CASE WHEN kind = 'tool.call' AND NOT starts_with(rule, 'tool.limit.') THEN 'tool'
              WHEN kind = 'model.route' THEN 'route' ELSE 'outcome' END AS k,
         CASE WHEN k = 'outcome' THEN NULL ELSE target END AS target,
         CASE WHEN k = 'outcome' THEN NULL ELSE decided_as END AS decided_as,
         CASE WHEN k = 'outcome' THEN NULL ELSE decision END AS decision,
         CASE WHEN k = 'outcome' THEN NULL ELSE rule END AS rule
  FROM keyed
)
GROUP BY ALL
"""


def _load_export(root: Path) -> Recorded:
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - the workbench extra installs it
        raise ReplayInputError("replaying an export needs DuckDB: pip install 'agentspec[workbench]'") from exc
    files = export_files(root, "decisions")
    if not files:
        raise ReplayInputError(
            f"`{root}` holds no decision records (no `decisions/dt=*/workflow=*/*.ndjson`); "
            "pull an export with `agentspec trace pull --all`"
        )
    try:
        chains = chains_of(root)  # verified at pull time unless a decision file changed since
    except ExportError as exc:
        raise ReplayInputError(str(exc)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayInputError(f"cannot read the export under `{root}`: {exc}") from exc
    excluded = [(c.tenant, c.session) for c in chains if not c.ok]
    fingerprint = _fingerprint(root, excluded)
    indexed = _read_index(root, fingerprint)
    if indexed is not None:
        return Recorded(str(root), indexed[0], indexed[1], tuple(chains), policies_in(root))
    # No progress bar: it would print on standard output, into the report (and the JSON).
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")
        glob = "'" + str(root / "decisions" / "dt=*" / "workflow=*" / "*.ndjson").replace("'", "''") + "'"
        con.execute(_READ_SQL.format(glob=glob))
        bad = con.execute("SELECT 1 FROM d WHERE schema IS DISTINCT FROM ? LIMIT 1", [EXPORT_SCHEMA]).fetchone()
        if bad is not None:
            # Rare: read the schema column again, with file names, to say which file it is.
            found = con.execute(
                f"SELECT filename, schema FROM read_json({glob}, format = 'newline_delimited', filename = true, "
                "columns = {schema: 'INTEGER'}) WHERE schema IS DISTINCT FROM ? ORDER BY filename LIMIT 1",
                [EXPORT_SCHEMA],
            ).fetchone()
            where, schema = found if found is not None else ("an export file", None)
            raise ReplayInputError(
                f"`{where}` has export schema {schema!r}; this agentspec reads schema {EXPORT_SCHEMA}"
            )
        count = con.execute("SELECT count(*) FROM d").fetchone()
        if count is None or count[0] != sum(c.records for c in chains):
            con.execute(_DEDUP_SQL)
        where = ""
        if excluded:
            con.execute("CREATE TABLE excluded (tenant VARCHAR, session VARCHAR)")
            con.executemany("INSERT INTO excluded VALUES (?, ?)", excluded)
            where = "ANTI JOIN excluded x USING (tenant, session)"
        rows = con.execute(_KEY_SQL.format(where=where)).fetchall()
    except duckdb.Error as exc:
        message = str(exc).strip().splitlines()[0]
        hint = " (a truncated file?)" if "Malformed JSON" in message or "unexpected end" in message else ""
        raise ReplayInputError(f"the decision files under `{root}` cannot be read{hint}: {message}") from exc
    finally:
        con.close()
    groups: list[Group] = []
    outcomes = 0
    for spec, wf, kind, target, decided_as, decision, rule, n, ex in rows:
        if kind == "outcome":
            outcomes += int(n)
            continue
        action = f"{'tool.call' if kind == 'tool' else 'model.route'}:{target}"
        example = Example(ex["tenant"], ex["session"], int(ex["seq"]), ex["ts"] or "", ex["intent"] or "", action,
                          decision, rule)  # fmt: skip
        groups.append(Group(Key(spec or "", wf or "", kind, target, decided_as, decision, rule), int(n), example))
    groups.sort(key=lambda g: (g.key.workflow, g.key.kind, g.key.target, g.key.rule, g.key.decision, g.key.spec_hash))
    _write_index(root, fingerprint, groups, outcomes)
    return Recorded(str(root), tuple(groups), outcomes, tuple(chains), policies_in(root))


# The decision keys of an export do not depend on the policy they are replayed against: the first replay keeps
# them in INDEX_FILE, with the size and mtime of every decision file and the chains left out, and a later replay
# of the same files (another candidate, a CI re-run) reads the keys instead of every record. Any change to a
# decision file, or another verdict on a chain, makes the index stale and the records are read again.
INDEX_FILE = ".agentspec-replay.json"
_INDEX_FORMAT = 1


def _fingerprint(root: Path, excluded: list[tuple[str, str]]) -> dict[str, Any]:
    files = {}
    for p in export_files(root, "decisions"):
        st = p.stat()
        files[p.relative_to(root).as_posix()] = [st.st_size, st.st_mtime_ns]
    return {"format": _INDEX_FORMAT, "files": files, "excluded": sorted([list(x) for x in excluded])}


def _read_index(root: Path, fingerprint: dict[str, Any]) -> tuple[tuple[Group, ...], int] | None:
    try:
        body = json.loads((root / INDEX_FILE).read_text(encoding="utf-8"))
        if body["fingerprint"] != fingerprint:
            return None
        groups = tuple(Group(Key(**g["key"]), int(g["count"]), Example(**g["example"])) for g in body["groups"])
        return groups, int(body["outcomes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no index, or not one this agentspec wrote: read the records


def _write_index(root: Path, fingerprint: dict[str, Any], groups: Sequence[Group], outcomes: int) -> None:
    body = {
        "fingerprint": fingerprint,
        "outcomes": outcomes,
        "groups": [{"key": vars(g.key), "count": g.count, "example": g.example.as_json()} for g in groups],
    }
    tmp = root / f"{INDEX_FILE}.tmp"
    try:
        tmp.write_text(json.dumps(body, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, root / INDEX_FILE)
    except OSError:
        pass  # a read-only export: replayed all the same, only not indexed


# ── the report ────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Result:
    recorded: Recorded
    drift: list[Change]
    #: Decisions whose spec hash has no reported policy, by spec hash: drift was not checked for them.
    unchecked: dict[str, int]
    candidate: str | None = None
    candidate_hash: str | None = None
    flips: list[Change] = field(default_factory=list)

    @property
    def drifted(self) -> int:
        return sum(c.count for c in self.drift)

    @property
    def flipped(self) -> int:
        return sum(c.count for c in self.flips)

    def exit_code(self, fail_on_flips: bool) -> int:
        if self.recorded.broken or self.drift or self.unchecked:
            return EXIT_FAIL
        if fail_on_flips and self.flips:
            return EXIT_FAIL
        return EXIT_OK


def replay(rec: Recorded, candidate: Mapping[str, Any] | None = None, candidate_name: str | None = None) -> Result:
    """Drift against each record's reported policy; flips against `candidate` (policy tables) when given."""
    unchecked: dict[str, int] = {}
    for g in rec.groups:
        if g.key.spec_hash not in rec.policies:
            unchecked[g.key.spec_hash] = unchecked.get(g.key.spec_hash, 0) + g.count
    drift = changes(rec.groups, lambda k: rec.policies.get(k.spec_hash))
    flips = changes(rec.groups, lambda k: candidate) if candidate is not None else []
    return Result(
        rec,
        drift,
        dict(sorted(unchecked.items())),
        candidate_name,
        str(candidate["spec_hash"]) if candidate is not None else None,
        flips,
    )


def candidate_tables(path: str) -> dict[str, Any]:
    """The candidate's policy tables: a spec (.agent, checked) or a policy.json. ReplayInputError when it cannot
    be used, with the checker's rendered diagnostics."""
    if path.endswith(".json"):
        return load_policy_file(Path(path))
    from agentspec.check import check
    from agentspec.diagnostics import has_errors, render_human
    from agentspec.load import load as load_spec
    from agentspec.policy import tables

    loaded = load_spec(path)
    result = check(loaded)
    if result.spec is None or has_errors(result.diagnostics):
        rendered = render_human(result.diagnostics, loaded.sources, color=False)
        raise ReplayInputError(f"the candidate spec `{path}` does not check:\n{rendered.rstrip()}")
    return tables(result.spec)


def _verdict_text(v: Verdict, kind: str) -> str:
    decision, rule, target = v
    if kind == "route":
        return f"{decision} ({rule}) on tier `{target}`" if target else f"{decision} ({rule})"
    return f"{decision} ({rule})"


def _example_text(e: Example) -> str:
    return (
        f"e.g. tenant `{e.tenant}` session `{e.session}` seq {e.seq} at {e.ts}: "
        f"{e.action} {e.decision} ({e.rule}), intent {json.dumps(e.intent[:60], ensure_ascii=False)}"
    )


def _n(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def render_human(res: Result) -> str:
    from agentspec.trace.verify import printable

    rec = res.recorded
    out: list[str] = []
    # Broken chains first: nothing replayed below comes from them.
    for c in rec.broken:
        first = next((p for p in c.problems if p.severity == "error"), c.problems[0] if c.problems else None)
        why = f"{first.message}" if first is not None else "broken"
        out.append(f"error: the chain of session `{c.session}` (tenant `{c.tenant}`) is broken: {why}")
        out.append(f"   = note: its {_n(c.records, 'record')} are not replayed")
        out.append("   = help: `agentspec trace verify` on that session's traces locates every problem")
    for c in rec.unverified:
        missing = ", ".join(str(s) for s in c.missing[:10]) + (", ..." if len(c.missing) > 10 else "")
        out.append(
            f"warning: the chain of session `{c.session}` (tenant `{c.tenant}`) cannot be verified yet "
            f"(seq {missing} missing); its {_n(c.records, 'record')} are not replayed"
        )
    ok = len(rec.chains) - len(rec.broken) - len(rec.unverified)
    out.append(
        f"chains: {_n(len(rec.chains), 'chain')}, {ok} intact, {len(rec.broken)} broken, "
        f"{len(rec.unverified)} not verifiable"
    )
    out.append(
        f"replayed {_n(rec.decisions, 'decision')} in {_n(len(rec.groups), 'distinct key')} "
        f"({_n(rec.outcomes, 'outcome record')} not re-evaluated)"
    )
    for spec, n in res.unchecked.items():
        out.append(f"error: no reported policy for spec hash `{spec}`: drift not checked for {_n(n, 'decision')}")
        out.append(
            "   = help: `agentspec trace pull --all --url URL` keeps the runtime's policy under "
            f"`{POLICIES_DIR}/`; or pass `--policy FILE` (a policy.json)"
        )
    checked = rec.decisions - sum(res.unchecked.values())
    out.append(f"against the reported policy: {_n(checked, 'decision')} checked, {res.drifted:,} drifted")
    for d in res.drift:
        out.append(
            f"error: drift in workflow `{d.workflow}`, {d.kind} `{d.target}`: recorded "
            f"{_verdict_text(d.was, d.kind)}, the reported policy gives {_verdict_text(d.now, d.kind)} "
            f"({_n(d.count, 'decision')})"
        )
        out.append(f"   = note: {_example_text(d.example)}")
    if res.candidate is not None:
        out.append(
            f"against `{res.candidate}` ({res.candidate_hash}): {_n(res.flipped, 'decision')} would flip"
            + (f", in {_n(len(res.flips), 'group')}" if res.flips else "")
        )
        for f in res.flips:
            out.append(
                f"  {f.workflow}  {f.kind} `{f.target}`  {_verdict_text(f.was, f.kind)} -> "
                f"{_verdict_text(f.now, f.kind)}  x{f.count:,}"
            )
            out.append(f"      {_example_text(f.example)}")
    return printable("\n".join(out) + "\n")


def render_json(res: Result) -> str:
    rec = res.recorded
    body = {
        "source": rec.source,
        "chains": {
            "total": len(rec.chains),
            "broken": [
                {
                    "tenant": c.tenant,
                    "session": c.session,
                    "records": c.records,
                    "problems": [p.as_json() for p in c.problems],
                }
                for c in rec.broken
            ],
            "unverified": [
                {"tenant": c.tenant, "session": c.session, "records": c.records, "missing": list(c.missing)}
                for c in rec.unverified
            ],
        },
        "decisions": rec.decisions,
        "keys": len(rec.groups),
        "outcomes": rec.outcomes,
        "unchecked": res.unchecked,
        "drifted": res.drifted,
        "drift": [c.as_json() for c in res.drift],
        "candidate": None
        if res.candidate is None
        else {
            "path": res.candidate,
            "spec_hash": res.candidate_hash,
            "flipped": res.flipped,
            "flips": [c.as_json() for c in res.flips],
        },
    }
    return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ── the command ───────────────────────────────────────────────────────────────


def add_parser(trace_commands: Any) -> argparse.ArgumentParser:
    replay_ = trace_commands.add_parser(
        "replay",
        help="re-evaluate recorded decisions against the reported policy (drift) and a candidate spec (flips)",
    )
    replay_.add_argument("source", metavar="DIR", help="a pulled export (trace pull --all) or one pulled session")
    replay_.add_argument(
        "--against", default=None, metavar="SPEC", help="a candidate spec (or policy.json) (default: none, drift only)"
    )
    replay_.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="FILE",
        help=f"a reported policy.json (GET /v1/policy) besides DIR/{POLICIES_DIR}/*; repeatable (default: none)",
    )
    replay_.add_argument(
        "--fail-on",
        choices=["drift", "flips"],
        default="drift",
        help="exit 1 on drift (always), or also on any flip (default: %(default)s)",
    )
    replay_.add_argument("--format", choices=["human", "json"], default="human", help="how to report")
    from agentspec.trace import rerun

    rerun.add_arguments(replay_)  # --runtime URL and its options: agentspec/trace/rerun.py
    return replay_


def run(args: argparse.Namespace) -> int:
    # Replaying against a running runtime is its own module (agentspec/trace/rerun.py); this is the policy replay.
    if getattr(args, "runtime", None):
        from agentspec.trace import rerun

        return rerun.run(args)
    try:
        rec = load(args.source, [Path(p) for p in args.policy])
        candidate = candidate_tables(args.against) if args.against else None
    except ReplayInputError as exc:
        sys.stderr.write(f"agentspec: {exc}\n")
        return EXIT_USAGE
    result = replay(rec, candidate, args.against)
    sys.stdout.write(render_json(result) if args.format == "json" else render_human(result))
    return result.exit_code(args.fail_on == "flips")


__all__ = [
    "CHAINS_FILE",
    "Change",
    "Example",
    "Group",
    "Key",
    "Recorded",
    "ReplayInputError",
    "Result",
    "add_parser",
    "candidate_tables",
    "evaluate",
    "load",
    "replay",
    "run",
]
