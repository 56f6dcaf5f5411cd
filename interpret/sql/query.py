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
from typing import Any

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
VALIDATED = "validated_panels"  # the validated table, when the statement makes it from the raw one


@dataclass(frozen=True)
class Statement:
    select: exp.Select

    def sql(self, dialect: str, pretty: bool = False) -> str:
        return self.select.sql(dialect=dialect, pretty=pretty)


def _name(named: exp.Expression) -> str:
    assert isinstance(named, exp.Alias)
    return named.alias


def statement(
    rs: Ruleset,
    analytes: list[str],
    lab_ranges: set[str],
    inputs: list[str],
    table: str,
    keep_inputs: bool = True,
    across_time: bool = False,
    orders: tuple[str, str] | None = None,
) -> Statement:
    """SELECT every input column (unless not `keep_inputs`), the facts and the masks FROM `table`.
    `across_time`: the `t__` columns are worked out here (`sql/serial.py`) from each panel's
    patient and time (`__patient`, `__seconds` among the inputs), not read from the table;
    `orders`: the active-orders and entries tables a long export's orders give (`sql/raw.py`)."""
    steps = column_facts.fact_steps(rs, analytes, lab_ranges, OPS)
    produced = {_name(e) for e in steps.first + steps.second}
    present = set(inputs) | produced
    missing = [
        OPS.named(OPS.null(kind), f"{prefix}{q}")
        for q in QUANTITIES
        for prefix, kind in PREFIX_KINDS.items()
        if f"{prefix}{q}" not in present
    ]
    if not across_time:
        missing += [OPS.named(OPS.null("bool"), t) for t in serial_nodes(rs).values() if t not in present]
    if steps.osmolality is not None:
        steps.second.append(OPS.named(steps.osmolality, OSMOLALITY))
    rules = SqlRules(rs)
    conditions, masks = rules.conditions(), rules.masks()
    star = exp.Star()
    layers: list[tuple[str, Any]] = [
        ("panels_in", exp.select(*(column(c) for c in inputs), *missing).from_(table)),
        ("facts_1", exp.select(star, *steps.first).from_("panels_in")),
        ("facts_2", exp.select(star, *steps.second).from_("facts_1")),
    ]
    if across_time:
        from interpret.sql.serial import SerialSql

        layers += SerialSql(rs, orders).layers("facts_2")
    layers.append(("conditions", exp.select(star, *conditions).from_(layers[-1][0])))
    kept = [
        *(inputs if keep_inputs else []),
        *(_name(e) for e in missing),
        *(_name(e) for e in steps.first + steps.second),
    ]
    final = exp.select(*(column(c) for c in kept), *masks).from_("conditions")
    for name, select in layers:
        final = final.with_(name, as_=select)
    return Statement(final)


DIALECTS = ("duckdb", "spark", "bigquery", "snowflake", "postgres")


def for_dialect(select: exp.Select, dialect: str) -> str:
    """The statement's text for one dialect, past the traps measured there: Postgres has no
    ROUND of a DOUBLE PRECISION, so the rounding goes through NUMERIC and back, no SPLIT
    (STRING_TO_ARRAY), and its layers are MATERIALIZED (below); BigQuery has no TIME_TO_UNIX
    (UNIX_SECONDS of a TIMESTAMP); a power of a non-positive base fails Postgres and BigQuery."""

    def real_power(node: exp.Expression) -> exp.Expression:
        """A power of a positive base only: a negative one (a refused row's creatinine) is an
        error on Postgres and BigQuery, which would fail the whole statement; NULL instead."""
        if isinstance(node, exp.Pow) and not getattr(node, "_guarded", False):
            node._guarded = True  # type: ignore[attr-defined]
            positive = exp.GT(this=node.this.copy(), expression=exp.Literal.number(0))
            return exp.Case().when(positive, node).else_(exp.null())
        return node

    select = select.transform(real_power)  # type: ignore[assignment]
    if dialect == "postgres":

        def numeric_round(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Round) and not getattr(node, "_numeric", False):
                inner = exp.Round(this=exp.cast(node.this, "DECIMAL(38, 18)"), decimals=node.args.get("decimals"))
                inner._numeric = True  # type: ignore[attr-defined]
                return exp.cast(inner, exp.DataType.Type.DOUBLE)
            return node

        select = select.transform(numeric_round)  # type: ignore[assignment]

        def string_to_array(node: exp.Expression) -> exp.Expression:  # sqlglot writes SPLIT, not Postgres'
            if isinstance(node, exp.Split):
                return exp.func("STRING_TO_ARRAY", node.this, node.expression)  # type: ignore[return-value]
            return node

        select = select.transform(string_to_array)  # type: ignore[assignment]
        # Postgres inlines a CTE read once and has no common-subexpression elimination: each
        # layer's CASE expressions were copied into every use above them, and the statement
        # ran for 20 minutes on 3,011 rows (7 GB). Each layer is computed once instead.
        for cte in select.find_all(exp.CTE):
            cte.set("materialized", True)
    if dialect == "bigquery":

        def unix_seconds(node: exp.Expression) -> exp.Expression:  # sqlglot writes TIME_TO_UNIX
            if isinstance(node, exp.TimeToUnix):
                instant = exp.cast(node.this.this, exp.DataType.Type.TIMESTAMPTZ)  # BigQuery's TIMESTAMP
                return exp.func("UNIX_SECONDS", instant)  # type: ignore[return-value]
            return node

        select = select.transform(unix_seconds)  # type: ignore[assignment]
    return select.sql(dialect=dialect, pretty=True)


def validated_columns(rs: Ruleset, analytes: list[str], lab_ranges: set[str], history: bool) -> list[str]:
    """The columns of the validated-panel table a warehouse provides (the validation's output)."""
    from interpret.facts import ANALYTE_FACT

    names = ["line"]
    for analyte in analytes:
        fact = ANALYTE_FACT[analyte]
        names += [f"q__{fact}", f"u__{fact}"]
        if analyte in lab_ranges:
            names += [f"lab_low__{fact}", f"lab_high__{fact}"]
    names += ["age", "sex", "hemolyzed", "meds_known", "unrecognized", "m__classes", "error"]
    return names + (list(serial_nodes(rs).values()) if history else [])


def warehouse_sql(
    rs: Ruleset,
    dialect: str,
    analytes: list[str],
    lab_ranges: set[str],
    history: bool,
    table: str,
    validation: tuple[list[Any], str] | None = None,
    orders: tuple[str, str] | None = None,
) -> str:
    """`interpret sql`: the statement with a header saying what it reads and what it gives.
    `validation`: the expressions that make the validated table from the raw one
    (`sql/raw.py`), and the header's words for what they read."""
    from interpret.batch.columns import class_bits

    if validation and history:  # the t__ columns worked out in the statement, from patient and time
        from interpret.sql.serial import PATIENT, SECONDS

        inputs = [*validated_columns(rs, analytes, lab_ranges, False), PATIENT, SECONDS]
        made = statement(rs, analytes, lab_ranges, inputs, VALIDATED, across_time=True, orders=orders)
    else:
        inputs = validated_columns(rs, analytes, lab_ranges, history)
        made = statement(rs, analytes, lab_ranges, inputs, VALIDATED if validation else table)
    if validation:
        with_ = made.select.args["with_"]
        with_.set("expressions", [*validation[0], *with_.expressions])
    tiers = [t.name for t in rs.meta.severities]
    bits = "\n".join(
        f"--   bit {i}: {r.code} ({tiers[plan.base]})"
        for i, (r, plan) in enumerate(zip(rs.rules, rs.severity_plans, strict=True))
    )
    classes = "\n".join(f"--   bit {i}: {c}" for i, c in enumerate(class_bits(rs)))
    reads = (
        validation[1]
        if validation
        else f"""-- Reads {table}: one row per panel, validated (canonical units), columns:
--   {", ".join(inputs)}
--   q__<quantity> canonical value (rules/analytes.yaml canonical_unit), u__<quantity> the unit key
--   as reported (its limits are chosen by it), sex 'female'/'male'/NULL, m__classes the medication
--   classes as bits (below), error NULL unless the row is refused."""
    )
    header = f"""-- interpret: facts and rules as SQL ({dialect}), ruleset {rs.version} (sha256 {rs.sha256})
-- {" ".join(rs.meta.short_disclaimer.split())}
{reads}
-- Gives every column above, the facts (s__ statuses, v__ verification flags, derived values) and
-- per row the masks __fired (rules that fired), __na (rules not assessed), __raised (escalations).
-- Rule bits:
{bits}
-- Medication class bits (m__classes):
{classes}
"""
    return header + for_dialect(made.select, dialect) + ";\n"
