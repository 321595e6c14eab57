"""Jupyter wrapper."""

from __future__ import annotations

import pandas as pd

from selfie_tl import viz

from .helpers import cells_of, synthetic


def test_show_repr_html():
    view = viz.show(synthetic())
    frag = view._repr_html_()
    assert len(cells_of(frag)) == 4
    assert "4 interpretations" in repr(view)
    spans = view.spans(threshold=0.25)
    assert [s.text for s in spans.iloc[1]] == ["<script>alert(1)</script>"]
    assert [s.text for s in spans.iloc[2]] == [" Eiffel Tower"]
    assert isinstance(view.df, pd.DataFrame) and type(view.df) is pd.DataFrame
