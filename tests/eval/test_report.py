"""Terminal table and PNG of a summary (selfie_tl.eval.report)."""

import pandas as pd

from selfie_tl.eval.report import format_table, plot_accuracy
from selfie_tl.eval.stats import summarize
from tests.eval.test_stats import _rows


def test_format_table_and_plot(tmp_path):
    summary = summarize(_rows(), n_bootstrap=100)
    table = format_table(summary)
    assert "control:summary" in table and "-1" in table and "selfie:summary" in table
    assert format_table(summary.iloc[:0]) == "(no rows)"
    png = plot_accuracy(summary, tmp_path / "sub" / "acc.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in png.parent.iterdir()] == ["acc.png"]  # no temporary file left


def test_format_table_cells():
    s = pd.DataFrame({"method": ["a", "b"], "layer": [3, 3], "accuracy": [0.5, 0.125],
                      "ci_low": [0.25, 0.0], "ci_high": [0.75, 0.3]})  # fmt: skip
    assert "50.0 [25-75]" in format_table(s) and "12.5 [0-30]" in format_table(s)
