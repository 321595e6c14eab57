"""The standalone report page."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

import selfie_tl
from selfie_tl import InvalidArgumentError, viz

from .helpers import data_blocks, parse, synthetic, synthetic_grid


def test_write_report_standalone_and_atomic(tmp_path):
    df = pd.concat([synthetic("one"), synthetic("two")], ignore_index=True)
    df.attrs = synthetic().attrs
    out = viz.write_report(df, tmp_path / "report.html", title="T <1>")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>T &lt;1&gt;</title>" in page
    # No network: nothing to fetch (no src/href to anything, no @import, no url()).
    assert not re.search(r"(src|href)\s*=|@import|url\(|https?:", page)
    assert page.count('class="stl-grid"') == 2  # one grid per prompt
    assert "max_new_tokens=4" in page and "&lt;|im_start|&gt;user" in page
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind
    # Replacing keeps one file; a bad frame leaves the old report untouched.
    with pytest.raises(InvalidArgumentError):
        viz.write_report(pd.DataFrame({"x": [1]}), out)
    assert out.read_text(encoding="utf-8") == page
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        viz.write_report(df, tmp_path / "nope" / "r.html")
    assert not hasattr(viz, "add_html_report")  # the old alias is gone; the CLI calls write_report


def test_report_uses_one_scale_for_all_prompts():
    a, b = synthetic("one"), synthetic("two")
    b["relevancy"] = [[r / 3 for r in rel] for rel in b["relevancy"]]
    page = viz.report_html(pd.concat([a, b], ignore_index=True))
    colours = re.findall(r'data-score="([0-9.e-]+)" style="background:(#[0-9a-f]{6})', page)
    assert len(colours) == 8
    scores = sorted(float(v) for v, _ in colours)
    pos = 7 * 0.95
    top = scores[6] + (pos - 6) * (scores[7] - scores[6])  # 95th percentile over both prompts
    for value, colour in colours:
        assert colour == viz.relevancy_color(float(value), top)


def test_report_header_shows_the_run():
    df = synthetic()
    df.attrs["config"] = {"k": 2, "max_new_tokens": 4, "verbose": True, "batch_size": 8, "do_sample": False,
                          "temperature": 1.0, "mode": "replace", "overlay_strength": 1.0, "scale": 1.0}  # fmt: skip
    df.attrs["model_name"] = "SmolLM2-135M-Instruct"
    page = viz.report_html(df, meta={"command": "selfie-tl interpret 'Where is\nParis?' --html r.html"})
    run = {
        e["attrs"]["data-key"]: e["text"]
        for e in parse(page).elements
        if e["tag"] == "dd" and "data-key" in e["attrs"]
    }
    assert run["model_name"] == "SmolLM2-135M-Instruct"
    assert run["version"] == selfie_tl.__version__
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}.*", run["date"])
    assert run["command"] == "selfie-tl interpret 'Where is\nParis?' --html r.html"
    # Settings without noise: no verbose/batch size, no sampling controls when greedy.
    assert run["settings"] == "k=2, max_new_tokens=4, do_sample=False, mode=replace, overlay_strength=1.0"
    # Prompts verbatim: newlines kept (pre-wrap), special tokens escaped.
    assert run["interpretation_prompt"] == "<|im_start|>user\n_ _ <|im_end|>"
    assert '<div class="stl-pre">&lt;|im_start|&gt;user\n_ _ &lt;|im_end|&gt;</div>' in page
    assert ".stl-pre{white-space:pre-wrap" in page.replace("\n", "")
    # meta overrides df.attrs.
    assert ">other<" in viz.report_html(df, meta={"model_name": "other"})


def page_size(n_layers: int, n_tokens: int) -> int:
    return len(viz.report_html(synthetic_grid(n_layers, n_tokens), meta={"date": "-"}).encode())


def test_page_size_grows_linearly_and_holds_each_interpretation_once():
    small, large = page_size(11, 3), page_size(31, 6)  # 33 and 186 cells of 30 tokens
    per_cell = (large - small) / (186 - 33)
    fixed = small - 33 * per_cell
    assert per_cell < 900, per_cell  # about 8.4 kB per cell when the text was embedded three times
    assert 0 < fixed < 25_000, fixed
    assert page_size(31, 12) == pytest.approx(fixed + 372 * per_cell, rel=0.03)  # linear
    df = synthetic_grid(4, 3)
    page = viz.report_html(df)
    (data,) = data_blocks(page)
    for row, cell in zip(df.itertuples(), data["cells"], strict=True):
        assert cell["text"] == row.interpretation
        escaped = json.dumps(row.interpretation, ensure_ascii=False)[1:-1].replace("<", "\\u003c")
        assert page.count(escaped) == 1


def test_report_file_mode_is_that_of_a_plain_file(tmp_path):
    out = viz.write_report(synthetic(), tmp_path / "r.html")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's private 0600
