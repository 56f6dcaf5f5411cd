"""The closed vocabulary of rule conditions: parsing from YAML and explanation in words.

A condition is a small tree of frozen nodes (in the manner of sqlglot's expressions). The
nodes hold no behaviour beyond describing themselves; evaluation lives in the back-ends
(`interpret/engine.py` for one panel, `interpret/batch/polars_backend.py` for a table), so
one rule text yields the single-panel result, the batch result and the explanation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from interpret.facts import OTHER_INPUTS, QUANTITIES, SPECIMEN_FLAGS, STATUSES
from interpret.ruleset.schema import parse_limit
from interpret.units import format_number


class ConditionError(ValueError):
    """A condition that does not fit the vocabulary; `path` locates it inside `when`."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True)
class Threshold:
    """A limit as written (unit -> number) and, after linking, in canonical units.

    `by_unit` maps a reported unit to the canonical value used for results reported in it;
    `primary` is used for every other unit.
    """

    written: tuple[tuple[str, float], ...]
    primary: float = float("nan")
    by_unit: tuple[tuple[str, float], ...] = ()
    unit_names: tuple[str, ...] = ()  # display names of the written units, once linked ("mL/min/1.73 m²")

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lookup", dict(self.by_unit))

    def for_unit(self, unit: str | None) -> float:
        return self._lookup.get(unit, self.primary)  # type: ignore[attr-defined,no-any-return]

    def words(self) -> str:
        names = self.unit_names or tuple(unit for unit, _ in self.written)
        first, *others = ((name, value) for name, (_, value) in zip(names, self.written, strict=True))
        text = f"{format_number(first[1])} {first[0]}"
        if others:
            text += " (" + ", ".join(f"{format_number(v)} {u} for results in {u}" for u, v in others) + ")"
        return text


class Node:
    def children(self) -> tuple[Node, ...]:
        return ()

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children():
            yield from child.walk()

    def words(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class All(Node):
    items: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.items

    def words(self) -> str:
        return "(" + " and ".join(i.words() for i in self.items) + ")"


@dataclass(frozen=True)
class Any_(Node):
    items: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.items

    def words(self) -> str:
        return "(" + " or ".join(i.words() for i in self.items) + ")"


@dataclass(frozen=True)
class Not(Node):
    item: Node

    def children(self) -> tuple[Node, ...]:
        return (self.item,)

    def words(self) -> str:
        return f"not {self.item.words()}"


STATUS_WORDS = {
    "low": (("low", "critical_low"), "is below its reference interval"),
    "high": (("high", "critical_high"), "is above its reference interval"),
    "critical": (("critical_low", "critical_high"), "is beyond a configured critical limit"),
    "normal": (("normal",), "is within its reference interval"),
}


@dataclass(frozen=True)
class StatusIn(Node):
    quantity: str
    statuses: frozenset[str]
    phrase: str

    def words(self) -> str:
        return f"{self.quantity} {self.phrase}"


OPERATORS = {
    "below": "<",
    "at_or_below": "≤",
    "above": ">",
    "at_or_above": "≥",
}


@dataclass(frozen=True)
class Compare(Node):
    quantity: str
    op: str  # a key of OPERATORS
    threshold: Threshold

    def words(self) -> str:
        return f"{self.quantity} {OPERATORS[self.op]} {self.threshold.words()}"


@dataclass(frozen=True)
class Available(Node):
    name: str

    def words(self) -> str:
        return f"{self.name} is available"


@dataclass(frozen=True)
class Missing(Node):
    name: str

    def words(self) -> str:
        return f"{self.name} is not available"


@dataclass(frozen=True)
class Taking(Node):
    classes: tuple[str, ...]

    def words(self) -> str:
        return "a drug of class " + " or ".join(self.classes) + " is listed"


@dataclass(frozen=True)
class TakingCount(Node):
    classes: tuple[str, ...]
    at_least: int

    def words(self) -> str:
        return f"drugs of at least {self.at_least} of these classes are listed: " + ", ".join(self.classes)


@dataclass(frozen=True)
class SpecimenFlag(Node):
    flag: str

    def words(self) -> str:
        return SPECIMEN_FLAGS[self.flag]


@dataclass(frozen=True)
class NeedsVerification(Node):
    quantities: tuple[str, ...]

    def words(self) -> str:
        return "a result of " + ", ".join(self.quantities) + " is beyond its verification limits"


@dataclass(frozen=True)
class SexIs(Node):
    values: frozenset[str]

    def words(self) -> str:
        return "sex is " + " or ".join(sorted(self.values))


@dataclass(frozen=True)
class UnrecognizedMedications(Node):
    def words(self) -> str:
        return "a listed medication matches no catalogue entry"


@dataclass(frozen=True)
class SettingOn(Node):
    name: str

    def words(self) -> str:
        return f"site setting {self.name} is on"


# --- across time (serial panels): windows are hours before this specimen's collection ------


@dataclass(frozen=True)
class Change(Node):
    """A rise (this value minus the lowest earlier one in the window) or a fall (the highest
    earlier one minus this value), compared with a limit. Unknown without an earlier value."""

    quantity: str
    within_hours: float
    direction: str  # "rise" or "fall"
    op: str
    threshold: Threshold

    def words(self) -> str:
        start = "lowest" if self.direction == "rise" else "highest"
        return (
            f"{self.quantity} has {'risen' if self.direction == 'rise' else 'fallen'} by "
            f"{OPERATORS[self.op]} {self.threshold.words()} from the {start} earlier value within "
            f"{format_number(self.within_hours)} h"
        )


@dataclass(frozen=True)
class Ratio(Node):
    """This value divided by the lowest earlier one in the window, compared with a number."""

    quantity: str
    within_hours: float
    op: str
    value: float

    def words(self) -> str:
        return (
            f"{self.quantity} is {OPERATORS[self.op]} {format_number(self.value)} × the lowest earlier value "
            f"within {format_number(self.within_hours)} h"
        )


@dataclass(frozen=True)
class Earlier(Node):
    """An earlier value in the window with one of `statuses`, or beyond `threshold`."""

    quantity: str
    within_hours: float
    statuses: frozenset[str] = frozenset()
    op: str | None = None
    threshold: Threshold | None = None

    def words(self) -> str:
        what = (
            "status " + " or ".join(sorted(self.statuses))
            if self.statuses
            else f"{OPERATORS[self.op or '']} {self.threshold.words() if self.threshold else ''}"
        )
        return f"an earlier {self.quantity} within {format_number(self.within_hours)} h was {what}"


@dataclass(frozen=True)
class StartedAfter(Node):
    """A drug of `classes` started after an earlier specimen that meets `earlier`, and at
    least `hours_before` before this specimen. Unknown when a matching drug has no start."""

    classes: tuple[str, ...]
    earlier: Earlier
    hours_before: float

    def children(self) -> tuple[Node, ...]:
        return (self.earlier,)

    def words(self) -> str:
        return (
            f"a drug of class {' or '.join(self.classes)} was started after {self.earlier.words()}, "
            f"at least {format_number(self.hours_before)} h before this specimen"
        )


SERIAL = (Change, Ratio, Earlier, StartedAfter)


# --- parsing -----------------------------------------------------------------------------


def _quantity(value: Any, path: str) -> str:
    if value not in QUANTITIES:
        raise ConditionError(path, f"{value!r} is not a quantity; known: {', '.join(QUANTITIES)}")
    return str(value)


def _names(value: Any, path: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, str) for i in items):
        raise ConditionError(path, "expected a name or a list of names")
    return tuple(items)


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ConditionError(path, "expected a non-empty list of conditions")
    return value


def _status(key: str) -> Callable[[Any, str], Node]:
    statuses, phrase = STATUS_WORDS[key]
    return lambda v, p: StatusIn(_quantity(v, p), frozenset(statuses), phrase)


def _status_in(value: Any, path: str) -> Node:
    if not isinstance(value, dict) or set(value) != {"of", "in"}:
        raise ConditionError(path, "expected {of: <quantity>, in: [<status>, ...]}")
    statuses = _names(value["in"], f"{path}.in")
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise ConditionError(f"{path}.in", f"unknown status {unknown}; known: {STATUSES}")
    quantity = _quantity(value["of"], f"{path}.of")
    return StatusIn(quantity, frozenset(statuses), "status is " + " or ".join(statuses))


def _compare(value: Any, path: str) -> Node:
    if not isinstance(value, dict) or "of" not in value or len(value) != 2:
        raise ConditionError(path, "expected {of: <quantity>, <below|at_or_below|...>: <limit>}")
    (op,) = set(value) - {"of"}
    if op not in OPERATORS:
        raise ConditionError(f"{path}.{op}", f"unknown comparison; known: {', '.join(OPERATORS)}")
    try:
        written = parse_limit(value[op])
    except ValueError as exc:
        raise ConditionError(f"{path}.{op}", str(exc)) from None
    quantity = _quantity(value["of"], f"{path}.of")
    return Compare(quantity, op, Threshold(tuple(written.items())))


def _presence(kind: type[Available] | type[Missing]) -> Callable[[Any, str], Node]:
    def parse(value: Any, path: str) -> Node:
        if value not in QUANTITIES and value not in OTHER_INPUTS:
            known = ", ".join([*QUANTITIES, *OTHER_INPUTS])
            raise ConditionError(path, f"{value!r} is not an input; known: {known}")
        return kind(str(value))

    return parse


def _taking_count(value: Any, path: str) -> Node:
    if not isinstance(value, dict) or set(value) != {"classes", "at_least"}:
        raise ConditionError(path, "expected {classes: [...], at_least: <number>}")
    if not isinstance(value["at_least"], int) or value["at_least"] < 1:
        raise ConditionError(f"{path}.at_least", "expected a whole number of at least 1")
    return TakingCount(_names(value["classes"], f"{path}.classes"), value["at_least"])


def _specimen(value: Any, path: str) -> Node:
    if value not in SPECIMEN_FLAGS:
        raise ConditionError(path, f"{value!r} is not a specimen flag; known: {SPECIMEN_FLAGS}")
    return SpecimenFlag(str(value))


def _needs_verification(value: Any, path: str) -> Node:
    return NeedsVerification(tuple(_quantity(q, path) for q in _names(value, path)))


def _sex_is(value: Any, path: str) -> Node:
    values = _names(value, path)
    if not set(values) <= {"female", "male"}:
        raise ConditionError(path, "sex_is takes female and/or male")
    return SexIs(frozenset(values))


def _unrecognized(value: Any, path: str) -> Node:
    if value is not True:
        raise ConditionError(path, "write `unrecognized_medications: true`")
    return UnrecognizedMedications()


def _setting(value: Any, path: str) -> Node:
    if not isinstance(value, str):
        raise ConditionError(path, "expected the name of a setting in ruleset.yaml")
    return SettingOn(value)


def _hours(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConditionError(path, "expected a number of hours above 0")
    return float(value)


def _one_comparison(value: Any, path: str) -> tuple[str, Any]:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in OPERATORS:
        raise ConditionError(path, f"expected {{<{'|'.join(OPERATORS)}>: <limit>}}")
    ((op, limit),) = value.items()
    return op, limit


def _limit(value: Any, path: str) -> Threshold:
    try:
        return Threshold(tuple(parse_limit(value).items()))
    except ValueError as exc:
        raise ConditionError(path, str(exc)) from None


def _change(value: Any, path: str) -> Node:
    if not isinstance(value, dict) or set(value) - {"of", "within_hours", "rise", "fall"} or len(value) != 3:
        raise ConditionError(path, "expected {of: <quantity>, within_hours: <h>, rise|fall: {<comparison>: <limit>}}")
    direction = "rise" if "rise" in value else "fall"
    op, limit = _one_comparison(value[direction], f"{path}.{direction}")
    return Change(
        _quantity(value["of"], f"{path}.of"),
        _hours(value.get("within_hours"), f"{path}.within_hours"),
        direction,
        op,
        _limit(limit, f"{path}.{direction}.{op}"),
    )


def _ratio(value: Any, path: str) -> Node:
    if not isinstance(value, dict) or set(value) != {"of", "within_hours", "to_lowest"}:
        raise ConditionError(path, "expected {of: <quantity>, within_hours: <h>, to_lowest: {<comparison>: <number>}}")
    op, number = _one_comparison(value["to_lowest"], f"{path}.to_lowest")
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ConditionError(f"{path}.to_lowest.{op}", "expected a number (a ratio has no unit)")
    return Ratio(
        _quantity(value["of"], f"{path}.of"), _hours(value["within_hours"], f"{path}.within_hours"), op, float(number)
    )


def _earlier(value: Any, path: str) -> Earlier:
    if not isinstance(value, dict) or not {"of", "within_hours"} <= set(value) or len(value) != 3:
        raise ConditionError(
            path, "expected {of: <quantity>, within_hours: <h>, in: [<status>...] | <comparison>: <limit>}"
        )
    quantity, hours = _quantity(value["of"], f"{path}.of"), _hours(value["within_hours"], f"{path}.within_hours")
    (key,) = set(value) - {"of", "within_hours"}
    if key == "in":
        statuses = _names(value["in"], f"{path}.in")
        if unknown := [s for s in statuses if s not in STATUSES]:
            raise ConditionError(f"{path}.in", f"unknown status {unknown}; known: {STATUSES}")
        return Earlier(quantity, hours, frozenset(statuses))
    op, limit = _one_comparison({key: value[key]}, path)
    return Earlier(quantity, hours, frozenset(), op, _limit(limit, f"{path}.{op}"))


def _started_after(value: Any, path: str) -> Node:
    if not isinstance(value, dict) or set(value) != {"taking", "after_earlier", "at_least_hours_before"}:
        raise ConditionError(path, "expected {taking: [<class>...], after_earlier: {...}, at_least_hours_before: <h>}")
    return StartedAfter(
        _names(value["taking"], f"{path}.taking"),
        _earlier(value["after_earlier"], f"{path}.after_earlier"),
        _hours(value["at_least_hours_before"], f"{path}.at_least_hours_before"),
    )


PARSERS: dict[str, Callable[[Any, str], Node]] = {
    "all": lambda v, p: All(tuple(parse(c, f"{p}[{i}]") for i, c in enumerate(_list(v, p)))),
    "any": lambda v, p: Any_(tuple(parse(c, f"{p}[{i}]") for i, c in enumerate(_list(v, p)))),
    "not": lambda v, p: Not(parse(v, p)),
    "low": _status("low"),
    "high": _status("high"),
    "critical": _status("critical"),
    "normal": _status("normal"),
    "status": _status_in,
    "value": _compare,
    "available": _presence(Available),
    "missing": _presence(Missing),
    "taking": lambda v, p: Taking(_names(v, p)),
    "taking_count": _taking_count,
    "specimen": _specimen,
    "needs_verification": _needs_verification,
    "sex_is": _sex_is,
    "unrecognized_medications": _unrecognized,
    "setting": _setting,
    "change": _change,
    "ratio": _ratio,
    "earlier": _earlier,
    "started_after": _started_after,
}


def parse(raw: Any, path: str = "when") -> Node:
    """Parse one condition; errors name the path inside the rule (e.g. `when.all[1].low`)."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ConditionError(path, f"expected one of {', '.join(PARSERS)} as a single key")
    ((key, value),) = raw.items()
    if key not in PARSERS:
        raise ConditionError(f"{path}.{key}", f"unknown condition; known: {', '.join(PARSERS)}")
    return PARSERS[key](value, f"{path}.{key}")
