"""grid_data and the frame checks shared by every picture."""

from __future__ import annotations

import pandas as pd
import pytest

from selfie_tl import InvalidArgumentError, viz

from .helpers import synthetic


def test_grid_data_layout():
    g = viz.grid_data(synthetic())
    assert g.layers == [0, 4] and g.tokens == [1, 3] and g.token_labels == [" is", "?"]
    assert g.cells[(4, 1)].interpretation == "The Eiffel Tower &"
    assert g.value(4, 1) == pytest.approx(0.2325)


@pytest.mark.parametrize(
    "bad, match",
    [
        (pd.DataFrame({"layer": [1], "token": [0]}), "interpretation"),
        (pd.DataFrame({"layer": [], "token": [], "interpretation": []}), "no rows"),
        ([{"layer": 1}], "DataFrame"),
    ],
)
def test_bad_frames_raise(bad, match):
    for fn in (viz.grid_data, viz.plot_grid, viz.grid_html, viz.report_html, viz.show):
        with pytest.raises(InvalidArgumentError, match=match):
            fn(bad)


def test_several_prompts_need_a_choice():
    df = pd.concat([synthetic("one"), synthetic("two")], ignore_index=True)
    with pytest.raises(InvalidArgumentError, match="2 prompts"):
        viz.grid_html(df)
    assert "two" in viz.grid_html(df, prompt="two") and ">one<" not in viz.grid_html(df, prompt="two")
    with pytest.raises(InvalidArgumentError, match="not in the DataFrame"):
        viz.plot_grid(df, prompt="three")
