"""The batch back-end: each rule's condition compiled to one polars expression.

Polars' nullable booleans follow the same three-valued logic as the single-panel engines:
`&` and `|` are Kleene, comparisons with null are null. A rule fires where its expression is
true, and is "not assessed" where it is null. Severity tiers are computed as ranks.
"""

from __future__ import annotations

from functools import reduce

import polars as pl

from interpret.batch.columns import limit_expr
from interpret.facts import QUANTITIES
from interpret.ruleset import Ruleset
from interpret.ruleset import conditions as c

_COMPARE = {
    "below": pl.Expr.lt,
    "at_or_below": pl.Expr.le,
    "above": pl.Expr.gt,
    "at_or_above": pl.Expr.ge,
}


def _available(name: str) -> pl.Expr:
    if name in QUANTITIES:
        return pl.col(f"q__{name}").is_not_null()
    return {
        "age": pl.col("age").is_not_null(),
        "sex": pl.col("sex").is_not_null(),
        "medications": pl.col("meds_known"),
    }.get(name, pl.lit(True))


def _meds(expr: pl.Expr) -> pl.Expr:
    """Unknown (null) where no medication list was given."""
    return pl.when(pl.col("meds_known")).then(expr).otherwise(pl.lit(None, dtype=pl.Boolean))


def compile_expr(node: c.Node) -> pl.Expr:
    match node:
        case c.All(items):
            return reduce(lambda a, b: a & b, (compile_expr(i) for i in items))
        case c.Any_(items):
            return reduce(lambda a, b: a | b, (compile_expr(i) for i in items))
        case c.Not(item):
            return ~compile_expr(item)
        case c.StatusIn(quantity, statuses, _):
            value = pl.col(f"q__{quantity}")
            return (
                pl.when(value.is_null())
                .then(None)
                .otherwise(pl.col(f"s__{quantity}").is_in(sorted(statuses)).fill_null(False))
            )
        case c.Compare(quantity, op, threshold):
            return _COMPARE[op](pl.col(f"q__{quantity}"), limit_expr(pl.col(f"u__{quantity}"), threshold))
        case c.Available(name):
            return _available(name)
        case c.Missing(name):
            return ~_available(name)
        case c.Taking(classes):
            return _meds(pl.any_horizontal([pl.col(f"m__{cl}").fill_null(False) for cl in classes]))
        case c.TakingCount(classes, at_least):
            count = pl.sum_horizontal([pl.col(f"m__{cl}").fill_null(False).cast(pl.Int32) for cl in classes])
            return _meds(count >= at_least)
        case c.SpecimenFlag():
            return pl.col("hemolyzed")
        case c.NeedsVerification(names):
            return pl.any_horizontal([pl.col(f"v__{n}").fill_null(False) for n in names])
        case c.SexIs(values):
            return pl.when(pl.col("sex").is_null()).then(None).otherwise(pl.col("sex").is_in(sorted(values)))
        case c.UnrecognizedMedications():
            return pl.col("unrecognized").fill_null(False)
        case c.SettingOn(name):
            return pl.lit(name)  # replaced below with the setting's value
    raise TypeError(f"no polars translation for {node!r}")


class PolarsRules:
    """All rules of a ruleset as expressions over a facts frame (see `columns.py`)."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.rank = ruleset.severity_rank
        self.names = [t.name for t in ruleset.meta.severities]
        self._spelled: dict[int, str] = {}  # mask -> codes, kept across chunks (patterns repeat)

    def _compile(self, node: c.Node) -> pl.Expr:
        if isinstance(node, c.SettingOn):
            return pl.lit(bool(self.ruleset.settings[node.name]))
        if isinstance(node, c.All | c.Any_):
            parts = [self._compile(i) for i in node.items]
            return reduce((lambda a, b: a & b) if isinstance(node, c.All) else (lambda a, b: a | b), parts)
        if isinstance(node, c.Not):
            return ~self._compile(node.item)
        return compile_expr(node)

    def evaluate(self, facts: pl.DataFrame) -> pl.DataFrame:
        """Adds `r__<code>` (severity rank where fired, else null) and `na__<code>` (not assessed)."""
        frame = facts.with_columns(self._compile(r.condition).alias(f"w__{r.code}") for r in self.ruleset.rules)
        ranks: list[pl.Expr] = []
        for rule in self.ruleset.rules:
            fired = pl.col(f"w__{rule.code}").fill_null(False) & pl.col("error").is_null()
            severity: pl.Expr = pl.lit(self.rank[rule.definition.severity], dtype=pl.Int8)
            for to, node in rule.escalations:
                severity = pl.max_horizontal(
                    severity, pl.when(self._compile(node).fill_null(False)).then(pl.lit(self.rank[to], dtype=pl.Int8))
                )
            ranks.append(pl.when(fired).then(severity).alias(f"r__{rule.code}"))
        frame = frame.with_columns(ranks)
        # at_least_as_severe_as names earlier rules only (checked at load): apply in rule order
        for r in self.ruleset.rules:
            others = r.definition.at_least_as_severe_as
            if others:
                rank = pl.col(f"r__{r.code}")
                raised = pl.max_horizontal(rank, *[pl.col(f"r__{o}") for o in others])
                frame = frame.with_columns(pl.when(rank.is_not_null()).then(raised).alias(f"r__{r.code}"))
        return frame.with_columns(
            (pl.col(f"w__{r.code}").is_null() & pl.col("error").is_null()).alias(f"na__{r.code}")
            for r in self.ruleset.rules
        )

    def summary(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`findings`, `max_severity` and `not_assessed` columns for every row."""
        codes = [r.code for r in self.ruleset.rules]
        max_rank = pl.max_horizontal([pl.col(f"r__{c}") for c in codes])
        max_severity = max_rank.replace_strict(
            list(range(len(self.names))), self.names, default=None, return_dtype=pl.String
        )
        frame = frame.with_columns(
            _mask([pl.col(f"r__{c}").is_not_null() for c in codes]).alias("__fired_mask"),
            _mask([pl.col(f"na__{c}") for c in codes]).alias("__na_mask"),
            max_severity.alias("max_severity"),
        )
        frame = _spell(frame, "__fired_mask", "findings", codes, self._spelled)
        return _spell(frame, "__na_mask", "not_assessed", codes, self._spelled)


# Rows share few distinct patterns of codes, so each pattern is packed into a bit mask and
# spelled out once (much faster than joining strings row by row).
MAX_CODES = 64


def _mask(flags: list[pl.Expr]) -> pl.Expr:
    if len(flags) > MAX_CODES:
        raise ValueError(f"more than {MAX_CODES} rules: widen the mask")
    return pl.sum_horizontal([flag.fill_null(False).cast(pl.UInt64) * (1 << i) for i, flag in enumerate(flags)])


def _spell(frame: pl.DataFrame, mask: str, name: str, codes: list[str], spelled: dict[int, str]) -> pl.DataFrame:
    """Add column `name`: the codes of each row's mask, joined from a table of its patterns."""
    patterns = frame.get_column(mask).unique().to_list()
    for m in patterns:
        if m not in spelled:
            spelled[m] = ";".join(codes[i] for i in range(m.bit_length()) if m >> i & 1)
    table = pl.DataFrame(
        {mask: patterns, name: [spelled[m] for m in patterns]}, schema={mask: pl.UInt64, name: pl.String}
    )
    # join a one-column frame, then attach: joining the wide frame would copy every column
    looked_up = frame.select(mask).join(table, on=mask, how="left", maintain_order="left").get_column(name)
    return frame.with_columns(looked_up)
