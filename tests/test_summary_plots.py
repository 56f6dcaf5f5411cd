"""The batch summary's plots, on the MIMIC-IV demo's wide join: counts a data team can put on
a slide (tails counted, not folded into the edge bins; no empty bins from unit conversion;
creatinine on a log scale), and a saved page with no links to a server."""

from __future__ import annotations

import re

import polars as pl
import pytest

from interpret.batch.summary import _histogram, scatter
from tests.test_batch import MIMIC_WIDE, batch

pytestmark = pytest.mark.skipif(
    not MIMIC_WIDE.exists(), reason="../shared/data/mimic-iv-demo is not beside this checkout"
)


@pytest.fixture(scope="module")
def demo(interpreter, tmp_path_factory):
    folder = tmp_path_factory.mktemp("summary")
    run = batch(interpreter, folder, MIMIC_WIDE.read_bytes(), id_column="specimen_id", summary=folder / "summary.html")
    assert run.code == 0
    return run.out, (folder / "summary.html").read_text()


def test_every_value_is_counted_once_tails_included(interpreter, demo):
    out, _ = demo
    for analyte, column in (
        ("potassium", "potassium_mmol_L"),
        ("creatinine", "creatinine_umol_L"),
        ("magnesium", "magnesium_mmol_L"),
    ):
        values = out[column].cast(pl.Float64).drop_nulls()
        h = _histogram(analyte, values, interpreter.ruleset)
        assert sum(b["n"] for b in h["bars"]) + sum(t["n"] for t in h["tails"]) == values.len() == h["n"]


def test_potassium_bins_follow_the_resolution(interpreter, demo):
    """K is reported in 0.1 steps: no empty bin between the first and last occupied one, and
    the 12 results at or above the 6.5 mmol/L critical limit's axis end are a labelled tail."""
    out, _ = demo
    values = out["potassium_mmol_L"].cast(pl.Float64).drop_nulls()
    h = _histogram("potassium", values, interpreter.ruleset)
    counts = [b["n"] for b in h["bars"]]
    first, last = next(i for i, c in enumerate(counts) if c), max(i for i, c in enumerate(counts) if c)
    assert not [i for i in range(first, last) if counts[i] == 0 and min(counts[i - 1], counts[i + 1]) > 20]
    assert h["tails"][1]["n"] == int((values > 6.5).sum()) and h["tails"][1]["label"] == "> 6.5"


def test_creatinine_is_on_a_log_scale_and_magnesium_is_not(interpreter, demo):
    out, _ = demo
    creatinine = _histogram("creatinine", out["creatinine_umol_L"].cast(pl.Float64).drop_nulls(), interpreter.ruleset)
    magnesium = _histogram("magnesium", out["magnesium_mmol_L"].cast(pl.Float64).drop_nulls(), interpreter.ruleset)
    assert creatinine["log"] and not magnesium["log"]
    counts = [b["n"] for b in magnesium["bars"]]
    # mg/dL steps converted to mmol/L leave no empty bin inside the dense part (the old 30
    # equal bins did: "0.1 mg/dL steps converted"); empty bins remain in the sparse tails
    assert not [i for i in range(1, len(counts) - 1) if counts[i] == 0 and min(counts[i - 1], counts[i + 1]) > 20]


def test_scatter_spreads_equal_values_and_marks_what_lies_beyond(interpreter, demo):
    out, _ = demo
    sample = out.select(
        pl.col("potassium_mmol_L").cast(pl.Float64).alias("q__potassium"),
        pl.col("magnesium_mmol_L").cast(pl.Float64).alias("q__magnesium"),
        "max_severity",
    )
    plot = scatter(sample, interpreter.ruleset)
    both = sample.drop_nulls(["q__potassium", "q__magnesium"]).height
    assert plot["n"] == both and len({(p.x, p.y) for p in plot["points"]}) > 0.9 * both
    beyond = sample.drop_nulls(["q__potassium", "q__magnesium"]).filter(
        ~pl.col("q__potassium").is_between(1.5, 8.0) | ~pl.col("q__magnesium").is_between(0.2, 2.2)
    )
    assert plot["beyond"] == beyond.height > 0


def test_the_saved_page_links_to_no_server_page(demo):
    _, html = demo
    assert not re.search(r'href="/', html)
    assert "Share of interpreted rows" in html and "log scale" in html
