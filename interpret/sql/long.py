"""A long table (one row per result) as one row per panel, in SQL (`interpret sql --raw`).

As `batch/long.py` groups a long export: rows grouped by the panel key, labels resolved (the
mapping's `analytes:` and the sample's own), a conflicting repeat refuses its panel; the
panels' orders active at their time and their patients' age and sex joined from the side
tables (mapping `medications_file:`, `patients_file:`). The panels then go through the same
validation as a wide table (`sql/raw.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from sqlglot import exp

from interpret.batch.long import range_columns
from interpret.batch.mapping import MedicationFileSpec, PatientFileSpec, Plan
from interpret.facts import ANALYTE_FACT
from interpret.ruleset import Ruleset
from interpret.sql.cells import (
    ISO_TIME,
    ROW_KEY,
    Sql,
    cell,
    cte,
    empty,
    epoch,
    matches,
    refusal,
    spelled,
)
from interpret.sql.ops import SqlOps, cases, coalesce, column, integer, is_null, known, value
from interpret.validate import NUMBER_PATTERN

OPS = SqlOps()


class RawSqlError(ValueError):
    """The export's layout is one this SQL does not read (said before any SQL is printed)."""


@dataclass(frozen=True)
class SideTables:
    """A long export's second and third tables, as `interpret batch --medications --patients`
    reads them: medication orders (mapping `medications_file:`) and patients (`patients_file:`)."""

    orders: str | None = None
    orders_spec: MedicationFileSpec | None = None
    patients: str | None = None
    patients_spec: PatientFileSpec | None = None


NO_SIDE_TABLES = SideTables()  # a wide export, or a long one without orders and patients

LONG_PANELS, PANEL = "long_panels", "__panel"

LONG_PATIENT, LONG_TIME = "__patient_text", "__time_text"


@dataclass(frozen=True)
class LongPanels:
    ctes: list[Sql]
    plan: Plan  # the panels' plan: wide, a column per analyte
    duplicates: list[tuple[Sql, Sql]]  # (condition, refusal) of an analyte given twice
    orders: Sql | None  # each panel's active orders (`ROW_KEY`, `entry`), when orders are given


def long_panels(rs: Ruleset, plan: Plan, table: str, labels: Iterable[str], side: SideTables) -> LongPanels:
    """A long table (one row per result) as one row per panel (its key: the `panel_key`
    columns joined by "|", the output's `line`), with a value and a unit column per analyte
    and the panel's first age, sex, time and patient. The labels are the mapping's
    `analytes:` and the sample's own, each resolved as the batch resolves it (a label neither
    names is not used); an analyte given twice in a panel with different values refuses it."""
    spec = plan.long
    assert spec is not None
    if spec.comment:
        raise RawSqlError(
            "long.comment (haemolysis written in the laboratory's comments) is read by `interpret batch` only: "
            "free text with its negations is not read alike by every SQL dialect; leave it out of the mapping "
            "for `interpret sql --raw`, and haemolysis is then taken from a hemolyzed column only"
        )
    known = dict(plan.analyte_labels)
    for label in labels:
        text = label.strip()
        if text and text not in known and (found := rs.analyte(text)) is not None:
            known[text] = found
    analytes = [a for a in rs.analytes if a in ANALYTE_FACT and a in set(known.values())]
    label = cell(spec.analyte)
    analyte = cases([(exp.EQ(this=label, expression=value(k)), v) for k, v in known.items()], None)
    key = [cell(h) for h in spec.panel_key]
    panel: Sql = key[0]
    for part in key[1:]:
        panel = exp.DPipe(this=exp.DPipe(this=panel, expression=value("|")), expression=part)
    text = cell(spec.value)
    unit = cell(spec.unit) if spec.unit else value("")
    bounds = {end: header for end, header in (("low", spec.low), ("high", spec.high)) if header}
    rows = exp.select(
        exp.alias_(panel, PANEL, quoted=True),
        exp.alias_(analyte, "__analyte", quoted=True),
        exp.alias_(text, "__value", quoted=True),
        exp.alias_(unit, "__unit", quoted=True),
        *(exp.alias_(cell(header), f"__{end}", quoted=True) for end, header in bounds.items()),
        *(
            exp.alias_(cell(h), f"__role_{role}", quoted=True)
            for role, h in plan.roles.items()
            if role != "medications"
        ),
        *(
            exp.alias_(cell(h), n, quoted=True)
            for h, n in ((spec.patient_key, LONG_PATIENT), (spec.time, LONG_TIME))
            if h
        ),
    ).from_(exp.to_table(table).as_("r"))
    by_analyte: list[Sql] = []
    duplicates: list[tuple[Sql, Sql]] = []
    for a in analytes:
        this = exp.EQ(this=column("__analyte"), expression=value(a))
        by_analyte += [
            exp.alias_(exp.Min(this=cases([(this, column("__value"))], None)), a, quoted=True),
            exp.alias_(exp.Min(this=cases([(this, column("__unit"))], None)), f"{a}_unit", quoted=True),
            *(
                exp.alias_(exp.Min(this=cases([(this, column(f"__{end}"))], None)), f"{a}_{end}", quoted=True)
                for end in bounds
            ),
            exp.alias_(
                exp.Count(this=exp.Distinct(expressions=[cases([(this, column("__key"))], None)])),
                f"__distinct_{a}",
                quoted=True,
            ),
        ]
        duplicates.append(
            (exp.GT(this=column(f"__distinct_{a}"), expression=integer(1)), refusal(a, "duplicate_analyte"))
        )
    firsts = [
        exp.alias_(exp.Min(this=column(f"__role_{role}")), role, quoted=True)
        for role in plan.roles
        if role != "medications"
    ]
    firsts += [
        exp.alias_(exp.Min(this=column(n)), n, quoted=True)
        for h, n in ((spec.patient_key, LONG_PATIENT), (spec.time, LONG_TIME))
        if h
    ]
    # the key in a layer of its own: an alias of the same SELECT list is not readable everywhere
    keyed = exp.select(
        exp.Star(),
        exp.alias_(_same_value(rs, plan, analytes, column("__value"), column("__unit")), "__key", quoted=True),
    ).from_(exp.Subquery(this=rows, alias=exp.TableAlias(this=exp.to_identifier("rows"))))
    grouped = (
        exp.select(column(PANEL), *by_analyte, *firsts)
        .from_(exp.Subquery(this=keyed, alias=exp.TableAlias(this=exp.to_identifier("results"))))
        .where(exp.not_(is_null(column("__analyte"))))
        .group_by(column(PANEL))
    )
    roles = {role: role for role in plan.roles if role != "medications"}
    ctes = [cte(LONG_GROUPED, grouped)]
    panels = exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("g"))).from_(
        exp.to_table(LONG_GROUPED).as_("g")
    )
    if side.patients and side.patients_spec:
        if not spec.patient_key:
            raise RawSqlError("--patients-table needs long.patient_key in the mapping")
        panels, added, refused = _with_patients(panels, side.patients, side.patients_spec)
        roles |= {role: role for role in added}
        duplicates += refused
    ctes.append(cte(LONG_PANELS, panels))
    orders = None
    if side.orders and side.orders_spec:
        if not (spec.patient_key and spec.time):
            raise RawSqlError("--orders-table needs long.patient_key and long.time, to place orders in time")
        ctes.append(cte(ACTIVE_ORDERS, _active_orders(side.orders, side.orders_spec)))
        orders = exp.select(exp.column(ROW_KEY), exp.column("entry")).from_(ACTIVE_ORDERS)
        roles["medications"] = "medications"
    wide = replace(
        plan,
        format="wide",
        analyte_columns={a: a for a in analytes},
        unit_columns={a: f"{a}_unit" for a in analytes} if spec.unit else {},
        range_columns=range_columns(analytes, spec.low, spec.high),
        fixed_units={a: u for a, u in plan.fixed_units.items() if a in analytes},
        roles=roles,
        id_column=PANEL,
        history=bool(spec.patient_key and spec.time),
        long=None,
    )
    return LongPanels(ctes, wide, duplicates, orders)


LONG_GROUPED, ACTIVE_ORDERS = "long_grouped", "active_orders"


def _with_patients(panels: Sql, table: str, spec: PatientFileSpec) -> tuple[Sql, list[str], list[tuple[Sql, Sql]]]:
    """Each panel's age and sex from the patients table, by patient (`long._patients`): the
    age at the panel's time where `age_year` says in which year `age` was the age."""
    given = {role: column for role, column in (("age", spec.age), ("sex", spec.sex)) if column}
    first = [exp.alias_(exp.Min(this=cell(c)), f"__{role}", quoted=True) for role, c in given.items()]
    if spec.age_year:  # with a panel time: checked when the mapping was read (MappingFile)
        first.append(exp.alias_(exp.Min(this=cell(spec.age_year)), "__age_year", quoted=True))
    key = cell(spec.patient_key)
    people = exp.select(exp.alias_(key, "__key", quoted=True), *first).from_(exp.to_table(table).as_("r")).group_by(key)
    on = exp.EQ(
        this=exp.column("__key", table="pt", quoted=True), expression=exp.column(LONG_PATIENT, table="g", quoted=True)
    )
    columns: list[Sql] = []
    refusals: list[tuple[Sql, Sql]] = []
    if "age" in given:
        age = exp.column("__age", table="pt", quoted=True)
        if spec.age_year:
            year_text = exp.column("__age_year", table="pt", quoted=True)
            when = exp.column(LONG_TIME, table="g", quoted=True)
            year = exp.Year(this=exp.cast(when, exp.DataType.Type.TIMESTAMP))
            readable = exp.and_(
                matches(age, f"^({NUMBER_PATTERN})$"), matches(year_text, "^[0-9]{1,4}$"), matches(when, ISO_TIME)
            )
            shifted = exp.Add(
                this=exp.cast(age, exp.DataType.Type.DOUBLE),
                expression=exp.Sub(this=year, expression=exp.cast(year_text, exp.DataType.Type.BIGINT)),
            )
            unusable = exp.and_(matches(age, f"^({NUMBER_PATTERN})$"), exp.not_(coalesce(readable, False)))
            columns.append(
                exp.alias_(cases([(readable, exp.cast(shifted, exp.DataType.Type.VARCHAR))], age), "age", quoted=True)
            )
            columns.append(exp.alias_(unusable, "__age_unusable", quoted=True))
            refusals.append((coalesce(column("__age_unusable"), False), refusal("patients_file", "age_year")))
        else:
            columns.append(exp.alias_(age, "age", quoted=True))
    if "sex" in given:
        columns.append(exp.alias_(exp.column("__sex", table="pt", quoted=True), "sex", quoted=True))
    joined = panels.select(*columns).join(
        exp.Subquery(this=people, alias=exp.TableAlias(this=exp.to_identifier("pt"))), on=on, join_type="left"
    )
    return joined, list(given), refusals


def _active_orders(table: str, spec: MedicationFileSpec) -> Sql:
    """Each panel's orders active at its time (`long._medications`): started at or before it,
    and not stopped before it (no stop: still running). An order whose start is unreadable,
    or whose stop is given but unreadable or before its start, is not used. With how many
    hours before the panel each started (the conditions across time read them)."""
    start, stop_text = epoch(cell(spec.start)), cell(spec.stop)
    stop = epoch(stop_text)
    orders = exp.select(
        exp.alias_(cell(spec.patient_key), "__patient", quoted=True),
        exp.alias_(cell(spec.name), "entry", quoted=True),
        exp.alias_(start, "__start", quoted=True),
        exp.alias_(stop, "__stop", quoted=True),
        exp.alias_(empty(stop_text), "__ongoing", quoted=True),
    ).from_(exp.to_table(table).as_("r"))

    def o(name: str) -> Sql:
        return exp.column(name, table="o", quoted=True)

    at = epoch(cell(LONG_TIME, table="p"))
    placed = exp.and_(
        known(o("__start")),
        exp.or_(o("__ongoing"), exp.and_(known(o("__stop")), exp.GTE(this=o("__stop"), expression=o("__start")))),
    )
    active = exp.and_(
        exp.LTE(this=o("__start"), expression=at),
        exp.or_(o("__ongoing"), exp.LTE(this=at, expression=o("__stop"))),
    )
    # sqlglot writes a tree as it is built: a difference divided needs its parentheses
    hours = exp.Div(this=exp.paren(exp.Sub(this=at, expression=o("__start"))), expression=value(3600.0))
    on = exp.EQ(this=o("__patient"), expression=exp.column(LONG_PATIENT, table="p", quoted=True))
    return (
        exp.select(
            exp.alias_(exp.column(PANEL, table="p", quoted=True), ROW_KEY),
            exp.column("entry", table="o", quoted=True),
            exp.alias_(hours, "__hours", quoted=True),
        )
        .from_(exp.to_table(LONG_PANELS).as_("p"))
        .join(exp.Subquery(this=orders, alias=exp.TableAlias(this=exp.to_identifier("o"))), on=on, join_type="inner")
        .where(exp.and_(placed, active))
    )


def _same_value(rs: Ruleset, plan: Plan, analytes: list[str], text: Sql, unit: Sql) -> Sql:
    """What two results of one analyte must share to be the same result (`long._same_value_key`):
    the value in the analyte's canonical unit (rounded to 9 places), or, where the value is no
    number or the unit unknown, the text as written."""
    figure = cases([(matches(text, f"^({NUMBER_PATTERN})$"), exp.cast(text, exp.DataType.Type.DOUBLE))], None)
    exact, folded = rs.units.spellings()
    branches = []
    for a in analytes:
        accepted = rs.analytes[a].units
        key = spelled(
            unit, {s: k for s, k in exact.items() if k in accepted}, {s: k for s, k in folded.items() if k in accepted}
        )
        if a in plan.fixed_units:
            key = cases([(empty(unit), plan.fixed_units[a])], key)
        factor = OPS.by_key(key, {u: rs.units.factor(a, u) for u in accepted}, None)
        branches.append((exp.EQ(this=column("__analyte"), expression=value(a)), factor))
    factor = cases(branches, None)
    canonical = OPS.round(exp.Mul(this=figure, expression=factor), 9)
    written = exp.DPipe(this=exp.DPipe(this=text, expression=value(" ")), expression=unit)
    return cases([(known(canonical), exp.cast(canonical, exp.DataType.Type.VARCHAR))], written)
