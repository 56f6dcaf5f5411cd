"""The ruleset's conditions as SQL expressions (the polars back-end's twin in the sqlglot
AST: one condition vocabulary, `ruleset/conditions.py`, several back-ends side by side).

SQL's NULLs are three-valued as polars' are: a rule fires where its expression is TRUE and
is not assessed where it is NULL. Per row, three BIGINT bit masks, as `PolarsRules` makes
them (`__fired`, `__raised`, `__na`), so that the severities after escalation, the code
lists and the counts are spelled once, on the distinct masks, by `PolarsRules.summary`.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from interpret import column_facts
from interpret.batch.columns import CLASSES, class_bits
from interpret.batch.polars_backend import MAX_CODES
from interpret.batch.serial import serial_nodes
from interpret.facts import QUANTITIES, presence_of
from interpret.ruleset import Ruleset
from interpret.ruleset import conditions as c
from interpret.sql.ops import SqlOps, cases, coalesce, column, compare, integer, is_null, known

OPS = SqlOps()
MASK_BITS = 63  # a signed BIGINT: every dialect has one


def _available(name: str) -> Any:
    tested = presence_of(name)
    if tested is None:
        return exp.true()
    if tested in QUANTITIES:
        return known(column(f"q__{tested}"))
    return {"age": known(column("age")), "sex": known(column("sex")), "medications": column("meds_known")}[tested]


def _meds(expr: exp.Expression) -> Any:
    """Unknown (NULL) where no medication list was given."""
    return cases([(column("meds_known"), expr)], exp.cast(exp.null(), exp.DataType.Type.BOOLEAN))


def _bit_set(mask: exp.Expression, bits: int) -> Any:
    return exp.NEQ(this=exp.paren(exp.BitwiseAnd(this=mask, expression=integer(bits))), expression=integer(0))


class SqlRules:
    """All rules of a ruleset as SQL expressions over the facts (`column_facts`)."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.rules = ruleset.rules
        self.class_bits = class_bits(ruleset)
        self.names = [t.name for t in ruleset.meta.severities]
        raising = [r for r, plan in zip(self.rules, ruleset.severity_plans, strict=True) if plan.raises]
        self.escalating = {r.code: j for j, r in enumerate(raising)}
        self.bits = max(1, (len(self.names) - 1).bit_length())
        if len(self.rules) > min(MASK_BITS, MAX_CODES) or len(self.escalating) * self.bits > MASK_BITS:
            raise ValueError(f"more than {MASK_BITS} bits of rule outcomes: widen the SQL masks")

    def condition(self, node: c.Node) -> Any:
        match node:
            case c.All(items):
                return exp.and_(*(exp.paren(self.condition(i)) for i in items))
            case c.Any_(items):
                return exp.or_(*(exp.paren(self.condition(i)) for i in items))
            case c.Not(item):
                return exp.Not(this=exp.paren(self.condition(item)))
            case c.SettingOn(name):
                return exp.true() if self.ruleset.settings[name] else exp.false()
            case c.Taking(classes):
                return _meds(_bit_set(column(CLASSES), sum(self.class_bits[cl] for cl in classes)))
            case c.TakingCount(classes, at_least):
                count = sum(
                    (
                        cases([(_bit_set(column(CLASSES), self.class_bits[cl]), integer(1))], integer(0))
                        for cl in classes
                    ),
                    start=integer(0),
                )
                return _meds(exp.GTE(this=count, expression=integer(at_least)))
            case c.StatusIn(quantity, statuses, _):
                chosen = coalesce(OPS.is_in(column(f"s__{quantity}"), sorted(statuses)), False)
                return cases([(is_null(column(f"q__{quantity}")), exp.null())], chosen)
            case c.Compare(quantity, op, threshold):
                limit = column_facts.limit(OPS, column(f"u__{quantity}"), threshold)
                return compare(op, column(f"q__{quantity}"), limit)
            case c.Available(name):
                return _available(name)
            case c.Missing(name):
                return exp.Not(this=exp.paren(_available(name)))
            case c.SpecimenFlag():
                return column("hemolyzed")
            case c.NeedsVerification(names):
                return exp.or_(*(coalesce(column(f"v__{n}"), False) for n in names))
            case c.SexIs(values):
                return cases([(is_null(column("sex")), exp.null())], OPS.is_in(column("sex"), sorted(values)))
            case c.UnrecognizedMedications():
                return coalesce(column("unrecognized"), False)
            case c.Change() | c.Ratio() | c.Earlier() | c.StartedAfter():
                # worked out over each patient's panels before the run (batch/serial.py)
                return column(serial_nodes(self.ruleset)[node])
        raise TypeError(f"no SQL translation for {node!r}")

    def conditions(self) -> list[Any]:
        """Each rule's condition (`w__<code>`) and each escalation (`e__<code>__<k>`), named."""
        named = [OPS.named(self.condition(r.condition), f"w__{r.code}") for r in self.rules]
        for rule, plan in zip(self.rules, self.ruleset.severity_plans, strict=True):
            for k, (_, node) in enumerate(plan.raises if rule.code in self.escalating else []):
                named.append(OPS.named(coalesce(self.condition(node), False), f"e__{rule.code}__{k}"))
        return named

    def masks(self) -> list[Any]:
        """The three masks from the named conditions; zero on a refused row."""
        fired, raised, na = [], [], []
        for i, (rule, plan) in enumerate(zip(self.rules, self.ruleset.severity_plans, strict=True)):
            w = column(f"w__{rule.code}")
            fired.append(cases([(w, integer(1 << i))], integer(0)))
            na.append(cases([(is_null(w), integer(1 << i))], integer(0)))
            if rule.code in self.escalating:  # severity.SeverityPlan: the highest escalation that holds
                rank = cases(
                    [(column(f"e__{rule.code}__{k}"), integer(to)) for k, (to, _) in enumerate(plan.raises)],
                    integer(plan.base),
                )
                shift = 1 << (self.bits * self.escalating[rule.code])
                raised.append(cases([(w, exp.Mul(this=exp.paren(rank), expression=integer(shift)))], integer(0)))
        ok = is_null(column("error"))

        def total(terms: list[Any]) -> Any:
            summed = sum(terms[1:], start=terms[0]) if terms else integer(0)
            return cases([(ok, summed)], integer(0))

        return [OPS.named(total(fired), "__fired"), OPS.named(total(raised), "__raised"), OPS.named(total(na), "__na")]
