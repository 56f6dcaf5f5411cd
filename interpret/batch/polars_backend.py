"""The batch back-end: each rule's condition compiled to one polars expression.

Polars' nullable booleans follow the same three-valued logic as the single-panel engines:
`&` and `|` are Kleene, comparisons with null are null. A rule fires where its expression is
true, and is "not assessed" where it is null. Severity tiers are computed as ranks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import polars as pl

from interpret.batch.columns import CLASSES, COMPARE, class_bits, limit_expr
from interpret.batch.serial import serial_nodes
from interpret.facts import QUANTITIES, presence_of
from interpret.ruleset import Ruleset
from interpret.ruleset import conditions as c


def _available(name: str) -> pl.Expr:
    tested = presence_of(name)
    if tested is None:
        return pl.lit(True)
    if tested in QUANTITIES:
        return pl.col(f"q__{tested}").is_not_null()
    return {
        "age": pl.col("age").is_not_null(),
        "sex": pl.col("sex").is_not_null(),
        "medications": pl.col("meds_known"),
    }[tested]


def _meds(expr: pl.Expr) -> pl.Expr:
    """Unknown (null) where no medication list was given."""
    return pl.when(pl.col("meds_known")).then(expr).otherwise(pl.lit(None, dtype=pl.Boolean))


def _leaf(node: c.Node, rs: Ruleset) -> pl.Expr:
    """A condition that names facts only (composites, settings and medications: `PolarsRules`)."""
    match node:
        case c.StatusIn(quantity, statuses, _):
            value = pl.col(f"q__{quantity}")
            return (
                pl.when(value.is_null())
                .then(None)
                .otherwise(pl.col(f"s__{quantity}").is_in(sorted(statuses)).fill_null(False))
            )
        case c.Compare(quantity, op, threshold):
            return COMPARE[op](pl.col(f"q__{quantity}"), limit_expr(pl.col(f"u__{quantity}"), threshold))
        case c.Available(name):
            return _available(name)
        case c.Missing(name):
            return ~_available(name)
        case c.SpecimenFlag():
            return pl.col("hemolyzed")
        case c.NeedsVerification(names):
            return pl.any_horizontal([pl.col(f"v__{n}").fill_null(False) for n in names])
        case c.SexIs(values):
            return pl.when(pl.col("sex").is_null()).then(None).otherwise(pl.col("sex").is_in(sorted(values)))
        case c.UnrecognizedMedications():
            return pl.col("unrecognized").fill_null(False)
        case c.Change() | c.Ratio() | c.Earlier() | c.StartedAfter():
            # worked out over each patient's panels before the run (batch/serial.py); null
            # (not assessed) without a patient key and a time
            return pl.col(serial_nodes(rs)[node])
    raise TypeError(f"no polars translation for {node!r}")


@dataclass
class Counts:
    """A chunk's counts: rows per highest severity, per finding and severity, per rule not assessed."""

    by_severity: dict[str, int] = field(default_factory=dict)
    by_finding: dict[str, dict[str, int]] = field(default_factory=dict)
    not_assessed: dict[str, int] = field(default_factory=dict)


OUTCOME = ["__fired", "__raised"]
MAX_CODES = 64  # bits in a mask


class PolarsRules:
    """All rules of a ruleset as expressions over a facts frame (see `columns.py`).

    Per row, three bit masks: which rules fired (`__fired`), the escalated severity of each
    rule that can escalate (`__raised`), and which rules could not be assessed (`__na`).
    Rows share far fewer combinations than there are rows, so the severities after
    escalation and `at_least_as_severe_as`, the code lists and the counts are worked out on
    the table of distinct combinations and joined back to the rows.
    """

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.rules = ruleset.rules
        self.codes = [r.code for r in self.rules]
        self.names = [t.name for t in ruleset.meta.severities]
        self.class_bits = class_bits(ruleset)
        raising = [r for r, plan in zip(self.rules, ruleset.severity_plans, strict=True) if plan.raises]
        self.escalating = {r.code: j for j, r in enumerate(raising)}
        self.bits = max(1, (len(self.names) - 1).bit_length())
        if len(self.rules) > MAX_CODES or len(self.escalating) * self.bits > MAX_CODES:
            raise ValueError(f"more than {MAX_CODES} bits of rule outcomes: widen the masks")

    def _compile(self, node: c.Node) -> pl.Expr:
        if isinstance(node, c.SettingOn):
            return pl.lit(bool(self.ruleset.settings[node.name]))
        if isinstance(node, c.Taking | c.TakingCount):  # bits of the class mask (columns.medications)
            mask = pl.col(CLASSES) & sum(self.class_bits[cl] for cl in node.classes)
            at_least = node.at_least if isinstance(node, c.TakingCount) else 1
            return _meds(mask.bitwise_count_ones() >= at_least)
        if isinstance(node, c.All | c.Any_):
            parts = [self._compile(i) for i in node.items]
            return reduce((lambda a, b: a & b) if isinstance(node, c.All) else (lambda a, b: a | b), parts)
        if isinstance(node, c.Not):
            return ~self._compile(node.item)
        return _leaf(node, self.ruleset)

    # The expressions are the same for every chunk: built once (building them costs more
    # than applying them to a small chunk).

    def build_expressions(self) -> None:
        """Build every expression now (else the first chunk builds them)."""
        _ = self._evaluation, self._ranks, self._spelling, self._not_assessed_counts

    @functools.cached_property
    def _evaluation(self) -> tuple[list[pl.Expr], list[pl.Expr]]:
        """(conditions and escalations as columns, the three masks)."""
        conditions = [self._compile(r.condition).alias(f"w__{r.code}") for r in self.rules]
        raised = []
        for rule, plan in zip(self.rules, self.ruleset.severity_plans, strict=True):
            if rule.code in self.escalating:
                # severity.SeverityPlan: the highest escalation that holds, else the rule's own tier
                rank: Any = pl
                for k, (to, node) in enumerate(plan.raises):
                    name = f"e__{rule.code}__{k}"
                    conditions.append(self._compile(node).fill_null(False).alias(name))
                    rank = rank.when(pl.col(name)).then(pl.lit(to, dtype=pl.UInt64))
                base = pl.lit(plan.base, dtype=pl.UInt64)
                rank = base if rank is pl else rank.otherwise(base)
                shift = 1 << (self.bits * self.escalating[rule.code])
                raised.append(pl.when(pl.col(f"w__{rule.code}")).then(rank * shift).otherwise(0))
        ok, zero = pl.col("error").is_null(), pl.lit(0, dtype=pl.UInt64)
        masks = [
            pl.when(ok).then(_mask([pl.col(f"w__{c}") for c in self.codes])).otherwise(zero).alias("__fired"),
            pl.when(ok).then(pl.sum_horizontal(raised) if raised else zero).otherwise(zero).alias("__raised"),
            pl.when(ok).then(_mask([pl.col(f"w__{c}").is_null() for c in self.codes])).otherwise(zero).alias("__na"),
        ]
        return conditions, masks

    def evaluate(self, facts: pl.DataFrame) -> pl.DataFrame:
        """Adds the three masks, from each rule's condition (true, false or null = not assessed)."""
        conditions, masks = self._evaluation
        frame = facts.with_columns(conditions).with_columns(masks)
        return frame.drop(c.meta.output_name() for c in conditions)  # the masks hold them now

    @functools.cached_property
    def _ranks(self) -> list[list[pl.Expr]]:
        """Steps computing `r__<code>` (severity rank, null unless fired) from the two masks."""
        first = []
        for i, rule in enumerate(self.rules):
            j = self.escalating.get(rule.code)
            if j is None:
                rank = pl.lit(self.ruleset.severity_plans[i].base, dtype=pl.Int8)
            else:
                rank = (pl.col("__raised") // (1 << (self.bits * j)) % (1 << self.bits)).cast(pl.Int8)
            first.append(pl.when(pl.col("__fired") & (1 << i) != 0).then(rank).alias(f"r__{rule.code}"))
        steps = [first]
        # at_least_as_severe_as names earlier rules only (checked at load): apply in rule order
        for rule, plan in zip(self.rules, self.ruleset.severity_plans, strict=True):
            if plan.at_least:
                own = pl.col(f"r__{rule.code}")
                raised = pl.max_horizontal(own, *[pl.col(f"r__{self.codes[o]}") for o in plan.at_least])
                steps.append([pl.when(own.is_not_null()).then(raised).alias(f"r__{rule.code}")])
        return steps

    @functools.cached_property
    def _spelling(self) -> dict[str, pl.Expr]:
        """Per distinct outcome: the code list, the highest severity, each code's severity."""
        ranks = [pl.col(f"r__{code}") for code in self.codes]
        levels = list(range(len(self.names)))

        def name(rank: pl.Expr) -> pl.Expr:
            return rank.replace_strict(levels, self.names, default=None, return_dtype=pl.String)

        bits = [pl.col("__na") & (1 << i) != 0 for i in range(len(self.codes))]
        return {
            "findings": _codes([r.is_not_null() for r in ranks], self.codes).alias("findings"),
            "max_severity": name(pl.max_horizontal(ranks)).alias("max_severity"),
            "severities": pl.concat_str(
                [pl.lit(f"{code}=") + name(r) for code, r in zip(self.codes, ranks, strict=True)],
                separator=";",
                ignore_nulls=True,
            ).alias("severities"),
            "not_assessed": _codes(bits, self.codes).alias("not_assessed"),
        }

    @functools.cached_property
    def _not_assessed_counts(self) -> list[pl.Expr]:
        """Over the table of distinct `__na` masks and their row counts: rows per rule."""
        return [
            pl.when(pl.col("__na") & (1 << i) != 0).then(pl.col("len")).otherwise(0).sum().alias(code)
            for i, code in enumerate(self.codes)
        ]

    def summary(self, frame: pl.DataFrame, severities: bool = False) -> tuple[pl.DataFrame, Counts]:
        """Adds `findings`, `max_severity` and `not_assessed`; with `severities`, also each
        finding's severity (`code=severity;...`, for the parity test: costly to spell out)."""
        counts = Counts()
        spelling = self._spelling
        outcomes = frame.group_by(OUTCOME).len()
        for step in self._ranks:
            outcomes = outcomes.with_columns(step)
        spelled = ["findings", "max_severity", *(["severities"] if severities else [])]
        outcomes = outcomes.with_columns(spelling[name] for name in spelled)
        for severity, n in outcomes.group_by("max_severity").agg(pl.col("len").sum()).drop_nulls().iter_rows():
            counts.by_severity[severity] = n
        per_rank = outcomes.unpivot(index="len", on=[f"r__{c}" for c in self.codes]).drop_nulls("value")
        for column, rank, n in per_rank.group_by("variable", "value").agg(pl.col("len").sum()).iter_rows():
            counts.by_finding.setdefault(column.removeprefix("r__"), {})[self.names[rank]] = n
        missing = frame.group_by("__na").len()
        sums = missing.select(self._not_assessed_counts).row(0, named=True)
        counts.not_assessed = {code: int(n) for code, n in sums.items() if n}
        missing = missing.select("__na", spelling["not_assessed"])
        frame = _attach(frame, outcomes.select(*OUTCOME, *spelled), OUTCOME)
        return _attach(frame, missing, ["__na"]), counts


def _codes(flags: list[pl.Expr], codes: list[str]) -> pl.Expr:
    """The codes whose flag is set, `;`-separated ("" when none)."""
    return pl.concat_str(
        [pl.when(f).then(pl.lit(code)) for f, code in zip(flags, codes, strict=True)], separator=";", ignore_nulls=True
    )


def _attach(frame: pl.DataFrame, table: pl.DataFrame, on: list[str]) -> pl.DataFrame:
    """Add `table`'s columns to the rows with the same `on` values, in row order."""
    # join the narrow key columns, then attach: joining the wide frame would copy every column
    looked_up = frame.select(on).join(table, on=on, how="left", maintain_order="left").drop(on)
    return frame.with_columns(looked_up.get_columns())


def _mask(flags: list[pl.Expr]) -> pl.Expr:
    """Bit i set where flag i is true. Packed a byte at a time: sums of 8-bit integers move an
    eighth of the memory of 64-bit ones."""
    u8, u64 = pl.UInt8, pl.UInt64
    bytes_ = []
    for start in range(0, len(flags), 8):
        bits = [
            pl.when(flag).then(pl.lit(1 << i, dtype=u8)).otherwise(pl.lit(0, dtype=u8))
            for i, flag in enumerate(flags[start : start + 8])
        ]
        bytes_.append(pl.sum_horizontal(bits).cast(u64) * pl.lit(1 << start, dtype=u64))
    return pl.sum_horizontal(bytes_) if bytes_ else pl.lit(0, dtype=u64)
