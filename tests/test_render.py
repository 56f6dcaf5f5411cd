"""Renderers: disclaimer, ruleset version and hash everywhere; HTML escapes; no silent gaps."""

from __future__ import annotations

import json

import pytest

from interpret.compact import expand
from interpret.render import render
from tests.conftest import ROOT

SEED = {
    "potassium": "3.0 mmol/L",
    "magnesium": "1.3 mg/dL",
    "creatinine": "88 umol/L",
    "age": 72,
    "sex": "female",
    "medications": ["furosemide 40 mg PO daily", "<script>alert(1)</script>"],
}


@pytest.fixture(scope="module")
def seed(interpreter):
    return interpreter.interpret(expand(SEED))


@pytest.mark.parametrize("fmt", ["json", "html", "text"])
def test_every_format_carries_disclaimer_version_and_hash(seed, fmt, interpreter):
    out = render(seed, fmt)
    assert "decision support" in out.lower()
    assert interpreter.ruleset.version in out
    assert interpreter.ruleset.sha256 in out


def test_json_public_keys(seed):
    data = json.loads(render(seed, "json"))
    finding = data["findings"][0]
    assert {"code", "severity", "evidence", "references", "message", "recommendation"} <= set(finding)
    assert data["results"][0]["status"] == "low"
    assert data["derived"]["egfr"]["category"] == "G2"
    assert {"version", "sha256"} <= set(data["ruleset"])
    assert data["disclaimer"]


def test_findings_are_ordered_by_severity(seed):
    order = ["critical", "warning", "advisory", "info"]
    ranks = [order.index(f.severity) for f in seed.findings]
    assert ranks == sorted(ranks)


def test_html_escapes_medication_text(seed):
    html = render(seed, "html")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_shows_evidence_sources_and_not_assessed(seed):
    html = render(seed, "html")
    assert "Potassium 3.0 mmol/L: low" in html
    assert "Huang C-L, Kuo E." in html
    assert "Not assessed" in html and "Sodium: not measured" in html


def test_critical_values_are_worded_as_such(interpreter):
    out = render(interpreter.interpret(expand({"potassium": "2.2 mmol/L"})), "text")
    assert "[CRITICAL]" in out
    assert "confirm with the laboratory" in out


def test_no_findings_is_not_called_normal(interpreter):
    out = render(interpreter.interpret(expand({"potassium": "4.2 mmol/L", "medications": []})), "text")
    assert "not a statement that the panel is normal" in out


def test_medication_classes_are_shown_by_their_labels(interpreter):
    """A clinician reads "loop diuretic", not the class code "loop_diuretic"."""
    from interpret.render.html import render_html

    result = interpreter.interpret(
        {"results": [{"analyte": "potassium", "value": 3.1, "unit": "mmol/L"}], "medications": ["Lasix 40 mg"]}
    )
    assert result.medications[0].classes == ["loop_diuretic"]
    assert result.medications[0].class_labels == ["loop diuretic"]
    table = render_html(result).split('id="medications"')[1].split("</table>")[0]
    assert "<td>Lasix 40 mg</td>" in table and "loop diuretic" in table and "loop_diuretic" not in table


def test_the_full_disclaimer_closes_the_report_once_and_a_short_one_opens_it(interpreter):
    """It was ~150 words twice in the text report (and twice more on the results page)."""
    from interpret.compact import expand
    from interpret.render import render

    result = interpreter.interpret(expand({"potassium": "3.0 mmol/L", "magnesium": "1.3 mg/dL"}))
    full = result.disclaimer[:60]
    for fmt in ("text", "html"):
        out = render(result, fmt)
        assert out.count(full) == 1, fmt
        assert out.index(result.short_disclaimer[:40]) < out.index("Low potassium with low magnesium"), fmt


def test_reports_show_the_earlier_values_beside_the_current_ones(interpreter):
    """Serial panels: the HTML table of earlier values and their dots on the range bar, and
    one line per analyte in the text report."""
    panel = {
        "collected_at": "2026-01-10T08:00:00Z",
        "results": [{"analyte": "potassium", "value": 3.1, "unit": "mmol/L"}],
        "history": [
            {
                "collected_at": "2026-01-09T09:00:00+01:00",
                "results": [{"analyte": "potassium", "value": 3.0, "unit": "mmol/L"}],
            },
            {
                "collected_at": "2026-01-08T08:00:00Z",
                "results": [{"analyte": "potassium", "value": 3.4, "unit": "mmol/L"}],
            },
        ],
    }
    result = interpreter.interpret(panel)
    html, text = render(result, "html"), render(result, "text")
    assert 'id="earlier"' in html and html.count('class="earlier"') == 2
    assert 'title="earlier: 3.0 mmol/L, 24 h before"' in html
    assert "Potassium: 3.0 mmol/L (low) 24 h before; 3.4 mmol/L (low) 48 h before" in text


def test_range_bars_show_the_scale_and_the_critical_limits(interpreter):
    """The bar had no numbers and no critical limits, and clamped values to its edge: now the
    interval's ends and the value are written under it, and the critical limits are on a
    scale that includes them and the value."""
    from interpret.render.view import range_bar

    result = interpreter.interpret({"results": [{"analyte": "potassium", "value": 2.2, "unit": "mmol/L"}]})
    bar = range_bar(result.results[0])
    assert bar is not None and (bar.low, bar.high, bar.value) == ("3.5", "5.0", "2.2")
    below, above = (left for left, _ in bar.critical)
    assert 0 <= bar.marker < below < bar.interval_left < above <= 100  # 2.2 left of the critical limit 2.5
    assert [text for _, text in bar.critical] == ["critical below 2.5", "critical at or above 6.5"]
    assert "red ticks, the configured critical limits" in render(result, "html")


def test_not_assessed_rules_are_counted_by_what_was_missing(interpreter):
    """Without a medication list, 13 rule names over four lines were noise: one line per
    missing input with the count, the names folded away (and in brackets in the text)."""
    result = interpreter.interpret({"results": [{"analyte": "potassium", "value": 3.1, "unit": "mmol/L"}]})
    medication_rules = sum("medication list: not supplied" in n.missing for n in result.not_assessed)
    assert medication_rules >= 9
    html, text = render(result, "html"), render(result, "text")
    assert f"<strong>medication list: not supplied</strong>: {medication_rules} rules not assessed <details" in html
    assert f"medication list: not supplied: {medication_rules} rules (" in text


def test_sources_are_one_table_referenced_by_key(seed, interpreter):
    """Each finding names its sources by key; the response's `references` table holds each
    cited source once (findings and derived values), and nothing it does not cite."""
    data = json.loads(render(seed, "json"))
    cited = [k for f in data["findings"] for k in f["references"]]
    cited += [k for d in data["derived"].values() for k in d.get("references", [])]
    assert cited and set(data["references"]) == set(cited)
    rs = interpreter.ruleset
    for key, ref in data["references"].items():
        assert ref == {
            "citation": rs.references[key].citation,
            "url": rs.references[key].url,
            "verified": rs.references[key].verified,
        }
    text = render(seed, "text")
    assert "SOURCES" in text and rs.references[cited[0]].citation in text


@pytest.mark.parametrize("fmt", ["text", "html"])
def test_each_evidence_line_is_stated_once_per_report(interpreter, fmt):
    """The core case: potassium's and magnesium's evidence appear in full once; the other
    findings that rest on them name the value and status only ("as above"), not the interval
    again. The JSON keeps every finding's evidence whole (each finding stands alone there)."""
    panel = json.loads((ROOT / "examples/low-k-low-mg-loop-diuretic.json").read_text())
    interpretation = interpreter.interpret(panel)
    report = render(interpretation, fmt)
    full = "Magnesium 1.3 mg/dL (0.535 mmol/L): low; 1.7–2.2 mg/dL, laboratory interval"
    in_findings = sum(e.statement == full for f in interpretation.findings for e in f.evidence)
    assert in_findings >= 3  # the JSON: every finding that reads magnesium states it whole
    assert report.count(full) == 1
    assert report.count("Magnesium 1.3 mg/dL (0.535 mmol/L): low (as above)") == 2
    assert report.count("Potassium 3.0 mmol/L: low; 3.5–5.0 mmol/L, default adult interval") == 1


def test_a_narrow_interval_has_one_label_under_its_bar(interpreter):
    """Magnesium's 1.7–2.2 mg/dL sits narrow on a scale that reaches its critical limits: its
    two ends would overprint, so they share one label; potassium's interval is wide enough for two."""
    from interpret.render.view import range_bar

    panel = json.loads((ROOT / "examples/low-k-low-mg-loop-diuretic.json").read_text())
    interpretation = interpreter.interpret(panel)
    bars = {r.analyte: range_bar(r) for r in interpretation.results}
    assert not bars["magnesium"].ends_apart and bars["potassium"].ends_apart
    html = render(interpretation, "html")
    assert ">1.7–2.2</span>" in html and ">3.5</span>" in html and ">5.0</span>" in html
