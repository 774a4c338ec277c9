"""Classification: old and new values of one field in, the direction of the change (and its code) out.

Widening means the agent may do more or promises less; narrowing the reverse; mixed both at once;
neutral a change of meaning with no direction (a renamed key, another model). The class of a code
is fixed in the catalogue; these functions pick the code whose class the values show.
"""

from __future__ import annotations

from collections.abc import Iterator

from agentspec import model as m

Direction = str  # "widening" | "narrowing" | "neutral"


def risk_direction(old: str, new: str) -> Direction:
    """Widening when `new` is the higher risk level (a clearance raised)."""
    a, b = m.RISK_ORDER[old], m.RISK_ORDER[new]
    return "widening" if b > a else "narrowing" if b < a else "neutral"


def tier_rank(tier: m.RTier) -> tuple[int, float | None]:
    price = None if tier.price_in is None or tier.price_out is None else tier.price_in + tier.price_out
    return m.RISK_ORDER[tier.clearance], price


def tier_direction(old: m.RTier, new: m.RTier) -> Direction:
    """Routing to a tier of lower clearance, or equal clearance and a lower price, widens."""
    (ca, pa), (cb, pb) = tier_rank(old), tier_rank(new)
    if ca != cb:
        return "widening" if cb < ca else "narrowing"
    if pa is None or pb is None or pa == pb:
        return "neutral"
    return "widening" if pb < pa else "narrowing"


def combined_code(directions: list[Direction], *, widening: str, narrowing: str, mixed: str, neutral: str) -> str:
    kinds = set(directions) - {"neutral"}
    if kinds == {"widening", "narrowing"}:
        return mixed
    if kinds == {"widening"}:
        return widening
    if kinds == {"narrowing"}:
        return narrowing
    return neutral


def set_code(old: set[str], new: set[str], *, gained: str, lost: str, both: str) -> str | None:
    """Gaining members widens (secrets held), losing them narrows."""
    plus, minus = new - old, old - new
    if plus and minus:
        return both
    return gained if plus else lost if minus else None


def optional_code(old: str | None, new: str | None, *, removed: str, added: str, changed: str) -> str | None:
    """A safeguard (idempotency key, compensation) removed widens, added narrows, changed is neutral."""
    if old == new:
        return None
    if new is None:
        return removed
    if old is None:
        return added
    return changed


def price(tier: m.RTier) -> str:
    if tier.price_in is None or tier.price_out is None:
        return "none"
    return f"in ${tier.price_in:g} out ${tier.price_out:g} per Mtok"


def cost_per_1000(spec: m.RSpec, wf: m.RWorkflow) -> float | None:
    """The model price of 1,000 tasks on a workflow's turn tier, at the SLO's declared token budget."""
    tier = spec.tier(wf.turn_tier)
    if wf.slo.tokens_in is None or wf.slo.tokens_out is None or tier.price_in is None or tier.price_out is None:
        return None
    return 1000 * (wf.slo.tokens_in * tier.price_in + wf.slo.tokens_out * tier.price_out) / 1_000_000


def checkpoint(value: tuple[int | None, str | None, str | None]) -> str:
    every, tier, store = value
    return "none" if every is None else f"every {every} turns with tier {tier} into {store}"


# An SLO bound's direction: +1 when a larger bound promises less (latency), -1 when it promises more.
_LOOSER_WHEN_LARGER: dict[str, int] = {
    "latency_ms": 1,
    "ttft_ms": 1,
    "cost_usd": 1,
    "denied_pct": 1,
    "cache_drop_pct": 1,
    "success_pct": -1,
    "cache_hit_pct": -1,
}
_PERCENTILE_OF = {"latency_ms": "latency_percentile", "ttft_ms": "ttft_percentile"}
_NEUTRAL_SLO = ("latency_percentile", "ttft_percentile", "tokens_in", "tokens_out", "webhook")


def slo_changes(old: m.RSlo, new: m.RSlo) -> Iterator[tuple[str, object, object, str]]:
    """(field, old, new, code) for each SLO field that changed: R0701 loosened, R0702 tightened, R0703 neither."""
    for field, sign in _LOOSER_WHEN_LARGER.items():
        a, b = getattr(old, field), getattr(new, field)
        if a == b:
            continue
        percentile = _PERCENTILE_OF.get(field)
        if percentile and getattr(old, percentile) != getattr(new, percentile) and a is not None and b is not None:
            yield field, a, b, "R0703"  # p50 < 1s against p99 < 2s: the bounds do not compare
        elif b is None:
            yield field, a, b, "R0701"  # a bound removed promises nothing
        elif a is None:
            yield field, a, b, "R0702"
        else:
            yield field, a, b, ("R0701" if (b - a) * sign > 0 else "R0702")
    for field in _NEUTRAL_SLO:
        a, b = getattr(old, field), getattr(new, field)
        if a != b:
            yield field, a, b, "R0703"
