"""Long exports (one row per result) grouped into panels, then run through the wide path.

Rows are grouped by the panel key named in the mapping (e.g. subject and specimen); labels
or codes are mapped to analytes (mapping `analytes:`, else our names, aliases and LOINC
codes); the same analyte twice in a panel with different values refuses that panel. Rows
whose label is not an analyte are counted and reported, never silently dropped. Medications
come from a second long file, active when start <= panel time <= stop.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl

from interpret.batch.columns import Lookup, instants, join
from interpret.batch.mapping import MappingFile, Plan
from interpret.batch.read import (
    INPUT_ERROR,
    INPUT_NOTE,
    OVERFLOW,
    ROW,
    BatchInputError,
    CsvSource,
    careful_frame,
    needs_careful_reading,
    open_csv,
    read_chunks,
)
from interpret.ruleset import Ruleset
from interpret.validate import REFUSALS

PANEL = "panel"
# Each panel's active orders with their start: "hours<US>drug", joined by <RS> (control
# characters: no drug name holds them).
STARTS, STARTS_SEP, STARTS_JOIN = "__starts", "\x1f", "\x1e"
ID_COLUMN = "__id"  # renamed to the --id-column's own name when written


def _read_all(source: CsvSource, notes: list[str] | None = None) -> pl.DataFrame:
    """Every row of the file; one polars cannot split is read record by record, and a record
    that cannot be read is left out and named by its line in `notes` (a long export's row is
    one result, not a panel: it has no output row of its own)."""
    if not source.headers:
        return pl.DataFrame()
    try:
        return pl.concat(list(read_chunks(source)), how="vertical")
    except (pl.exceptions.ComputeError, pl.exceptions.SchemaError) as exc:
        if not needs_careful_reading(exc):
            raise
    frame = careful_frame(source)
    broken = frame.filter(pl.col(INPUT_ERROR).is_not_null())
    if broken.height:
        lines = ", ".join(str(n) for n in broken[ROW].head(20).to_list())
        message = f"{source.path.name}: {broken.height} lines could not be read as CSV records (a stray or unbalanced quote) and were left out: lines {lines}"
        if notes is None:
            raise BatchInputError(message)
        notes.append(message)
    return frame.filter(pl.col(INPUT_ERROR).is_null()).drop(INPUT_ERROR)


def _same_value_key(per: pl.DataFrame, rs: Ruleset, fixed_units: dict[str, str]) -> pl.Expr:
    """What two results of one analyte must share to be the same result: the value in the
    analyte's canonical unit (2.0 mg/dL and 2.0 mmol/L of Mg differ; 3.0 and 3.00 do not),
    or, where the value is no number or the unit unknown, the text as written."""
    pairs = per.select("__analyte", "__unit").unique().iter_rows()
    factors = {}
    for analyte, unit in pairs:
        key = rs.units.resolve(unit) if unit else fixed_units.get(analyte)
        if key is not None and key in rs.units.accepted(analyte):
            factors[f"{analyte}|{unit}"] = rs.units.factor(analyte, key)
    factor = pl.concat_str([pl.col("__analyte"), pl.col("__unit")], separator="|").replace_strict(
        factors, default=None, return_dtype=pl.Float64
    )
    canonical = (pl.col("__value").cast(pl.Float64, strict=False) * factor).round(9)
    written = pl.concat_str([pl.col("__value"), pl.col("__unit")], separator=" ")
    return pl.when(canonical.is_not_null()).then(canonical.cast(pl.String)).otherwise(written)


def _hemolysis_in_comments(wide: pl.DataFrame, rows: pl.DataFrame, column: str, rs: Ruleset) -> pl.DataFrame:
    """A panel is haemolysed where the laboratory's comment on any of its rows says so (on
    any test: MIMIC-IV writes it on LDH or AST as often as on potassium), each distinct
    comment read once by the ruleset's reading of free text (the one FHIR notes have too); the
    panel's notes name the line. A `hemolyzed` column the mapping names still counts."""
    says = Lookup(rs.meta.specimen.note_says_hemolyzed, pl.Boolean)(rows.get_column(column))
    flagged = (
        rows.select(PANEL, ROW, says.alias("__says"))
        .filter(pl.col("__says"))
        .group_by(PANEL)
        .agg(pl.col(ROW).min().alias("__hemo_line"))
    )
    wide = wide.join(flagged, on=PANEL, how="left")
    said = pl.col("__hemo_line").is_not_null()
    given = pl.col("hemolyzed").cast(pl.String) if "hemolyzed" in wide.columns else pl.lit("")
    note = pl.when(said).then(
        pl.format("haemolysed: the laboratory's comment on line {} says so", pl.col("__hemo_line"))
    )
    notes: list[pl.Expr] = [pl.col(INPUT_NOTE), note] if INPUT_NOTE in wide.columns else [note]
    return wide.with_columns(
        pl.when(said).then(pl.lit("yes")).otherwise(given).alias("hemolyzed"), join(notes).alias(INPUT_NOTE)
    ).drop("__hemo_line")


def range_columns(analytes: list[str], low: str | None, high: str | None) -> dict[str, tuple[str | None, str | None]]:
    """The panels' laboratory-range columns, where the long export has them (`long.low`,
    `long.high`): the names both long runners give them (this one and `sql/long.py`)."""
    if not (low or high):
        return {}
    return {a: (f"{a}_low" if low else None, f"{a}_high" if high else None) for a in analytes}


def long_to_wide(
    source: CsvSource,
    plan: Plan,
    mapping: MappingFile,
    rs: Ruleset,
    medications: Path | None,
    patients: Path | None = None,
) -> tuple[CsvSource, Plan, pl.DataFrame]:
    """The panels as a wide frame (every cell text, with line numbers), and the plan for it."""
    spec = plan.long
    assert spec is not None
    notes: list[str] = []
    frame = _read_all(source, notes)
    labels = frame.select(pl.col(spec.analyte).str.strip_chars().unique()).to_series().to_list()
    known = {label: plan.analyte_labels.get(label) or rs.analyte(label or "") for label in labels}
    frame = frame.with_columns(
        pl.col(spec.analyte)
        .str.strip_chars()
        .replace_strict(known, default=None, return_dtype=pl.String)
        .alias("__analyte"),
        pl.concat_str([pl.col(k).fill_null("") for k in spec.panel_key], separator="|").alias(PANEL),
    )
    ignored = frame.filter(pl.col("__analyte").is_null())
    if ignored.height:
        top = ignored.group_by(spec.analyte).len().sort("len", descending=True).head(8)
        shown = ", ".join(f"{label!r} ({n})" for label, n in top.iter_rows())
        notes.append(f"{ignored.height} result rows with labels that are not analytes were not used: {shown}")
    results = frame.filter(pl.col("__analyte").is_not_null())
    analytes = sorted(set(results["__analyte"].unique().to_list()))
    unit = pl.col(spec.unit).fill_null("") if spec.unit else pl.lit("")
    bounds = {end: header for end, header in (("low", spec.low), ("high", spec.high)) if header}
    per = results.with_columns(
        pl.col(spec.value).fill_null("").str.strip_chars().alias("__value"),
        unit.alias("__unit"),
        *(pl.col(header).fill_null("").alias(f"__{end}") for end, header in bounds.items()),
    )
    per = per.with_columns(_same_value_key(per, rs, plan.fixed_units).alias("__key"))
    grouped = per.group_by([PANEL, "__analyte"], maintain_order=True).agg(
        pl.col("__value").first(),
        pl.col("__unit").first(),
        *(pl.col(f"__{end}").first() for end in bounds),
        pl.col("__key").n_unique().alias("__distinct"),
        pl.col(ROW).min().alias("__first_line"),
    )
    conflicts = (
        grouped.filter(pl.col("__distinct") > 1)
        .group_by(PANEL)
        .agg(
            pl.format(
                REFUSALS["duplicate_analyte"].replace("{analyte}", "{}").replace("{first}", "first at line {}: {} {}"),
                pl.col("__analyte"),
                pl.col("__first_line"),
                pl.col("__value"),
                pl.col("__unit"),
            )
            .str.join("; ")
            .alias(INPUT_ERROR)
        )
    )
    values = grouped.pivot(on="__analyte", index=PANEL, values="__value")
    units = grouped.pivot(on="__analyte", index=PANEL, values="__unit").rename({a: f"{a}_unit" for a in analytes})
    for end in bounds:  # the laboratory's range of each result: <analyte>_low, <analyte>_high
        ranges = grouped.pivot(on="__analyte", index=PANEL, values=f"__{end}")
        units = units.join(ranges.rename({a: f"{a}_{end}" for a in analytes}), on=PANEL, how="left")
    first = per.group_by(PANEL, maintain_order=True).agg(
        pl.col(ROW).min(),
        *[pl.col(h).first().alias(role) for role, h in plan.roles.items() if role != "medications"],
        *([pl.col(spec.time).first().alias("__time")] if spec.time else []),
        *([pl.col(spec.patient_key).first().alias("__patient")] if spec.patient_key else []),
        # --id-column: that column's own value (its first in the panel), not the panel key,
        # which may join an allowed identifier (subject_id|specimen_id) that is never copied
        *([pl.col(plan.id_column).first().alias(ID_COLUMN)] if plan.id_column else []),
    )
    wide = (
        first.join(values, on=PANEL, how="left").join(units, on=PANEL, how="left").join(conflicts, on=PANEL, how="left")
    )
    new_roles = {role: role for role in plan.roles if role != "medications"}
    if medications is not None:
        listed, order_notes, starts, order_note = _medications(wide, mapping, medications, spec.time)
        wide = wide.with_columns(listed.alias("medications"), order_notes.alias(INPUT_NOTE), starts.alias(STARTS))
        notes += [order_note] if order_note else []
        new_roles["medications"] = "medications"
    if patients is not None:
        columns, errors, note = _patients(wide, mapping, patients, plan.roles)
        # INPUT_ERROR is always there (joined from `conflicts`): the panel keeps both reasons
        wide = wide.with_columns(*columns, join([pl.col(INPUT_ERROR), pl.lit(errors)]).alias(INPUT_ERROR))
        new_roles.update({c.name: c.name for c in columns})
        notes += [note] if note else []
    if spec.comment:
        wide = _hemolysis_in_comments(wide, frame, spec.comment, rs)
        new_roles["hemolyzed"] = "hemolyzed"
    wide = wide.sort(ROW).with_columns(pl.lit("").alias(OVERFLOW[0]), pl.lit("").alias(OVERFLOW[1]))
    wide = wide.with_columns(pl.lit("").alias(OVERFLOW[2]))
    wide = wide.with_columns(
        pl.col(c).cast(pl.String).fill_null("") for c in wide.columns if c not in (ROW, INPUT_ERROR, INPUT_NOTE)
    )
    headers = [
        c for c in wide.columns if c not in (ROW, INPUT_ERROR, INPUT_NOTE, *OVERFLOW, "__time", "__patient", STARTS)
    ]
    new_plan = replace(
        plan,
        format="wide",
        analyte_columns={a: a for a in analytes},
        unit_columns={a: f"{a}_unit" for a in analytes if spec.unit},
        range_columns=range_columns(analytes, spec.low, spec.high),
        fixed_units={a: u for a, u in plan.fixed_units.items() if a in analytes},
        roles=new_roles,
        id_column=ID_COLUMN if plan.id_column else None,
        id_label=plan.id_column,
        unmapped=plan.unmapped,
        notes=[*plan.notes, *notes],
    )
    new_source = replace(source, headers=headers)
    return new_source, new_plan, wide


def _patients(
    wide: pl.DataFrame, mapping: MappingFile, path: Path, roles: dict[str, str]
) -> tuple[list[pl.Series], pl.Series, str | None]:
    """Each panel's age and sex from a patients table (`patients_file:`), as text cells, and
    why a panel's age cannot be worked out (an unusable `age_year` or panel time)."""
    spec = mapping.patients_file
    if spec is None or "__patient" not in wide.columns:
        raise BatchInputError(
            "--patients needs `patients_file:` (patient_key; age, sex) in the mapping, and long.patient_key"
        )
    given = {role: column for role, column in (("age", spec.age), ("sex", spec.sex)) if column}
    both = sorted(set(given) & set(roles))
    if both:
        raise BatchInputError(f"{', '.join(both)}: named both in the export and in patients_file; keep one")
    table = _side_table(
        path, [spec.patient_key, *given.values(), *([spec.age_year] if spec.age_year else [])], "patients_file"
    )
    table = table.select(
        pl.col(spec.patient_key).alias("__patient"),
        *[pl.col(column).alias(f"__{role}") for role, column in given.items()],
        *([pl.col(spec.age_year).alias("__age_year")] if spec.age_year else []),
    ).unique("__patient", keep="first", maintain_order=True)
    panels = wide.select("__patient", *(["__time"] if spec.age_year else [])).join(
        table, on="__patient", how="left", maintain_order="left"
    )
    columns, errors = [], pl.lit(None, dtype=pl.String)
    if "age" in given:
        text = pl.col("__age").fill_null("").str.strip_chars()
        age = text
        if spec.age_year:  # e.g. MIMIC-IV: anchor_age in anchor_year
            year = instants(pl.col("__time")).dt.year()
            shifted = text.cast(pl.Float64, strict=False) + (
                year - pl.col("__age_year").str.strip_chars().cast(pl.Int64, strict=False)
            )
            age = pl.when(shifted.is_not_null()).then(shifted.cast(pl.String)).otherwise(text)
            unusable = shifted.is_null() & text.cast(pl.Float64, strict=False).is_not_null()
            errors = pl.when(unusable).then(
                pl.format(
                    "patients_file: the age at the panel's time cannot be worked out (age_year {}, time {})",
                    pl.col("__age_year").fill_null("missing"),
                    pl.col("__time").fill_null("missing"),
                )
            )
        columns.append(panels.select(age.alias("age")).to_series())
    if "sex" in given:
        columns.append(panels.select(pl.col("__sex").fill_null("").alias("sex")).to_series())
    absent = panels.select(pl.col("__patient").is_in(table["__patient"].implode()).not_().sum()).item()
    note = f"{absent} panels' patients are not in {path.name}: their age and sex are not known" if absent else None
    return columns, panels.select(errors.alias(INPUT_ERROR)).to_series(), note


def _side_table(path: Path, columns: list[str], section: str) -> pl.DataFrame:
    """A second file beside a long export (orders, patients), all cells as text."""
    source = open_csv(path)
    try:
        table = _read_all(source)
    finally:
        source.release()
    for column in columns:
        if column not in table.columns:
            raise BatchInputError(f"{path}: column {column!r} ({section}) is not in the file")
    return table


def _medications(
    wide: pl.DataFrame, mapping: MappingFile, path: Path, time_column: str | None
) -> tuple[pl.Series, pl.Series, pl.Series, str | None]:
    """Each panel's active orders, each panel's note on orders that could not be placed in
    time, and the run's note on them."""
    spec = mapping.medications_file
    if spec is None or time_column is None or "__patient" not in wide.columns:
        raise BatchInputError(
            "--medications needs `medications_file:` (patient_key, name, start, stop) in the mapping, "
            "and long.time and long.patient_key to match orders to panels by time"
        )
    orders = _side_table(path, [spec.patient_key, spec.name, spec.start, spec.stop], "medications_file")
    stop_text = pl.col(spec.stop).fill_null("").str.strip_chars()
    orders = orders.select(
        pl.col(ROW),
        pl.col(spec.patient_key).alias("__patient"),
        pl.col(spec.name).str.strip_chars().alias("__drug"),
        instants(pl.col(spec.start)).alias("__start"),
        instants(pl.col(spec.stop)).alias("__stop"),
        (stop_text == "").alias("__ongoing"),  # no stop yet: the order is still running
        (pl.col(spec.start).fill_null("").str.strip_chars() == "").alias("__no_start"),
        (stop_text != "").alias("__has_stop"),
    )
    # An order that cannot be placed in time is not silently "not active": counted, named by
    # line in the sidecar, and said on every panel of its patient (their list may be short).
    unplaced = orders.filter(
        pl.col("__start").is_null()
        | (pl.col("__has_stop") & pl.col("__stop").is_null())
        | (pl.col("__stop") < pl.col("__start"))
    )
    orders = orders.join(unplaced.select(ROW), on=ROW, how="anti")
    panels = wide.select(PANEL, "__patient", instants(pl.col("__time")).alias("__at"))
    active = (
        panels.join(orders, on="__patient", how="inner")
        .filter((pl.col("__start") <= pl.col("__at")) & (pl.col("__ongoing") | (pl.col("__at") <= pl.col("__stop"))))
        .group_by(PANEL)
        .agg(
            pl.col("__drug").unique().sort().str.join(";").alias("medications"),
            # when each active order started, hours before the panel (batch/serial.py reads it)
            pl.format(
                "{}{}{}",
                ((pl.col("__at") - pl.col("__start")).dt.total_seconds() / 3600),
                pl.lit(STARTS_SEP),
                pl.col("__drug"),
            )
            .str.join(STARTS_JOIN)
            .alias(STARTS),
        )
    )
    per_patient = unplaced.group_by("__patient").agg(pl.len().alias("__unplaced"))
    listed = panels.join(active, on=PANEL, how="left").join(per_patient, on="__patient", how="left")
    note_text = pl.when(pl.col("__unplaced").is_not_null()).then(
        pl.format(
            "{} medication orders of this patient have a missing, unreadable or reversed start/stop and were not used: the list may be incomplete",
            pl.col("__unplaced"),
        )
    )
    result = listed.select(pl.col("medications").fill_null(""), note_text.alias("note"), pl.col(STARTS).fill_null(""))
    summary = None
    if unplaced.height:
        lines = ", ".join(str(n) for n in unplaced[ROW].head(20).to_list())
        summary = (
            f"{path.name}: {unplaced.height} medication orders have a missing, unreadable or reversed "
            f"start/stop and were not used (lines {lines}); the panels of their patients say so"
        )
    return result["medications"], result["note"], result[STARTS], summary
