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


def test_plot_of_one_layer_has_whole_number_ticks(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = {}
    real_close = plt.close

    def keep(fig):
        seen["ticks"] = list(fig.axes[0].get_xticks())
        real_close(fig)

    monkeypatch.setattr(plt, "close", keep)
    summary = pd.DataFrame({"method": ["selfie:summary"], "layer": [5], "accuracy": [0.0],
                            "ci_low": [0.0], "ci_high": [0.0]})  # fmt: skip
    plot_accuracy(summary, tmp_path / "a.png", title="Attribute extraction, 1 fact")
    assert seen["ticks"] == [5]
