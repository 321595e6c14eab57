"""Screenshot an HTML report in headless Chromium (how ``docs/images/report.png`` is made).

    cd /tmp && selfie-tl demo --html report.html
    python docs/images/screenshot_report.py /tmp/report.html docs/images/report.png --pin 6,4

Needs ``/usr/bin/chromium``, ``/usr/bin/chromedriver`` and ``pip install selenium`` (the
same as ``tests/viz/test_browser.py``). ``--pin LAYER,TOKEN`` clicks that cell first so the
detail panel shows its interpretation with each token shaded by relevancy.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--hide-scrollbars",
)  # fmt: skip


def screenshot(report: Path, out: Path, width: int = 1400, height: int = 900, pin: str | None = None) -> Path:
    """Open ``report`` at ``width`` x ``height``, optionally pin a cell, save a PNG to ``out``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.set_window_size(width, height)
            # the window includes browser chrome; make the page's viewport exactly width x height
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})  # fmt: skip
            driver.get(report.resolve().as_uri())
            if pin:
                layer, token = (int(x) for x in pin.split(","))
                selector = f'td.stl-cell[data-layer="{layer}"][data-token="{token}"]'
                cell = driver.find_element(By.CSS_SELECTOR, selector)
                driver.execute_script("arguments[0].click()", cell)  # also when the panel covers it
            if not driver.save_screenshot(str(out)):
                raise RuntimeError(f"no screenshot written to {out}")
        finally:
            driver.quit()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the HTML report to open")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1400, help="window width (default 1400)")
    parser.add_argument("--height", type=int, default=900, help="window height (default 900)")
    parser.add_argument(
        "--pin", default=None, metavar="LAYER,TOKEN", help="click this cell first (default: none)"
    )
    args = parser.parse_args()
    shot = screenshot(args.report, args.out, args.width, args.height, args.pin)
    print(f"wrote {shot} ({shot.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
