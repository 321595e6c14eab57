"""The pictures on a real interpret() result of a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selfie_tl import interpret, viz
from selfie_tl.relevancy import content_relevancy, content_relevancy_column

from .helpers import cells_of


def test_on_real_interpret_result(tiny_llama, tmp_path):
    df = interpret(tiny_llama, "The cat sat", [(0, 1), (3, 1), (0, -1), (3, -1)], k=1, max_new_tokens=5)
    frag = viz.grid_html(df)
    cells = cells_of(frag)
    assert set(cells) == {(0, 1), (3, 1), (0, 10), (3, 10)}
    for (layer, tok), cell in cells.items():
        row = df[(df.layer == layer) & (df.token == tok)].iloc[0]
        score = content_relevancy(row.generated_tokens, row.relevancy)
        shown = cell["attrs"]["data-score"]
        assert (shown == "" and np.isnan(score)) or float(shown) == pytest.approx(score, rel=1e-5)
    scores = df.assign(content_relevancy=content_relevancy_column(df))
    ax = viz.plot_grid(df, tmp_path / "g.svg").axes[0]
    np.testing.assert_allclose(
        np.ma.filled(ax.images[0].get_array(), np.nan),
        scores.pivot(index="layer", columns="token", values="content_relevancy").to_numpy(),
        rtol=1e-6,
    )
    # A content_relevancy column (interpret can add one with the tokenizer's special tokens)
    # is what the pictures show.
    marked = scores.assign(content_relevancy=0.123)
    assert {c["attrs"]["data-score"] for c in cells_of(viz.grid_html(marked)).values()} == {"0.123"}
    assert Path(tmp_path / "g.svg").stat().st_size > 0
