"""The HTML report in a real browser: headless Chromium driven by Selenium.

Needs ``/usr/bin/chromium``, ``/usr/bin/chromedriver`` (Debian: ``apt-get install chromium
chromium-driver``) and ``pip install selenium``. Without them the tests are skipped, except
under CI (``CI=true``), where they fail: CI must exercise the page.

Screenshots go to ``$SELFIE_TL_ARTIFACTS`` when set, else to ``tests/_artifacts/browser/``
(ignored by git).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from selfie_tl import viz

from .helpers import synthetic, synthetic_grid

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("SELFIE_TL_ARTIFACTS") or Path(__file__).resolve().parents[1] / "_artifacts")
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
)  # fmt: skip


def _missing() -> list[str]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    return missing


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = _missing()
    if missing:
        message = (
            f"browser test needs {', '.join(missing)}: apt-get install chromium chromium-driver; "
            "pip install selenium"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument("--window-size=1400,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def open_report(driver, df, path: Path, width: int = 1400, height: int = 900, **kwargs):
    """Write the report, load it, and return the browser's console messages so far."""
    viz.write_report(df, path, **kwargs)
    driver.set_window_size(width, height)
    driver.get(path.as_uri())
    driver.get_log("browser")  # drop anything from the previous page
    driver.refresh()
    return driver.get_log("browser")


def console_errors(log: list[dict]) -> list[dict]:
    return [entry for entry in log if entry.get("level") == "SEVERE"]


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    assert driver.save_screenshot(str(shot)), f"no screenshot {shot}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / name)
    return shot


def cell(driver, layer: int, token: int):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'td.stl-cell[data-layer="{layer}"][data-token="{token}"]')


def detail(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, ".stl-detail")


def hover(driver, element) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element(element).perform()


def shaded(panel) -> list[tuple[str, str]]:
    """(text, data-relevancy) of each shaded token in the panel."""
    from selenium.webdriver.common.by import By

    return [
        (t.get_attribute("textContent"), t.get_attribute("data-relevancy"))
        for t in panel.find_elements(By.CSS_SELECTOR, ".stl-tok")
    ]


def big_result():
    """31 layers x 45 tokens, with an empty reply, a whitespace-only one and a long word."""
    df = synthetic_grid(31, 45)
    df.at[5, "generated_tokens"], df.at[5, "relevancy"], df.at[5, "interpretation"] = [], [], ""
    df.at[6, "generated_tokens"], df.at[6, "relevancy"] = ["\n", "\n", " "], [0.9, 0.9, 0.9]
    df.at[6, "interpretation"] = "\n\n "
    word = "Pneumonoultramicroscopicsilicovolcanoconiosis" * 2
    df.at[7, "generated_tokens"], df.at[7, "relevancy"] = [word, "!"], [0.5, 0.1]
    df.at[7, "interpretation"] = word + "!"
    return df


def rect(driver, element) -> dict:
    return driver.execute_script("var r = arguments[0].getBoundingClientRect(); return r.toJSON();", element)


def viewport(driver) -> tuple[int, int]:
    return tuple(driver.execute_script("return [window.innerWidth, window.innerHeight]"))


def outline(element) -> str:
    return element.value_of_css_property("outline-color")


def test_report_renders_without_console_errors(browser, tmp_path):
    log = open_report(browser, synthetic(), tmp_path / "report.html", title="Browser check")
    assert not console_errors(log), log
    assert browser.title == "Browser check"
    assert len(browser.find_elements("css selector", "td.stl-cell")) == 4
    # Model text "<script>" is text on the page, never an element: the page's scripts are the
    # grid's JSON data block and its code.
    types = browser.execute_script("return [...document.scripts].map(s => s.type)")
    assert types == ["application/json", ""]
    assert cell(browser, 0, 3).text == "<script>alert(1)</script>"
    screenshot(browser, tmp_path, "report-initial.png")


def test_hover_and_click_show_that_cells_interpretation(browser, tmp_path):
    open_report(browser, synthetic(), tmp_path / "report.html")
    hover(browser, cell(browser, 4, 1))
    panel = detail(browser)
    assert 'layer 4 · token 1 " is"' in panel.text and "The Eiffel Tower &" in panel.text
    assert "content relevancy 0.233" in panel.text
    assert shaded(panel) == [("The", "0.02"), (" Eiffel", "0.5"), (" Tower", "0.4"), (" &", "0.01")]
    toks = panel.find_elements("css selector", ".stl-tok")
    colours = [t.value_of_css_property("background-color") for t in toks]
    assert colours[1] != colours[0]  # shaded by relevancy, not one flat colour

    hover(browser, cell(browser, 0, 3))
    assert "layer 0 · token 3" in detail(browser).text
    assert [text for text, _ in shaded(detail(browser))] == ["<script>", "alert(1)", "</script>"]

    cell(browser, 4, 1).click()  # pin (4, 1): hovering elsewhere no longer changes the panel
    hover(browser, cell(browser, 4, 3))
    assert "layer 4 · token 1" in detail(browser).text and "pinned" in detail(browser).text
    screenshot(browser, tmp_path, "report-pinned.png")
    assert not console_errors(browser.get_log("browser"))


def test_pinned_style_wins_and_escape_unpins(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    open_report(browser, synthetic(), tmp_path / "report.html")
    a, b = cell(browser, 4, 1), cell(browser, 4, 3)
    hover(browser, b)
    hovered = outline(b)
    a.click()
    pinned = outline(a)  # a is pinned, hovered and focused
    assert "stl-pinned" in a.get_attribute("class") and pinned != hovered
    hover(browser, b)
    browser.execute_script("arguments[0].focus()", b)  # focus moves away
    assert outline(a) == pinned and outline(b) == hovered
    browser.execute_script("arguments[0].focus()", a)  # and back: pinned still shows as pinned
    assert outline(a) == pinned
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    assert not browser.find_elements("css selector", ".stl-pinned")
    hover(browser, cell(browser, 0, 1))
    assert "layer 0 · token 1" in detail(browser).text  # unpinned: hover works again
    b.send_keys(Keys.ENTER)  # the keyboard pins too
    assert "stl-pinned" in b.get_attribute("class")


@pytest.mark.parametrize("width", [800, 1400])
def test_big_grid_panel_docked_headers_sticky_no_overflow(browser, tmp_path, width):
    open_report(
        browser, big_result(), tmp_path / "report.html", width=width, meta={"model_name": "synthetic"}
    )
    assert not console_errors(browser.get_log("browser"))
    vw, vh = viewport(browser)
    # Cell content never spills out of its cell (fixed widths, long words broken) and the
    # page itself does not scroll sideways: the grid scrolls in its own box.
    spilling = browser.execute_script(
        "return [...document.querySelectorAll('td.stl-cell, th')]"
        ".filter(e => e.scrollWidth > e.clientWidth + 1).length"
    )
    assert spilling == 0
    assert browser.execute_script("return document.documentElement.scrollWidth") <= vw
    assert cell(browser, 0, 5).text == "∅" and cell(browser, 0, 6).text == "␣"
    hover(browser, cell(browser, 0, 7))
    screenshot(browser, tmp_path, f"report-31x45-{width}px-top.png")

    # A cell far down and right: scroll to it, hover, and the panel is on screen showing it.
    far = cell(browser, 30, 44)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'center'})", far)
    hover(browser, far)
    panel = detail(browser)
    box = rect(browser, panel)
    assert 0 <= box["top"] and box["bottom"] <= vh + 1 and box["height"] > 50, box
    assert "layer 30 · token 44" in panel.text
    # Sticky header row and layer column: still at the edges of the scrolled grid box.
    scroller = browser.find_element("css selector", ".stl-scroll")
    assert browser.execute_script("return arguments[0].scrollTop", scroller) > 0
    head = browser.find_element("css selector", "th.stl-col[data-token='44']")
    row = browser.find_element("css selector", "th.stl-row[data-layer='30']")
    assert abs(rect(browser, head)["top"] - rect(browser, scroller)["top"]) <= 3
    assert abs(rect(browser, row)["left"] - rect(browser, scroller)["left"]) <= 3
    far.click()
    screenshot(browser, tmp_path, f"report-31x45-{width}px.png")


def test_report_of_a_real_result(browser, tmp_path, tiny_llama):
    from selfie_tl import interpret

    # Byte-level tokens of a random model: odd characters, replacement characters, newlines.
    df = interpret(tiny_llama, "The cat sat", [(0, 1), (3, 1), (0, -1), (3, -1)], k=1, max_new_tokens=8)
    log = open_report(browser, df, tmp_path / "report.html", meta={"model_name": "tiny llama"})
    assert not console_errors(log), log
    for row in df.itertuples():
        hover(browser, cell(browser, row.layer, row.token))
        panel = detail(browser)
        assert f"layer {row.layer} · token {row.token}" in panel.text
        texts = [text for text, _ in shaded(panel)]
        shown = [t.replace("\r\n", "\n").replace("\n", "↵") for t in row.generated_tokens]
        assert texts == shown  # each token, in order, cut at the right places
        assert [float(v) for _, v in shaded(panel)] == pytest.approx(row.relevancy, rel=5e-3, abs=1e-9)
    screenshot(browser, tmp_path, "report-tiny-model.png")
