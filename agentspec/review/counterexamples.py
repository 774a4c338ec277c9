"""Permission verdicts: two sides' policy tables in, every (workflow, tool, host) decided differently out.

The language is finite, so the verdict is exact. A call's outcome depends on its workflow's table,
its tool's table, the tables every decision shares (tiers...), and its URL only through the host
and port matched against `outbound allow` entries. So the URLs worth asking about are, per host
named by either side (an entry, a tool's URL) and one host named by neither: the scheme's default
ports and every port an entry names, plus one port no entry names. Each is put to the policy
evaluator under OLD and under NEW (through `tables.decide`); a request OLD denies and NEW lets
execute is a widening, and it is its own counterexample.

Pairs whose inputs are equal on both sides are skipped, and so is a tool on neither allowlist of
a workflow that enforces on both sides, because enforcement denies a tool off its allowlist. That
keeps a 5,000-tool diff to the pairs a change can reach.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

from agentspec.review import tables as tb
from agentspec.review.change import Change, Counterexample
from agentspec.review.compare import Locator
from agentspec.review.sources import Side

# Stands for every host neither side names for a (workflow, tool): all of them are decided alike.
UNLISTED_HOST = "unlisted.example.invalid"
OTHER_HOSTS = "any other host"


def _entry_host_port(entry: str) -> tuple[str, int | None]:
    parts = urlsplit("//" + entry.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or entry).lower()
    return (f"[{host}]" if ":" in host else host), port


def candidate_urls(hosts: dict[str, set[int]]) -> list[str]:
    """One URL per (host, port) class the host check tells apart."""
    urls = []
    for host in sorted(hosts):
        ports = hosts[host]
        unnamed = next(p for p in range(1, 65536) if p not in ports and p not in (80, 443))
        urls.append(f"https://{host}/")
        urls.append(f"http://{host}/")
        urls.extend(f"https://{host}:{p}/" for p in sorted(ports | {unnamed}))
    return urls


def _hosts(wf_tables: list[dict[str, Any] | None], tool_tables: list[dict[str, Any] | None]) -> dict[str, set[int]]:
    hosts: dict[str, set[int]] = defaultdict(set)
    hosts[UNLISTED_HOST]
    for wf in wf_tables:
        for entry in (wf or {}).get("outbound", []):
            host, port = _entry_host_port(entry)
            if port is not None:
                hosts[host].add(port)
            else:
                hosts[host]
    for tool in tool_tables:
        if tool is not None:
            parts = urlsplit(tb.default_url(tool))
            host = (parts.hostname or "").lower()
            hosts[f"[{host}]" if ":" in host else host]
    return hosts


def pairs_to_decide(old: tb.Tables, new: tb.Tables) -> list[tuple[str, str]]:
    """The (workflow, tool) pairs whose decisions a change can reach."""
    ow, nw, ot, nt = tb.workflows(old), tb.workflows(new), tb.tools(old), tb.tools(new)
    all_tools = sorted(ot.keys() | nt.keys())
    changed_tools = {t for t in all_tools if ot.get(t) != nt.get(t)}
    everything = tb.shared(old) != tb.shared(new)
    pairs: list[tuple[str, str]] = []
    for w in sorted(ow.keys() | nw.keys()):
        a, b = ow.get(w), nw.get(w)
        enforced = all(x is None or x["mode"] == "enforce" for x in (a, b))
        reachable = set((a or {}).get("tools", [])) | set((b or {}).get("tools", []))
        candidates = set(all_tools) if everything or a != b else changed_tools
        pairs.extend((w, t) for t in sorted(candidates & reachable if enforced else candidates))
    return pairs


def verdicts(old: Side, new: Side) -> list[Change]:
    """R0001 for every (workflow, tool) that gains a host where it executes; R0002 for every one that loses one."""
    o, n = old.tables, new.tables
    ow, nw, ot, nt = tb.workflows(o), tb.workflows(n), tb.tools(o), tb.tools(n)
    old_at, new_at = Locator.of(old), Locator.of(new)
    changes: list[Change] = []
    for w, t in pairs_to_decide(o, n):
        hosts = _hosts([ow.get(w), nw.get(w)], [ot.get(t), nt.get(t)])
        risk = (nt.get(t) or ot.get(t) or {}).get("risk", "unknown")
        wider: dict[str, Counterexample] = {}
        narrower: dict[str, Counterexample] = {}
        for url in candidate_urls(hosts):
            runs_old, why_old = tb.decide(o, w, t, url)
            runs_new, why_new = tb.decide(n, w, t, url)
            if runs_old == runs_new:
                continue
            example = Counterexample(w, t, url, risk, why_old, why_new)
            host = urlsplit(url).hostname or ""
            (wider if runs_new else narrower).setdefault(host, example)
        for found, code, verb in ((wider, "R0001", "may now call"), (narrower, "R0002", "may no longer call")):
            if not found:
                continue
            names = sorted(OTHER_HOSTS if h == UNLISTED_HOST else h for h in found)
            hosts_shown = ", ".join(h if h == OTHER_HOSTS else f"`{h}`" for h in names)
            changes.append(
                Change(
                    code=code,
                    agent=new.spec.name,
                    subject=("permission", w, t, *names),
                    message=f"workflow `{w}` {verb} tool `{t}` (risk `{risk}`) at {hosts_shown}",
                    old_at=old_at.at("workflow", w, "tools", t),
                    new_at=new_at.at("workflow", w, "tools", t),
                    counterexamples=tuple(found[h] for h in sorted(found)),
                )
            )
    return changes


# The workflow clauses that can let a call execute, so a widening there can cause a permission widening.
_CAUSES = ("tools", "outbound", "policy", "route")


def attach(changes: list[Change], permissions: list[Change]) -> list[Change]:
    """Give each field-level widening the counterexamples of the permission widenings it causes."""
    by_workflow: dict[str, list[Counterexample]] = defaultdict(list)
    by_tool: dict[str, list[Counterexample]] = defaultdict(list)
    for p in permissions:
        if p.code == "R0001":
            for ex in p.counterexamples:
                by_workflow[ex.workflow].append(ex)
                by_tool[ex.tool].append(ex)
    out = []
    for c in changes:
        found: list[Counterexample] = []
        kind = c.subject[0]
        if c.classification == "widening" and kind == "workflow" and len(c.subject) >= 3 and c.subject[2] in _CAUSES:
            w, clause = c.subject[1], c.subject[2]
            item = c.subject[3] if len(c.subject) > 3 else None
            found = by_workflow[w]
            if clause == "tools":
                found = [e for e in found if e.tool == item]
            elif clause == "outbound" and item is not None:
                host = _entry_host_port(item)[0]
                found = [e for e in found if (urlsplit(e.url).hostname or "").lower() == host.strip("[]")]
        elif c.classification == "widening" and kind == "tool":
            found = by_tool[c.subject[1]]
        if found:
            c = Change(**{**c.__dict__, "counterexamples": tuple(found[:3])})
        out.append(c)
    return out
