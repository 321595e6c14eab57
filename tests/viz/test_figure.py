"""plot_grid: the matplotlib figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from selfie_tl import viz

from .helpers import synthetic


def test_plot_grid_content(tmp_path):
    df = synthetic()
    fig = viz.plot_grid(df, tmp_path / "grid.png", max_chars=12)
    ax = fig.axes[0]
    image = ax.images[0]
    expected = np.array([[0.05, 0.3], [0.2325, 0.2]])
    np.testing.assert_allclose(np.ma.filled(image.get_array(), np.nan), expected)
    # The colour drawn for each cell is the colormap at its score, on a scale from 0 to the
    # 95th percentile of the scores (0.05, 0.2, 0.2325, 0.3 -> 0.2899); 0.3 is clipped.
    top = 0.2325 + 0.85 * (0.3 - 0.2325)
    assert image.norm.vmin == 0 and image.norm.vmax == pytest.approx(top)
    assert to_hex(image.to_rgba(0.3)) == viz.relevancy_color(0.3, top) == viz.relevancy_color(1.0, 1.0)
    assert to_hex(image.to_rgba(0.05)) == viz.relevancy_color(0.05, top) != viz.relevancy_color(0.3, top)
    texts = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in ax.texts}
    # Column 0 = token 1, row 1 = layer 4: an excerpt of at most 12 characters around " Eiffel".
    assert texts[(0, 1)] == "The Eiffel…"
    assert viz.plot_grid(df, max_chars=10).axes[0].texts[2].get_text() == "…Eiffel…"
    assert texts[(1, 0)].replace("\n", " ").startswith("<script>")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "4"]
    xlabels = [t.get_text() for t in ax.get_xticklabels()]
    assert xlabels == ['1\n" is"', '3\n"?"']
    assert ax.get_title() == "Where is Paris?"
    assert "content tokens" in fig.get_supxlabel().replace("\n", " ")  # the caption explains colour and marks
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_grid_svg_keeps_dollars_literal(tmp_path):
    df = synthetic()
    fig = viz.plot_grid(df, tmp_path / "grid.svg")
    svg = (tmp_path / "grid.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    cost = next(t for t in fig.axes[0].texts if t.get_text().startswith("cost"))
    assert "$5" in cost.get_text() and cost.get_parse_math() is False


def test_plot_grid_missing_cells_and_no_relevancy():
    df = synthetic().drop(index=[1]).assign(mean_relevancy=None, relevancy=None)
    ax = viz.plot_grid(df).axes[0]
    values = np.ma.filled(ax.images[0].get_array(), np.nan)
    assert np.isnan(values).all()
    assert len(ax.texts) == 3  # the dropped (0, 3) cell stays empty


def test_plot_grid_on_given_axes():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert viz.plot_grid(synthetic(), ax=ax) is fig and len(ax.texts) == 4


def test_plot_grid_scores_content_and_marks_junk():
    df = synthetic().iloc[:2].copy()
    # Junk replies: newlines and an end token with high relevancy; nothing generated at all.
    df.loc[0, ["generated_tokens", "relevancy", "interpretation"]] = pd.Series(
        {
            "generated_tokens": ["\n", "\n", "<|im_end|>"],
            "relevancy": [0.9, 0.9, 0.9],
            "interpretation": "\n\n",
        }
    )
    df.loc[1, ["generated_tokens", "relevancy", "interpretation"]] = pd.Series(
        {"generated_tokens": [], "relevancy": [], "interpretation": ""}
    )
    extra = synthetic().iloc[[2]]
    df = pd.concat([df, extra], ignore_index=True)
    ax = viz.plot_grid(df).axes[0]
    values = np.ma.filled(ax.images[0].get_array(), np.nan)
    assert np.isnan(values[0]).all()  # junk and empty replies have no score: grey
    assert values[1, 0] == pytest.approx(0.2325)
    texts = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in ax.texts}
    assert texts[(0, 0)] == "␣" and texts[(1, 0)] == "∅"  # whitespace-only, empty
