"""Evaluating the conditions across time (`conditions.SERIAL`) on one panel's facts.

Three-valued, like every condition: unknown (None) when this value is missing or no earlier
value lies inside the window, so a rule across time without history is *not assessed*,
never silently false. Windows are hours before this specimen's collection (`Facts.earlier`).
The closures (`engine.py`) and the generated Python (`codegen.py`) both call `evaluate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interpret.derive import COMPARE, EXACT_DECIMALS

if TYPE_CHECKING:
    from interpret.prepare import Facts, Quantity
    from interpret.ruleset import conditions as c


def evaluate(node: c.Node, f: Facts) -> bool | None:
    from interpret.ruleset import conditions as c

    match node:
        case c.Change():
            return _change(node, f)
        case c.Ratio():
            return _ratio(node, f)
        case c.Earlier():
            return _earlier(node, f)
        case c.StartedAfter():
            return _started_after(node, f)
    raise TypeError(f"not a condition across time: {node!r}")


def reference(node: c.Change | c.Ratio, f: Facts) -> tuple[float, Quantity] | None:
    """The earlier value a change or ratio is measured from: the lowest (a rise, a ratio) or
    the highest (a fall) inside the window, and how many hours before it was."""
    found = f.earlier(node.quantity, node.within_hours)
    if not found:
        return None
    highest = getattr(node, "direction", "rise") == "fall"
    return (max if highest else min)(found, key=lambda hq: hq[1].value)


def _change(node: c.Change, f: Facts) -> bool | None:
    now, ref = f.quantities.get(node.quantity), reference(node, f)
    if now is None or ref is None:
        return None
    delta = now.value - ref[1].value if node.direction == "rise" else ref[1].value - now.value
    # a rise of exactly 0.3 mg/dL is 26.526 µmol/L on both sides: decided as on the limit
    return COMPARE[node.op](round(delta, EXACT_DECIMALS), round(node.threshold.for_unit(now.unit), EXACT_DECIMALS))


def _ratio(node: c.Ratio, f: Facts) -> bool | None:
    now, ref = f.quantities.get(node.quantity), reference(node, f)
    if now is None or ref is None or ref[1].value <= 0:
        return None
    return COMPARE[node.op](round(now.value / ref[1].value, EXACT_DECIMALS), node.value)


def matching_earlier(node: c.Earlier, f: Facts) -> list[tuple[float, Quantity]]:
    return [(h, q) for h, q in f.earlier(node.quantity, node.within_hours) if _meets(node, q)]


def _meets(node: c.Earlier, q: Quantity) -> bool:
    if node.statuses:
        return q.status in node.statuses
    assert node.op is not None and node.threshold is not None
    return COMPARE[node.op](q.value, node.threshold.for_unit(q.unit))


def _earlier(node: c.Earlier, f: Facts) -> bool | None:
    found = f.earlier(node.quantity, node.within_hours)
    return any(_meets(node, q) for _, q in found) if found else None


def started_in_time(node: c.StartedAfter, f: Facts) -> list[float] | None:
    """Hours before this specimen at which a matching drug was started inside the window
    (after the earliest matching earlier specimen, at least `hours_before` ago); None when a
    matching drug's start is not known."""
    earlier = matching_earlier(node.earlier, f)
    starts = [s for cls in node.classes for s in f.started.get(cls, [])]
    if not earlier or not starts:
        return []
    first = max(h for h, _ in earlier)
    inside = [s for s in starts if s is not None and node.hours_before <= s <= first]
    return inside if inside or None not in starts else None


def _started_after(node: c.StartedAfter, f: Facts) -> bool | None:
    if f.classes is None or _earlier(node.earlier, f) is None:
        return None
    inside = started_in_time(node, f)
    return None if inside is None else bool(inside)
