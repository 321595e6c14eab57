"""Component x layer pictures, drawn by :mod:`selfie_tl.viz`.

:mod:`selfie_tl.viz` draws a layer x token grid. For components, :func:`component_grid_frame`
puts one column per component of a layer (``H0 .. H8``, then ``attn``, ``MLP``, neurons,
sources) in the ``token`` axis, with its short label in ``token_decoded``;
:func:`plot_components` and :func:`components_html` are :func:`selfie_tl.viz.plot_grid` and
:func:`selfie_tl.viz.grid_html` on that frame with the axes named for components. Rows are
block indices; cells are coloured by content relevancy as in every SelfIE grid, and the
HTML version shows each full interpretation on hover.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from selfie_tl.circuits.writes import KINDS, Component, parse_component
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.viz import grid_html, plot_grid

_CORNER = "token →\nlayer ↓"


def _order(c: Component) -> tuple[int, int, int]:
    return (
        KINDS.index(c.kind),
        c.index if c.index is not None else -1,
        c.source if c.source is not None else -1,
    )


def component_grid_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of an :func:`~selfie_tl.circuits.interpret_components` result laid out for
    :mod:`selfie_tl.viz`: ``token`` is the component's column, ``token_decoded`` its label
    without the layer (``"H6"``, ``"MLP"``, ``"N1841"``, ``"H6 src3"``); the destination
    position moves to ``position``.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"layer": [3, 3, 4], "token": [9, 9, 9], "interpretation": ["a", "b", "c"],
        ...                    "component": ["L3 MLP", "L3H1", "L4H0"]})
        >>> component_grid_frame(df)[["layer", "token", "token_decoded"]].values.tolist()
        [[3, 2, 'MLP'], [3, 1, 'H1'], [4, 0, 'H0']]
    """
    if not isinstance(df, pd.DataFrame) or "component" not in df.columns:
        raise InvalidArgumentError(
            "expected the DataFrame of interpret_components (with a 'component' column)"
        )
    comps = [parse_component(label) for label in df["component"]]
    columns = sorted({(_order(c), c.short) for c in comps})
    index = {short: i for i, (_, short) in enumerate(columns)}
    out = df.copy()
    if "token" in out.columns:
        out["position"] = out["token"]
    out["token"] = [index[c.short] for c in comps]
    out["token_decoded"] = [c.short for c in comps]
    return out


def _title(df: pd.DataFrame, title: str | None) -> str | None:
    if title is not None:
        return title
    if "prompt" in df.columns and "token_decoded" in df.columns and len(df):
        return f"{df['prompt'].iloc[0]!s}   → writes at {df['token_decoded'].iloc[0]!r}"
    return None


def plot_components(
    df: pd.DataFrame, path: str | os.PathLike | None = None, *, title: str | None = None, **kwargs: Any
):
    """Component x layer grid of interpretations (matplotlib), via :func:`selfie_tl.viz.plot_grid`.

    Args:
        df: result of :func:`~selfie_tl.circuits.interpret_components` (one prompt).
        path: save the figure here (suffix picks the format).
        title: figure title (default: the prompt and the destination token).
        **kwargs: passed to :func:`~selfie_tl.viz.plot_grid` (``max_chars``, ``wrap``,
            ``vmax``, ``cmap``, ``ax``, ``dpi``).

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"layer": [3, 3], "token": [9, 9], "interpretation": ["a", "b"],
        ...                    "component": ["L3H0", "L3 MLP"], "mean_relevancy": [0.1, 0.2]})
        >>> fig = plot_components(df)
        >>> [t.get_text() for t in fig.axes[0].get_xticklabels()], fig.axes[0].get_xlabel()
        (['H0', 'MLP'], 'component')
    """
    frame = component_grid_frame(df)
    fig = plot_grid(frame, None, title=_title(df, title), **kwargs)
    ax = kwargs.get("ax") or fig.axes[0]
    labels = frame.drop_duplicates("token").sort_values("token")["token_decoded"].tolist()
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("component")
    ax.set_ylabel("layer (block)")
    if path is not None:
        fig.savefig(path, dpi=kwargs.get("dpi", 150))
    return fig


def components_html(df: pd.DataFrame, **kwargs: Any) -> str:
    """Component x layer grid as interactive HTML, via :func:`selfie_tl.viz.grid_html`.

    Hover over (or click) a cell to read the whole interpretation, each token shaded by
    its relevancy. ``kwargs`` go to :func:`~selfie_tl.viz.grid_html`.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"layer": [3], "token": [9], "interpretation": ["a"], "component": ["L3H0"]})
        >>> "component →" in components_html(df)
        True
    """
    html = grid_html(component_grid_frame(df), **kwargs)
    return html.replace(_CORNER, "component →\nlayer ↓", 1)


__all__ = ["component_grid_frame", "components_html", "plot_components"]
