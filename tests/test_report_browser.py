"""The operations review opened in a real headless browser (Debian's chromium, driven by Playwright): no console
error, no request beyond the file itself, and the figures the page shows are the figures the export gives.
Skipped only when chromium is absent outside CI (`make browser-setup` installs it); in CI (`CI` set) it fails."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agentspec.cli import main
from agentspec.report.engine import open_export
from agentspec.report.figures import compute
from agentspec.report.html import fmt
from agentspec.report.synthetic import generate

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: `make browser-setup` installs it")
        pytest.skip("chromium is not installed (`make browser-setup`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def test_the_review_renders_offline_with_its_figures(browser, tmp_path: Path) -> None:
    export, previous = tmp_path / "export", tmp_path / "previous"
    generate(export, 800, seed=11)
    generate(previous, 600, seed=12)
    review = tmp_path / "review.html"
    spec = ROOT / "specs" / "support_desk.agent"
    assert main(["report", str(export), "--spec", str(spec), "--previous", str(previous), "-o", str(review)]) == 0
    url = review.as_uri()

    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r) -> None:
        requests.append(r.request.url)
        if r.request.url == url:
            r.continue_()
        else:
            r.abort()

    page.route("**/*", route)
    page.goto(url)
    page.wait_for_load_state("load")
    assert errors == []
    assert requests == [url]

    figures = compute(open_export(export))
    latency = figures.by_workflow("latency")
    outcomes = figures.by_workflow("outcomes")
    denied = figures.by_workflow("denied")
    assert latency, "the synthetic export has workflows"
    for wf, row in latency.items():
        cell = page.locator(f'#headlines [data-figure="latency.p95"][data-workflow="{wf}"]')
        assert cell.inner_text().splitlines()[0] == fmt(row["p95"], "ms")
        cost = page.locator(f'#headlines [data-figure="outcomes.cost_per_success_usd"][data-workflow="{wf}"]')
        assert cost.inner_text().splitlines()[0] == fmt(outcomes[wf]["cost_per_success_usd"], "USD")
        assert page.locator(f'[data-figure="denied.denied"][data-workflow="{wf}"]').inner_text() == str(
            denied[wf]["denied"]
        )
    for row in figures.rows("locality"):
        sel = f'[data-figure="locality.locality_pct"][data-dimension="{row["dimension"]}"][data-value="{row["value"]}"]'
        assert page.locator(sel).inner_text() == fmt(row["locality_pct"], "%")
    # Chains come first, and every chain of the synthetic export is intact.
    assert page.locator('[data-figure="chains.broken"]').inner_text() == "0"
    assert page.locator("section").first.get_attribute("id") == "chains"
    # The SLO table judges every workflow the spec declares that the export has.
    assert page.locator("#slo tr").count() > 1
    page.close()
