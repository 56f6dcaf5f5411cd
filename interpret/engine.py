"""The single-panel back-end: each rule's condition compiled to Python closures.

Three-valued (Kleene) logic: a condition on a result that is absent is *unknown*, not false.
A rule whose condition is unknown is reported as "not assessed", naming the missing inputs,
so a missing input never makes a rule fire or go silent unremarked. (Polars evaluates the
same logic column-wise: null plays unknown in `&`, `|` and comparisons.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from interpret import codegen, derive, serial
from interpret.facts import QUANTITIES, presence_of
from interpret.prepare import Facts
from interpret.ruleset import conditions as c
from interpret.ruleset.load import Rule, Ruleset

Tri = bool | None
Check = Callable[[Facts], Tri]


def _all(checks: list[Check]) -> Check:
    def check(f: Facts) -> Tri:
        unknown = False
        for ch in checks:
            r = ch(f)
            if r is False:
                return False
            if r is None:
                unknown = True
        return None if unknown else True

    return check


def _any(checks: list[Check]) -> Check:
    def check(f: Facts) -> Tri:
        unknown = False
        for ch in checks:
            r = ch(f)
            if r is True:
                return True
            if r is None:
                unknown = True
        return None if unknown else False

    return check


def _not(inner: Check) -> Check:
    def check(f: Facts) -> Tri:
        r = inner(f)
        return None if r is None else not r

    return check


def _status(name: str, statuses: frozenset[str]) -> Check:
    def check(f: Facts) -> Tri:
        q = f.quantities.get(name)
        return None if q is None else q.status in statuses

    return check


def _compare(name: str, op: str, threshold: c.Threshold) -> Check:
    compare = derive.COMPARE[op]

    def check(f: Facts) -> Tri:
        q = f.quantities.get(name)
        return None if q is None else compare(q.value, threshold.for_unit(q.unit))

    return check


def available(name: str, f: Facts) -> bool:
    """Whether an input is present (`facts.presence_of`), or an earlier value of a quantity
    in any window (`earlier <quantity>`, for the report's "not assessed")."""
    if name.startswith("earlier "):
        return bool(f.earlier(name.removeprefix("earlier "), float("inf")))
    tested = presence_of(name)
    if tested is None:
        return True
    if tested in QUANTITIES:
        return tested in f.quantities
    return {"age": f.age, "sex": f.sex, "medications": f.classes}[tested] is not None


def _taking(classes: tuple[str, ...]) -> Check:
    def check(f: Facts) -> Tri:
        return None if f.classes is None else any(cl in f.classes for cl in classes)

    return check


def _taking_count(classes: tuple[str, ...], at_least: int) -> Check:
    def check(f: Facts) -> Tri:
        if f.classes is None:
            return None
        return sum(cl in f.classes for cl in classes) >= at_least

    return check


def _needs_verification(names: tuple[str, ...]) -> Check:
    def check(f: Facts) -> Tri:
        return any((q := f.quantities.get(n)) is not None and q.verify for n in names)

    return check


def _sex_is(values: frozenset[str]) -> Check:
    def check(f: Facts) -> Tri:
        return None if f.sex is None else f.sex in values

    return check


def compile_node(node: c.Node) -> Check:
    """Turn a condition node into a closure returning True, False or None (unknown)."""
    match node:
        case c.All(items):
            return _all([compile_node(i) for i in items])
        case c.Any_(items):
            return _any([compile_node(i) for i in items])
        case c.Not(item):
            return _not(compile_node(item))
        case c.StatusIn(quantity, statuses, _):
            return _status(quantity, statuses)
        case c.Compare(quantity, op, threshold):
            return _compare(quantity, op, threshold)
        case c.Available(name):
            return lambda f: available(name, f)
        case c.Missing(name):
            return lambda f: not available(name, f)
        case c.Taking(classes):
            return _taking(classes)
        case c.TakingCount(classes, at_least):
            return _taking_count(classes, at_least)
        case c.SpecimenFlag(flag):
            return lambda f: f.hemolyzed if flag == "hemolyzed" else None
        case c.NeedsVerification(names):
            return _needs_verification(names)
        case c.SexIs(values):
            return _sex_is(values)
        case c.UnrecognizedMedications():
            return lambda f: bool(f.unrecognized)
        case c.SettingOn(name):
            return lambda f: f.settings[name]
        case c.Change() | c.Ratio() | c.Earlier() | c.StartedAfter():
            return lambda f: serial.evaluate(node, f)
    raise TypeError(f"no evaluator for {node!r}")


def inputs_that_can_be_unknown(node: c.Node) -> list[str]:
    """The inputs whose absence makes this condition unknown (for "not assessed")."""
    names: list[str] = []
    for n in node.walk():
        match n:
            case c.StatusIn(quantity, _, _) | c.Compare(quantity, _, _):
                names.append(quantity)
            case c.Taking() | c.TakingCount():
                names.append("medications")
            case c.SexIs():
                names.append("sex")
            case c.Change(quantity) | c.Ratio(quantity) | c.Earlier(quantity):
                names += [quantity, f"earlier {quantity}"]
            case c.StartedAfter():
                names.append("medications")
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    when: Check
    may_be_missing: tuple[str, ...]


class Outcome(NamedTuple):
    """A rule that fired (with its severity) or could not be assessed (with what is missing).

    Rules that were assessed and did not fire produce no outcome.
    """

    rule: Rule
    fired: bool | None  # True: fired; None: not assessed
    severity: str | None
    missing: tuple[str, ...] = ()


class Engine:
    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.rules = [
            CompiledRule(
                rule,
                compile_node(rule.condition),
                tuple(inputs_that_can_be_unknown(rule.condition)),
            )
            for rule in ruleset.rules
        ]
        self._severity_names = [t.name for t in ruleset.meta.severities]
        self._generated = codegen.build(ruleset)
        self._checks: dict[int, tuple[c.Node, Check]] = {}

    def check(self, node: c.Node) -> Check:
        """The compiled closure of any node of the ruleset (memoised; used for evidence)."""
        found = self._checks.get(id(node))
        if found is None or found[0] is not node:
            found = (node, compile_node(node))
            self._checks[id(node)] = found
        return found[1]

    def evaluate(self, facts: Facts) -> list[Outcome]:
        """Fired and not-assessed rules, by the generated back-end (see `codegen.py`)."""
        outcomes = []
        names = self._severity_names
        for i, rank in self._generated(facts):
            cr = self.rules[i]
            if rank is None:
                missing = tuple(n for n in cr.may_be_missing if not available(n, facts))
                outcomes.append(Outcome(cr.rule, None, None, missing))
            else:
                outcomes.append(Outcome(cr.rule, True, names[rank]))
        return outcomes

    def evaluate_by_closures(self, facts: Facts) -> list[Outcome]:
        """The same evaluation by the closure interpreter: the reference the generated code
        is tested against, and the evaluator evidence is collected with."""
        outcomes: list[Outcome] = []
        ranks: list[int | None] = [None] * len(self.rules)
        for i, (cr, plan) in enumerate(zip(self.rules, self.ruleset.severity_plans, strict=True)):
            result = cr.when(facts)
            if result is None:
                missing = tuple(n for n in cr.may_be_missing if not available(n, facts))
                outcomes.append(Outcome(cr.rule, None, None, missing))
                continue
            if not result:
                continue
            rank = plan.decide(lambda node: self.check(node)(facts) is True, ranks)
            ranks[i] = rank
            outcomes.append(Outcome(cr.rule, True, self._severity_names[rank]))
        return outcomes
