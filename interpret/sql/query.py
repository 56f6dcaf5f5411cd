"""The SQL statement of the facts and rules over a table of validated panels.

The input table has one row per panel, with the columns the polars runner's validation
gives (`batch/columns.py`): `q__<quantity>` canonical value, `u__<quantity>` unit key,
`lab_low__`/`lab_high__`, `age`, `sex`, `hemolyzed`, `meds_known`, `unrecognized`,
`m__classes` (class bit mask), `t__<i>` (the conditions across time), `error`. The
statement keeps every input column and adds the facts (`column_facts`) and the three rule
masks (`SqlRules`), in layers of common table expressions so that no expression is
computed twice. Rendered by sqlglot for any dialect.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from interpret import column_facts
from interpret.batch.serial import serial_nodes
from interpret.facts import QUANTITIES
from interpret.ruleset import Ruleset
from interpret.sql.ops import SqlOps, column
from interpret.sql.rules import SqlRules

OPS = SqlOps()
PREFIX_KINDS = {"q__": "float", "u__": "text", "s__": "status", "v__": "bool"}
OSMOLALITY = "q__osmolality"


@dataclass(frozen=True)
class Statement:
    select: exp.Select
    columns: list[str]  # the result's columns, in order

    def sql(self, dialect: str, pretty: bool = False) -> str:
        return self.select.sql(dialect=dialect, pretty=pretty)


def _name(named: exp.Expression) -> str:
    assert isinstance(named, exp.Alias)
    return named.alias


def statement(rs: Ruleset, analytes: list[str], lab_ranges: set[str], inputs: list[str], table: str) -> Statement:
    """SELECT every input column, the facts and the masks FROM `table`."""
    steps = column_facts.fact_steps(rs, analytes, lab_ranges, OPS)
    produced = {_name(e) for e in steps.first + steps.second}
    present = set(inputs) | produced
    missing = [
        OPS.named(OPS.null(kind), f"{prefix}{q}")
        for q in QUANTITIES
        for prefix, kind in PREFIX_KINDS.items()
        if f"{prefix}{q}" not in present
    ]
    missing += [OPS.named(OPS.null("bool"), t) for t in serial_nodes(rs).values() if t not in present]
    if steps.osmolality is not None:
        steps.second.append(OPS.named(steps.osmolality, OSMOLALITY))
    rules = SqlRules(rs)
    conditions, masks = rules.conditions(), rules.masks()
    star = exp.Star()
    layers = [
        ("panels_in", [*(column(c) for c in inputs), *missing], table),
        ("facts_1", [star, *steps.first], "panels_in"),
        ("facts_2", [star, *steps.second], "facts_1"),
        ("conditions", [star, *conditions], "facts_2"),
    ]
    kept = [*inputs, *(_name(e) for e in missing), *(_name(e) for e in steps.first + steps.second)]
    final = exp.select(*(column(c) for c in kept), *masks).from_("conditions")
    for name, expressions, source in layers:
        final = final.with_(name, as_=exp.select(*expressions).from_(source))
    return Statement(final, [*kept, *(_name(m) for m in masks)])
