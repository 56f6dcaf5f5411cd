"""The conditions across time on columns: panels of the same patient are each other's history.

A long export with a patient key and a time (mapping `long.patient_key`, `long.time`) gives
every panel its patient's earlier panels. Before the run is cut into chunks, the panels'
facts are worked out once on the whole frame (the same `PanelColumns` steps as the run), and
each condition across time (`conditions.SERIAL`) becomes one boolean column, `t__<i>`, by
polars' rolling windows per patient over the time (closed on the left: an earlier panel,
never this one). The rule expressions read those columns (`polars_backend`). Semantics are
`interpret/serial.py`'s, and the runner contract compares them on generated histories:

- change: this value minus the lowest earlier one in the window (a rise), or the highest
  earlier one minus this value (a fall), against the limit for this result's unit;
- ratio: this value over the lowest earlier one;
- earlier: an earlier value in the window with the status or beyond the limit;
- started_after: from the `--medications` orders active at the panel, with their starts
  (`long.STARTS`); unknown without orders.

Unknown (null) when this value, the patient, the time or every earlier value in the window is
missing. Without a patient key and a time, every `t__` column is null: not assessed.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from interpret import derive
from interpret.batch.columns import CLASSES, COMPARE, PolarsOps, class_bits, instants, limit_expr
from interpret.batch.long import STARTS, STARTS_JOIN, STARTS_SEP
from interpret.batch.read import ROW
from interpret.derive import EXACT_DECIMALS
from interpret.ruleset import Ruleset
from interpret.ruleset import conditions as c

PATIENT, TIME = "__patient", "__time"


@functools.cache
def serial_nodes(rs: Ruleset) -> dict[c.Node, str]:
    """Each distinct condition across time in the ruleset, with its column's name."""
    nodes: dict[c.Node, str] = {}
    for rule in rs.rules:
        for node in rule.nodes():
            if isinstance(node, c.SERIAL) and node not in nodes:
                nodes[node] = f"t__{len(nodes)}"
    return nodes


def unknown_columns(rs: Ruleset) -> list[pl.Expr]:
    """Every `t__` column as unknown: the batch without history."""
    return [pl.lit(None, dtype=pl.Boolean).alias(name) for name in serial_nodes(rs).values()]


def unreadable_times(frame: pl.DataFrame) -> pl.Series:
    """A note for each panel whose time is written but cannot be read (its rules across time
    are then not assessed): said, never silent."""
    text = pl.col(TIME).cast(pl.String).fill_null("").str.strip_chars()
    bad = (text != "") & instants(text).is_null()
    note = pl.format("time {} could not be read: rules across time not assessed", text)
    return frame.select(pl.when(bad).then(note)).to_series()


def has_history(frame: pl.DataFrame) -> bool:
    return PATIENT in frame.columns and TIME in frame.columns


def add_serial_columns(rs: Ruleset, facts: pl.DataFrame) -> pl.DataFrame:
    """ROW and every `t__` column, from a frame of facts (q__, u__, s__ columns) that carries
    each panel's patient and time."""
    nodes = serial_nodes(rs)
    work = facts.with_columns(instants(pl.col(TIME)).alias("__t"))
    usable = work.filter(pl.col(PATIENT).is_not_null() & (pl.col(PATIENT) != "") & pl.col("__t").is_not_null())
    usable = _apart(usable.sort(PATIENT, "__t"), rs)
    per_row: list[pl.Series] = [usable.get_column(ROW)]
    for node, name in nodes.items():
        column = _started_after(node, usable, rs) if isinstance(node, c.StartedAfter) else _column(node, usable)
        per_row.append(column.alias(name))
    per_row += _aki_columns(rs, usable)
    found = pl.DataFrame(per_row)
    return facts.select(ROW).join(found, on=ROW, how="left", maintain_order="left")


AKI_CODE = "acute_kidney_injury"  # whose stage and baseline the output names (rules/derivations.yaml)
AKI_COLUMNS = ("aki_stage", "aki_baseline_creatinine_umol_L")


def _aki_columns(rs: Ruleset, frame: pl.DataFrame) -> list[pl.Series]:
    """The KDIGO stage (`derive.aki_stage`) and the baseline it is measured from: the lowest
    creatinine of the baseline window; written where `acute_kidney_injury` fires."""
    window = rs.derivations.acute_kidney_injury.baseline_within_hours
    now, unit = pl.col("q__creatinine"), pl.col("u__creatinine")
    baseline = _earlier_window(now, "min", window)
    ratio = (now / pl.when(baseline > 0).then(baseline)).round(EXACT_DECIMALS)
    limits = [(s, r, None if t is None else limit_expr(unit, t)) for s, r, t in rs.aki_stage_limits]
    stage = derive.aki_stage(ratio, now, limits, PolarsOps(pl.Int64))
    staged = pl.when(ratio.is_not_null()).then(stage).cast(pl.Int64).alias(AKI_COLUMNS[0])
    return frame.select(staged, baseline.alias(AKI_COLUMNS[1])).get_columns()


def _apart(frame: pl.DataFrame, rs: Ruleset) -> pl.DataFrame:
    """One time line for the whole sorted frame in which each patient's panels keep their
    distances but lie further from every other patient's than the longest window: one rolling
    pass then serves every patient, instead of a pass per patient group."""
    if frame.height == 0:
        return frame
    since = pl.col("__t") - pl.col("__t").min().over(PATIENT)
    windows = [n.within_hours for n in serial_nodes(rs) if isinstance(n, c.Change | c.Ratio | c.Earlier)]
    longest = max([*windows, rs.derivations.acute_kidney_injury.baseline_within_hours])
    span = frame.select(since.max()).item()
    gap = span + timedelta(hours=longest + 24)
    rank = (pl.col(PATIENT).rank("dense") - 1).cast(pl.Int64)
    origin = pl.lit(datetime(2000, 1, 1, tzinfo=UTC))
    return frame.with_columns((origin + since + rank * pl.lit(gap)).alias("__t"))


def _earlier_window(expr: pl.Expr, how: str, hours: float) -> pl.Expr:
    """`how` (min, max, sum) of `expr` over each panel's earlier panels of the same patient
    within `hours` (the frame sorted by patient and time; nulls skipped; this panel excluded)."""
    window = f"{int(hours * 3600)}s"
    rolled = {"min": expr.rolling_min_by, "max": expr.rolling_max_by, "sum": expr.rolling_sum_by}[how]
    return rolled("__t", window_size=window, closed="left")


def _column(node: c.Node, frame: pl.DataFrame) -> pl.Series:
    match node:
        case c.Change(quantity, hours, direction, op, threshold):
            now, unit = pl.col(f"q__{quantity}"), pl.col(f"u__{quantity}")
            ref = _earlier_window(now, "min" if direction == "rise" else "max", hours)
            delta = now - ref if direction == "rise" else ref - now
            return frame.select(
                COMPARE[op](delta.round(EXACT_DECIMALS), limit_expr(unit, threshold).round(EXACT_DECIMALS))
            ).to_series()
        case c.Ratio(quantity, hours, op, number):
            now = pl.col(f"q__{quantity}")
            ref = _earlier_window(now, "min", hours)
            ratio = (now / pl.when(ref > 0).then(ref)).round(EXACT_DECIMALS)
            return frame.select(COMPARE[op](ratio, pl.lit(number))).to_series()
        case c.Earlier(quantity, hours):
            meets = _meets(node).cast(pl.Int32)
            seen = _earlier_window(pl.col(f"q__{quantity}").is_not_null().cast(pl.Int32), "sum", hours)
            found = _earlier_window(meets, "max", hours)
            return frame.select(pl.when(seen > 0).then(found.fill_null(0) > 0)).to_series()
    raise TypeError(f"not a condition across time: {node!r}")


def _started_after(node: c.StartedAfter, frame: pl.DataFrame, rs: Ruleset) -> pl.Series:
    """A drug of the classes started after the earliest earlier panel that meets the
    `earlier` condition, and at least `hours_before` before this one (`--medications` orders
    give each panel's active orders with their starts: long.STARTS)."""
    earlier = node.earlier
    seconds = pl.col("__t").dt.epoch("s")
    first = _earlier_window(pl.when(_meets(earlier)).then(seconds), "min", earlier.within_hours)
    seen = _earlier_window(pl.col(f"q__{earlier.quantity}").is_not_null().cast(pl.Int32), "sum", earlier.within_hours)
    windows = frame.select(((seconds - first) / 3600).alias("__first"), (seen > 0).alias("__seen"))
    if STARTS not in frame.columns:
        # a list without start times (a wide row): false when no drug of the classes is
        # listed or no earlier panel meets the condition; otherwise unknown
        bits = class_bits(rs)
        listed = (pl.col(CLASSES) & sum(bits[cl] for cl in node.classes)) != 0
        false = (
            pl.col("meds_known").fill_null(False)
            & pl.lit(windows.get_column("__seen"))
            & (~listed | pl.lit(windows.get_column("__first")).is_null())
        )
        return frame.select(pl.when(false).then(pl.lit(False))).to_series()
    entries = (
        pl.DataFrame({"__i": pl.int_range(frame.height, eager=True), "__s": frame.get_column(STARTS)})
        .with_columns(pl.col("__s").str.split(STARTS_JOIN))
        .explode("__s")
        .with_columns(pl.col("__s").str.split_exact(STARTS_SEP, 1).struct.rename_fields(["h", "drug"]))
        .unnest("__s")
    )
    wanted = set(node.classes)
    drugs = entries.get_column("drug").drop_nulls().unique().to_list()
    in_class = {d: bool(wanted & rs.medications.match(d).classes) for d in drugs}
    matching = entries.filter(pl.col("drug").replace_strict(in_class, default=False, return_dtype=pl.Boolean))
    bounds = pl.DataFrame({"__i": pl.int_range(frame.height, eager=True), "__first": windows.get_column("__first")})
    inside = (
        matching.join(bounds, on="__i")
        .with_columns(pl.col("h").cast(pl.Float64))
        .filter((pl.col("h") >= node.hours_before) & (pl.col("h") <= pl.col("__first")))
        .get_column("__i")
        .unique()
    )
    started = pl.int_range(frame.height, eager=True).is_in(inside.implode())
    known = windows.get_column("__seen") & frame.get_column("meds_known").fill_null(False)
    return pl.select(pl.when(pl.lit(known)).then(pl.lit(started))).to_series()


def _meets(node: c.Earlier) -> pl.Expr:
    """Whether each panel's value meets the `earlier` condition (its own unit's limit)."""
    value, unit = pl.col(f"q__{node.quantity}"), pl.col(f"u__{node.quantity}")
    expr: Any
    if node.statuses:
        expr = pl.col(f"s__{node.quantity}").cast(pl.String).is_in(sorted(node.statuses))
    else:
        assert node.op is not None and node.threshold is not None
        expr = COMPARE[node.op](value, limit_expr(unit, node.threshold))
    return pl.when(value.is_not_null()).then(expr)
