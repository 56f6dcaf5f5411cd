"""The engines side by side: polars, duckdb and Spark local on the same realistic file.

Each engine is measured against its own bare read + write of the same data, in the same run
(shared, noisy machines: ratios, not absolute times), each in its own process (peak memory =
that process's max RSS). The file is bench_batch.py's realistic one: nearly every row its own
medication list, units by `--unit`.

  polars   `interpret batch --engine polars`  vs  polars scan_csv -> sink_csv
  duckdb   `interpret batch --engine duckdb`  vs  duckdb COPY (read_csv all_varchar) TO csv
  spark    `interpret batch --engine spark`   vs  Spark read.csv -> write.csv (start-up apart)
  spark df `interpret_dataframe` (Databricks) vs  Spark read.csv -> write.csv
  duckdb   `interpret sql --raw` run by duckdb (the warehouse path: validation, facts and
           rules in SQL, facts and masks written; no wording)  vs  the same COPY
  duckdb on 10M rows from Parquet (peak memory; goal under 2 GB)

Goals: each engine <= 3x its own read + write; 10M rows on duckdb under 2 GB peak.
Run: .venv/bin/python benchmarks/bench_engines.py [--rows 1000000] [--big-rows 10000000] [--no-spark]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_batch import UNITS, generate, measure  # noqa: E402

POLARS_FLOOR = """
import polars as pl, sys
pl.scan_csv(sys.argv[1], infer_schema=False).sink_csv(sys.argv[2])
"""
DUCKDB_FLOOR = """
import duckdb, sys
duckdb.sql(f"COPY (SELECT * FROM read_csv('{sys.argv[1]}', all_varchar=true)) TO '{sys.argv[2]}' (HEADER)")
"""
SPARK_FLOOR = """
import sys, time
start = time.perf_counter()
from interpret.sql.engines import spark_session
s = spark_session()
up = time.perf_counter()
s.read.csv(sys.argv[1], header=True).write.mode("overwrite").csv(sys.argv[2], header=True)
sys.stderr.write(f"start-up {up - start:.1f} s; read+write {time.perf_counter() - up:.1f} s\\n")
"""
# The warehouse path: `interpret sql --raw` printed once, then run by duckdb over the file as a
# table of text cells, its facts and masks written out (no wording: the statement gives none).
DUCKDB_RAW_SQL = """
import duckdb, sys
statement = open(sys.argv[3]).read().rstrip().rstrip(";")
con = duckdb.connect()
con.execute(f"CREATE VIEW export AS SELECT * FROM read_csv('{sys.argv[1]}', all_varchar=true)")
con.execute(f"COPY ({statement}) TO '{sys.argv[2]}' (HEADER)")
"""
SPARK_DATAFRAME = """
import sys, time
start = time.perf_counter()
from interpret.sql.engines import spark_session
from interpret.spark import interpret_dataframe
s = spark_session()
up = time.perf_counter()
units = dict(u.split("=") for u in sys.argv[3].split(","))
df = s.read.csv(sys.argv[1], header=True)
interpret_dataframe(df, units=units, id_column="specimen_id").write.mode("overwrite").csv(sys.argv[2], header=True)
sys.stderr.write(f"start-up {up - start:.1f} s; run {time.perf_counter() - up:.1f} s\\n")
"""


def cli(source: Path, out: Path, engine: str) -> list[str]:
    units = [a for u in UNITS for a in ("--unit", u)]
    return [sys.executable, "-m", "interpret.cli", "batch", str(source), "-o", str(out), "--id-column", "specimen_id",
            "--engine", engine, *units]  # fmt: skip


def row(label: str, rows: int, seconds: float, mb: float) -> None:
    print(f"{label:<44} {seconds:7.2f} s {rows / seconds:>10,.0f} rows/s  peak {mb:6.0f} MB")


def pair(label: str, rows: int, floor: list[str], run: list[str], repeat: int) -> None:
    floors, runs = [], []
    for _ in range(repeat):  # alternate, compare medians
        floors.append(measure(floor))
        runs.append(measure(run))
    f_s, f_mb = statistics.median(t for t, _, _ in floors), max(m for _, m, _ in floors)
    r_s, r_mb = statistics.median(t for t, _, _ in runs), max(m for _, m, _ in runs)
    row(f"{label}: bare read + write", rows, f_s, f_mb)
    row(f"{label}: interpret", rows, r_s, r_mb)
    for what, log in (("floor", floors[-1][2]), ("run", runs[-1][2])):
        last = [line for line in log.strip().splitlines() if line.strip()]
        if last:
            print(f"    last line of the {what}: {last[-1][:160]}")
    print(f"    ratio {label} / its own read+write (medians of {repeat}): {r_s / f_s:.2f}x (goal <= 3x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="duckdb from Parquet (0: skip)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--only-big", action="store_true", help="only duckdb on --big-rows rows from Parquet")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    try:
        run_all(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_all(args: argparse.Namespace, folder: Path) -> None:
    if args.only_big:
        big_duckdb(folder, args.big_rows)
        return
    source = folder / "panels.csv"
    t = time.perf_counter()
    generate(source, args.rows, realistic=True)
    print(
        f"generated {args.rows:,} realistic rows ({source.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t:.1f} s"
    )
    py = sys.executable
    pair("polars", args.rows, [py, "-c", POLARS_FLOOR, str(source), str(folder / "floor.csv")],
         cli(source, folder / "out_polars.csv", "polars"), args.repeat)  # fmt: skip
    pair("duckdb", args.rows, [py, "-c", DUCKDB_FLOOR, str(source), str(folder / "floor_duck.csv")],
         cli(source, folder / "out_duckdb.csv", "duckdb"), args.repeat)  # fmt: skip
    same = pl.read_csv(folder / "out_polars.csv", infer_schema=False).equals(
        pl.read_csv(folder / "out_duckdb.csv", infer_schema=False)
    )
    print(f"    duckdb output identical to polars': {same}")
    statement = folder / "raw.sql"
    sample = folder / "sample.csv"
    pl.scan_csv(source, infer_schema=False).head(50_000).sink_csv(sample)  # its header and entries
    units = [a for u in UNITS for a in ("--unit", u)]
    made = subprocess.run(
        [py, "-m", "interpret.cli", "sql", "--raw", str(sample), "--id-column", "specimen_id", "--table", "export", *units],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    statement.write_text(made.stdout)
    pair("duckdb running `interpret sql --raw`", args.rows, [py, "-c", DUCKDB_FLOOR, str(source), str(folder / "f.csv")],
         [py, "-c", DUCKDB_RAW_SQL, str(source), str(folder / "raw_out.csv"), str(statement)], args.repeat)  # fmt: skip
    if not args.no_spark:
        spark_floor = [py, "-c", SPARK_FLOOR, str(source), str(folder / "floor_spark")]
        pair("spark (--engine spark)", args.rows, spark_floor, cli(source, folder / "out_spark.csv", "spark"), 1)
        units = ",".join(UNITS)
        pair("spark (interpret_dataframe)", args.rows, spark_floor,
             [py, "-c", SPARK_DATAFRAME, str(source), str(folder / "out_df"), units], 1)  # fmt: skip
    if args.big_rows:
        big_duckdb(folder, args.big_rows)


def big_duckdb(folder: Path, rows: int, part: int = 1_000_000) -> None:
    """duckdb on a large Parquet file, generated a million rows at a time (bounded memory)."""
    big = folder / "big.parquet"
    t = time.perf_counter()
    parts = []
    for i in range(0, rows, part):
        piece = folder / f"part{i // part}.csv"
        generate(piece, min(part, rows - i), seed=100 + i // part, realistic=True)
        parts.append(piece)
    pl.scan_csv(parts, infer_schema=False).sink_parquet(big)
    for piece in parts:
        piece.unlink()
    print(
        f"generated {rows:,} realistic rows as Parquet ({big.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t:.1f} s"
    )
    seconds, mb, log = measure(cli(big, folder / "big_out.parquet", "duckdb"))
    row(f"duckdb, {rows:,} rows Parquet -> Parquet", rows, seconds, mb)
    last = log.strip().splitlines()[-1][:160] if log.strip() else ""
    print(f"    peak under 2 GB: {mb < 2048}; {last}")


if __name__ == "__main__":
    main()
