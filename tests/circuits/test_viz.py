"""Component x layer grids through selfie_tl.viz."""

from __future__ import annotations

import pandas as pd
import pytest

from selfie_tl.circuits import component_grid_frame, components_html, interpret_components, plot_components
from selfie_tl.errors import InvalidArgumentError


@pytest.fixture(scope="module")
def result(tiny_llama):
    return interpret_components(tiny_llama, "The cat", [0, 2], ["mlp", "head", "attn"], heads=[3, 1], k=1,
                                max_new_tokens=3)  # fmt: skip


def test_frame_puts_components_in_the_token_axis(result):
    frame = component_grid_frame(result)
    assert frame["token_decoded"].tolist()[:4] == ["H3", "H1", "attn", "MLP"]
    # columns ordered head index, then attn, then MLP; same column in every layer
    assert frame["token"].tolist() == [1, 0, 2, 3] * 2
    assert frame["position"].tolist() == [6] * 8
    assert result["token"].tolist() == [6] * 8  # the input is not changed


def test_plot_components(result, tmp_path):
    path = tmp_path / "grid.png"
    fig = plot_components(result, path, max_chars=20)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["H1", "H3", "attn", "MLP"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "2"]
    assert ax.get_xlabel() == "component" and "writes at 't'" in ax.get_title()
    assert path.stat().st_size > 1000


def test_components_html(result):
    html = components_html(result)
    assert "component →" in html and "token →" not in html
    assert '"H3"' in html and '"MLP"' in html


def test_frame_needs_component_column():
    with pytest.raises(InvalidArgumentError, match="component"):
        component_grid_frame(pd.DataFrame({"layer": [0], "token": [0], "interpretation": ["x"]}))
