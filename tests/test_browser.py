"""report.html in a real browser (headless Chromium through Selenium, benchmarks/screenshots.py): at a laptop's
1280 px and a phone's 390 px the page never scrolls sideways, every figure stays within the text column, and
every link of the table of contents lands on its section. CI installs Debian's chromium and chromium-driver
(.ci/run); elsewhere without them the test says how to install them."""

import os
import shutil
import sys
from pathlib import Path

import pytest

from xraybench import report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import screenshots

FIXTURE = Path(__file__).parent / "fixtures" / "results-all-smoke.json"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        message = "needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message + ": .ci/run installs them")
        pytest.skip(message)
    run_dir = tmp_path_factory.mktemp("browser")
    shutil.copy(FIXTURE, run_dir / "results.json")
    html, _ = report.render(run_dir)
    return html.resolve().as_uri()


def layout(driver) -> dict:
    return driver.execute_script("""
        const column = document.querySelector('main').getBoundingClientRect();
        const figures = [...document.querySelectorAll('figure img')].map(img => {
            const r = img.getBoundingClientRect();
            return {left: r.left, right: r.right, width: r.width, alt: img.alt};
        });
        return {scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth,
                column: {left: column.left, right: column.right}, figures: figures};""")


@pytest.mark.parametrize("width, height", list(screenshots.WIDTHS.values()))
def test_the_page_fits_the_window_and_figures_the_column(page, width, height):
    with screenshots.browser(width, height) as driver:
        driver.get(page)
        found = layout(driver)
        assert found["scrollWidth"] <= found["clientWidth"], found["scrollWidth"]  # no sideways scrolling
        assert len(found["figures"]) >= 10
        column = found["column"]
        assert column["right"] - column["left"] <= min(width, 64 * 15 + 1)  # a readable column, not the window
        for figure in found["figures"]:
            assert column["left"] - 1 <= figure["left"] and figure["right"] <= column["right"] + 1, figure
            assert figure["width"] <= 156.6 / 25.4 * 96 + 1  # never wider than its printed 156.6 mm


@pytest.mark.parametrize("width, height", list(screenshots.WIDTHS.values()))
def test_every_contents_link_lands_on_its_section(page, width, height):
    with screenshots.browser(width, height) as driver:
        driver.get(page)
        links = driver.find_elements("css selector", "nav.toc a")
        assert len(links) >= 12
        targets = [(a.get_attribute("href").split("#", 1)[1], a.get_attribute("textContent").strip()) for a in links]
        for anchor, label in targets:
            driver.execute_script("document.querySelector(`nav.toc a[href='#${arguments[0]}']`).click()", anchor)
            landed = driver.execute_script(
                """
                const h = document.getElementById(arguments[0]);
                const r = h.getBoundingClientRect();
                const bottom = window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 2;
                return {top: r.top, text: h.textContent.trim(), bottom: bottom, hash: location.hash};""",
                anchor,
            )
            assert landed["hash"] == f"#{anchor}"
            assert landed["text"].startswith(label.split(":")[0]), (label, landed["text"])
            assert 0 <= landed["top"] <= 20 or (landed["bottom"] and 0 <= landed["top"] < height), (anchor, landed)
