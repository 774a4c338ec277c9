"""Hypothesis strategies for pairs of specs that check, drawn from one small universe of names and hosts.

`tests/strategies.py` draws text that parses; a review needs both sides to check, so these draw a
spec's meaning (tools with a host, risk and read-only flag; workflows with allowlists, outbound entries
with and without ports, and a mode) and write it as a valid `.agent`. The NEW side keeps each tool and
workflow of OLD or redraws it, so pairs range from equal to unrelated.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

TOOLS = ("ta", "tb", "tc", "td")
WORKFLOWS = ("wa", "wb")
HOSTS = ("h1.example.com", "h2.example.com", "h3.example.com")
# Outbound entries: bare hosts, a host with a port, and upper case (entries match case-insensitively).
ENTRIES = (*HOSTS, "h1.example.com:8443", "H2.EXAMPLE.COM", "h3.example.com:443")


@dataclass(frozen=True)
class ToolDraw:
    host: str
    risk: str
    read_only: bool


@dataclass(frozen=True)
class WorkflowDraw:
    tools: tuple[str, ...]
    extra_outbound: tuple[str, ...]
    shadow: bool


@st.composite
def tool_draws(draw: st.DrawFn) -> ToolDraw:
    read_only = draw(st.booleans())
    risk = draw(st.sampled_from(["low", "medium", "high"]))
    return ToolDraw(draw(st.sampled_from(HOSTS)), risk, read_only)


@st.composite
def workflow_draws(draw: st.DrawFn) -> WorkflowDraw:
    return WorkflowDraw(
        tuple(draw(st.lists(st.sampled_from(TOOLS), unique=True, max_size=4))),
        tuple(draw(st.lists(st.sampled_from(ENTRIES), unique=True, max_size=3))),
        draw(st.booleans()),
    )


Meaning = tuple[dict[str, ToolDraw], dict[str, WorkflowDraw]]


@st.composite
def meanings(draw: st.DrawFn) -> Meaning:
    tools = {n: draw(tool_draws()) for n in draw(st.lists(st.sampled_from(TOOLS), unique=True, min_size=1))}
    wfs = {n: draw(workflow_draws()) for n in draw(st.lists(st.sampled_from(WORKFLOWS), unique=True, min_size=1))}
    return tools, wfs


def render(meaning: Meaning, small_clears: str = "medium") -> str:
    """The `.agent` text of a drawn meaning, adjusted so that it checks; `small_clears` varies a shared table."""
    tools, wfs = meaning
    out = [
        "agent drawn version 1 {",
        "  auth bearer secret API_TOKENS",
        '  tenant header "x-tenant-id"',
        f'  model tier small {{ primary "@cf/openai/gpt-oss-20b" clears risk {small_clears} }}',
        '  model tier big { primary "@cf/openai/gpt-oss-120b" clears risk high }',
    ]
    for name, t in sorted(tools.items()):
        method = "GET" if t.read_only else "POST"
        extra = "read_only" if t.read_only else 'idempotency key "{session}:{args.id}"'
        out.append(
            f'  tool {name} {{ {method} "https://{t.host}/v1/{{id}}" risk {t.risk} {extra} args {{ id: string }} }}'
        )
    for name, w in sorted(wfs.items()):
        allowed = [t for t in w.tools if t in tools and not (w.shadow and tools[t].risk == "high")]
        needed = sorted({tools[t].host for t in allowed})
        outbound = list(dict.fromkeys([*needed, *w.extra_outbound]))
        high = any(tools[t].risk == "high" for t in allowed)
        out += [
            f"  workflow {name} class c {{",
            "    route risk low -> tier small",
            *(["    route risk high -> tier big"] if high else []),
            f"    tools allow [{', '.join(allowed)}]",
            "    outbound allow [" + ", ".join(f'"{h}"' for h in outbound) + "]",
            f"    policy {'shadow' if w.shadow else 'enforce'}",
            "    pii mask [email] before persist",
            "  }",
        ]
    out.append("}")
    return "\n".join(out) + "\n"


@st.composite
def spec_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """(OLD, NEW) texts; NEW keeps or redraws each tool and workflow of OLD, and may add or drop some."""
    old_tools, old_wfs = draw(meanings())
    new_tools, new_wfs = draw(meanings())
    tools = {
        n: old_tools[n] if n in old_tools and n in new_tools and draw(st.booleans()) else new_tools[n]
        for n in new_tools
    }
    wfs = {n: old_wfs[n] if n in old_wfs and n in new_wfs and draw(st.booleans()) else new_wfs[n] for n in new_wfs}
    if draw(st.booleans()):  # often NEW is OLD with a few parts redrawn
        tools = {**old_tools, **{n: tools[n] for n in list(tools)[:1]}}
        wfs = {**old_wfs, **{n: wfs[n] for n in list(wfs)[:1]}}
    clears = st.sampled_from(["medium", "high"])  # a tier's clearance: read by every decision (shadow mode)
    return render((old_tools, old_wfs), draw(clears)), render((tools, wfs), draw(clears))
