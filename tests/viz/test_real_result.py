"""The pictures on a real interpret() result of a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selfie_tl import interpret, viz

from .helpers import cells_of


def test_on_real_interpret_result(tiny_llama, tmp_path):
    df = interpret(tiny_llama, "The cat sat", [(0, 1), (3, 1), (0, -1), (3, -1)], k=1, max_new_tokens=5)
    frag = viz.grid_html(df)
    cells = cells_of(frag)
    assert set(cells) == {(0, 1), (3, 1), (0, 10), (3, 10)}
    for (layer, tok), cell in cells.items():
        row = df[(df.layer == layer) & (df.token == tok)].iloc[0]
        assert float(cell["attrs"]["data-mean-relevancy"]) == pytest.approx(row.mean_relevancy, rel=1e-5)
        assert cell["attrs"]["title"] == row.interpretation
    ax = viz.plot_grid(df, tmp_path / "g.svg").axes[0]
    np.testing.assert_allclose(
        np.ma.filled(ax.images[0].get_array(), np.nan),
        df.pivot(index="layer", columns="token", values="mean_relevancy").to_numpy(),
        rtol=1e-6,
    )
    assert Path(tmp_path / "g.svg").stat().st_size > 0
