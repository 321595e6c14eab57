"""The standalone report page."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from selfie_tl import InvalidArgumentError, viz

from .helpers import synthetic


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
    b["mean_relevancy"] = b["mean_relevancy"] / 3
    page = viz.report_html(pd.concat([a, b], ignore_index=True))
    colours = re.findall(r'data-mean-relevancy="([0-9.e-]+)" style="background-color:(#[0-9a-f]{6})', page)
    assert len(colours) == 8
    for value, colour in colours:
        assert colour == viz.relevancy_color(float(value), 0.3)


def test_report_file_mode_is_that_of_a_plain_file(tmp_path):
    out = viz.write_report(synthetic(), tmp_path / "r.html")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's private 0600
