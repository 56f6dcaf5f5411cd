"""How the SQL reads a text cell, the same way in every dialect (`sql/raw.py`, `sql/long.py`).

Only what every dialect reads alike: trimmed text, a plain number by the single-panel path's
own pattern (`validate.NUMBER_PATTERN`) before a CAST that cannot fail, an ISO time, a word
compared with a short list, a spelling looked up exactly and then case-insensitively. No
TRY_CAST (Spark renders it as a CAST that fails the whole job on one cell).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlglot import exp

from interpret.sql.ops import cases, is_null, value
from interpret.validate import NUMBER_PATTERN

Sql = Any  # a sqlglot expression (sqlglot's own types are not precise enough to check)
ROW_KEY = "__row_key"  # the panel a mapping table's row belongs to (medication entries, orders)


# The longest cell read as a number: a DOUBLE CAST of a longer one (or of a 3-digit exponent)
# may overflow, which fails the whole statement on Postgres; such a cell is not a number here.
LONGEST_NUMBER = 30

# A time as ISO text without an offset (or a TIMESTAMP column, whose text is that): read as
# UTC, as the batch reads a time without an offset. Anything else is no time here (its rules
# across time are not assessed): a CAST of it could fail the whole statement.
ISO_TIME = "^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?$"


def cte(name: str, select: Sql) -> Sql:
    return exp.CTE(this=select, alias=exp.TableAlias(this=exp.to_identifier(name, quoted=False)))


def cell(header: str, table: str = "r") -> Sql:
    """A cell as trimmed text (a typed column reads as its text)."""
    return exp.Trim(this=exp.cast(exp.column(header, table=table, quoted=True), exp.DataType.Type.VARCHAR))


def lower(e: Sql) -> Sql:
    return exp.Lower(this=e)


def empty(cell: Sql) -> Sql:
    return exp.or_(is_null(cell), exp.EQ(this=cell, expression=value("")))


def matches(cell: Sql, pattern: str) -> Sql:
    return exp.RegexpLike(this=cell, expression=exp.Literal.string(pattern))


def number(cell: Sql, decimal_comma: bool) -> Sql:
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
        matches(cell, f"^({NUMBER_PATTERN})$"),
        exp.LTE(this=exp.Length(this=cell), expression=exp.Literal.number(LONGEST_NUMBER)),
        exp.not_(matches(cell, "[eE][+-]?[0-9]{3}")),
    )
    return cases([(readable, exp.cast(cell, exp.DataType.Type.DOUBLE))], None)


def words(cell: Sql, words: Iterable[str]) -> Sql:
    return exp.In(this=lower(cell), expressions=[value(w.casefold()) for w in words])


def spelled(cell: Sql, exact: dict[str, Any], folded: dict[str, Any]) -> Sql:
    """The meaning of a spelling: exact, then case-insensitive (`folded`, keyed by casefold();
    SQL's LOWER is Python's lower(), so each exact spelling's lower() is a key too), NULL for
    any other."""
    lowered = dict(folded)
    for spelling, meaning in exact.items():
        lowered.setdefault(spelling.lower(), meaning)
    branches = [(exp.EQ(this=cell, expression=value(k)), v) for k, v in exact.items()]
    branches += [(exp.EQ(this=lower(cell), expression=value(k)), v) for k, v in lowered.items()]
    return cases(branches, None)


def epoch(text: Sql) -> Sql:
    """A time cell as epoch seconds: ISO text without an offset (or a TIMESTAMP's text) read as
    UTC; NULL for any other (a CAST of it could fail the whole statement)."""
    seconds = exp.TimeToUnix(this=exp.cast(text, exp.DataType.Type.TIMESTAMP))
    return cases([(matches(text, ISO_TIME), seconds)], None)


def refusal(location: str, code: str) -> Sql:
    return value(f"{location}: {code}")
