"""`interpret batch`: chunked, column-wise interpretation of a CSV export.

Rows in == rows out: every non-blank input row (wide) or panel (long) gives one output row,
in input order; a refused row carries its reason in `error` and never stops the run.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from interpret import derive
from interpret.batch.columns import PanelColumns, PolarsOps, ensure_quantities, join
from interpret.batch.mapping import Plan
from interpret.batch.polars_backend import Counts, PolarsRules
from interpret.batch.read import (
    INPUT_ERROR,
    INPUT_NOTE,
    OVERFLOW,
    PARQUET,
    ROW,
    CsvSource,
    blank_rows,
    remove_leftovers,
)
from interpret.batch.serial import AKI_CODE, AKI_COLUMNS, unknown_columns
from interpret.column_facts import EGFR_UNIT
from interpret.facts import ANALYTE_FACT, QUANTITIES, STATUSES
from interpret.ruleset import Ruleset
from interpret.validate import REFUSALS

SAMPLE_PER_CHUNK = 5_000
IN_FLIGHT = 2  # chunks processed at once
# The facts frame the rules read (columns.py): all else is dropped once the chunk is parsed.
FACT_PREFIXES = ("q__", "u__", "s__", "v__", "lab_low__", "lab_high__", "m__", "t__", "aki_")
FACT_COLUMNS = ("age", "sex", "hemolyzed", "meds_known", "unrecognized", "unrecognized_names", "notes", "error")
DECIMALS = 4  # written values only; every decision uses the unrounded value


# What a spreadsheet may run as a formula when a cell starts with it (OWASP CSV injection),
# full-width forms included (＝ ＋ － ＠: some spreadsheets fold them to = + - @).
FORMULA_START = r"^[=+\-@\t\r\uff1d\uff0b\uff0d\uff20]"


def spreadsheet_safe(column: pl.Expr) -> pl.Expr:
    """Neutralise cells a spreadsheet would run as a formula (OWASP CSV injection)."""
    return pl.when(column.str.contains(FORMULA_START)).then(pl.lit("'") + column).otherwise(column)


def spreadsheet_safe_text(text: str) -> str:
    """The same for one text: an output header taken from the input (the id column's name)."""
    return "'" + text if re.match(FORMULA_START, text) else text


@dataclass
class Stats:
    """What the run's last line, the sidecar and the summary page report."""

    rows: int = 0
    refused: int = 0
    blank_lines: int = 0
    by_severity: dict[str, int] = field(default_factory=dict)
    by_finding: dict[str, dict[str, int]] = field(default_factory=dict)
    not_assessed: dict[str, int] = field(default_factory=dict)
    unrecognized_medications: dict[str, int] = field(default_factory=dict)
    row_notes: dict[str, int] = field(default_factory=dict)  # kind of note (values left out) -> rows
    samples: list[pl.DataFrame] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def merge(self, other: Stats) -> None:
        """Add a chunk's counts to the run's."""
        self.rows += other.rows
        self.refused += other.refused
        self.blank_lines += other.blank_lines
        _add(self.by_severity, other.by_severity)
        for code, by_severity in other.by_finding.items():
            _add(self.by_finding.setdefault(code, {}), by_severity)
        _add(self.not_assessed, other.not_assessed)
        _add(self.unrecognized_medications, other.unrecognized_medications)
        _add(self.row_notes, other.row_notes)
        self.samples += other.samples

    @property
    def interpreted(self) -> int:
        return self.rows - self.refused

    def line(self, severities: list[str]) -> str:
        """One line for the terminal; `severities` most severe first (the ruleset's tiers).
        The speed is shown for runs long enough to measure it (a second or more)."""
        flagged = ", ".join(f"{name} {self.by_severity.get(name, 0)}" for name in severities)
        speed = f"; {self.rows / self.seconds:,.0f} rows/s" if self.seconds >= 1 else ""
        return (
            f"{self.rows} rows: {self.interpreted} interpreted, {self.refused} refused; "
            f"flagged (highest severity per row): {flagged}{speed}"
        )


ENGINES = ("polars", "duckdb", "spark")


def engine_missing(engine: str) -> str | None:
    """Why `engine` cannot run here (unknown, or Spark without pyspark or Java), said before
    any row is read; None when it can. The command line refuses with it, the tests skip."""
    import importlib.util
    import os
    import shutil

    if engine not in ENGINES:
        return f"--engine {engine!r}: known engines are {', '.join(ENGINES)}"
    if engine == "spark" and importlib.util.find_spec("pyspark") is None:
        return "--engine spark needs pyspark: pip install '.[spark]' (and Java 17)"
    if engine == "spark" and not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        return "--engine spark needs Java 17 (Debian: apt-get install openjdk-17-jre-headless)"
    return None


def sql_facts(engine: str, rs: Ruleset, plan: Plan, spark_master: str | None = None) -> Any:
    """The SQL runner of the facts and rules for `engine` (interpret/sql)."""
    if engine == "duckdb":
        from interpret.sql.engines import DuckdbFacts

        return DuckdbFacts(rs, list(plan.analyte_columns), set(plan.range_columns))
    if engine == "spark":
        from interpret.sql.engines import SparkFacts

        return SparkFacts(rs, list(plan.analyte_columns), set(plan.range_columns), spark_master)
    raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")


def _add(total: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        total[key] = total.get(key, 0) + n


class BatchRun:
    def __init__(
        self, rs: Ruleset, plan: Plan, source: CsvSource, engine: str = "polars", spark_master: str | None = None
    ) -> None:
        self.rs, self.plan, self.source = rs, plan, source
        self.columns = PanelColumns(rs, plan, source.decimal_comma)
        self.rules = PolarsRules(rs)
        self.stats = Stats()
        self.sql = None if engine == "polars" else sql_facts(engine, rs, plan, spark_master)
        self.severities = False  # the output also has each finding's severity (`code=severity;...`)

    # --- one chunk ----------------------------------------------------------------------------

    def process(self, chunk: pl.DataFrame) -> tuple[pl.DataFrame, Stats]:
        """One chunk of input rows in, the same rows out (blank lines aside), as output columns,
        with the chunk's own counts. Safe to run on several chunks at once (`run` does)."""
        blank = blank_rows(chunk, [*self.source.headers, *OVERFLOW])  # overflow text is not blank
        if self.source.encoding == PARQUET:  # no lines, so no blank lines: an empty record is a row
            blank = pl.repeat(False, chunk.height, dtype=pl.Boolean, eager=True)
        if INPUT_ERROR in chunk.columns:  # a record that could not be read is a row, not a blank
            blank = blank & chunk.get_column(INPUT_ERROR).is_null()
        blank_lines = int(blank.sum())
        frame, counts = self.evaluate(
            chunk.filter(~blank) if blank_lines else chunk, self.severities
        )  # a filter copies
        return self._output(frame), self._tally(frame, counts, blank_lines)

    def evaluate(self, chunk: pl.DataFrame, severities: bool = False) -> tuple[pl.DataFrame, Counts]:
        """The full facts frame with each row's findings (and, if asked, their `severities`:
        the parity test compares them), and the chunk's counts of findings."""
        frame = self.validated(chunk)
        if self.sql is None:
            frame = self.rules.evaluate(ensure_quantities(self.columns.facts(frame)))
        else:  # the same facts plan and rules, as SQL run by the engine (interpret/sql)
            frame = self.sql.evaluate(frame)
        return self.rules.summary(frame, severities)

    def validated(self, chunk: pl.DataFrame) -> pl.DataFrame:
        """The validated panels (canonical values, unit keys, patient, classes, `error`): what
        the facts and rules read, on every engine (`sql/query.py` documents the columns)."""
        spilled = [c for c in OVERFLOW if chunk.get_column(c).null_count() < chunk.height]
        overflow = pl.any_horizontal([pl.col(c).fill_null("").str.strip_chars() != "" for c in spilled] or [False])
        frame = self.columns.results(chunk)
        if INPUT_NOTE in frame.columns:
            frame = frame.with_columns(join([pl.col("notes"), pl.col(INPUT_NOTE)]).alias("notes"))
        frame = self.columns.patient(frame)
        frame = self.columns.medications(frame, self.plan.roles.get("medications"))
        frame = self.columns.messages(frame)
        no_results = pl.all_horizontal([pl.col(f"q__{ANALYTE_FACT[a]}").is_null() for a in self.plan.analyte_columns])
        given = pl.col(INPUT_ERROR) if INPUT_ERROR in frame.columns else pl.lit(None, dtype=pl.String)
        refused = [overflow, given.is_not_null(), pl.col("__bad__result"), pl.col("__bad__patient"), no_results]
        if frame.select(pl.any_horizontal(refused).any()).item():  # else: no row refused, no per-row text work
            error = join(
                [
                    pl.when(overflow).then(pl.lit("the row has more fields than the header")),
                    given,
                    pl.col("__result_errors"),
                    pl.col("__patient_errors"),
                    pl.when(no_results & pl.col("__result_errors").is_null()).then(pl.lit(REFUSALS["no_results"])),
                ]
            )
        else:
            error = pl.lit(None, dtype=pl.String)
        frame = frame.with_columns(error.alias("error"))
        frame = frame.drop(self._spent(frame.columns))  # parsed and checked: free the memory early
        if not any(c.startswith("t__") for c in frame.columns):  # no history (batch/serial.py)
            frame = frame.with_columns(unknown_columns(self.rs))
        return frame

    def _spent(self, columns: list[str]) -> list[str]:
        """Columns no later step reads: input texts (but the id column) and parsing steps.

        Named by what is kept (an input header may share a fact's name: `sex`, `age`)."""
        keep = {*FACT_COLUMNS, ROW, self.plan.id_column}
        return [c for c in columns if c not in keep and not c.startswith(FACT_PREFIXES)]

    def _output(self, frame: pl.DataFrame) -> pl.DataFrame:
        refused = frame.get_column("error").null_count() < frame.height
        return frame.select(self._output_exprs[refused])

    @functools.cached_property
    def _output_exprs(self) -> dict[bool, list[pl.Expr]]:
        """The output columns, for chunks with and without refused rows: built once."""
        return {refused: [expr for expr, _ in self._output_columns(blank_refused=refused)] for refused in (True, False)}

    @functools.cached_property
    def described_columns(self) -> dict[str, str]:
        """Each output column of this run, in order, with what it holds (the sidecar's
        `columns`): declared beside the column itself, so none goes undocumented."""
        return {expr.meta.output_name(): words for expr, words in self._output_columns(blank_refused=False)}

    def _output_columns(self, blank_refused: bool) -> list[tuple[pl.Expr, str]]:
        """The output columns and their descriptions. A refused row shows no values: they
        were not interpreted."""
        error = pl.col("error")
        rs = self.rs

        def when_ok(expr: pl.Expr) -> pl.Expr:
            return pl.when(error.is_null()).then(expr) if blank_refused else expr

        statuses = ", ".join(STATUSES[:-1]) + " or " + STATUSES[-1]
        parquet = self.source.encoding == PARQUET
        line = (
            "row number in the Parquet file (the first row is 1)"
            if parquet
            else "line number in the input file (header is line 1)"
        )
        out: list[tuple[pl.Expr, str]] = [(pl.col(ROW).alias("line"), line)]
        if self.plan.id_column:
            label = self.plan.id_label or self.plan.id_column
            out.append(
                (
                    spreadsheet_safe(pl.col(self.plan.id_column)).alias(spreadsheet_safe_text(label)),
                    f"the input's {self.plan.id_column!r} column, as written",
                )
            )
        for analyte in self.plan.analyte_columns:
            fact = ANALYTE_FACT[analyte]
            canonical = rs.analytes[analyte].canonical_unit
            unit = canonical.replace("/", "_")
            out += [
                (
                    when_ok(pl.col(f"q__{fact}").round(DECIMALS)).alias(f"{analyte}_{unit}"),
                    f"{QUANTITIES[fact].description}, in {canonical} (converted from the unit as given)",
                ),
                (
                    when_ok(pl.col(f"s__{fact}")).alias(f"{analyte}_status"),
                    f"{analyte} against its interval: {statuses}",
                ),
            ]
        categories = rs.derivations.egfr.categories
        out += [
            (when_ok(pl.col("q__egfr").round(1)).alias("egfr"), f"{QUANTITIES['egfr'].description} ({EGFR_UNIT})"),
            (
                when_ok(self._egfr_category(pl.col("q__egfr"))).alias("egfr_category"),
                "the eGFR category: " + ", ".join(f"{c.name} at or above {c.at_or_above:g}" for c in categories),
            ),
            (when_ok(pl.col("egfr_source")).alias("egfr_source"), "where egfr comes from: calculated or laboratory"),
        ]
        if {"calcium", "ionized_calcium"} & set(self.plan.analyte_columns):
            out += [
                (
                    when_ok(pl.col("q__calcium_assessed").round(DECIMALS)).alias("calcium_assessed_mmol_L"),
                    QUANTITIES["calcium_assessed"].description + ", in mmol/L",
                ),
                (
                    when_ok(pl.col("s__calcium_assessed")).alias("calcium_assessed_status"),
                    f"that calcium against its interval: {statuses}",
                ),
            ]
        if {"sodium", "glucose"} <= set(self.plan.analyte_columns):
            out.append(
                (
                    when_ok(pl.col("q__corrected_sodium").round(1)).alias("corrected_sodium_mmol_L"),
                    QUANTITIES["corrected_sodium"].description + ", in mmol/L",
                )
            )
        if {"sodium", "chloride", "bicarbonate"} <= set(self.plan.analyte_columns):
            out += [
                (
                    when_ok(pl.col("q__anion_gap").round(1)).alias("anion_gap_mmol_L"),
                    QUANTITIES["anion_gap"].description + ", in mmol/L",
                ),
                (
                    when_ok(pl.col("s__anion_gap")).alias("anion_gap_status"),
                    f"the anion gap against its interval: {statuses}",
                ),
            ]
        if self.plan.history:  # the stage and baseline of acute kidney injury (batch/serial.py)
            fired = pl.col("findings").fill_null("").str.split(";").list.contains(AKI_CODE)
            stage, baseline = AKI_COLUMNS
            out += [
                (pl.when(fired).then(pl.col(stage)).alias(stage), f"KDIGO stage (1-3) where {AKI_CODE} fires"),
                (
                    pl.when(fired).then(pl.col(baseline).round(DECIMALS)).alias(baseline),
                    "the lowest creatinine of the baseline window that stage is measured from",
                ),
            ]
        osmolality = self.columns.osmolality()
        if osmolality is not None:
            out.append(
                (
                    when_ok(osmolality.round(1)).alias("osmolality_mOsm_kg"),
                    "calculated serum osmolality in mOsm/kg, as the single-panel report gives it",
                )
            )
        tiers = ", ".join(t.name for t in reversed(rs.meta.severities))
        out += [
            (pl.col("findings").fill_null(""), "codes of the findings that fired, ';'-separated (findings catalogue)"),
            *(
                [(pl.col("severities").fill_null(""), "each finding's severity: code=severity, ';'-separated")]
                if self.severities
                else []
            ),
            (pl.col("max_severity"), f"the highest severity among the findings ({tiers}); empty when none fired"),
            (pl.col("not_assessed").fill_null(""), "codes of rules that could not be assessed for lack of an input"),
            (
                spreadsheet_safe(pl.col("unrecognized_names")).alias("unrecognized_medications"),
                "medication entries the catalogue does not know, '; '-separated (named, not assessed)",
            ),
            (
                spreadsheet_safe(pl.col("notes")).alias("notes"),
                "what was read otherwise than as written (haemolysis or a bound in a value cell, ...)",
            ),
            (spreadsheet_safe(error).alias("error"), "non-empty when the row was refused, with the reason"),
        ]
        return out

    def _egfr_category(self, value: pl.Expr) -> pl.Expr:
        categories = [(c.name, c.at_or_above) for c in self.rs.derivations.egfr.categories]
        category: pl.Expr = derive.egfr_category(value, categories, PolarsOps(pl.String))
        return category

    def _tally(self, frame: pl.DataFrame, counts: Counts, blank_lines: int) -> Stats:
        s = Stats(rows=frame.height, refused=int(frame["error"].is_not_null().sum()), blank_lines=blank_lines)
        s.by_severity, s.by_finding, s.not_assessed = counts.by_severity, counts.by_finding, counts.not_assessed
        if "unrecognized_names" in frame.columns:
            lists = frame["unrecognized_names"].drop_nulls().value_counts()
            for text, n in lists.iter_rows():
                for name in text.split("; "):
                    s.unrecognized_medications[name] = s.unrecognized_medications.get(name, 0) + n
        if frame["notes"].null_count() < frame.height:  # what the notes column says, counted by kind
            kinds = frame["notes"].drop_nulls().str.replace_all(r"'[^']*'", "a value").str.split("; ").explode()
            _add(s.row_notes, dict(kinds.value_counts().iter_rows()))
        keep = [
            c
            for c in (
                "q__potassium",
                "q__magnesium",
                "q__sodium",
                "q__calcium",
                "q__glucose",
                "q__creatinine",
                "q__egfr",
                "q__albumin",
            )
            if c in frame.columns
        ]
        sample = (
            frame.select([*keep, "max_severity", "findings", "error"]).filter(pl.col("error").is_null()).drop("error")
        )
        # bounded memory: at most SAMPLE_PER_CHUNK rows of each chunk feed the summary's plots
        if sample.height > SAMPLE_PER_CHUNK:
            sample = sample.sample(n=SAMPLE_PER_CHUNK, seed=int(frame[ROW][0]))  # each chunk its own draw
        s.samples.append(sample)
        return s

    # --- the whole file -------------------------------------------------------------------------

    def run(self, output: Path, progress: Callable[[int], None] | None, chunks: Iterator[pl.DataFrame]) -> Stats:
        """Two chunks are processed at once (polars releases the GIL, and one chunk alone
        leaves a core idle in its Python steps). Each worker writes its chunk's rows to the
        output itself (natively), in input order (`OutputFile.write`); the output takes its
        name only when complete."""
        started = time.perf_counter()
        with OutputFile(output) as out, ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
            pool.submit(self.build_expressions)  # while the first chunk is being read
            pending: deque[tuple[Future[Stats], int]] = deque()

            def count_next() -> None:
                future, height = pending.popleft()
                self.stats.merge(future.result())
                if progress:
                    progress(height)

            for n, chunk in enumerate(_last_halved(chunks)):
                pending.append((pool.submit(self._process_to, chunk, out, n), chunk.height))
                if len(pending) >= IN_FLIGHT:
                    count_next()
            while pending:
                count_next()
            if out.empty:  # an empty file still gets its header
                schema = {**dict.fromkeys([*self.source.headers, *OVERFLOW], pl.String), ROW: pl.UInt32}
                self._process_to(pl.DataFrame(schema=schema), out, 0)
        self.stats.seconds = time.perf_counter() - started
        self.stats.notes.extend(self.plan.notes)
        for kind, rows in sorted(self.stats.row_notes.items(), key=lambda kv: -kv[1]):
            self.stats.notes.append(f"{rows} rows: {kind} (the notes column)")
        if self.stats.blank_lines:
            self.stats.notes.append(f"{self.stats.blank_lines} blank lines skipped (not rows)")
        return self.stats

    def build_expressions(self) -> None:
        """Build the expressions every chunk uses (they are built once, on first use)."""
        self.columns.build_expressions()
        self.rules.build_expressions()
        _ = self._output_exprs

    def _process_to(self, chunk: pl.DataFrame, out: OutputFile, n: int) -> Stats:
        try:
            result, tally = self.process(chunk)
        except BaseException:
            out.abandon()  # the chunks after this one must not wait for its rows
            raise
        out.write(result, n)
        return tally


def _last_halved(chunks: Iterator[pl.DataFrame], smallest: int = 10_000) -> Iterator[pl.DataFrame]:
    """The chunks, with the last one halved when it would otherwise be processed alone
    (an odd number of chunks): the halves are processed at once, on both cores. The first
    chunks are passed on at once; later ones once the next is read (by then it usually is)."""
    passed = 0
    held: pl.DataFrame | None = None
    for chunk in chunks:
        if passed < IN_FLIGHT:
            passed += 1
            yield chunk
            continue
        if held is not None:
            passed += 1
            yield held
        held = chunk
    if held is None:
        return
    if passed % IN_FLIGHT == 0 and held.height >= 2 * smallest:
        half = held.height // 2
        yield held.slice(0, half)
        yield held.slice(half)
    else:
        yield held


class OutputFile:
    """The output CSV, written under a hidden name beside it and renamed when complete, so a
    run that fails or is stopped never leaves a half-written file under the output's name.

    Chunks are written by the workers that processed them, each in its turn (input order),
    straight into the file: no part files to copy and delete. A file already under the
    output's name is kept until the new one is complete (a run that is stopped leaves it as it
    was); it is then moved aside and the new file renamed into place, and the old one deleted
    in a background thread (freeing a large file's blocks is slow on some file systems). Hidden files of runs that were killed (their
    process is gone) are removed when the next run starts.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        self._file: BinaryIO | None = None
        self.parquet = path.suffix.lower() == ".parquet"  # else CSV: the output's format by its name
        self._parquet: Any = None  # the Parquet writer, opened with the first chunk's schema
        self._turn = threading.Condition()
        self._written = 0  # chunks written so far
        self._abandoned = False

    def __enter__(self) -> OutputFile:
        remove_leftovers(self.path.parent, f".{self.path.name}.")
        # created as open() would create it (mode 0666 less the umask), never over another file
        fd = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self._file = os.fdopen(fd, "wb")
        return self

    def write(self, frame: pl.DataFrame, n: int) -> None:
        """Write the n-th chunk's rows once the chunks before it are written."""
        with self._turn:
            self._turn.wait_for(lambda: self._written == n or self._abandoned)
            if self._abandoned:
                raise RuntimeError("the run stopped at an earlier chunk")
            try:
                if self.parquet:
                    self._write_parquet(frame)
                else:
                    frame.write_csv(self._file, include_header=n == 0)
            except BaseException:
                self._abandoned = True
                raise
            finally:
                self._written += 1
                self._turn.notify_all()

    def _write_parquet(self, frame: pl.DataFrame) -> None:
        """One row group per chunk, all in the first chunk's schema (a chunk whose column is
        all empty has the same types as the others)."""
        import pyarrow.parquet as pq

        table = frame.to_arrow()
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._file, table.schema, compression="zstd")
        self._parquet.write_table(table.cast(self._parquet.schema))

    def abandon(self) -> None:
        """A chunk failed: those waiting for their turn stop waiting."""
        with self._turn:
            self._abandoned = True
            self._turn.notify_all()

    @property
    def empty(self) -> bool:
        if self.parquet:
            return self._parquet is None
        return self._file is None or self._file.tell() == 0

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._file is not None:
            self._file.close()
        if exc_type is not None:
            self.temporary.unlink(missing_ok=True)
            return
        old = self.path.with_name(f".{self.path.name}.{os.getpid()}-old-{secrets.token_hex(4)}.tmp")
        try:
            os.rename(self.path, old)  # fast; freeing its blocks is left to a thread
        except FileNotFoundError:  # no earlier output
            os.replace(self.temporary, self.path)
            return
        except OSError:
            self.temporary.unlink(missing_ok=True)
            raise
        os.replace(self.temporary, self.path)
        # not a daemon: the process waits for it before it exits
        threading.Thread(target=old.unlink, kwargs={"missing_ok": True}).start()


def sidecar(
    path: Path,
    rs: Ruleset,
    plan: Plan,
    stats: Stats,
    source: CsvSource,
    input_path: Path,
    columns: dict[str, str],
) -> dict[str, Any]:
    """The `.json` beside the output: ruleset version and hash, mapping, counts, disclaimer."""
    severities = [t.name for t in reversed(rs.meta.severities)]  # most severe first
    codes = [r.code for r in rs.rules]
    data = {
        "ruleset": {"name": rs.meta.name, "version": rs.version, "sha256": rs.sha256},
        "disclaimer": rs.disclaimer(),
        "input": {
            "file": str(input_path),
            "compression": source.compression,
            "encoding": source.encoding,
            "redecoded_lines": list(source.redecoded[:1000]),  # read as cp1252, not UTF-8
            "delimiter": source.delimiter,
        },
        "mapping": {h: what for h, what in plan.describe(source.headers)},
        "unmapped_columns": plan.unmapped,
        "counts": {
            "rows": stats.rows,
            "interpreted": stats.interpreted,
            "refused": stats.refused,
            "blank_lines_skipped": stats.blank_lines,
            # in the ruleset's order (severities, then rules): the same run gives the same file
            "max_severity": {s: stats.by_severity[s] for s in severities if s in stats.by_severity},
            "findings": {
                code: {s: stats.by_finding[code][s] for s in severities if s in stats.by_finding[code]}
                for code in codes
                if code in stats.by_finding
            },
            "not_assessed": {code: stats.not_assessed[code] for code in codes if code in stats.not_assessed},
        },
        "unrecognized_medications": dict(sorted(stats.unrecognized_medications.items(), key=lambda kv: -kv[1])),
        "columns": columns,
        "notes": stats.notes,
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    return data
