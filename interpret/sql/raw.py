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
from typing import NamedTuple

import sqlglot
from sqlglot import exp

from interpret import column_facts
from interpret.batch.columns import CLASSES, UNRECOGNIZED_BIT, class_bits, entry_bits
from interpret.batch.mapping import LONG_ROLES, Plan
from interpret.facts import ANALYTE_FACT, SEXES
from interpret.ruleset import Ruleset
from interpret.sql.cells import (
    ROW_KEY,
    Sql,
    cell,
    cte,
    empty,
    epoch,
    number,
    refusal,
    spelled,
    words,
)
from interpret.sql.long import (
    ACTIVE_ORDERS,
    LONG_PANELS,
    LONG_PATIENT,
    LONG_TIME,
    NO_SIDE_TABLES,
    RawSqlError,
    SideTables,
    long_panels,
)
from interpret.sql.ops import SqlOps, cases, coalesce, column, integer, is_null, known, value
from interpret.sql.query import VALIDATED
from interpret.sql.serial import PATIENT, SECONDS
from interpret.units import CENSORED_MARKS
from interpret.validate import REFUSALS, age_refused, value_checks

OPS = SqlOps()


ENTRIES, ENTRY_ROWS, ENTRY_CLASSES = "medication_entries", "medication_rows", "medication_classes"


CELLS, READ, CHECKED = "raw_cells", "raw_read", "raw_checked"  # the layers that make the validated table


def refusal_words() -> dict[str, str]:
    """The refusal codes `error` gives, and their words (the batch's sentences without the cell)."""
    codes = ("not_a_number", "unit", "negative", "implausible", "age", "sex", "not_yes_no", "duplicate_analyte")
    return {c: REFUSALS[c] for c in (*codes, "no_results")}


@dataclass(frozen=True)
class RawExport:
    """What `interpret sql --raw` reads: the table, planned from a sample as `interpret batch`
    plans a file, and what the sample (and an entry list) gave to resolve in Python."""

    plan: Plan
    table: str
    entries: tuple[str, ...] = ()  # medication entries, as written
    decimal_comma: bool = False
    history: tuple[str, str] | None = None  # a wide table's patient and time columns
    labels: tuple[str, ...] = ()  # a long table's analyte labels
    side: SideTables = NO_SIDE_TABLES  # a long table's orders and patients


class Validated(NamedTuple):
    ctes: list[Sql]  # the common table expressions that make `validated_panels`
    analytes: list[str]
    across_time: bool  # each panel's patient and time are there (`sql/serial.py`)
    ordered: bool  # a long table's orders give the medications
    lab_ranges: set[str]  # the analytes whose rows give the laboratory's own range


def validated_select(rs: Ruleset, export: RawExport, entries: list[tuple[str, int, bool]]) -> Validated:
    """`validated_panels` from the raw table, `entries` the resolved medication entries
    (`entry_table`). A long table's patient and time come from its mapping (`long.patient_key`,
    `long.time`), a wide one's from `export.history`."""
    plan, table, history = export.plan, export.table, export.history
    ctes: list[Sql] = []
    duplicates: list[tuple[Sql, Sql]] = []
    ordered = False
    if plan.format == "long":  # one row per result: grouped into panels first (as batch/long.py)
        long = long_panels(rs, plan, table, export.labels, export.side)
        ctes += long.ctes
        plan, duplicates, table = long.plan, long.duplicates, LONG_PANELS
        history = (LONG_PATIENT, LONG_TIME) if plan.history else None
        if long.orders is not None:
            ctes += _medication_ctes(rs, long.orders, entries)
            ordered = True
    elif not plan.id_column:
        raise RawSqlError("name the table's row key with --id-column: each output row carries it")
    elif medications := plan.roles.get("medications"):
        ctes += _medication_ctes(rs, _entries_of(table, medications, plan.id_column), entries)
    medicated = "medications" in plan.roles
    ctes += _validated(rs, plan, table, medicated, export.decimal_comma, history, duplicates)
    return Validated(ctes, list(plan.analyte_columns), history is not None, ordered, set(plan.range_columns))


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
    cells += [exp.alias_(cell(h), name, quoted=True) for name, h in texts.items()]
    cells += _medication_columns(medications)
    cells += [exp.column(c.this.name, table="r", quoted=True) for c, _ in duplicates]  # long: the counts
    if history:
        cells += _patient_and_time(*history)
    source = exp.select(*cells).from_(exp.to_table(table).as_("r"))
    if medications:
        on = exp.EQ(this=exp.column(ROW_KEY, table="m"), expression=exp.column(plan.id_column, table="r", quoted=True))
        source = source.join(exp.to_table(ENTRY_CLASSES).as_("m"), on=on, join_type="left")

    read: list[Sql] = [exp.Star()]
    checked: list[Sql] = [column("line"), column("meds_known"), column("unrecognized"), column(CLASSES)]
    checked += [column(PATIENT), column(SECONDS)] if history else []
    refusals: list[tuple[Sql, Sql]] = list(duplicates)
    hemolysis_cells: list[Sql] = []
    measured: list[Sql] = []
    for analyte, header in plan.analyte_columns.items():
        fact = ANALYTE_FACT[analyte]
        text = column(f"__t_{fact}")
        hemolysis = coalesce(words(text, specimen.hemolyzed_words), False)
        first = exp.Substring(this=text, start=exp.Literal.number(1), length=exp.Literal.number(1))
        censored = exp.In(this=first, expressions=[value(m) for m in CENSORED_MARKS])
        not_measured = exp.or_(hemolysis, censored) if rs.analytes[analyte].censored == "not_measured" else hemolysis
        read += [
            exp.alias_(number(text, decimal_comma), f"__n_{fact}", quoted=True),
            exp.alias_(_unit(rs, plan, analyte), f"__u_{fact}", quoted=True),
            exp.alias_(hemolysis, f"__h_{fact}", quoted=True),
            exp.alias_(
                exp.and_(exp.not_(empty(text)), exp.not_(coalesce(not_measured, False))), f"__g_{fact}", quoted=True
            ),
        ]
        for bound in ("lo", "hi"):
            if f"__t{bound}_{fact}" in texts:
                read.append(
                    exp.alias_(number(column(f"__t{bound}_{fact}"), decimal_comma), f"__n{bound}_{fact}", quoted=True)
                )
        figure, unit, given = column(f"__n_{fact}"), column(f"__u_{fact}"), column(f"__g_{fact}")
        factor = OPS.by_key(unit, {u: rs.units.factor(analyte, u) for u in rs.analytes[analyte].units}, None)
        canonical = exp.Mul(this=figure, expression=factor)
        limits = rs.plausibility[analyte]
        low = column_facts.limit(OPS, unit, limits.get("refuse_below"))
        high = column_facts.limit(OPS, unit, limits.get("refuse_above"))
        where = f"{analyte} (column {header!r})"
        refusals.append((exp.and_(given, is_null(figure)), refusal(where, "not_a_number")))
        refusals.append((exp.and_(given, known(figure), is_null(unit)), refusal(where, "unit")))
        for code, refused in value_checks(figure, canonical, low, high, OPS):
            refusals.append((exp.and_(given, known(figure), known(unit), refused), refusal(where, code)))
        q = cases([(exp.and_(given, known(figure)), canonical)], None)
        checked += [exp.alias_(q, f"q__{fact}", quoted=True), exp.alias_(unit, f"u__{fact}", quoted=True)]
        if analyte in plan.range_columns:
            for bound in ("lo", "hi"):
                limit: Sql = exp.cast(exp.null(), exp.DataType.Type.DOUBLE)
                if f"__t{bound}_{fact}" in texts:
                    limit = exp.Mul(this=column(f"__n{bound}_{fact}"), expression=factor)
                name = "low" if bound == "lo" else "high"
                checked.append(exp.alias_(limit, f"lab_{name}__{fact}", quoted=True))
        hemolysis_cells.append(column(f"__h_{fact}"))
        measured.append(known(q))
    # "no result" only where no result was refused either (a refused cell says more)
    none_refused = exp.not_(exp.or_(*(condition for condition, _ in refusals))) if refusals else exp.true()
    any_result = exp.or_(*measured) if measured else exp.false()
    patient_read, patient_checked = _patient(rs, plan, refusals, hemolysis_cells, decimal_comma)
    read += patient_read
    checked += patient_checked
    refusals.append((exp.and_(exp.not_(any_result), none_refused), value("no_results")))
    checked.append(exp.alias_(_pieces(refusals), "__refusals", quoted=True))
    kept = [column(e.alias_or_name) for e in checked if e.alias_or_name != "__refusals"]
    return [
        cte(CELLS, source),
        cte(READ, exp.select(*read).from_(CELLS)),
        cte(CHECKED, exp.select(*checked).from_(READ)),
        cte(VALIDATED, exp.select(*kept, exp.alias_(_cut(column("__refusals")), "error", quoted=True)).from_(CHECKED)),
    ]


def _patient_and_time(patient: str, time: str) -> list[Sql]:
    """Each row's patient (NULL when blank) and its time in epoch seconds (NULL when unread)."""
    who = cell(patient)
    return [
        exp.alias_(cases([(empty(who), None)], who), PATIENT, quoted=True),
        exp.alias_(epoch(cell(time)), SECONDS, quoted=True),
    ]


def _unit(rs: Ruleset, plan: Plan, analyte: str) -> Sql:
    """The unit key of each row: its unit cell (or the fixed unit), NULL where the spelling is
    not a unit of `analyte` (`UnitTable.resolve`: exact, then case-insensitive)."""
    accepted = rs.analytes[analyte].units
    default = plan.fixed_units.get(analyte)
    if analyte not in plan.unit_columns:
        return value(default) if default in accepted else exp.cast(exp.null(), exp.DataType.Type.VARCHAR)
    exact, folded = rs.units.spellings()
    text = column(f"__tu_{ANALYTE_FACT[analyte]}")
    if default:
        text = cases([(empty(text), default)], text)
    exact = {s: k for s, k in exact.items() if k in accepted}
    return spelled(text, exact, {s: k for s, k in folded.items() if k in accepted})


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
        text = column("__t_age")
        read.append(exp.alias_(number(text, decimal_comma), "__n_age", quoted=True))
        age, limits = column("__n_age"), rs.meta.patient_age
        refusals.append((exp.and_(exp.not_(empty(text)), is_null(age)), refusal("age", "not_a_number")))
        refusals.append((age_refused(age, limits.min, limits.max, OPS), refusal("age", "age")))
        checked.append(exp.alias_(age, "age", quoted=True))
    else:
        checked.append(exp.alias_(OPS.null("float"), "age", quoted=True))
    if "sex" in roles:
        text = column("__t_sex")
        read.append(exp.alias_(spelled(text, {}, {k: v for k, v in SEXES.items()}), "__sex", quoted=True))
        sex = column("__sex")
        refusals.append((exp.and_(exp.not_(empty(text)), is_null(sex)), refusal("sex", "sex")))
        shown = cases([(exp.EQ(this=sex, expression=value("unknown")), None)], sex)
        checked.append(exp.alias_(shown, "sex", quoted=True))
    else:
        checked.append(exp.alias_(OPS.null("text"), "sex", quoted=True))
    any_cell = exp.or_(*hemolysis_cells) if hemolysis_cells else exp.false()
    if "hemolyzed" in roles:
        text = column("__t_hemolyzed")
        yes = coalesce(words(text, [*specimen.yes_words, *specimen.hemolyzed_words]), False)
        no = exp.or_(coalesce(words(text, specimen.no_words), False), empty(text))
        read += [exp.alias_(yes, "__yes", quoted=True), exp.alias_(no, "__no", quoted=True)]
        refusals.append((exp.not_(exp.or_(column("__yes"), column("__no"))), refusal("hemolyzed", "not_yes_no")))
        checked.append(exp.alias_(exp.or_(column("__yes"), any_cell), "hemolyzed", quoted=True))
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


def _medication_ctes(rs: Ruleset, rows: Sql, entries: list[tuple[str, int, bool]]) -> list[Sql]:
    """The mapping table of the resolved `entries` (`entry_table`), each row's entries (`rows`:
    the row key, `ROW_KEY`, and `entry`), and each row's class bits: an entry not in the table
    is not recognised."""
    known_entries = entries or [("", 0, True)]  # VALUES needs a row
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
    return [cte(ENTRIES, mapping), cte(ENTRY_ROWS, rows), cte(ENTRY_CLASSES, combined)]


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


def raw_sql(rs: Ruleset, export: RawExport, dialect: str) -> str:
    """`interpret sql --raw`: the statement that reads the export's own table, with a header
    saying what it reads (with `history` or a long table's patient and time: across time too)."""
    from interpret.sql.query import for_dialect, warehouse_sql

    plan, table, side, history = export.plan, export.table, export.side, export.history
    entries = entry_table(rs, export.entries)
    ctes, analytes, across_time, ordered, lab_ranges = validated_select(rs, export, entries)
    if plan.long and plan.long.patient_key and plan.long.time:
        history = (plan.long.patient_key, plan.long.time)
    taken = "\n".join(f"--   {header}: {role}" for header, role in plan.describe(_headers(plan)))
    codes = "\n".join(f"--   {code}: {words}" for code, words in refusal_words().items())
    medications = plan.roles.get("medications")
    distinct = None
    if ordered:
        assert side.orders is not None and side.orders_spec is not None
        name = cell(side.orders_spec.name)
        distinct = exp.select(exp.alias_(name, "entry")).distinct().from_(exp.to_table(side.orders).as_("r"))
    elif medications:
        distinct = _entries_of(table, medications)
    listed = (
        f"""-- Medication entries: the {len(entries)} distinct entries resolved when this was
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
    return warehouse_sql(rs, dialect, analytes, lab_ranges, across_time, table, (ctes, reads), orders)


def _headers(plan: Plan) -> list[str]:
    named = [*plan.analyte_columns.values(), *plan.unit_columns.values(), *plan.roles.values()]
    named += [h for pair in plan.range_columns.values() for h in pair if h]
    if plan.long:
        long = plan.long
        named += [
            *long.panel_key,
            *(h for h in (getattr(long, role) for role in LONG_ROLES) if h),
        ]
    return list(dict.fromkeys([*([plan.id_column] if plan.id_column else []), *named]))
