"""The conditions across time as SQL: each panel's earlier panels of the same patient.

The same semantics as the polars runner's rolling windows (`batch/serial.py`, whose
docstring states them): a window is the `hours` before this panel's time, closed on the
left (an earlier panel at exactly `hours` before counts; this panel, and any other at the
same time, does not). In SQL: one self-join of the facts on the patient, earlier times
within the longest window, and per panel the aggregates each condition reads (MIN, MAX,
counts over the rows of its own window), then each `t__` column from them. Times are epoch
seconds (`__seconds`); a panel without patient or time has every `t__` unknown.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from interpret import column_facts
from interpret.batch.columns import CLASSES, class_bits
from interpret.batch.serial import serial_nodes
from interpret.derive import EXACT_DECIMALS
from interpret.ruleset import Ruleset
from interpret.ruleset import conditions as c
from interpret.sql.ops import SqlOps, cases, compare, integer, is_null, value

OPS = SqlOps()
PATIENT, SECONDS = "__patient", "__seconds"
EARLIER = "earlier_panels"  # the per-panel aggregates of the earlier panels
ORDER_STARTS = "order_starts"  # per panel: whether an order of the classes started in time


def _now(name: str) -> Any:
    return exp.column(name, table="p", quoted=True)


def _then(name: str) -> Any:
    return exp.column(name, table="e", quoted=True)


def _within(hours: float) -> Any:
    """The earlier panel `e` lies in the `hours` before panel `p` (the join keeps only earlier ones)."""
    return exp.GTE(this=_then(SECONDS), expression=exp.Sub(this=_now(SECONDS), expression=value(hours * 3600.0)))


def _meets(node: c.Earlier, row: Any) -> Any:
    """Whether a panel's value meets the `earlier` condition (its own unit's limit); NULL
    where it has no value. `row` names the panel's columns (`_now` or `_then`)."""
    quantity = row(f"q__{node.quantity}")
    if node.statuses:
        test = exp.In(this=row(f"s__{node.quantity}"), expressions=[value(s) for s in sorted(node.statuses)])
    else:
        assert node.op is not None and node.threshold is not None
        test = compare(node.op, quantity, column_facts.limit(OPS, row(f"u__{node.quantity}"), node.threshold))
    return cases([(is_null(quantity), None)], test)


class SerialSql:
    """The aggregates each condition across time reads, named once each, and its `t__` column."""

    def __init__(self, rs: Ruleset, orders: tuple[str, str] | None = None) -> None:
        """`orders`: the tables of each panel's active orders (`__row_key`, `entry`, `__hours`
        since each started) and of the entries' class bits, when a long export's orders are
        given: a drug's start is then known (`started_after`)."""
        self.rs = rs
        self.nodes = serial_nodes(rs)
        self.orders = orders
        self.aggregates: dict[str, Any] = {}  # name -> aggregate expression over the join
        self.starts: dict[str, Any] = {}  # name -> aggregate over each panel's active orders

    def _aggregate(self, kind: str, of: Any, hours: float) -> Any:
        """`kind` (MIN, MAX, SUM) of `of` over the earlier panels within `hours`: a column of
        the `earlier_panels` table (the same aggregate is made once)."""
        inner = cases([(_within(hours), of)], None)
        made = {"MIN": exp.Min, "MAX": exp.Max, "SUM": exp.Sum}[kind](this=inner)
        key = made.sql("duckdb")
        for name, known in self.aggregates.items():
            if known.sql("duckdb") == key:
                return exp.column(name, table="x", quoted=True)
        name = f"__a{len(self.aggregates)}"
        self.aggregates[name] = made
        return exp.column(name, table="x", quoted=True)

    def _seen(self, quantity: str, hours: float) -> Any:
        """How many earlier panels within `hours` have a value of `quantity`."""
        present = cases([(is_null(_then(f"q__{quantity}")), integer(0))], integer(1))
        return self._aggregate("SUM", present, hours)

    def column(self, node: c.Node) -> Any:
        """The condition's value for panel `f` (the facts) beside its aggregates `x`."""

        def now(quantity: str) -> Any:
            return exp.column(f"q__{quantity}", table="f", quoted=True)

        match node:
            case c.Change(quantity, hours, direction, op, threshold):
                ref = self._aggregate("MIN" if direction == "rise" else "MAX", _then(f"q__{quantity}"), hours)
                delta = exp.Sub(this=now(quantity), expression=ref)
                if direction == "fall":
                    delta = exp.Sub(this=ref, expression=now(quantity))
                limit = column_facts.limit(OPS, exp.column(f"u__{quantity}", table="f", quoted=True), threshold)
                return compare(op, OPS.round(delta, EXACT_DECIMALS), OPS.round(limit, EXACT_DECIMALS))
            case c.Ratio(quantity, hours, op, number):
                ref = self._aggregate("MIN", _then(f"q__{quantity}"), hours)
                positive = cases([(exp.GT(this=ref, expression=value(0.0)), ref)], None)
                return compare(op, OPS.round(exp.Div(this=now(quantity), expression=positive), EXACT_DECIMALS), number)
            case c.Earlier(quantity, hours):
                met = cases([(_meets(node, _then), integer(1))], integer(0))
                found = self._aggregate("MAX", cases([(is_null(_then(f"q__{quantity}")), None)], met), hours)
                seen = self._seen(quantity, hours)
                return cases(
                    [(exp.GT(this=seen, expression=integer(0)), exp.GT(this=found, expression=integer(0)))], None
                )
            case c.StartedAfter(classes, earlier, hours_before):
                return self._started_after(classes, earlier, hours_before)
        raise TypeError(f"not a condition across time: {node!r}")

    def _started_after(self, classes: tuple[str, ...], earlier: c.Earlier, hours_before: float) -> Any:
        within = earlier.within_hours
        first = self._aggregate("MIN", cases([(_meets(earlier, _then), _then(SECONDS))], None), within)
        seen = exp.GT(this=self._seen(earlier.quantity, within), expression=integer(0))
        bits = class_bits(self.rs)
        wanted = integer(sum(bits[cl] for cl in classes))
        meds_known = exp.func("COALESCE", exp.column("meds_known", table="f", quoted=True), exp.false())
        if self.orders:  # an order of the classes started after the first such earlier panel
            since = exp.Div(  # parenthesised: sqlglot writes the tree as built
                this=exp.paren(exp.Sub(this=exp.column(SECONDS, table="f", quoted=True), expression=first)),
                expression=value(3600.0),
            )
            hours = exp.column("__hours", table="a", quoted=True)
            of_entry = exp.func("COALESCE", exp.column("classes", table="k"), integer(0))
            inside = exp.and_(
                exp.NEQ(this=exp.paren(exp.BitwiseAnd(this=of_entry, expression=wanted)), expression=integer(0)),
                exp.GTE(this=hours, expression=value(hours_before)),
                exp.LTE(this=hours, expression=since),
            )
            name = f"__s{len(self.starts)}"
            self.starts[name] = exp.Max(this=cases([(inside, integer(1))], integer(0)))
            found = exp.func("COALESCE", exp.column(name, table="o", quoted=True), integer(0))
            return cases([(exp.and_(seen, meds_known), exp.EQ(this=found, expression=integer(1)))], None)
        # a list without start times (a wide row): false when no drug of the classes is
        # listed, or no earlier panel meets the condition; otherwise unknown
        masked = exp.BitwiseAnd(this=exp.column(CLASSES, table="f", quoted=True), expression=wanted)
        listed = exp.NEQ(this=exp.paren(masked), expression=integer(0))
        false = exp.and_(meds_known, seen, exp.or_(exp.not_(listed), is_null(first)))
        return cases([(false, exp.false())], None)

    def layers(self, facts: str) -> list[tuple[str, Any]]:
        """The tables after `facts`: the earlier panels' aggregates per panel (and, with
        orders, whether an order started in time), then the facts with every `t__` column."""
        columns = {name: self.column(node) for node, name in self.nodes.items()}
        windows = [n.within_hours for n in self.nodes if isinstance(n, c.Change | c.Ratio | c.Earlier)]
        windows += [n.earlier.within_hours for n in self.nodes if isinstance(n, c.StartedAfter)]
        on = exp.and_(
            exp.EQ(this=_then(PATIENT), expression=_now(PATIENT)),
            exp.LT(this=_then(SECONDS), expression=_now(SECONDS)),
            _within(max(windows, default=0.0)),
        )
        earlier = (
            exp.select(_now("line"), *(exp.alias_(a, n, quoted=True) for n, a in self.aggregates.items()))
            .from_(exp.to_table(facts).as_("p"))
            .join(exp.to_table(facts).as_("e"), on=on, join_type="inner")
            .group_by(_now("line"))
        )
        line = exp.column("line", table="f", quoted=True)

        def by_line(alias: str) -> Any:
            return exp.EQ(this=exp.column("line", table=alias, quoted=True), expression=line)

        layers: list[tuple[str, Any]] = [(EARLIER, earlier)]
        if self.starts and self.orders:
            active, entries = self.orders
            starts = (
                exp.select(line, *(exp.alias_(a, n, quoted=True) for n, a in self.starts.items()))
                .from_(exp.to_table(facts).as_("f"))
                .join(exp.to_table(EARLIER).as_("x"), on=by_line("x"), join_type="left")
                .join(
                    exp.to_table(active).as_("a"),
                    on=exp.EQ(this=exp.column("__row_key", table="a"), expression=line),
                    join_type="inner",
                )
                .join(
                    exp.to_table(entries).as_("k"),
                    on=exp.EQ(
                        this=exp.column("entry", table="k"), expression=exp.column("entry", table="a", quoted=True)
                    ),
                    join_type="left",
                )
                .group_by(line)
            )
            layers.append((ORDER_STARTS, starts))
        with_columns = (
            exp.select(
                exp.Column(this=exp.Star(), table=exp.to_identifier("f")),
                *(exp.alias_(e, n, quoted=True) for n, e in columns.items()),
            )
            .from_(exp.to_table(facts).as_("f"))
            .join(exp.to_table(EARLIER).as_("x"), on=by_line("x"), join_type="left")
        )
        if self.starts and self.orders:
            with_columns = with_columns.join(exp.to_table(ORDER_STARTS).as_("o"), on=by_line("o"), join_type="left")
        return [*layers, ("serial", with_columns)]
