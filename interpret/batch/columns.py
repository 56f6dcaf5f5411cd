"""Column-wise validation and facts: the polars runner of `validate.py` and `prepare.py`.

The same ruleset data drive both: unit factors, per-unit limits, intervals, critical and
plausibility limits, derivations (the formulas themselves are shared through `derive.Ops`).
Which rows are refused is decided on columns; why is worded by `validate`'s own checks on the
flagged rows (`PanelColumns.messages`). The contract tests (tests/runner_contract.py) run every
runner on the same panels and compare them row by row, refusal texts included.
Column names of the facts frame: `q__<quantity>` value (canonical), `u__` reported unit,
`s__` status, `v__` needs-verification; `age`, `sex`, `hemolyzed`, `meds_known`,
`unrecognized`, `m__classes` (bit mask); `error` (why a row is refused) and `notes`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import polars as pl
from polars._typing import PolarsDataType

from interpret import column_facts, derive
from interpret.batch.mapping import Plan
from interpret.batch.read import ROW
from interpret.facts import ANALYTE_FACT, QUANTITIES, SEXES, STATUSES
from interpret.ruleset import Ruleset
from interpret.ruleset.conditions import Threshold
from interpret.units import is_censored
from interpret.validate import (
    Refusal,
    age_refusal,
    age_refused,
    number_refusal,
    read_number,
    refusal,
    sex_refusal,
    unit_refusal,
    value_checks,
    value_refusal,
)

UNRECOGNIZED_BIT = 63  # in the medication class mask: the list has a name the catalogue does not know
CLASSES = "m__classes"  # the medication class mask of each row


def class_bits(rs: Ruleset) -> dict[str, int]:
    """Each medication class's bit in the mask (`CLASSES`), in catalogue order."""
    bits = {c: 1 << i for i, c in enumerate(rs.medications.data.classes)}
    if len(bits) > UNRECOGNIZED_BIT:
        raise ValueError(f"more than {UNRECOGNIZED_BIT} medication classes: widen the class mask")
    return bits


def entry_bits(rs: Ruleset, text: str) -> int:
    """The class bits of one medication entry (`class_bits`), and the unrecognised bit when the
    catalogue does not know it (an empty entry, as between ";;", is no entry): what every
    runner, and the SQL's mapping table of entries (`sql/raw.py`), takes an entry to mean."""
    text = text.strip()
    if not text:
        return 0
    match = rs.medications.match(text)
    bits = sum(bit for c, bit in class_bits(rs).items() if c in match.classes)
    return bits if match.recognized else bits | 1 << UNRECOGNIZED_BIT


SEX_DTYPE = pl.Enum(sorted(set(SEXES.values()) - {"unknown"}))  # compared often: integers, not text
STATUS_DTYPE = pl.Enum(list(STATUSES))


# The rule vocabulary's comparisons (conditions.OPERATORS) on polars expressions, for every
# polars evaluator (`PolarsOps.first_of`, the rule expressions, the conditions across time).
COMPARE = {"below": pl.Expr.lt, "at_or_below": pl.Expr.le, "above": pl.Expr.gt, "at_or_above": pl.Expr.ge}


class PolarsOps:
    """`derive.Ops` for polars expressions, so derivations are written once."""

    @staticmethod
    def where(condition: Any, if_true: Any, if_false: Any) -> Any:
        """Expressions are lazy already: a branch given as a function is built here."""
        branches = [b() if callable(b) else b for b in (if_true, if_false)]
        return pl.when(condition).then(branches[0]).otherwise(branches[1])

    def __init__(self, result_dtype: PolarsDataType | None = None) -> None:
        self.result_dtype = result_dtype or STATUS_DTYPE  # of `first_of`'s results

    @staticmethod
    def below(value: Any, limit: Any) -> Any:
        return (value < limit).fill_null(False)

    @staticmethod
    def above(value: Any, limit: Any) -> Any:
        return (value > limit).fill_null(False)

    @staticmethod
    def known(value: Any) -> Any:
        return value.is_not_null()

    @staticmethod
    def at_or_above(value: Any, limit: Any) -> Any:
        return value.is_not_null() & (value >= limit)

    def first_of(self, value: Any, steps: list[derive.Step], default: str) -> Any:
        """A when-chain; a null limit makes its comparison null, which decides nothing.
        Null where the value is."""
        dtype = self.result_dtype
        chain: Any = pl.when(value.is_null()).then(pl.lit(None, dtype=dtype))
        for op, limit, result in steps:
            if limit is not None:
                chain = chain.when(COMPARE[op](value, limit)).then(pl.lit(result, dtype=dtype))
        return chain.otherwise(pl.lit(default, dtype=dtype))

    @staticmethod
    def minimum(a: Any, b: float) -> Any:
        return pl.min_horizontal(a, pl.lit(b))

    @staticmethod
    def maximum(a: Any, b: float) -> Any:
        return pl.max_horizontal(a, pl.lit(b))

    @staticmethod
    def round(a: Any, digits: int) -> Any:
        return a.round(digits)

    # column_facts.ColumnOps

    DTYPES: ClassVar[dict[str, PolarsDataType]] = {"float": pl.Float64, "text": pl.String, "bool": pl.Boolean}

    @staticmethod
    def col(name: str) -> Any:
        return pl.col(name)

    def null(self, kind: str) -> Any:
        return pl.lit(None, dtype=STATUS_DTYPE if kind == "status" else self.DTYPES[kind])

    @staticmethod
    def text(value: str) -> Any:
        return pl.lit(value)

    @staticmethod
    def by_key(key: Any, values: dict[str, float | None], default: float | None) -> Any:
        return _by_unit(key, values, default)

    @staticmethod
    def cases(branches: list[tuple[Any, Any]], default: Any) -> Any:
        chain: Any = pl
        for condition, value in branches:
            chain = chain.when(condition).then(value)
        return chain.otherwise(default)

    @staticmethod
    def coalesce(*values: Any) -> Any:
        return pl.coalesce([v if isinstance(v, pl.Expr) else pl.lit(v) for v in values])

    @staticmethod
    def is_in(value: Any, options: list[str]) -> Any:
        return value.is_in(options)

    @staticmethod
    def equals(value: Any, text: str) -> Any:
        return value == text

    @staticmethod
    def named(value: Any, name: str) -> Any:
        return value.alias(name)


def join(parts: list[pl.Expr], separator: str = "; ") -> pl.Expr:
    """The non-null parts joined; null (not "") when there are none."""
    if not parts:
        return pl.lit(None, dtype=pl.String)
    joined = pl.concat_str(parts, separator=separator, ignore_nulls=True)
    return pl.when(joined == "").then(None).otherwise(joined)


class Lookup:
    """Each distinct cell text resolved once, by a Python function, and remembered across chunks.

    Exports repeat a handful of spellings (units, sex codes, yes/no) or a few thousand
    medication lists: resolving the distinct texts with the single-panel path's own functions
    and mapping them back costs far less than string work on every row, and cannot disagree
    with the single-panel path.
    """

    LIMIT = 100_000  # remembered texts; past this the memory is cleared (bounded for any file)

    def __init__(self, resolve: Callable[[str], Any], dtype: PolarsDataType) -> None:
        self.resolve, self.dtype = resolve, dtype
        self.known: dict[str, Any] = {}
        # two chunks in flight share most texts: the second waits for the first's answers
        # instead of resolving the same texts again
        self._resolving = threading.Lock()

    def __call__(self, column: pl.Series) -> pl.Series:
        column = _no_nulls(column)
        # one spelling throughout is the common case, and cheaper to check than to find uniques
        same = column.len() > 0 and bool((column == column[0]).all())
        texts = [column[0]] if same else column.unique().to_list()
        with self._resolving:
            if len(self.known) + len(texts) > self.LIMIT:
                self.known = {}  # bounded memory for any file
            known = self.known
            values = []
            for text in texts:
                if text not in known:
                    known[text] = self.resolve(text)
                values.append(known[text])
        if len(texts) == 1:  # no per-row lookup at all
            return pl.repeat(values[0], column.len(), dtype=self.dtype, eager=True).alias(column.name)
        # each row's index among the distinct texts, then a gather (cheaper than `replace_strict`)
        index = column.cast(pl.Enum(texts)).to_physical()
        return pl.Series(column.name, values, dtype=self.dtype).gather(index)


# ISO 8601 times as cells write them, each format given (never inferred from a column's first
# value, which made a time with an offset unreadable below one without, and the reverse):
# with an offset (Z read as +00:00), then without one (read as UTC); seconds' fractions optional.
OFFSET_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%d %H:%M%z")
NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d")


def instants(text: pl.Expr) -> pl.Expr:
    """Times written in cells as UTC instants: with an offset or Z as written, without one
    read as UTC (as the FHIR mapping does), a date as its start; null where unreadable. The
    one reading of a time cell for every batch step (panel times, orders, ages)."""
    text = text.cast(pl.String).str.strip_chars()
    zulu = text.str.replace(r"[Zz]$", "+00:00")
    parsed = [zulu.str.to_datetime(f, strict=False, time_zone="UTC") for f in OFFSET_FORMATS]
    parsed += [text.str.to_datetime(f, strict=False).dt.replace_time_zone("UTC") for f in NAIVE_FORMATS]
    return pl.coalesce(parsed)


def censored_not_measured(text: str, analyte: str, rs: Ruleset) -> bool:
    """A censored value ("<2.0", ">60") of an analyte whose rules say `censored:
    not_measured` (rules/analytes.yaml): read as not measured, with a note, not refused.
    `parse_number` is its form on columns."""
    return is_censored(text) and rs.analytes[analyte].censored == "not_measured"


def _problem(condition: pl.Expr, message: pl.Expr | str) -> pl.Expr:
    return pl.when(condition).then(message if isinstance(message, pl.Expr) else pl.lit(message))


def _no_nulls(column: pl.Series) -> pl.Series:
    """Empty text for missing cells (CSV cells are read as "", so this rarely copies anything)."""
    return column.fill_null("") if column.null_count() else column


def materialise(
    frame: pl.DataFrame, headers: dict[str, str], decimal_comma: bool, is_hemolysis: Callable[[str], bool]
) -> pl.DataFrame:
    """Parse each text column once: `__t_<key>` text, `__n_<key>` number, `__h_<key>` haemolysis,
    `__c_<key>` a censored value ("<2.0", ">60").

    Fast path: a plain number casts as it is. Only the cells that do not (spaces, decimal
    commas, words, censored values) are stripped and examined: few rows, so the costly
    string work is done on a handful of rows instead of all of them, each distinct text by
    the single-panel path's own readers (`_odd_cells`).
    """
    numbers = frame.select(pl.col(h).cast(pl.Float64, strict=False).alias(k) for k, h in headers.items())  # in parallel
    columns: list[pl.Series] = []
    for key, header in headers.items():
        raw = _no_nulls(frame.get_column(header))
        number = numbers.get_column(key)
        hemo = pl.Series(f"__h_{key}", [False], dtype=pl.Boolean).new_from_index(0, frame.height)
        censored = hemo.alias(f"__c_{key}")
        odd = (number.is_null() & (raw != "")).arg_true()
        if len(odd):
            text = raw.gather(odd).str.strip_chars()
            raw = raw.scatter(odd, text)
            read = _odd_cells(text, decimal_comma, is_hemolysis)
            number = number.scatter(odd, read.get_column("number"))
            hemo = hemo.scatter(odd, read.get_column("hemolysis"))
            censored = censored.scatter(odd, read.get_column("censored"))
        columns += [raw.alias(f"__t_{key}"), number.alias(f"__n_{key}"), hemo, censored]
    return frame.with_columns(columns)


def _odd_cells(texts: pl.Series, decimal_comma: bool, is_hemolysis: Callable[[str], bool]) -> pl.DataFrame:
    """The cells a plain cast does not read ("3,4", " 3.4 ", "haemolysed", "<2.0"): each distinct
    text read once by the single-panel path's own functions (`validate.read_number`, the
    ruleset's `is_hemolysis`, `units.is_censored`), so a cell cannot be read two ways."""
    distinct = texts.unique().to_list()
    read = pl.DataFrame(
        {
            "text": distinct,
            "number": [v if isinstance(v := read_number(t, decimal_comma), float) else None for t in distinct],
            "hemolysis": [is_hemolysis(t) for t in distinct],
            "censored": [is_censored(t) for t in distinct],
        },
        schema={"text": pl.String, "number": pl.Float64, "hemolysis": pl.Boolean, "censored": pl.Boolean},
    )
    return texts.alias("text").to_frame().join(read, on="text", how="left", maintain_order="left")


def parse_number(key: str, censored: str = "refuse") -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """(value, empty, read as not measured, unparsable flag) of a materialised column. Read as
    not measured: haemolysis written in the cell, and a censored value where the analyte says
    so (`censored: not_measured`, rules/analytes.yaml). Why a flagged cell is refused is
    worded by `validate` (`PanelColumns.messages`)."""
    s, number, hemo = pl.col(f"__t_{key}"), pl.col(f"__n_{key}"), pl.col(f"__h_{key}")
    not_measured = hemo | pl.col(f"__c_{key}") if censored == "not_measured" else hemo
    empty = s == ""
    finite = number.is_finite().fill_null(False)
    bad = ~empty & ~not_measured & ~finite
    return pl.when(finite & ~hemo).then(number), empty, not_measured, bad


def _by_unit(unit: pl.Expr, mapping: dict[str, float | None], default: float | None) -> pl.Expr:
    expr: Any = pl.lit(default, dtype=pl.Float64)
    for key, value in mapping.items():
        if value != default:
            expr = pl.when(unit == key).then(pl.lit(value, dtype=pl.Float64)).otherwise(expr)
    return expr  # type: ignore[no-any-return]


def limit_expr(unit: pl.Expr, threshold: Threshold | None) -> pl.Expr:
    """A written limit as a polars expression (`column_facts.limit`)."""
    return column_facts.limit(PolarsOps(), unit, threshold)  # type: ignore[no-any-return]


class ResultSteps(NamedTuple):
    parse: list[pl.Expr]  # number and unit factor of each result
    checks: list[pl.Expr]  # canonical values, laboratory ranges, the refusal flag
    noted: list[pl.Expr]  # for chunks with a value cell read as not measured (haemolysis, censored)
    plain: list[pl.Expr]  # for the others


class PanelColumns:
    """The single-panel steps (validation, statuses, derived values, medication classes) as
    polars expressions over a chunk of rows, for one plan: built once, applied chunk by chunk."""

    def __init__(self, rs: Ruleset, plan: Plan, decimal_comma: bool) -> None:
        self.rs, self.plan, self.decimal_comma = rs, plan, decimal_comma
        self._lookups: dict[str, Lookup] = {}

    def build_expressions(self) -> None:
        """Build the expressions of every step now (else the first chunk builds them)."""
        _ = self._result_steps, self._patient_steps, self._fact_steps

    def lookup(self, name: str, resolve: Callable[[str], Any], dtype: PolarsDataType) -> Lookup:
        if name not in self._lookups:
            self._lookups[name] = Lookup(resolve, dtype)
        return self._lookups[name]

    def messages(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Add why each flagged row is refused, in `validate`'s words (`REFUSALS`): the rows
        are few, and each is worded by the single-panel path's own checks, so the batch and
        the API cannot word a refusal differently (the contract tests compare them)."""
        names = ("__result_errors", "__patient_errors")
        bad = frame.filter(pl.col("__bad__result") | pl.col("__bad__patient"))
        if bad.height == 0:
            return frame.with_columns(pl.lit(None, dtype=pl.String).alias(n) for n in names)
        worded = [self._row_refusals(row) for row in bad.select(ROW, *self._raw_cells).iter_rows(named=True)]
        texts = pl.DataFrame(
            {ROW: bad.get_column(ROW), names[0]: [w[0] for w in worded], names[1]: [w[1] for w in worded]},
            schema={ROW: bad.schema[ROW], names[0]: pl.String, names[1]: pl.String},
        )
        # join a one-column frame, then attach: joining the wide frame would copy every column
        looked_up = frame.select(ROW).join(texts, on=ROW, how="left", maintain_order="left").drop(ROW)
        return frame.with_columns(looked_up.get_columns())

    @functools.cached_property
    def _raw_cells(self) -> list[str]:
        """The columns `_row_refusals` reads: each cell as written."""
        cells = [f"__t_{ANALYTE_FACT[a]}" for a in self.plan.analyte_columns]
        cells += [h for a, h in self.plan.unit_columns.items() if a in self.plan.analyte_columns]
        roles = self.plan.roles
        cells += [
            c
            for role, c in (("age", "__t_age"), ("sex", "__raw_sex"), ("hemolyzed", "__raw_hemolyzed"))
            if role in roles
        ]
        return list(dict.fromkeys(cells))

    def _row_refusals(self, row: dict[str, Any]) -> tuple[str | None, str | None]:
        """(the results' refusals, the patient's) of one row, each "where: why"."""
        rs, plan = self.rs, self.plan
        results: list[str] = []
        for analyte, header in plan.analyte_columns.items():
            text = (row[f"__t_{ANALYTE_FACT[analyte]}"] or "").strip()
            if not text or rs.meta.specimen.is_hemolysis(text) or censored_not_measured(text, analyte, rs):
                continue
            refused = self._result_refusal(analyte, text, row)
            if refused is not None:
                results.append(f"{analyte} (column {header!r}): {refused.message}")
        patient: list[str] = []
        if "age" in plan.roles and (text := (row["__t_age"] or "").strip()):
            age, refused = number_refusal(text, ("patient", "age"), self.decimal_comma)
            refused = refused or (age_refusal(age, rs) if age is not None else None)
            if refused:
                patient.append(f"age: {refused.message}")
        if "sex" in plan.roles and (refused := sex_refusal(row["__raw_sex"] or "")[1]):
            patient.append(f"sex: {refused.message}")
        if "hemolyzed" in plan.roles and rs.meta.specimen.yes_no(text := row["__raw_hemolyzed"] or "") is None:
            patient.append(f"hemolyzed: {refusal(('specimen', 'hemolyzed'), 'not_yes_no', text=text.strip()).message}")
        return "; ".join(results) or None, "; ".join(patient) or None

    def _result_refusal(self, analyte: str, text: str, row: dict[str, Any]) -> Refusal | None:
        """The first refusal of one result cell: its number, its unit, then its value."""
        value, refused = number_refusal(text, ("value",), self.decimal_comma)
        if refused is not None or value is None:
            return refused
        unit_header = self.plan.unit_columns.get(analyte)
        unit_text = ((row[unit_header] or "").strip() if unit_header else "") or self.plan.fixed_units.get(analyte, "")
        unit, refused = unit_refusal(unit_text, analyte, self.rs, ("unit",))
        if unit is None:
            return refused
        canonical = value * self.rs.units.factor(analyte, unit)
        return value_refusal(value, canonical, analyte, unit, self.rs, ("value",))

    # --- results -------------------------------------------------------------------------

    def results(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Parse and validate each result column; add canonical values, units and errors.

        Built in steps: an expression used twice would otherwise be computed twice (eager
        polars does not share sub-expressions), and unit lookups are the costly part.
        """
        frame = materialise(frame, self._result_texts, self.decimal_comma, self.rs.meta.specimen.is_hemolysis)
        frame = frame.with_columns(
            self._unit_key(analyte, frame).alias(f"u__{ANALYTE_FACT[analyte]}") for analyte in self.plan.analyte_columns
        )
        steps = self._result_steps
        frame = frame.with_columns(steps.parse)
        # haemolysis or a censored value written in a value cell is rare: no per-row work for
        # notes when a chunk has none
        noted = any(
            frame.get_column(f"__{flag}_{ANALYTE_FACT[a]}").any() for a in self.plan.analyte_columns for flag in "hc"
        )
        return frame.with_columns(steps.checks + (steps.noted if noted else steps.plain))

    @functools.cached_property
    def _result_texts(self) -> dict[str, str]:
        texts = {ANALYTE_FACT[a]: h for a, h in self.plan.analyte_columns.items()}
        for analyte, (low_h, high_h) in self.plan.range_columns.items():
            texts.update({k: h for k, h in ((f"low_{analyte}", low_h), (f"high_{analyte}", high_h)) if h})
        return texts

    @functools.cached_property
    def _result_steps(self) -> ResultSteps:
        """The same for every chunk: built once."""
        parse: list[pl.Expr] = []
        for analyte in self.plan.analyte_columns:
            fact = ANALYTE_FACT[analyte]
            accepted = self.rs.analytes[analyte].units
            factor = _by_unit(pl.col(f"u__{fact}"), {u: self.rs.units.factor(analyte, u) for u in accepted}, None)
            parse += [parse_number(fact)[0].alias(f"p__{fact}"), factor.alias(f"__factor_{fact}")]
        exprs: list[pl.Expr] = []
        flags: list[pl.Expr] = []
        hemolysis_cells: list[pl.Expr] = []
        notes: list[pl.Expr] = []
        for analyte in self.plan.analyte_columns:
            fact = ANALYTE_FACT[analyte]
            censored = self.rs.analytes[analyte].censored
            _, empty, not_measured, bad = parse_number(fact, censored)
            hemo = pl.col(f"__h_{fact}")
            value, unit_key, factor = pl.col(f"p__{fact}"), pl.col(f"u__{fact}"), pl.col(f"__factor_{fact}")
            canonical = value * factor
            limits = self.rs.plausibility[analyte]
            low = limit_expr(unit_key, limits.get("refuse_below"))
            high = limit_expr(unit_key, limits.get("refuse_above"))
            refused_value = [refused for _, refused in value_checks(value, canonical, low, high, PolarsOps())]
            flags += [bad, ~empty & ~not_measured & unit_key.is_null(), *refused_value]
            hemolysis_cells.append(hemo)
            notes.append(_problem(hemo, f"{analyte}: haemolysis written in the value cell, read as not measured"))
            if censored == "not_measured":
                text = pl.col(f"__t_{fact}")
                notes.append(
                    _problem(
                        pl.col(f"__c_{fact}"),
                        pl.format(
                            "{}: '{}' is a bound, not a result (censored), read as not measured", pl.lit(analyte), text
                        ),
                    )
                )
            exprs.append(canonical.alias(f"q__{fact}"))
            exprs += self._lab_range(analyte, fact, factor)
        exprs.append((pl.any_horizontal(flags) if flags else pl.lit(False)).alias("__bad__result"))
        noted = [
            (pl.any_horizontal(hemolysis_cells) if hemolysis_cells else pl.lit(False)).alias("__hemo_cells"),
            join(notes).alias("notes"),
        ]
        plain = [pl.lit(False).alias("__hemo_cells"), pl.lit(None, dtype=pl.String).alias("notes")]
        return ResultSteps(parse, exprs, noted, plain)

    def _unit_key(self, analyte: str, frame: pl.DataFrame) -> pl.Series | pl.Expr:
        """Each row's unit key: null where the spelling is not a unit of `analyte`.

        An enum of the analyte's units: every limit is chosen by unit, and comparing enums is
        comparing small integers, not text."""
        accepted = self.rs.analytes[analyte].units
        units = pl.Enum(accepted)
        if analyte in self.plan.fixed_units and analyte not in self.plan.unit_columns:
            return pl.lit(self.plan.fixed_units[analyte], dtype=units)
        default = self.plan.fixed_units.get(analyte)  # a unit column with gaps, and a default unit

        def resolve(text: str) -> str | None:  # the single-panel path's own resolver
            key = self.rs.units.resolve(text.strip() or default or "")
            return key if key in accepted else None

        return self.lookup(f"unit:{analyte}", resolve, units)(frame.get_column(self.plan.unit_columns[analyte]))

    def _lab_range(self, analyte: str, fact: str, factor: pl.Expr) -> list[pl.Expr]:
        low_header, high_header = self.plan.range_columns.get(analyte, (None, None))
        out = []
        for header, name in ((low_header, "low"), (high_header, "high")):
            if header is None:
                out.append(pl.lit(None, dtype=pl.Float64).alias(f"lab_{name}__{fact}"))
            else:
                value = parse_number(f"{name}_{analyte}")[0]
                out.append((value * factor).alias(f"lab_{name}__{fact}"))
        return out

    # --- patient, specimen, medications ----------------------------------------------------

    def patient(self, frame: pl.DataFrame) -> pl.DataFrame:
        roles = self.plan.roles
        if "age" in roles:
            frame = materialise(frame, {"age": roles["age"]}, self.decimal_comma, self.rs.meta.specimen.is_hemolysis)
        looked_up = []
        if "sex" in roles:
            # "" when empty, "?" when not a sex we accept: the single-panel path's own reading
            code = self.lookup("sex", lambda t: (sex_refusal(t)[0] or "?") if t.strip() else "", pl.String)
            looked_up.append(code(frame.get_column(roles["sex"])).alias("__sex_code"))
            looked_up.append(frame.get_column(roles["sex"]).alias("__raw_sex"))  # "sex" is replaced below
        if "hemolyzed" in roles:
            found = self.lookup("hemolyzed", self.rs.meta.specimen.yes_no, pl.Boolean)
            looked_up.append(found(frame.get_column(roles["hemolyzed"])).alias("__hemolyzed_word"))
            looked_up.append(frame.get_column(roles["hemolyzed"]).alias("__raw_hemolyzed"))
        return frame.with_columns(looked_up).with_columns(self._patient_steps)

    @functools.cached_property
    def _patient_steps(self) -> list[pl.Expr]:
        """Age, sex and the specimen flag, and whether any is refused: built once for every chunk."""
        roles = self.plan.roles
        exprs: list[pl.Expr] = []
        flags: list[pl.Expr] = []
        if "age" in roles:
            age, _, _, bad = parse_number("age")
            limits = self.rs.meta.patient_age
            flags += [bad, age_refused(age, limits.min, limits.max, PolarsOps())]
            exprs.append(age.alias("age"))
        else:
            exprs.append(pl.lit(None, dtype=pl.Float64).alias("age"))
        if "sex" in roles:
            sex = pl.col("__sex_code")
            known = pl.when(sex.is_in(["", "?", "unknown"])).then(None).otherwise(sex)
            exprs.append(known.cast(SEX_DTYPE).alias("sex"))
            flags.append(sex == "?")
        else:
            exprs.append(pl.lit(None, dtype=SEX_DTYPE).alias("sex"))
        if "hemolyzed" in roles:
            flag = pl.col("__hemolyzed_word")
            exprs.append((flag.fill_null(False) | pl.col("__hemo_cells")).alias("hemolyzed"))
            flags.append(flag.is_null())
        else:
            exprs.append(pl.col("__hemo_cells").alias("hemolyzed"))
        exprs.append((pl.any_horizontal(flags) if flags else pl.lit(False)).alias("__bad__patient"))
        return exprs

    def medications(self, frame: pl.DataFrame, column: str | None) -> pl.DataFrame:
        """The classes of each row's medications as a bit mask (`class_bits`): each distinct
        medication entry is matched once, by the catalogue."""
        if column is None:
            return frame.with_columns(
                pl.lit(False).alias("meds_known"),
                pl.lit(False).alias("unrecognized"),
                pl.lit(None, dtype=pl.String).alias("unrecognized_names"),
                pl.lit(0, dtype=pl.UInt64).alias(CLASSES),
            )

        texts = _no_nulls(frame.get_column(column))
        mask, names = self._by_entry(
            texts, self.lookup("medication entries", functools.partial(entry_bits, self.rs), pl.UInt64)
        )
        unrecognized = (mask & (1 << UNRECOGNIZED_BIT)) != 0
        return frame.with_columns(
            mask.alias(CLASSES),
            names.alias("unrecognized_names"),
            unrecognized.alias("unrecognized"),
            pl.lit(True).alias("meds_known"),
        )

    @staticmethod
    def _by_entry(texts: pl.Series, lookup: Lookup) -> tuple[pl.Series, pl.Series]:
        """Each row's mask as the OR of its entries' masks, and its unrecognised entries:
        real exports hold nearly as many distinct lists as rows but only a few thousand
        distinct entries, so no list is matched whole (even a file of few distinct lists is
        no faster by list: finding its distinct lists costs as much as splitting them).

        The entries are split and flattened in row order; every row has at least one (an
        empty cell is one empty entry, mask 0), so a row's entries are the run that starts at
        its offset, and one segmented OR (`numpy.bitwise_or.reduceat`) combines them without
        a group-by. Entries are looked up as written: the lookup strips them (`entry_mask`)."""
        import numpy as np  # here: only a file with medications needs it, not every start-up

        lists = texts.str.split(";")
        lengths = lists.list.len().to_numpy()
        masks = lookup(lists.explode()).to_numpy()
        offsets = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1], out=offsets[1:])
        mask = pl.Series(texts.name, np.bitwise_or.reduceat(masks, offsets) if len(masks) else masks, pl.UInt64)
        names = pl.repeat(None, len(texts), dtype=pl.String, eager=True)
        rows = ((mask & (1 << UNRECOGNIZED_BIT)) != 0).arg_true()
        if len(rows):  # few rows name an entry the catalogue does not know: their names only
            unknown = pl.DataFrame({"__i": rows, "__e": texts[rows].str.split(";")}).explode("__e")
            unknown = unknown.with_columns(pl.col("__e").str.strip_chars())
            unknown = unknown.filter(lookup(unknown.get_column("__e")) & (1 << UNRECOGNIZED_BIT) != 0)
            joined = unknown.group_by("__i", maintain_order=True).agg(pl.col("__e").str.join("; "))
            names = names.scatter(joined.get_column("__i"), joined.get_column("__e"))
        return mask, names

    # --- statuses and derived values ---------------------------------------------------------

    def facts(self, frame: pl.DataFrame) -> pl.DataFrame:
        steps = self._fact_steps
        return frame.with_columns(steps.first).with_columns(steps.second)

    @functools.cached_property
    def _fact_steps(self) -> column_facts.FactSteps:
        """Statuses and derived values (`column_facts`): the same for every chunk, so built once."""
        return column_facts.fact_steps(
            self.rs, list(self.plan.analyte_columns), set(self.plan.range_columns), PolarsOps()
        )

    def osmolality(self) -> pl.Expr | None:
        """Calculated osmolality (mOsm/kg) where the file has sodium, glucose and urea or BUN."""
        return self._fact_steps.osmolality  # type: ignore[no-any-return]


def ensure_quantities(frame: pl.DataFrame) -> pl.DataFrame:
    """Every quantity the rules may name, as a column (absent analytes are all-null)."""
    missing = _missing_quantities(frozenset(frame.columns))
    return frame.with_columns(missing) if missing else frame


@functools.lru_cache(maxsize=16)
def _missing_quantities(present: frozenset[str]) -> list[pl.Expr]:
    missing = []
    for name in QUANTITIES:
        for prefix, dtype in (("q__", pl.Float64), ("u__", pl.String), ("s__", STATUS_DTYPE), ("v__", pl.Boolean)):
            if f"{prefix}{name}" not in present:
                missing.append(pl.lit(None if prefix != "v__" else False, dtype=dtype).alias(f"{prefix}{name}"))
    return missing
