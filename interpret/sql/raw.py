"""Validation as SQL: an export's own table (wide or long) -> the validated-panel table (`query.py`).

For a warehouse that keeps the export itself (one row per panel, the columns as
`interpret batch` reads them): the statement reads the cells where the data are.

SQL reads a cell itself only where every dialect reads it the same way: a plain number by the
single-panel path's own pattern (`validate.NUMBER_PATTERN`, then a CAST that cannot fail), a
word compared with a short list. Every spelling with a meaning is resolved in Python, once
per distinct spelling, by the functions the other runners use: the unit spellings, sex codes
and yes/no words of the ruleset become CASE lists; the medication entries (of a sample of the
table, and of an entry list) become a mapping table of `VALUES` joined per entry. An entry
absent from it counts as not recognised, as an unknown name does anywhere else: re-run
`interpret sql` with the table's distinct entries to resolve them.

Refusals are the same checks as the batch's (`validate.value_checks`, `age_refused`, the same
plausibility limits), in the same order, but `error` gives each as location and refusal code
(`potassium (column 'K'): implausible`): the batch's full sentences quote the cell as Python
writes it, which SQL does not (the codes' words: `validate.REFUSALS`).

A long table (one row per result) is grouped into panels first, as `batch/long.py` groups it,
with its orders (active at each panel's time) and patients tables joined in the statement;
the conditions across time are `sql/serial.py`'s. The tests hold every part of it to
`interpret batch`, panel by panel (tests/test_sql_raw.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from interpret import column_facts
from interpret.batch.columns import CLASSES, UNRECOGNIZED_BIT, class_bits, entry_bits
from interpret.batch.mapping import MedicationFileSpec, PatientFileSpec, Plan
from interpret.facts import ANALYTE_FACT, SEXES
from interpret.ruleset import Ruleset
from interpret.sql.ops import SqlOps, cases, coalesce, integer, is_null, value
from interpret.sql.query import VALIDATED
from interpret.sql.serial import PATIENT, SECONDS
from interpret.units import CENSORED_MARKS
from interpret.validate import NUMBER_PATTERN, age_refused, value_checks

OPS = SqlOps()
Sql = Any  # a sqlglot expression (sqlglot's own types are not precise enough to check)
ENTRIES, ENTRY_ROWS, ENTRY_CLASSES = "medication_entries", "medication_rows", "medication_classes"
ROW_KEY = "__row_key"
CELLS, READ, CHECKED = "raw_cells", "raw_read", "raw_checked"  # the layers that make the validated table
# The longest cell read as a number: a DOUBLE CAST of a longer one (or of a 3-digit exponent)
# may overflow, which fails the whole statement on Postgres; such a cell is not a number here.
LONGEST_NUMBER = 30


class RawSqlError(ValueError):
    """The export's layout is one this SQL does not read (said before any SQL is printed)."""


def refusal_words() -> dict[str, str]:
    """The refusal codes `error` gives, and their words (the batch's sentences without the cell)."""
    from interpret.validate import REFUSALS

    codes = ("not_a_number", "unit", "negative", "implausible", "age", "sex", "not_yes_no", "duplicate_analyte")
    return {c: REFUSALS[c] for c in codes} | {"no_results": "no result to interpret"}


@dataclass(frozen=True)
class SideTables:
    """A long export's second and third tables, as `interpret batch --medications --patients`
    reads them: medication orders (mapping `medications_file:`) and patients (`patients_file:`)."""

    orders: str | None = None
    orders_spec: MedicationFileSpec | None = None
    patients: str | None = None
    patients_spec: PatientFileSpec | None = None


def validated_select(
    rs: Ruleset,
    plan: Plan,
    table: str,
    entries: Iterable[str],
    decimal_comma: bool = False,
    history: tuple[str, str] | None = None,
    labels: Iterable[str] = (),
    side: SideTables = SideTables(),
) -> tuple[list[Sql], list[str], bool]:
    """The common table expressions that make `validated_panels` from the raw `table`, the
    analytes it gives, and whether it gives each panel's patient and time. `history`: the
    (patient, time) columns of a wide table, for the conditions across time (`sql/serial.py`);
    a long table's come from its mapping (`long.patient_key`, `long.time`). `labels`: a long
    table's analyte labels to resolve (those of its sample); `side`: its orders and patients."""
    ctes: list[Sql] = []
    duplicates: list[tuple[Sql, Sql]] = []
    if plan.format == "long":  # one row per result: grouped into panels first (as batch/long.py)
        long = _long_panels(rs, plan, table, labels, side)
        ctes += long.ctes
        plan, duplicates, table = long.plan, long.duplicates, LONG_PANELS
        history = (LONG_PATIENT, LONG_TIME) if plan.history else None
        if long.orders is not None:
            ctes += _medication_ctes(rs, long.orders, entries)
    elif not plan.id_column:
        raise RawSqlError("name the table's row key with --id-column: each output row carries it")
    elif medications := plan.roles.get("medications"):
        ctes += _medication_ctes(rs, _entries_of(table, medications, plan.id_column), entries)
    medicated = "medications" in plan.roles
    ctes += _validated(rs, plan, table, medicated, decimal_comma, history, duplicates)
    return ctes, list(plan.analyte_columns), history is not None


LONG_PANELS, PANEL = "long_panels", "__panel"
LONG_PATIENT, LONG_TIME = "__patient_text", "__time_text"


@dataclass(frozen=True)
class LongPanels:
    ctes: list[Sql]
    plan: Plan  # the panels' plan: wide, a column per analyte
    duplicates: list[tuple[Sql, Sql]]  # (condition, refusal) of an analyte given twice
    orders: Sql | None  # each panel's active orders (`ROW_KEY`, `entry`), when orders are given


def _long_panels(rs: Ruleset, plan: Plan, table: str, labels: Iterable[str], side: SideTables) -> LongPanels:
    """A long table (one row per result) as one row per panel (its key: the `panel_key`
    columns joined by "|", the output's `line`), with a value and a unit column per analyte
    and the panel's first age, sex, time and patient. The labels are the mapping's
    `analytes:` and the sample's own, each resolved as the batch resolves it (a label neither
    names is not used); an analyte given twice in a panel with different values refuses it."""
    from dataclasses import replace

    spec = plan.long
    assert spec is not None
    known = dict(plan.analyte_labels)
    for label in labels:
        text = label.strip()
        if text and text not in known and (found := rs.analyte(text)) is not None:
            known[text] = found
    analytes = [a for a in rs.analytes if a in ANALYTE_FACT and a in set(known.values())]
    label = _cell(spec.analyte)
    analyte = cases([(exp.EQ(this=label, expression=value(k)), v) for k, v in known.items()], None)
    key = [_cell(h) for h in spec.panel_key]
    panel: Sql = key[0]
    for part in key[1:]:
        panel = exp.DPipe(this=exp.DPipe(this=panel, expression=value("|")), expression=part)
    text = _cell(spec.value)
    unit = _cell(spec.unit) if spec.unit else value("")
    rows = exp.select(
        exp.alias_(panel, PANEL, quoted=True),
        exp.alias_(analyte, "__analyte", quoted=True),
        exp.alias_(text, "__value", quoted=True),
        exp.alias_(unit, "__unit", quoted=True),
        exp.alias_(_same_value(rs, plan, analytes, text, unit), "__key", quoted=True),
        *(
            exp.alias_(_cell(h), f"__role_{role}", quoted=True)
            for role, h in plan.roles.items()
            if role != "medications"
        ),
        *(
            exp.alias_(_cell(h), n, quoted=True)
            for h, n in ((spec.patient_key, LONG_PATIENT), (spec.time, LONG_TIME))
            if h
        ),
    ).from_(exp.to_table(table).as_("r"))
    by_analyte: list[Sql] = []
    duplicates: list[tuple[Sql, Sql]] = []
    for a in analytes:
        this = exp.EQ(this=col("__analyte"), expression=value(a))
        by_analyte += [
            exp.alias_(exp.Min(this=cases([(this, col("__value"))], None)), a, quoted=True),
            exp.alias_(exp.Min(this=cases([(this, col("__unit"))], None)), f"{a}_unit", quoted=True),
            exp.alias_(
                exp.Count(this=exp.Distinct(expressions=[cases([(this, col("__key"))], None)])),
                f"__distinct_{a}",
                quoted=True,
            ),
        ]
        duplicates.append(
            (exp.GT(this=col(f"__distinct_{a}"), expression=integer(1)), _refusal(a, "duplicate_analyte"))
        )
    firsts = [
        exp.alias_(exp.Min(this=col(f"__role_{role}")), role, quoted=True)
        for role in plan.roles
        if role != "medications"
    ]
    firsts += [
        exp.alias_(exp.Min(this=col(n)), n, quoted=True)
        for h, n in ((spec.patient_key, LONG_PATIENT), (spec.time, LONG_TIME))
        if h
    ]
    grouped = (
        exp.select(col(PANEL), *by_analyte, *firsts)
        .from_(exp.Subquery(this=rows, alias=exp.TableAlias(this=exp.to_identifier("results"))))
        .where(exp.not_(is_null(col("__analyte"))))
        .group_by(col(PANEL))
    )
    roles = {role: role for role in plan.roles if role != "medications"}
    ctes = [_cte(LONG_GROUPED, grouped)]
    panels = exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("g"))).from_(
        exp.to_table(LONG_GROUPED).as_("g")
    )
    if side.patients and side.patients_spec:
        if not spec.patient_key:
            raise RawSqlError("--patients-table needs long.patient_key in the mapping")
        panels, added, refused = _with_patients(panels, side.patients, side.patients_spec, spec.time is not None)
        roles |= {role: role for role in added}
        duplicates += refused
    ctes.append(_cte(LONG_PANELS, panels))
    orders = None
    if side.orders and side.orders_spec:
        if not (spec.patient_key and spec.time):
            raise RawSqlError("--orders-table needs long.patient_key and long.time, to place orders in time")
        ctes.append(_cte(ACTIVE_ORDERS, _active_orders(side.orders, side.orders_spec)))
        orders = exp.select(exp.column(ROW_KEY), exp.column("entry")).from_(ACTIVE_ORDERS)
        roles["medications"] = "medications"
    wide = replace(
        plan,
        format="wide",
        analyte_columns={a: a for a in analytes},
        unit_columns={a: f"{a}_unit" for a in analytes} if spec.unit else {},
        fixed_units={a: u for a, u in plan.fixed_units.items() if a in analytes},
        roles=roles,
        id_column=PANEL,
        history=bool(spec.patient_key and spec.time),
        long=None,
    )
    return LongPanels(ctes, wide, duplicates, orders)


LONG_GROUPED, ACTIVE_ORDERS = "long_grouped", "active_orders"


def _with_patients(
    panels: Sql, table: str, spec: PatientFileSpec, timed: bool
) -> tuple[Sql, list[str], list[tuple[Sql, Sql]]]:
    """Each panel's age and sex from the patients table, by patient (`long._patients`): the
    age at the panel's time where `age_year` says in which year `age` was the age."""
    given = {role: column for role, column in (("age", spec.age), ("sex", spec.sex)) if column}
    first = [exp.alias_(exp.Min(this=_cell(c)), f"__{role}", quoted=True) for role, c in given.items()]
    if spec.age_year:
        if not timed:
            raise RawSqlError("patients_file.age_year needs long.time (the age is worked out at each panel's time)")
        first.append(exp.alias_(exp.Min(this=_cell(spec.age_year)), "__age_year", quoted=True))
    key = _cell(spec.patient_key)
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
                _matches(age, f"^({NUMBER_PATTERN})$"), _matches(year_text, "^[0-9]{1,4}$"), _matches(when, ISO_TIME)
            )
            shifted = exp.Add(
                this=exp.cast(age, exp.DataType.Type.DOUBLE),
                expression=exp.Sub(this=year, expression=exp.cast(year_text, exp.DataType.Type.BIGINT)),
            )
            unusable = exp.and_(_matches(age, f"^({NUMBER_PATTERN})$"), exp.not_(coalesce(readable, False)))
            columns.append(
                exp.alias_(cases([(readable, exp.cast(shifted, exp.DataType.Type.VARCHAR))], age), "age", quoted=True)
            )
            columns.append(exp.alias_(unusable, "__age_unusable", quoted=True))
            refusals.append((coalesce(col("__age_unusable"), False), _refusal("patients_file", "age_year")))
        else:
            columns.append(exp.alias_(age, "age", quoted=True))
    if "sex" in given:
        columns.append(exp.alias_(exp.column("__sex", table="pt", quoted=True), "sex", quoted=True))
    joined = panels.select(*columns).join(
        exp.Subquery(this=people, alias=exp.TableAlias(this=exp.to_identifier("pt"))), on=on, join_type="left"
    )
    return joined, list(given), refusals


def _epoch(text: Sql) -> Sql:
    """A time cell as epoch seconds: ISO text without an offset (or a TIMESTAMP's text) read as
    UTC; NULL for any other (a CAST of it could fail the whole statement)."""
    seconds = exp.TimeToUnix(this=exp.cast(text, exp.DataType.Type.TIMESTAMP))
    return cases([(_matches(text, ISO_TIME), seconds)], None)


def _active_orders(table: str, spec: MedicationFileSpec) -> Sql:
    """Each panel's orders active at its time (`long._medications`): started at or before it,
    and not stopped before it (no stop: still running). An order whose start is unreadable,
    or whose stop is given but unreadable or before its start, is not used. With how many
    hours before the panel each started (the conditions across time read them)."""
    start, stop_text = _epoch(_cell(spec.start)), _cell(spec.stop)
    stop = _epoch(stop_text)
    orders = exp.select(
        exp.alias_(_cell(spec.patient_key), "__patient", quoted=True),
        exp.alias_(_cell(spec.name), "entry", quoted=True),
        exp.alias_(start, "__start", quoted=True),
        exp.alias_(stop, "__stop", quoted=True),
        exp.alias_(_empty(stop_text), "__ongoing", quoted=True),
    ).from_(exp.to_table(table).as_("r"))

    def o(name: str) -> Sql:
        return exp.column(name, table="o", quoted=True)

    at = _epoch(_cell(LONG_TIME, table="p"))
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
    number = cases([(_matches(text, f"^({NUMBER_PATTERN})$"), exp.cast(text, exp.DataType.Type.DOUBLE))], None)
    exact, folded = rs.units.spellings()
    branches = []
    for a in analytes:
        accepted = rs.analytes[a].units
        key = _spelled(
            unit, {s: k for s, k in exact.items() if k in accepted}, {s: k for s, k in folded.items() if k in accepted}
        )
        if a in plan.fixed_units:
            key = cases([(_empty(unit), plan.fixed_units[a])], key)
        factor = OPS.by_key(key, {u: rs.units.factor(a, u) for u in accepted}, None)
        branches.append((exp.EQ(this=col("__analyte"), expression=value(a)), factor))
    factor = cases(branches, None)
    canonical = OPS.round(exp.Mul(this=number, expression=factor), 9)
    written = exp.DPipe(this=exp.DPipe(this=text, expression=value(" ")), expression=unit)
    return cases([(known(canonical), exp.cast(canonical, exp.DataType.Type.VARCHAR))], written)


def _cte(name: str, select: Sql) -> Sql:
    return exp.CTE(this=select, alias=exp.TableAlias(this=exp.to_identifier(name, quoted=False)))


def _cell(header: str, table: str = "r") -> Sql:
    """A cell as trimmed text (a typed column reads as its text)."""
    return exp.Trim(this=exp.cast(exp.column(header, table=table, quoted=True), exp.DataType.Type.VARCHAR))


def _lower(e: Sql) -> Sql:
    return exp.Lower(this=e)


def _empty(cell: Sql) -> Sql:
    return exp.or_(is_null(cell), exp.EQ(this=cell, expression=value("")))


def _matches(cell: Sql, pattern: str) -> Sql:
    return exp.RegexpLike(this=cell, expression=exp.Literal.string(pattern))


def _number(cell: Sql, decimal_comma: bool) -> Sql:
    """The number a cell holds, NULL where it holds none (`validate.read_number`)."""
    if decimal_comma:  # one comma and no point: a decimal comma
        one_comma = exp.EQ(
            this=exp.Sub(
                this=exp.Length(this=cell),
                expression=exp.Length(this=exp.func("REPLACE", cell, value(","), value(""))),
            ),
            expression=exp.Literal.number(1),
        )
        no_point = exp.EQ(this=exp.func("STRPOS", cell, value(".")), expression=exp.Literal.number(0))
        cell = cases([(exp.and_(one_comma, no_point), exp.func("REPLACE", cell, value(","), value(".")))], cell)
    readable = exp.and_(
        _matches(cell, f"^({NUMBER_PATTERN})$"),
        exp.LTE(this=exp.Length(this=cell), expression=exp.Literal.number(LONGEST_NUMBER)),
        exp.not_(_matches(cell, "[eE][+-]?[0-9]{3}")),
    )
    return cases([(readable, exp.cast(cell, exp.DataType.Type.DOUBLE))], None)


def _words(cell: Sql, words: Iterable[str]) -> Sql:
    return exp.In(this=_lower(cell), expressions=[value(w.casefold()) for w in words])


def _spelled(cell: Sql, exact: dict[str, Any], folded: dict[str, Any]) -> Sql:
    """The meaning of a spelling: exact, then case-insensitive (`folded`, keyed by casefold();
    SQL's LOWER is Python's lower(), so each exact spelling's lower() is a key too), NULL for
    any other."""
    lowered = dict(folded)
    for spelling, meaning in exact.items():
        lowered.setdefault(spelling.lower(), meaning)
    branches = [(exp.EQ(this=cell, expression=value(k)), v) for k, v in exact.items()]
    branches += [(exp.EQ(this=_lower(cell), expression=value(k)), v) for k, v in lowered.items()]
    return cases(branches, None)


def _refusal(location: str, code: str) -> Sql:
    return value(f"{location}: {code}")


def _pieces(parts: list[tuple[Sql, Sql]]) -> Sql:
    """The refusals that hold, each "text; " (CONCAT_WS is not portable in its NULL handling)."""
    pieces = [cases([(condition, exp.DPipe(this=text, expression=value("; ")))], "") for condition, text in parts]
    whole: Sql = pieces[0] if pieces else value("")
    for piece in pieces[1:]:
        whole = exp.DPipe(this=whole, expression=piece)
    return whole


def _cut(pieces: Sql) -> Sql:
    """`_pieces` joined by "; ": NULL when none, else without the last separator."""
    length = exp.Sub(this=exp.Length(this=pieces), expression=exp.Literal.number(2))
    cut = exp.Substring(this=pieces, start=exp.Literal.number(1), length=length)
    return cases([(exp.EQ(this=pieces, expression=value("")), None)], cut)


def _validated(
    rs: Ruleset,
    plan: Plan,
    table: str,
    medications: bool,
    decimal_comma: bool,
    history: tuple[str, str] | None,
    duplicates: list[tuple[Sql, Sql]],
) -> list[Sql]:
    """`validated_panels`: one row per panel of `table`, with the columns
    `query.validated_columns` names, in three layers so that no expression is written twice:
    the cells as trimmed text, what each cell reads as, the checks, then the refusals' words."""
    assert plan.id_column is not None  # validated_select refuses a table without its row key
    specimen = rs.meta.specimen
    texts = {f"__t_{ANALYTE_FACT[a]}": h for a, h in plan.analyte_columns.items()}
    texts |= {f"__tu_{ANALYTE_FACT[a]}": h for a, h in plan.unit_columns.items() if a in plan.analyte_columns}
    for analyte, pair in plan.range_columns.items():
        texts |= {f"__t{b}_{ANALYTE_FACT[analyte]}": h for b, h in zip(("lo", "hi"), pair, strict=True) if h}
    texts |= {f"__t_{role}": h for role, h in plan.roles.items() if role in ("age", "sex", "hemolyzed")}
    cells = [exp.alias_(exp.column(plan.id_column, table="r", quoted=True), "line", quoted=True)]
    cells += [exp.alias_(_cell(h), name, quoted=True) for name, h in texts.items()]
    cells += _medication_columns(medications)
    cells += [exp.column(c.this.name, table="r", quoted=True) for c, _ in duplicates]  # long: the counts
    if history:
        cells += _patient_and_time(*history)
    source = exp.select(*cells).from_(exp.to_table(table).as_("r"))
    if medications:
        on = exp.EQ(this=exp.column(ROW_KEY, table="m"), expression=exp.column(plan.id_column, table="r", quoted=True))
        source = source.join(exp.to_table(ENTRY_CLASSES).as_("m"), on=on, join_type="left")

    read: list[Sql] = [exp.Star()]
    checked: list[Sql] = [col("line"), col("meds_known"), col("unrecognized"), col(CLASSES)]
    checked += [col(PATIENT), col(SECONDS)] if history else []
    refusals: list[tuple[Sql, Sql]] = list(duplicates)
    hemolysis_cells: list[Sql] = []
    measured: list[Sql] = []
    for analyte, header in plan.analyte_columns.items():
        fact = ANALYTE_FACT[analyte]
        cell = col(f"__t_{fact}")
        hemolysis = coalesce(_words(cell, specimen.hemolyzed_words), False)
        first = exp.Substring(this=cell, start=exp.Literal.number(1), length=exp.Literal.number(1))
        censored = exp.In(this=first, expressions=[value(m) for m in CENSORED_MARKS])
        not_measured = exp.or_(hemolysis, censored) if rs.analytes[analyte].censored == "not_measured" else hemolysis
        read += [
            exp.alias_(_number(cell, decimal_comma), f"__n_{fact}", quoted=True),
            exp.alias_(_unit(rs, plan, analyte), f"__u_{fact}", quoted=True),
            exp.alias_(hemolysis, f"__h_{fact}", quoted=True),
            exp.alias_(
                exp.and_(exp.not_(_empty(cell)), exp.not_(coalesce(not_measured, False))), f"__g_{fact}", quoted=True
            ),
        ]
        for bound in ("lo", "hi"):
            if f"__t{bound}_{fact}" in texts:
                read.append(
                    exp.alias_(_number(col(f"__t{bound}_{fact}"), decimal_comma), f"__n{bound}_{fact}", quoted=True)
                )
        number, unit, given = col(f"__n_{fact}"), col(f"__u_{fact}"), col(f"__g_{fact}")
        factor = OPS.by_key(unit, {u: rs.units.factor(analyte, u) for u in rs.analytes[analyte].units}, None)
        canonical = exp.Mul(this=number, expression=factor)
        limits = rs.plausibility[analyte]
        low = column_facts.limit(OPS, unit, limits.get("refuse_below"))
        high = column_facts.limit(OPS, unit, limits.get("refuse_above"))
        where = f"{analyte} (column {header!r})"
        refusals.append((exp.and_(given, is_null(number)), _refusal(where, "not_a_number")))
        refusals.append((exp.and_(given, known(number), is_null(unit)), _refusal(where, "unit")))
        for code, refused in value_checks(number, canonical, low, high, OPS):
            refusals.append((exp.and_(given, known(number), known(unit), refused), _refusal(where, code)))
        q = cases([(exp.and_(given, known(number)), canonical)], None)
        checked += [exp.alias_(q, f"q__{fact}", quoted=True), exp.alias_(unit, f"u__{fact}", quoted=True)]
        if analyte in plan.range_columns:
            for bound in ("lo", "hi"):
                limit: Sql = exp.cast(exp.null(), exp.DataType.Type.DOUBLE)
                if f"__t{bound}_{fact}" in texts:
                    limit = exp.Mul(this=col(f"__n{bound}_{fact}"), expression=factor)
                name = "low" if bound == "lo" else "high"
                checked.append(exp.alias_(limit, f"lab_{name}__{fact}", quoted=True))
        hemolysis_cells.append(col(f"__h_{fact}"))
        measured.append(known(q))
    # "no result" only where no result was refused either (a refused cell says more)
    none_refused = exp.not_(exp.or_(*(condition for condition, _ in refusals))) if refusals else exp.true()
    any_result = exp.or_(*measured) if measured else exp.false()
    patient_read, patient_checked = _patient(rs, plan, refusals, hemolysis_cells, decimal_comma)
    read += patient_read
    checked += patient_checked
    refusals.append((exp.and_(exp.not_(any_result), none_refused), value("no_results")))
    checked.append(exp.alias_(_pieces(refusals), "__refusals", quoted=True))
    kept = [col(e.alias_or_name) for e in checked if e.alias_or_name != "__refusals"]
    return [
        _cte(CELLS, source),
        _cte(READ, exp.select(*read).from_(CELLS)),
        _cte(CHECKED, exp.select(*checked).from_(READ)),
        _cte(VALIDATED, exp.select(*kept, exp.alias_(_cut(col("__refusals")), "error", quoted=True)).from_(CHECKED)),
    ]


# A time as ISO text without an offset (or a TIMESTAMP column, whose text is that): read as
# UTC, as the batch reads a time without an offset. Anything else is no time here (its rules
# across time are not assessed): a CAST of it could fail the whole statement.
ISO_TIME = "^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?$"


def _patient_and_time(patient: str, time: str) -> list[Sql]:
    """Each row's patient (NULL when blank) and its time in epoch seconds (NULL when unread)."""
    who = _cell(patient)
    when = _cell(time)
    seconds = exp.TimeToUnix(this=exp.cast(when, exp.DataType.Type.TIMESTAMP))
    return [
        exp.alias_(cases([(_empty(who), None)], who), PATIENT, quoted=True),
        exp.alias_(cases([(_matches(when, ISO_TIME), seconds)], None), SECONDS, quoted=True),
    ]


def col(name: str) -> Sql:
    return exp.column(name, quoted=True)


def known(e: Sql) -> Sql:
    return exp.not_(is_null(e))


def _unit(rs: Ruleset, plan: Plan, analyte: str) -> Sql:
    """The unit key of each row: its unit cell (or the fixed unit), NULL where the spelling is
    not a unit of `analyte` (`UnitTable.resolve`: exact, then case-insensitive)."""
    accepted = rs.analytes[analyte].units
    default = plan.fixed_units.get(analyte)
    if analyte not in plan.unit_columns:
        return value(default) if default in accepted else exp.cast(exp.null(), exp.DataType.Type.VARCHAR)
    exact, folded = rs.units.spellings()
    cell = col(f"__tu_{ANALYTE_FACT[analyte]}")
    if default:
        cell = cases([(_empty(cell), default)], cell)
    exact = {s: k for s, k in exact.items() if k in accepted}
    return _spelled(cell, exact, {s: k for s, k in folded.items() if k in accepted})


def _patient(
    rs: Ruleset,
    plan: Plan,
    refusals: list[tuple[Sql, Sql]],
    hemolysis_cells: list[Sql],
    decimal_comma: bool,
) -> tuple[list[Sql], list[Sql]]:
    """(what the age, sex and specimen cells read as, their checked columns)."""
    roles, specimen = plan.roles, rs.meta.specimen
    read: list[Sql] = []
    checked: list[Sql] = []
    if "age" in roles:
        cell = col("__t_age")
        read.append(exp.alias_(_number(cell, decimal_comma), "__n_age", quoted=True))
        age, limits = col("__n_age"), rs.meta.patient_age
        refusals.append((exp.and_(exp.not_(_empty(cell)), is_null(age)), _refusal("age", "not_a_number")))
        refusals.append((age_refused(age, limits.min, limits.max, OPS), _refusal("age", "age")))
        checked.append(exp.alias_(age, "age", quoted=True))
    else:
        checked.append(exp.alias_(OPS.null("float"), "age", quoted=True))
    if "sex" in roles:
        cell = col("__t_sex")
        read.append(exp.alias_(_spelled(cell, {}, {k: v for k, v in SEXES.items()}), "__sex", quoted=True))
        sex = col("__sex")
        refusals.append((exp.and_(exp.not_(_empty(cell)), is_null(sex)), _refusal("sex", "sex")))
        shown = cases([(exp.EQ(this=sex, expression=value("unknown")), None)], sex)
        checked.append(exp.alias_(shown, "sex", quoted=True))
    else:
        checked.append(exp.alias_(OPS.null("text"), "sex", quoted=True))
    any_cell = exp.or_(*hemolysis_cells) if hemolysis_cells else exp.false()
    if "hemolyzed" in roles:
        cell = col("__t_hemolyzed")
        yes = coalesce(_words(cell, [*specimen.yes_words, *specimen.hemolyzed_words]), False)
        no = exp.or_(coalesce(_words(cell, specimen.no_words), False), _empty(cell))
        read += [exp.alias_(yes, "__yes", quoted=True), exp.alias_(no, "__no", quoted=True)]
        refusals.append((exp.not_(exp.or_(col("__yes"), col("__no"))), _refusal("hemolyzed", "not_yes_no")))
        checked.append(exp.alias_(exp.or_(col("__yes"), any_cell), "hemolyzed", quoted=True))
    else:
        checked.append(exp.alias_(any_cell, "hemolyzed", quoted=True))
    return read, checked


def _medication_columns(medications: bool) -> list[Sql]:
    if not medications:
        return [
            exp.alias_(exp.false(), "meds_known", quoted=True),
            exp.alias_(exp.false(), "unrecognized", quoted=True),
            exp.alias_(integer(0), CLASSES, quoted=True),
        ]
    classes = coalesce(exp.column(CLASSES, table="m", quoted=True), integer(0))
    unrecognized = coalesce(exp.column("unrecognized", table="m", quoted=True), False)
    return [
        exp.alias_(exp.true(), "meds_known", quoted=True),
        exp.alias_(unrecognized, "unrecognized", quoted=True),
        exp.alias_(classes, CLASSES, quoted=True),
    ]


def entry_table(rs: Ruleset, entries: Iterable[str]) -> list[tuple[str, int, bool]]:
    """(entry, class bits, recognised) of each distinct entry, stripped, by the catalogue."""
    rows = {}
    for text in entries:
        entry = text.strip()
        if entry and entry not in rows:
            bits = entry_bits(rs, entry)
            rows[entry] = (entry, bits & ~(1 << UNRECOGNIZED_BIT), not bits >> UNRECOGNIZED_BIT)
    return sorted(rows.values())


def _medication_ctes(rs: Ruleset, rows: Sql, entries: Iterable[str]) -> list[Sql]:
    """The mapping table of entries, each row's entries (`rows`: the row key, `ROW_KEY`, and
    `entry`), and each row's class bits: an entry not in the table is not recognised."""
    known_entries = entry_table(rs, entries) or [("", 0, True)]  # VALUES needs a row
    values = exp.values(
        [(value(e), integer(b), value(r)) for e, b, r in known_entries],
        alias="t",
        columns=["entry", "classes", "recognized"],
    )
    mapping = exp.select("entry", "classes", "recognized").from_(values)
    bits = class_bits(rs).values()
    per_class = [
        exp.Mul(
            this=exp.Max(
                this=cases(
                    [
                        (
                            exp.NEQ(this=exp.BitwiseAnd(this=_classes(), expression=integer(b)), expression=integer(0)),
                            integer(1),
                        )
                    ],
                    integer(0),
                )
            ),
            expression=integer(b),
        )
        for b in bits
    ]
    total: Sql = per_class[0] if per_class else integer(0)
    for term in per_class[1:]:
        total = exp.Add(this=total, expression=term)
    named = exp.and_(
        exp.NEQ(this=exp.column("entry", table="x"), expression=value("")),
        exp.not_(coalesce(exp.column("recognized", table="k"), False)),
    )
    unrecognized = exp.EQ(this=exp.Max(this=cases([(named, integer(1))], integer(0))), expression=integer(1))
    on = exp.EQ(this=exp.column("entry", table="k"), expression=exp.column("entry", table="x"))
    combined = (
        exp.select(
            exp.column(ROW_KEY, table="x"),
            exp.alias_(total, CLASSES, quoted=True),
            exp.alias_(unrecognized, "unrecognized", quoted=True),
        )
        .from_(exp.to_table(ENTRY_ROWS).as_("x"))
        .join(exp.to_table(ENTRIES).as_("k"), on=on, join_type="left")
        .group_by(exp.column(ROW_KEY, table="x"))
    )
    return [_cte(ENTRIES, mapping), _cte(ENTRY_ROWS, rows), _cte(ENTRY_CLASSES, combined)]


def _entries_of(table: str, header: str, key: str | None = None) -> Sql:
    """Each row's medication entries (the `;`-separated list split and trimmed), with the row's
    key; without `key`, the table's distinct entries (to resolve, `--medication-entries`)."""
    quoted = {n: exp.to_identifier(n, quoted=True).sql("duckdb") for n in (key or "", header)}
    source = exp.to_table(table).sql("duckdb")
    which = f"r.{quoted[key]} AS {ROW_KEY}, TRIM(e.entry) AS entry" if key else "DISTINCT TRIM(e.entry) AS entry"
    return sqlglot.parse_one(  # names quoted by sqlglot: nothing of the caller's is spliced raw
        f"SELECT {which} FROM {source} AS r, "  # noqa: S608
        f"UNNEST(STRING_SPLIT(CAST(r.{quoted[header]} AS VARCHAR), ';')) AS e(entry)",
        read="duckdb",
    )


def _classes() -> Sql:
    return coalesce(exp.column("classes", table="k"), integer(0))


def raw_sql(
    rs: Ruleset,
    plan: Plan,
    dialect: str,
    table: str,
    entries: Iterable[str],
    decimal_comma: bool = False,
    history: tuple[str, str] | None = None,
    labels: Iterable[str] = (),
    side: SideTables = SideTables(),
) -> str:
    """`interpret sql --raw`: the statement that reads the export's own table `table`;
    `history` (the mapping's patient and time columns): with the conditions across time;
    `side`: a long export's orders and patients tables."""
    from interpret.sql.query import for_dialect, warehouse_sql

    entries = list(entries)
    ctes, analytes, across_time = validated_select(rs, plan, table, entries, decimal_comma, history, labels, side)
    ordered = plan.format == "long" and side.orders is not None and side.orders_spec is not None
    if plan.long and plan.long.patient_key and plan.long.time:
        history = (plan.long.patient_key, plan.long.time)
    taken = "\n".join(f"--   {header}: {role}" for header, role in plan.describe(_headers(plan)))
    codes = "\n".join(f"--   {code}: {words}" for code, words in refusal_words().items())
    medications = plan.roles.get("medications")
    distinct = None
    if ordered and side.orders and side.orders_spec:
        name = _cell(side.orders_spec.name)
        distinct = exp.select(exp.alias_(name, "entry")).distinct().from_(exp.to_table(side.orders).as_("r"))
    elif medications:
        distinct = _entries_of(table, medications)
    listed = (
        f"""-- Medication entries: the {len(entry_table(rs, entries))} distinct entries resolved when this was
-- printed; any other entry counts as not recognised. The table's own distinct entries:
--   {for_dialect(distinct, dialect).replace(chr(10), " ")}
-- give them (one per line) to `interpret sql --raw ... --medication-entries FILE`."""
        if distinct is not None
        else "-- No medication column: the medication rules are not assessed."
    )
    reads = f"""-- Reads {table}, the export as written (one row per panel; cells as text or numbers):
{taken}
-- The cells are validated here, as `interpret batch` validates them. A refused row has `error`:
-- each refusal as "where: code", the codes' words:
{codes}
{listed}"""
    if across_time and history:
        reads += (
            f"\n-- Across time: each panel's earlier panels of the same patient ({history[0]!r}) by their "
            f"time ({history[1]!r}: ISO text without an offset, or a TIMESTAMP, read as UTC; any other is "
            "no time, and its rules across time are not assessed)."
        )
    if plan.long:
        reads += (
            f"\n-- One row per result: grouped into panels by {' | '.join(plan.long.panel_key)} (the output's "
            f"`line`); labels ({plan.long.analyte!r}) the mapping's `analytes:` and the sample's name "
            "(a label neither names is not used); an analyte twice in a panel with different values "
            "refuses the panel (duplicate_analyte). "
            + (
                f"Orders ({side.orders}) active at a panel's time are its medications. "
                if ordered
                else "No orders table: the medication rules are not assessed. "
            )
            + (f"Age and sex by patient from {side.patients}." if side.patients else "")
        )
    orders = (ACTIVE_ORDERS, ENTRIES) if ordered else None
    return warehouse_sql(rs, dialect, analytes, set(plan.range_columns), across_time, table, (ctes, reads), orders)


def _headers(plan: Plan) -> list[str]:
    named = [*plan.analyte_columns.values(), *plan.unit_columns.values(), *plan.roles.values()]
    named += [h for pair in plan.range_columns.values() for h in pair if h]
    if plan.long:
        long = plan.long
        named += [
            *long.panel_key,
            *(h for h in (long.patient_key, long.analyte, long.value, long.unit, long.time) if h),
        ]
    return list(dict.fromkeys([*([plan.id_column] if plan.id_column else []), *named]))
