"""The `interpret` command: panels, rules, the web server and batch runs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from interpret.batch.job import BatchOptions
    from interpret.ruleset import Ruleset

HELP = {"help_option_names": ["-h", "--help"]}


def _plain_value_words() -> None:
    """`--help` in the words a user types: a flag shows no value, other values PATH, TEXT,
    INTEGER or their choices (`...` where an option may be repeated), a required argument in
    capitals. typer 0.29 prints `<bool>`, `<list[str]>` and `{input_csv}` instead; an older
    typer prints click's own words, and is left alone."""
    from typer import core

    option, argument = getattr(core, "TyperOption", None), getattr(core, "TyperArgument", None)
    if option is None or argument is None or not hasattr(option, "_bare_type"):
        return

    def words(param: Any, ctx: Any) -> str | None:
        if param.metavar is not None:
            return str(param.metavar)
        if getattr(param, "is_flag", False):
            return None
        described = param.type_descriptor
        if described.is_choice and described.choices:
            word = "|".join(str(c) for c in described.choices)
        elif described.is_path:
            word = "PATH"
        else:
            element = typing.get_args(described.annotation) if described.is_list else ()
            kind = element[0] if element else described.annotation
            word = {int: "INTEGER", float: "NUMBER"}.get(kind, "TEXT")
        return f"{word} ..." if described.is_list else word

    option.display_type_rich = words
    argument.display_type_rich = words
    if hasattr(argument, "_usage_display_name"):
        argument._usage_display_name = lambda self: (
            self.display_name_raw.upper() if self.required else f"[{self.display_name_raw.upper()}]"
        )


_plain_value_words()
app = typer.Typer(
    help="Decision support for adult serum electrolyte panels. Not a diagnosis.",
    no_args_is_help=True,
    add_completion=False,
    context_settings=HELP,
)
rules_app = typer.Typer(help="Inspect and check the ruleset.", no_args_is_help=True, context_settings=HELP)
app.add_typer(rules_app, name="rules")


def _version(shown: bool) -> None:
    if shown:
        from interpret import __version__
        from interpret.ruleset import default_ruleset

        rs = default_ruleset()
        sys.stdout.write(f"interpret {__version__}; rule set {rs.meta.name} v{rs.version} (sha256 {rs.sha256})\n")
        raise typer.Exit()


@app.callback()
def top_level(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print the version and the rule set's, and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Decision support for adult serum electrolyte panels. Not a diagnosis."""


def _error(message: str) -> None:
    """Errors go to standard error unwrapped, one per line, so they can be grepped."""
    print(message, file=sys.stderr)


# Options `batch` and `rules diff` share: one declaration each.
FormatOption = Annotated[str | None, typer.Option("--format", help="wide or long (default: wide, or the mapping's)")]
MapOption = Annotated[Path | None, typer.Option("--map", help="Mapping file (YAML) for foreign headers.")]
UnitOption = Annotated[list[str] | None, typer.Option("--unit", help="A unit for a whole column: potassium=mEq/L")]
MedicationsOption = Annotated[Path | None, typer.Option("--medications", help="Long format: medication orders CSV.")]
AllowIdentifierOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-identifier", help="Allow an identifier-like column (read where mapped, never copied or shown)."
    ),
]
PatientsOption = Annotated[
    Path | None, typer.Option("--patients", help="Long format: a patients CSV (age, sex), per patients_file.")
]
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine", help="Where the facts and rules run: polars (default), duckdb or spark (the same rules as SQL)."
    ),
]

RulesOption = Annotated[
    Path | None,
    typer.Option("--rules", help="A ruleset directory to use instead of the embedded one."),
]


SiteOption = Annotated[
    Path | None,
    typer.Option("--site", help="A site overlay (YAML): the site's intervals, critical limits, settings, wording."),
]


def _with_site(rules: Path | None, site: Path | None) -> Path | None:
    """The ruleset folder to use: `rules` (or the shipped one) with the site's overlay applied,
    in a folder that lives as long as this process (ruleset/site.py)."""
    if site is None:
        return rules
    import atexit
    import shutil
    import tempfile

    from interpret.ruleset import RulesetError
    from interpret.ruleset.load import default_rules_dir
    from interpret.ruleset.site import apply_site

    workdir = Path(tempfile.mkdtemp(prefix="interpret-site-"))
    atexit.register(shutil.rmtree, workdir, True)
    try:
        return apply_site(rules or default_rules_dir(), site, workdir)
    except RulesetError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None


def _ruleset(rules: Path | None) -> Ruleset:
    # imported here: `batch` starts reading its file while the ruleset is imported and loaded
    from interpret.ruleset import RulesetError, default_ruleset, load_ruleset

    try:
        return load_ruleset(rules) if rules else default_ruleset()
    except RulesetError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None


def _interpreter(rules: Path | None):  # type: ignore[no-untyped-def]
    from interpret.pipeline import Interpreter

    return Interpreter(_ruleset(rules))


def _read_json(path: str) -> object:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        _error(f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}")
        raise typer.Exit(2) from None
    from interpret.models import duplicate_key

    duplicate = duplicate_key(text)
    if duplicate is not None:
        _error(f"{path}: {duplicate[0]}: key {duplicate[1]!r} given twice")
        raise typer.Exit(2)
    return data


@app.command()
def panel(
    file: Annotated[str, typer.Argument(help="A panel as JSON; '-' reads standard input.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="json, html or text")] = "json",
    rules: RulesOption = None,
    site: SiteOption = None,
) -> None:
    """Interpret one panel and print the report."""
    rules = _with_site(rules, site)
    from interpret.render import FORMATS, render
    from interpret.validate import InputError

    if fmt not in FORMATS:
        _error(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    interpreter = _interpreter(rules)
    try:
        data = _read_json(file)
    except OSError as exc:
        _error(f"{file}: {exc.strerror}")
        raise typer.Exit(2) from None
    try:
        result = interpreter.interpret(data)
    except InputError as exc:
        for error in exc.errors:
            _error(f"{file}: {error.location}: {error.message}")
        raise typer.Exit(2) from None
    sys.stdout.write(render(result, fmt).rstrip("\n") + "\n")


@rules_app.command("check")
def rules_check(rules: RulesOption = None, site: SiteOption = None) -> None:
    """Validate the ruleset and run every rule's examples (with --site: an example whose outcome
    only the site's overlay changes is reported, not failed: the examples are the shipped defaults')."""
    from interpret.ruleset.check import run_examples

    base = rules
    rules = _with_site(rules, site)
    interpreter = _interpreter(rules)
    runs = list(run_examples(interpreter))
    failed = [r for r in runs if r.problem]
    if site is not None and failed:
        as_shipped = {r.name: r.problem for r in run_examples(_interpreter(base))}
        for r in [r for r in failed if not as_shipped[r.name]]:
            print(f"{r.name}: changed by the site's overlay (the example is the shipped default's): {r.problem}")
        failed = [r for r in failed if as_shipped[r.name]]
    for r in failed:
        _error(f"{r.name}: {r.problem}\n  panel: {r.panel}")
    rs = interpreter.ruleset
    passed = "passed or changed by the site" if site is not None else "passed"
    print(
        f"ruleset {rs.meta.name} v{rs.version} sha256 {rs.sha256}: {len(rs.rules)} rules, "
        f"{len(runs) - len(failed)} {passed}, {len(failed)} failed"
    )
    problems = [] if site is not None else _release_problems(interpreter)
    for problem in problems:
        _error(problem)
    if failed or problems:
        raise typer.Exit(1)


def _release_problems(interpreter: Any) -> list[str]:
    """The ruleset against its recorded release (ruleset/release.py): a changed content under
    the same version; changed rules whose examples do not tell the released rule from the new."""
    import tempfile

    from interpret.batch.impact import ruleset_folder
    from interpret.batch.read import BatchInputError
    from interpret.pipeline import Interpreter
    from interpret.ruleset.release import released, uncovered_changes, version_problems

    rs = interpreter.ruleset
    problems = version_problems(rs)
    done = released(rs)
    if done is None:
        print(f"no {rs.directory.name}/released.yaml: the release is not recorded (interpret rules release)")
    elif done.sha256 != rs.sha256 and not problems:  # a new version: are its changes tested?
        with tempfile.TemporaryDirectory(prefix="rules-released-") as workdir:
            try:
                old = Interpreter(_ruleset(ruleset_folder(done.version, Path(workdir))))
            except BatchInputError as exc:
                print(f"released version {done.version} not found to compare the examples with ({exc})")
            else:
                problems += uncovered_changes(old, interpreter)
        print(f"version {rs.version} is not recorded as released yet ({done.version} is): interpret rules release")
    return problems


@rules_app.command("release")
def rules_release(rules: RulesOption = None) -> None:
    """Record this ruleset's version and content hash as released (after `rules check` passes)."""
    from interpret.ruleset.release import record

    rules_check(rules)
    rs = _ruleset(rules)
    print(f"recorded {record(rs)}: version {rs.version}, sha256 {rs.sha256}")


def _export_options(
    fmt: str | None,
    mapping: Path | None,
    unit: list[str] | None,
    id_column: str | None,
    allow_identifier: list[str] | None,
    medications: Path | None,
    patients: Path | None,
    engine: str,
) -> BatchOptions:
    """How an export is read, from the options `batch` and `rules diff` share: one place, so
    that an option added to one is read alike by the other."""
    from interpret.batch.job import BatchOptions

    return BatchOptions(
        fmt=fmt,
        mapping_path=mapping,
        units=tuple(unit or ()),
        id_column=id_column,
        allow=tuple(allow_identifier or ()),
        medications=medications,
        patients=patients,
        engine=engine,
    )


@rules_app.command("diff")
def rules_diff(
    old: Annotated[
        str, typer.Option("--old", help="The ruleset in use: a folder, or a version of this repository's rules.")
    ],
    new: Annotated[Path, typer.Option("--new", help="The changed ruleset's folder.")],
    export: Annotated[Path, typer.Option("--on", help="The export to compare them on (CSV, .gz or Parquet).")],
    html: Annotated[Path | None, typer.Option("--html", help="Also write the comparison as a page.")] = None,
    fmt: FormatOption = None,
    mapping: MapOption = None,
    unit: UnitOption = None,
    id_column: Annotated[str | None, typer.Option("--id-column", help="Name example rows by this column.")] = None,
    allow_identifier: AllowIdentifierOption = None,
    medications: MedicationsOption = None,
    patients: PatientsOption = None,
    engine: EngineOption = "polars",
    site: SiteOption = None,
) -> None:
    """What a ruleset change does to an export: panels gaining and losing each finding, and what changed in the files.
    With --site, the site's overlay is applied to both."""
    import tempfile

    from interpret.batch.impact import compare, file_changes, ruleset_folder, text_report, write_html
    from interpret.batch.read import BatchInputError
    from interpret.batch.run import engine_missing

    with tempfile.TemporaryDirectory(prefix="rules-old-") as workdir:
        try:
            if why := engine_missing(engine):
                raise BatchInputError(why)
            old_dir = ruleset_folder(old, Path(workdir))
            old_dir, new = _with_site(old_dir, site) or old_dir, _with_site(new, site) or new
            rulesets = [_ruleset(old_dir), _ruleset(new)]
            options = _export_options(fmt, mapping, unit, id_column, allow_identifier, medications, patients, engine)
            impact = compare(rulesets[0], rulesets[1], export, options, file_changes(old_dir, new))
        except BatchInputError as exc:
            _error(str(exc))
            raise typer.Exit(2) from None
    print(text_report(impact), end="")
    if html is not None:
        write_html(html, impact, export)


@rules_app.command("list")
def rules_list(rules: RulesOption = None, site: SiteOption = None) -> None:
    """A table of the rules: code, severity (and escalations) and title."""
    rules = _with_site(rules, site)
    from rich.console import Console
    from rich.table import Table

    interpreter = _interpreter(rules)
    rs = interpreter.ruleset
    table = Table(title=f"{rs.meta.name} v{rs.version} (sha256 {rs.sha256[:12]})")
    for column in ("code", "severity", "title"):
        table.add_column(column)
    for rule in rs.rules:
        tiers = [rule.definition.severity, *(to for to, _ in rule.escalations)]
        table.add_row(rule.code, " → ".join(dict.fromkeys(tiers)), rule.definition.title)
    Console(width=160).print(table)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; localhost unless told otherwise.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Allow this browser origin (e.g. a CDS Hooks client)."),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (one per core spreads the load; each loads the rules).")
    ] = 1,
    cds_trust: Annotated[
        list[str] | None,
        typer.Option(
            "--cds-trust",
            help="Accept CDS Hooks calls signed by this EHR: ISSUER=JWKS (its key set: https URL or file).",
        ),
    ] = None,
    fhir_server: Annotated[
        list[str] | None,
        typer.Option(
            "--fhir-server",
            help="A FHIR server (URL prefix) the CDS service may query for a missing prefetch.",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(help="The service's public URL (https://host/base): CDS tokens' aud is checked against it."),
    ] = None,
    limit_concurrency: Annotated[
        int, typer.Option(min=1, help="Connections and requests at once per process; more get 503.")
    ] = 500,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Trust X-Forwarded-* headers from these proxy addresses (default: from none)."),
    ] = None,
    rules: RulesOption = None,
    site: SiteOption = None,
) -> None:
    """Start the web form, JSON API and CDS Hooks service."""
    rules = _with_site(rules, site)
    import json
    import os

    import uvicorn

    from interpret.web.app import CDS_TRUST_ENV, CORS_ENV, FHIR_SERVERS_ENV, PUBLIC_URL_ENV, RULES_ENV, create_app
    from interpret.web.cds_auth import TrustedClient

    try:
        trust = [TrustedClient.parse(option) for option in cds_trust or []]
    except ValueError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    application = create_app(  # checks the rules
        _interpreter(rules),
        cors_origins=cors_origin or [],
        cds_clients=trust,
        fhir_servers=fhir_server or [],
        public_url=public_url,
    )
    from interpret.web.server import settle_heap

    settle_heap()
    shown = f"[{host}]" if ":" in host else host
    print(f"Serving on http://{shown}:{port}/  (API docs /docs, CDS Hooks /cds-services)", flush=True)
    if not trust and host not in ("127.0.0.1", "localhost", "::1"):
        _error("warning: CDS Hooks calls are accepted unsigned; name the EHRs to trust with --cds-trust ISSUER=JWKS")
    if trust and not public_url:
        _error("warning: without --public-url, CDS tokens' aud is checked against the Host header the client sent")
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "warning", "access_log": False}
    # uvicorn trusts X-Forwarded-* from 127.0.0.1 by default: only when told to here
    options |= {"proxy_headers": bool(forwarded_allow_ips), "forwarded_allow_ips": forwarded_allow_ips or ""}
    from interpret.web.server import HeaderDeadlineH11

    options |= {"http": HeaderDeadlineH11, "limit_concurrency": limit_concurrency, "timeout_keep_alive": 5}
    if workers == 1:
        uvicorn.run(application, **options)
        return
    # Worker processes are started by name: they rebuild the app from these settings.
    if rules:
        os.environ[RULES_ENV] = str(rules.resolve())
    os.environ[CORS_ENV] = " ".join(cors_origin or [])
    os.environ[FHIR_SERVERS_ENV] = " ".join(fhir_server or [])
    os.environ[PUBLIC_URL_ENV] = public_url or ""
    os.environ[CDS_TRUST_ENV] = json.dumps(cds_trust or [])
    uvicorn.run("interpret.web.app:app_from_environment", factory=True, workers=workers, **options)


@app.command()
def batch(
    input_csv: Annotated[Path, typer.Argument(help="The CSV export (wide: one row per panel; long: one per result).")],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Output CSV or .parquet, one row per input panel (required unless --inspect)."
        ),
    ] = None,
    fmt: FormatOption = None,
    mapping: MapOption = None,
    unit: UnitOption = None,
    id_column: Annotated[str | None, typer.Option("--id-column", help="Copy this column to the output.")] = None,
    allow_identifier: AllowIdentifierOption = None,
    medications: MedicationsOption = None,
    patients: PatientsOption = None,
    summary: Annotated[Path | None, typer.Option("--summary", help="Write an HTML summary page here.")] = None,
    details: Annotated[
        Path | None, typer.Option("--details", help="Write each row's full Interpretation (JSON lines).")
    ] = None,
    inspect: Annotated[
        bool, typer.Option("--inspect", help="Show how the headers would be mapped, then stop.")
    ] = False,
    engine: EngineOption = "polars",
    spark_master: Annotated[
        str | None, typer.Option("--spark-master", help="--engine spark: the master URL (default local[*]).")
    ] = None,
    rules: RulesOption = None,
    site: SiteOption = None,
) -> None:
    """Interpret a CSV export column-wise: one output row per panel, nothing dropped."""
    rules = _with_site(rules, site)
    from interpret.batch.read import BatchInputError, Prefetch

    plain = output is not None and not inspect and mapping is None and fmt in (None, "wide")
    prefetch = Prefetch.start(input_csv) if plain else None  # reads while the rest is imported

    from interpret.batch.job import execute, open_input
    from interpret.batch.mapping import describe_plan, load_mapping
    from interpret.batch.run import engine_missing

    rs = _ruleset(rules)
    try:
        if why := engine_missing(engine):
            raise BatchInputError(why)
        if inspect:
            source, plan = open_input(
                rs,
                input_csv,
                load_mapping(mapping),
                fmt=fmt,
                units=unit or [],
                id_column=id_column,
                allow=allow_identifier or [],
            )
            print(
                f"{input_csv}: encoding {source.encoding}, delimiter {source.delimiter!r}, {len(source.headers)} columns"
            )
            print(describe_plan(plan, source.headers))
            source.release()
            return
        if output is None:
            raise BatchInputError("-o/--output is required (or use --inspect)")
        options = dataclasses.replace(
            _export_options(fmt, mapping, unit, id_column, allow_identifier, medications, patients, engine),
            summary=summary,
            details=details,
            progress=_progress(),
            prefetch=prefetch,
            spark_master=spark_master,
        )
        with _stopped_cleanly():
            result = execute(rs, input_csv, output, options)
    except BatchInputError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    if result.plan.unmapped:
        _error("unmapped columns (reported, not used): " + ", ".join(result.plan.unmapped))
    print(result.stats.line([t.name for t in reversed(rs.meta.severities)]))


@app.command()
def sql(
    dialect: Annotated[
        str, typer.Option("--dialect", help="duckdb, spark, bigquery, snowflake or postgres")
    ] = "duckdb",
    table: Annotated[str, typer.Option("--table", help="The validated-panel table to read.")] = "validated_panels",
    analyte: Annotated[
        list[str] | None, typer.Option("--analyte", help="An analyte the table has (repeat; default: all).")
    ] = None,
    lab_range: Annotated[
        list[str] | None, typer.Option("--lab-range", help="An analyte with the laboratory's own range columns.")
    ] = None,
    history: Annotated[bool, typer.Option("--history", help="The table has the t__ columns across time.")] = False,
    mapping: Annotated[
        Path | None,
        typer.Option("--map", help="A mapping file: its analytes (columns, analytes) and history choose the columns."),
    ] = None,
    raw: Annotated[
        Path | None,
        typer.Option(
            "--raw",
            help="Read the export's own table, validated in SQL: a sample of it (CSV or Parquet) gives its "
            "columns (as `interpret batch` maps them) and medication entries.",
        ),
    ] = None,
    unit: UnitOption = None,
    id_column: Annotated[str | None, typer.Option("--id-column", help="--raw: the table's row key.")] = None,
    allow_identifier: AllowIdentifierOption = None,
    medication_entries: Annotated[
        Path | None,
        typer.Option("--medication-entries", help="--raw: the table's distinct medication entries, one per line."),
    ] = None,
    orders_table: Annotated[
        str | None,
        typer.Option("--orders-table", help="--raw, long: the medication orders table (mapping medications_file)."),
    ] = None,
    patients_table: Annotated[
        str | None,
        typer.Option("--patients-table", help="--raw, long: the patients table (mapping patients_file)."),
    ] = None,
    rules: RulesOption = None,
    site: SiteOption = None,
) -> None:
    """Print the facts and rules as one SQL statement, for a warehouse to run where the data are."""
    rules = _with_site(rules, site)
    from interpret.facts import ANALYTE_FACT
    from interpret.sql.query import DIALECTS, warehouse_sql

    rs = _ruleset(rules)
    if dialect not in DIALECTS:
        _error(f"--dialect {dialect!r}: known are {', '.join(DIALECTS)}")
        raise typer.Exit(2)
    if raw is not None:
        allowed = allow_identifier or []
        tables = (orders_table, patients_table)
        print(
            _raw_sql(rs, dialect, raw, mapping, unit or [], id_column, allowed, table, medication_entries, tables),
            end="",
        )
        return
    measured = [a for a in rs.analytes if a in ANALYTE_FACT]
    chosen = list(analyte or measured)
    if mapping is not None:  # the analytes the export maps, and whether it has history
        from interpret.batch.mapping import load_mapping
        from interpret.batch.read import BatchInputError

        try:
            spec = load_mapping(mapping)
        except BatchInputError as exc:
            _error(str(exc))
            raise typer.Exit(2) from None
        named = [a for a in (*spec.columns, *spec.analytes.values(), *spec.units) if a in ANALYTE_FACT]
        chosen = list(analyte or dict.fromkeys(named) or measured)
        long_history = spec.long is not None and spec.long.patient_key is not None and spec.long.time is not None
        history = history or spec.history is not None or long_history
    unknown = [a for a in [*chosen, *(lab_range or [])] if a not in measured]
    if unknown:
        _error(f"not measured analytes: {', '.join(unknown)}; known: {', '.join(measured)}")
        raise typer.Exit(2)
    print(warehouse_sql(rs, dialect, chosen, set(lab_range or []), history, table), end="")


def _raw_sql(
    rs: Ruleset,
    dialect: str,
    sample: Path,
    mapping: Path | None,
    units: list[str],
    id_column: str | None,
    allow: list[str],
    table: str,
    entries_file: Path | None,
    tables: tuple[str | None, str | None] = (None, None),
) -> str:
    """`interpret sql --raw`: the sample's header planned as `interpret batch` plans it; the
    medication entries of the sample and of the entry list resolved into the SQL's mapping table."""
    from interpret.batch.job import open_input
    from interpret.batch.mapping import load_mapping
    from interpret.batch.read import BatchInputError, read_chunks
    from interpret.sql.long import RawSqlError, SideTables
    from interpret.sql.raw import RawExport, raw_sql

    try:
        spec = load_mapping(mapping)
        source, plan = open_input(
            rs, sample, spec, fmt=None, units=units, id_column=id_column, allow=allow, head_only=True
        )
        history = (spec.history.patient_key, spec.history.time) if spec.history else None
        orders, patients = tables
        needed = (("--orders-table", orders, spec.medications_file, "medications_file"),
                  ("--patients-table", patients, spec.patients_file, "patients_file"))  # fmt: skip
        for option, given, section, name in needed:
            if given and section is None:
                raise RawSqlError(f"{option} needs `{name}:` in the mapping (--map): which columns are which")
        side = SideTables(orders, spec.medications_file, patients, spec.patients_file)
        try:
            entries: list[str] = []
            labels: list[str] = []
            column = plan.roles.get("medications")
            for chunk in read_chunks(source):
                if column:
                    entries += chunk.get_column(column).drop_nulls().str.split(";").explode().unique().to_list()
                if plan.long:
                    labels += chunk.get_column(plan.long.analyte).drop_nulls().unique().to_list()
            if entries_file is not None:
                entries += entries_file.read_text(encoding="utf-8").splitlines()
            found = RawExport(plan, table, tuple(entries), source.decimal_comma, history, tuple(labels), side)
            return raw_sql(rs, found, dialect)
        finally:
            source.release()
    except (BatchInputError, RawSqlError, OSError) as exc:
        _error(str(exc))
        raise typer.Exit(2) from None


@contextlib.contextmanager
def _stopped_cleanly() -> Iterator[None]:
    """SIGTERM (a scheduler's stop, `kill`) ends the run as Ctrl-C does: by an exception in the
    main thread, so that the hidden output and temporary copies are removed on the way out and
    an earlier output of the same name is left as it was. Exit status 128 + 15, as by the signal."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except KeyboardInterrupt:
        _error("stopped (Ctrl-C): nothing written under the output's name")
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _progress() -> Callable[[int], None] | None:
    """A progress bar on standard error when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        return None
    import atexit

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.completed:,} rows"), TimeElapsedColumn(), transient=True)
    progress.start()
    atexit.register(progress.stop)
    task = progress.add_task("batch", total=None)
    return lambda rows: progress.advance(task, rows)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
