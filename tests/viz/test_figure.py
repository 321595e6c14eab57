"""plot_grid: the matplotlib figure."""

from __future__ import annotations

import numpy as np
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
    # The colour drawn for each cell is the colormap at its mean relevancy (scale 0..max).
    assert image.norm.vmin == 0 and image.norm.vmax == pytest.approx(0.3)
    assert to_hex(image.to_rgba(0.3)) == viz.relevancy_color(0.3, 0.3)
    assert to_hex(image.to_rgba(0.05)) == viz.relevancy_color(0.05, 0.3) != viz.relevancy_color(0.3, 0.3)
    texts = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in ax.texts}
    assert texts[(0, 1)] == "The Eiffel…"  # column 0 = token 1, row 1 = layer 4, truncated to 12
    assert texts[(1, 0)].replace("\n", " ").startswith("<script>")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "4"]
    xlabels = [t.get_text() for t in ax.get_xticklabels()]
    assert xlabels == ['1\n" is"', '3\n"?"']
    assert ax.get_title() == "Where is Paris?"
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
