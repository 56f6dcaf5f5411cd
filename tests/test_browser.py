"""A person's path through the web form, in Debian's Chromium driven by Playwright.

Screenshots are saved to test-artifacts/. Locally the test skips when Chromium is missing;
in CI (CI=true) a missing browser is a failure, since scripts/setup installs it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from interpret.web.app import create_app
from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError("Chromium is missing in CI: scripts/setup --browser should install it")
    pytest.skip("Debian's Chromium is not installed (scripts/setup --browser)", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def base_url(interpreter):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(interpreter), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1100, "height": 1400})
    return context.new_page()


def test_fill_submit_and_read_the_findings(page, base_url):
    page.goto(base_url + "/")
    assert page.get_by_role("note", name="Disclaimer").is_visible()
    page.get_by_label("Potassium", exact=True).fill("3.0")
    page.get_by_label("Magnesium", exact=True).fill("1.3")
    page.get_by_label("Magnesium unit").select_option("mg/dL")
    page.get_by_label("Creatinine", exact=True).fill("88")
    page.get_by_label("Creatinine unit").select_option("umol/L")
    page.get_by_label("Age (years, 18–120)").fill("72")
    page.get_by_label("Sex").select_option("female")
    page.get_by_label("Medications (one per line, as written)").fill("furosemide 40 mg PO daily")
    page.get_by_role("button", name="Interpret").click()
    page.wait_for_load_state()
    page.screenshot(path=str(ARTIFACTS / "browser-report.png"), full_page=True)
    findings = page.locator("article.finding h3").all_inner_texts()
    assert any("Low potassium with low magnesium" in f for f in findings)
    assert any("loop or thiazide diuretic" in f for f in findings)
    assert "decision support" in page.locator(".disclaimer").first.inner_text().lower()
    assert page.locator(".disclaimer").count() == 1  # once, not above the form and the report
    # the report is what the eye lands on: the first finding is on the first screen
    assert page.locator("article.finding").first.bounding_box()["y"] < 900
    page.get_by_text("Edit the panel and interpret again").click()
    assert page.get_by_label("Potassium", exact=True).input_value() == "3.0"  # kept for correction


def test_bad_value_shows_error_at_its_field(page, base_url):
    page.goto(base_url + "/?example=low-k-low-mg-loop-diuretic")
    page.get_by_label("Potassium", exact=True).fill("45")
    page.get_by_role("button", name="Interpret").click()
    page.wait_for_load_state()
    page.screenshot(path=str(ARTIFACTS / "browser-error.png"), full_page=True)
    error = page.locator("#potassium-error")
    assert error.is_visible() and "outside the plausible range" in error.inner_text()
    assert page.get_by_label("Potassium", exact=True).get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Magnesium", exact=True).input_value() == "1.3"  # the rest kept


def test_keyboard_reaches_the_submit_button(page, base_url):
    page.goto(base_url + "/")
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.tagName") == "BUTTON":
            break
    assert page.evaluate("document.activeElement.textContent").strip() == "Interpret"


def test_the_form_and_the_report_fit_a_phone(page, base_url):
    """At 390 px the form was 684 px wide: label, value and unit now share a line, the range
    the next, and wide tables scroll inside themselves. Screenshots kept as artifacts."""
    browser = page.context.browser
    assert browser is not None
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    phone = context.new_page()
    phone.goto(base_url + "/?example=low-k-low-mg-loop-diuretic")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(ARTIFACTS / "browser-phone-form.png"), full_page=True)
    phone.get_by_role("button", name="Interpret").click()
    phone.wait_for_load_state()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(ARTIFACTS / "browser-phone-report.png"), full_page=True)
    context.close()


def test_print_puts_results_first_prints_sources_and_fits_one_page(page, interpreter, tmp_path):
    """The core example printed on 4 US-Letter pages with no citation at all (sources sat in
    folded <details>). Now: results before findings, sources printed, the page header names
    the generation time and the ruleset, and the core case fits 2 pages (a smaller panel, 1)."""
    import re

    from interpret.render import render

    def printed(name: str) -> tuple[int, object]:
        interpretation = interpreter.interpret(json.loads((ROOT / f"examples/{name}.json").read_text()))
        path = tmp_path / f"{name}.html"
        path.write_text(render(interpretation, "html"))
        page.goto(path.as_uri())
        page.emulate_media(media="print")
        pdf = page.pdf(format="Letter")
        (ARTIFACTS / f"print-{name}.pdf").write_bytes(pdf)
        return len(re.findall(rb"/Type\s*/Page[^s]", pdf)), page

    pages, p = printed("low-k-low-mg-loop-diuretic")
    assert pages == 1  # the core case on one Letter page (4 pages before the print stylesheet)
    results_y = p.locator("#results-section").bounding_box()["y"]
    assert results_y < p.locator("#findings-section").bounding_box()["y"]
    sources = p.locator(".finding .print-only").first
    assert sources.is_visible() and "Huang" in sources.inner_text()
    assert "Printed from a report generated" in p.locator(".meta").inner_text()
    assert printed("haemolysed-high-potassium")[0] == 1
    page.emulate_media(media="screen")


def test_api_docs_render_without_a_network(browser, base_url):
    """/docs with JavaScript on and every request outside this server blocked: Swagger UI
    still lists the interpret operation (its files are served from here)."""
    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    outside: list[str] = []

    def only_local(route):
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{base_url}/docs")
    page.wait_for_selector(".opblock", timeout=15_000)
    assert "/api/v1/interpret" in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "api-docs-offline.png"))
    page.context.close()
    assert outside == []


def test_the_report_reads_in_ten_seconds(page, interpreter, tmp_path):
    """The core case (K 3.0, Mg 1.3 mg/dL, furosemide): an impression line first; the two
    single-result advisories folded into the pattern that combines them (not beside it);
    one short disclaimer at the top, the full text once."""
    from interpret.render import render

    interpretation = interpreter.interpret(json.loads((ROOT / "examples/low-k-low-mg-loop-diuretic.json").read_text()))
    path = tmp_path / "core.html"
    path.write_text(render(interpretation, "html"))
    page.goto(path.as_uri())
    impression = page.locator("#impression")
    assert impression.inner_text() == (
        "2 warnings, 1 advisory, 1 note — Low potassium with low magnesium; "
        "Low potassium or magnesium on a loop or thiazide diuretic"
    )
    assert impression.bounding_box()["y"] < page.locator("#findings").bounding_box()["y"] < 900
    pattern = page.locator("article#finding-hypokalemia_with_hypomagnesemia")
    assert pattern.locator(".folded").count() == 2
    assert (
        pattern.locator("#finding-hypokalemia").count() == 1 and pattern.locator("#finding-hypomagnesemia").count() == 1
    )
    assert page.locator("article.finding").count() == 4  # 6 findings, 2 of them inside the pattern
    assert page.locator("article#finding-hypokalemia").count() == 0
    body = page.inner_text("main")
    assert body.count(interpretation.disclaimer) == 1 and body.count(interpretation.short_disclaimer) == 1
    page.screenshot(path=str(ARTIFACTS / "report-core-case.png"), full_page=True)
