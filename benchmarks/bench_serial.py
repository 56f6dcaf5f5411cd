"""Serial panels in the batch: a long export of 1,000,000 result rows over 20,000 patients
(5 results per panel, about 10 panels per patient within a month), run with the
patient key and time (each panel's earlier panels are its history) against the same file
without them (no history). Goal: the serial run <= 1.5x the other. Each run in its own
process; runs alternate and medians are compared (shared, noisy machines).
Run: .venv/bin/python benchmarks/bench_serial.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_batch import measure  # noqa: E402

ANALYTES = [
    ("2823-3", 4.1, 0.6, "mmol/L"),
    ("2951-2", 138, 5, "mmol/L"),
    ("2160-0", 1.1, 0.5, "mg/dL"),
    ("19123-9", 2.0, 0.35, "mg/dL"),
    ("2345-7", 110, 30, "mg/dL"),
]


def generate(path: Path, rows: int, seed: int = 5) -> None:
    rng = np.random.default_rng(seed)
    panels = rows // len(ANALYTES)
    patient = rng.integers(0, 20_000, panels)
    hours = rng.uniform(0, 24 * 30, panels)  # within a month: ~10 panels per patient, days apart
    base = np.datetime64("2026-01-01T00:00")
    times = (base + (hours * 60).astype("timedelta64[m]")).astype(str)
    frames = []
    for code, mean, sd, unit in ANALYTES:
        values = np.round(np.abs(rng.normal(mean, sd, panels)), 1)
        frames.append(
            pl.DataFrame(
                {
                    "subject": patient.astype(str),
                    "specimen": np.arange(panels).astype(str),
                    "code": code,
                    "value": values.astype(str),
                    "unit": unit,
                    "time": times,
                }
            )
        )
    pl.concat(frames).write_csv(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-serial-"))
    source = folder / "long.csv"
    generate(source, args.rows)
    maps = {}
    for name, key in (("plain", ""), ("serial", ", patient_key: subject")):
        maps[name] = folder / f"{name}.yaml"
        maps[name].write_text(
            f"long: {{panel_key: [subject, specimen]{key}, analyte: code, value: value, unit: unit, time: time}}\n"
        )
    runs: dict[str, list[tuple[float, float, str]]] = {"plain": [], "serial": []}
    for _ in range(args.repeat):
        for name, mapping in maps.items():
            cmd = [
                sys.executable,
                "-m",
                "interpret.cli",
                "batch",
                str(source),
                "--map",
                str(mapping),
                "--allow-identifier",
                "subject",
                "-o",
                str(folder / f"{name}.csv"),
            ]
            runs[name].append(measure(cmd))
    med = {n: statistics.median(t for t, _, _ in r) for n, r in runs.items()}
    peak = {n: max(m for _, m, _ in r) for n, r in runs.items()}
    panels = args.rows // len(ANALYTES)
    for n in runs:
        print(
            f"{n:7s} {med[n]:6.2f} s  {args.rows / med[n]:>10,.0f} result rows/s  peak {peak[n]:6.0f} MB  ({panels:,} panels)"
        )
    print(f"ratio serial / plain (medians of {args.repeat}): {med['serial'] / med['plain']:.2f}x (goal <= 1.5x)")
    out = pl.read_csv(folder / "serial.csv", infer_schema=False)
    fired = out["findings"].str.split(";").explode().value_counts()
    for code in ("acute_kidney_injury", "rapid_sodium_rise", "rapid_sodium_fall"):
        print(f"  {code}: {fired.filter(pl.col('findings') == code)['count'].sum():,} panels")
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
