"""`column_facts.ColumnOps` (and so `derive.Ops`) for sqlglot expressions.

Kept to the portable subset of SQL: CASE, AND/OR/NOT, IS NULL, IN, arithmetic, comparisons,
COALESCE, ROUND, POWER (rendered by sqlglot per dialect). Numbers are written as DOUBLE
casts: a bare `3.5` is a DECIMAL to Spark and Postgres, whose arithmetic then differs from
the floats every other runner computes with.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlglot import exp

from interpret import derive

# The rule vocabulary's comparisons (conditions.OPERATORS) on SQL expressions.
COMPARE = {"below": exp.LT, "at_or_below": exp.LTE, "above": exp.GT, "at_or_above": exp.GTE}


def compare(op: str, left: Any, right: Any) -> Any:
    return COMPARE[op](this=value(left), expression=value(right))


def value(v: Any) -> Any:
    """A Python constant (number, text, bool, None) or an expression, as an expression."""
    if isinstance(v, exp.Expression):
        return v
    if v is None:
        return exp.null()
    if isinstance(v, bool):
        return exp.true() if v else exp.false()
    if isinstance(v, int | float):
        return exp.cast(exp.Literal.number(repr(float(v))), exp.DataType.Type.DOUBLE)
    if isinstance(v, str):
        return exp.Literal.string(v)
    raise TypeError(f"no SQL constant for {v!r}")


def integer(v: int) -> Any:
    """An integer constant (bit masks, ranks): BIGINT everywhere."""
    return exp.cast(exp.Literal.number(str(v)), exp.DataType.Type.BIGINT)


def cases(branches: list[tuple[Any, Any]], default: Any) -> Any:
    case = exp.Case()
    for condition, result in branches:
        case = case.when(value(condition), value(result))
    return case.else_(value(default))


def known(v: Any) -> Any:
    return exp.Not(this=exp.Is(this=value(v), expression=exp.null()))


def is_null(v: Any) -> Any:
    return exp.Is(this=value(v), expression=exp.null())


def coalesce(*values: Any) -> Any:
    first, *rest = (value(v) for v in values)
    return exp.Coalesce(this=first, expressions=rest) if rest else first


def column(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


class SqlOps:
    """Expressions whose NULLs follow SQL's three-valued logic, as polars' do."""

    TYPES: ClassVar[dict[str, Any]] = {
        "float": exp.DataType.Type.DOUBLE,
        "text": exp.DataType.Type.VARCHAR,
        "status": exp.DataType.Type.VARCHAR,
        "bool": exp.DataType.Type.BOOLEAN,
    }

    @staticmethod
    def where(condition: Any, if_true: Any, if_false: Any) -> Any:
        branches = [b() if callable(b) else b for b in (if_true, if_false)]
        return cases([(condition, branches[0])], branches[1])

    @staticmethod
    def below(v: Any, limit: Any) -> Any:
        return coalesce(compare("below", v, limit), False)

    @staticmethod
    def above(v: Any, limit: Any) -> Any:
        return coalesce(compare("above", v, limit), False)

    @staticmethod
    def known(v: Any) -> Any:
        return known(v)

    @staticmethod
    def at_or_above(v: Any, limit: Any) -> Any:
        return exp.and_(known(v), compare("at_or_above", v, limit))

    @staticmethod
    def first_of(v: Any, steps: list[derive.Step], default: str) -> Any:
        """A CASE; a NULL limit makes its comparison NULL, which decides nothing. NULL where the value is."""
        branches: list[tuple[Any, Any]] = [(is_null(v), None)]
        branches += [(compare(op, v, limit), result) for op, limit, result in steps if limit is not None]
        return cases(branches, default)

    @staticmethod
    def minimum(a: Any, b: float) -> Any:
        """The smaller; a NULL `a` gives `b` (as polars' min_horizontal: LEAST's NULL handling differs by dialect)."""
        return cases([(is_null(a), b), (compare("below", a, b), a)], b)

    @staticmethod
    def maximum(a: Any, b: float) -> Any:
        return cases([(is_null(a), b), (compare("above", a, b), a)], b)

    @staticmethod
    def round(a: Any, digits: int) -> Any:
        return exp.Round(this=value(a), decimals=exp.Literal.number(digits))

    # column_facts.ColumnOps

    @staticmethod
    def col(name: str) -> Any:
        return column(name)

    def null(self, kind: str) -> Any:
        return exp.cast(exp.null(), self.TYPES[kind])

    @staticmethod
    def text(v: str) -> Any:
        return exp.Literal.string(v)

    @staticmethod
    def by_key(key: Any, values: dict[str, float | None], default: float | None) -> Any:
        branches = [(exp.EQ(this=value(key), expression=value(k)), v) for k, v in values.items() if v != default]
        return cases(branches, default) if branches else value(default)

    @staticmethod
    def cases(branches: list[tuple[Any, Any]], default: Any) -> Any:
        return cases(branches, default)

    @staticmethod
    def coalesce(*values: Any) -> Any:
        return coalesce(*values)

    @staticmethod
    def is_in(v: Any, options: list[str]) -> Any:
        return exp.In(this=value(v), expressions=[value(o) for o in options])

    @staticmethod
    def equals(v: Any, text: str) -> Any:
        return exp.EQ(this=value(v), expression=value(text))

    @staticmethod
    def named(v: Any, name: str) -> Any:
        return exp.alias_(value(v), name, quoted=True)
