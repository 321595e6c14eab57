"""The grid as a matplotlib figure (PNG, SVG, PDF)."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from typing import Any

import pandas as pd

from selfie_tl.viz.colors import (
    CMAP,
    MISSING_BG,
    SCALE_PERCENTILE,
    colormap,
    relevancy_color,
    scale_top,
    text_color,
)
from selfie_tl.viz.grid import BLANK_MARK, EMPTY_MARK, cell_text, grid_data, short, visible_token


def _token_axis_label(position: int, decoded: str) -> str:
    return f'{position}\n"{visible_token(decoded)}"' if decoded else str(position)


def _inline_figures() -> None:
    # pyplot loads its backend only on the first pyplot figure, and plot_grid builds a bare
    # Figure; in Jupyter, load the inline backend now so that it registers the PNG display
    # of Figures (otherwise a returned figure shows as "<Figure size ...>").
    if "IPython" not in sys.modules:
        return
    import matplotlib

    if str(matplotlib.get_backend()).endswith("backend_inline"):
        try:
            importlib.import_module("matplotlib_inline.backend_inline")
        except ImportError:
            pass


def plot_grid(
    df: pd.DataFrame,
    path: str | os.PathLike | None = None,
    *,
    prompt: str | None = None,
    max_chars: int = 48,
    wrap: int = 22,
    vmax: float | None = None,
    cmap: str = CMAP,
    ax: Any = None,
    title: str | None = None,
    dpi: int = 150,
):
    """Layer x token grid of interpretations as a matplotlib figure.

    Rows are layers (layer 0 at the top), columns token positions labelled with the
    decoded token; each cell holds an excerpt of up to ``max_chars`` characters around the
    most relevant part of its interpretation and is coloured by its content relevancy
    (:func:`~selfie_tl.relevancy.content_relevancy`: mean relevancy over content tokens).
    Grey: no score (relevancy not computed, no content tokens, or no such pair); ``∅``
    marks an empty reply, ``␣`` a whitespace-only one. A figure made here explains the
    marks in a caption.

    Args:
        df: result of :func:`selfie_tl.interpret`.
        path: save the figure here; the suffix picks the format (``.png``, ``.svg``, ...).
        prompt: which prompt, when the frame holds several.
        max_chars: characters of each interpretation shown in its cell (0: all).
        wrap: line width (characters) inside a cell.
        vmax: top of the colour scale (default: the 95th percentile of the cell scores, at
            least :data:`~selfie_tl.viz.MIN_VMAX`; higher scores get the top colour).
        cmap: matplotlib colormap name.
        ax: draw on this Axes instead of a new figure.
        title: figure title (default: the prompt).
        dpi: resolution of raster output.

    Returns:
        The ``matplotlib.figure.Figure``. The Axes' image holds the score matrix (NaN for
        unscored and empty cells), ``ax.texts`` the cell texts.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"layer": [0, 5], "token": [1, 1], "token_decoded": ["cat"] * 2,
        ...                    "interpretation": ["a cat", "an animal"], "mean_relevancy": [0.1, 0.3]})
        >>> fig = plot_grid(df)
        >>> [t.get_text() for t in fig.axes[0].texts]
        ['a cat', 'an animal']
    """
    _inline_figures()
    import numpy as np
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    grid = grid_data(df, prompt)
    n_rows, n_cols = len(grid.layers), len(grid.tokens)
    values = np.full((n_rows, n_cols), np.nan)
    for i, layer in enumerate(grid.layers):
        for j, tok in enumerate(grid.tokens):
            values[i, j] = grid.value(layer, tok)
    top = scale_top(values.ravel().tolist(), vmax)

    own_figure = ax is None
    if own_figure:
        # A bare Figure (not pyplot) so that loops over many prompts do not pile up
        # global figures; Jupyter still displays it.
        fig = Figure(figsize=(1.6 + 2.3 * n_cols, 1.4 + 0.62 * n_rows), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure

    cm = colormap(cmap).with_extremes(bad=MISSING_BG)
    norm = Normalize(vmin=0.0, vmax=top, clip=True)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cm, norm=norm, aspect="auto")
    for i, layer in enumerate(grid.layers):
        for j, tok in enumerate(grid.tokens):
            cell = grid.cells.get((layer, tok))
            if cell is None:
                continue
            bg = relevancy_color(cell.score, top, cmap)
            text = textwrap.fill(cell_text(cell, max_chars), wrap) or EMPTY_MARK
            size = 7 if cell.kind == "text" else 12  # the marks must be seen
            # parse_math=False: a "$" in model output must not switch to mathtext.
            ax.text(
                j, i, text, ha="center", va="center", fontsize=size, color=text_color(bg), parse_math=False
            )
    ax.set_xticks(
        range(n_cols),
        [
            _token_axis_label(t, lab).replace("$", r"\$")
            for t, lab in zip(grid.tokens, grid.token_labels, strict=True)
        ],
        fontsize=8,
    )
    ax.set_yticks(range(n_rows), [str(layer) for layer in grid.layers], fontsize=8)
    ax.set_xlabel("token position")
    ax.set_ylabel("layer")
    ax.xaxis.set_ticks_position("top")
    ax.xaxis.set_label_position("top")
    ax.set_xticks(np.arange(-0.5, n_cols, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n_rows, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    heading = title if title is not None else (short(grid.prompt, 90) if grid.prompt else None)
    if heading:
        ax.set_title(heading.replace("$", r"\$"), fontsize=10)
    clipped = bool(np.nanmax(values, initial=0.0) > top) if np.isfinite(values).any() else False
    fig.colorbar(image, ax=ax, label="content relevancy", shrink=0.8, extend="max" if clipped else "neither")
    if own_figure:
        caption = (
            "colour: mean relevancy over content tokens (not whitespace, special tokens or repeats), "
            f"scale 0 to {top:.3g} ({SCALE_PERCENTILE:g}th percentile) · grey: no score · "
            f"{EMPTY_MARK} empty reply · {BLANK_MARK} whitespace-only reply"
        )
        width_chars = max(40, int(fig.get_figwidth() * 15))  # about 15 characters per inch at 7 pt
        fig.supxlabel(textwrap.fill(caption, width_chars), fontsize=7, color="#555")
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


__all__ = ["plot_grid"]
