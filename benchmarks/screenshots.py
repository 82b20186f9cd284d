"""Screenshots of report.html as a browser shows it: headless Chromium (Debian's chromium and chromium-driver)
through Selenium, at a laptop's 1280 px and a phone's 390 px.

    python benchmarks/screenshots.py reports/quick-cpu-synthetic [--out docs/images]

Writes report-1280.png and report-390.png (the top of the page: title, facts, table of contents) and
report-1280-task.png (the first task, reached through the table of contents). The browser test
(tests/test_browser.py) drives the same browser.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
from pathlib import Path

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


class BrowserMissing(RuntimeError):
    """Chromium or its driver is not installed."""


@contextlib.contextmanager
def browser(width: int, height: int):
    """A headless Chromium of this viewport size, driven by Selenium with the system's chromedriver (no driver
    is downloaded: Selenium Manager is not asked)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        raise BrowserMissing(
            "the browser test needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_window_size(width, height)
        yield driver
    finally:
        driver.quit()


def viewport_width(driver) -> int:
    return int(driver.execute_script("return document.documentElement.clientWidth"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs") / "images")
    args = parser.parse_args()
    page = (args.run_dir / "report.html").resolve().as_uri()
    args.out.mkdir(parents=True, exist_ok=True)
    for width, height in WIDTHS.values():
        with browser(width, height) as driver:
            driver.get(page)
            driver.save_screenshot(str(args.out / f"report-{width}.png"))
            if width == WIDTHS["desktop"][0]:
                first_task = driver.find_element("xpath", "//nav//a[starts-with(normalize-space(.), 'Task')]")
                driver.execute_script("arguments[0].click()", first_task)
                driver.save_screenshot(str(args.out / f"report-{width}-task.png"))
    print("\n".join(str(p) for p in sorted(args.out.glob("report-*.png"))))


if __name__ == "__main__":
    main()
