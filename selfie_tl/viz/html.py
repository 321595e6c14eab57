"""HTML fragments: relevancy-shaded interpretations and the interactive grid.

Every piece of model text is HTML-escaped. Styles and script come from the package's
``assets/`` folder (``grid.css``, ``grid.js``) and are inlined, so a fragment works inside
Jupyter and in a standalone page without fetching anything.
"""

from __future__ import annotations

import functools
import html
import math
import uuid
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import pandas as pd

from selfie_tl._values import is_missing
from selfie_tl.relevancy import tokens_and_relevancy
from selfie_tl.viz.colors import CMAP, relevancy_color, scale_top, text_color
from selfie_tl.viz.grid import Grid, GridCell, grid_data, short, visible_token

_INTERP_STYLE = (
    "white-space:pre-wrap;line-height:1.7;font-family:system-ui,-apple-system,'Segoe UI',sans-serif"
)
_VIEW_ID = "__STL_VIEW_ID__"  # placeholder in grid.js for the fragment's element id


@functools.cache
def asset(name: str) -> str:
    """Text of ``selfie_tl/viz/assets/<name>`` (shipped as package data)."""
    return resources.files("selfie_tl.viz").joinpath("assets", name).read_text(encoding="utf-8")


def esc(text: Any) -> str:
    """HTML-escape ``text`` (quotes too, so it is safe inside attributes)."""
    return html.escape(str(text), quote=True)


def _shown_token(tok: str) -> str:
    # Newlines are drawn as a visible symbol, not a line break: interpretations often
    # start with blank lines, and a shaded newline would otherwise be invisible.
    return esc(tok).replace("\r\n", "\n").replace("\n", '<span class="stl-nl">↵</span>')


def shaded_tokens(
    tokens: Sequence[str], relevancy: Sequence[float] | None, vmax: float, cmap: str = CMAP
) -> str:
    """One ``<span class="stl-tok">`` per token, its background the token's relevancy."""
    parts = []
    for i, tok in enumerate(tokens):
        rel = relevancy[i] if relevancy is not None and i < len(relevancy) else None
        bg = relevancy_color(rel, vmax, cmap)
        tip = "relevancy n/a" if is_missing(rel) else f"relevancy {float(rel):.3f}"
        parts.append(
            f'<span class="stl-tok" style="background-color:{bg};color:{text_color(bg)}" '
            f'data-relevancy="{"" if is_missing(rel) else f"{float(rel):.6g}"}" title="{tip}">'
            f"{_shown_token(tok)}</span>"
        )
    return "".join(parts)


def interpretation_html(
    tokens: Sequence[str] | Mapping[str, Any],
    relevancy: Sequence[float] | None = None,
    *,
    vmax: float | None = None,
) -> str:
    """One interpretation as HTML, each generated token shaded by its relevancy.

    Args:
        tokens: the generated tokens, or a result row (``df.iloc[i]``) with
            ``generated_tokens`` and ``relevancy``.
        relevancy: one score per token (ignored when a row is given); ``None``: unshaded.
        vmax: top of the colour scale (default: the largest score, at least
            :data:`~selfie_tl.viz.MIN_VMAX`).

    Returns:
        A ``<span class="stl-interp">`` with one ``<span class="stl-tok">`` per token; each
        carries its score in ``data-relevancy`` and a ``title`` tooltip. Text is escaped.

    Example:
        >>> html = interpretation_html(["Mount", " Everest"], [0.02, 0.6])
        >>> html.count('class="stl-tok"'), 'data-relevancy="0.6"' in html
        (2, True)
    """
    tokens, rel = tokens_and_relevancy(tokens, relevancy)
    top = scale_top(rel or [], vmax)
    # Inline style: this fragment is often shown on its own, outside a grid's stylesheet.
    return f'<span class="stl-interp" style="{_INTERP_STYLE}">{shaded_tokens(tokens, rel, top)}</span>'


# --------------------------------------------------------------------------- grid


def legend(label: str, top: float, cmap: str) -> str:
    """A labelled colour bar from 0 to ``top``."""
    stops = ",".join(relevancy_color(top * i / 8, top, cmap) for i in range(9))
    return (
        f'<span>{esc(label)}: 0<span class="stl-bar" style="background:linear-gradient(to right,{stops})">'
        f"</span>{top:.3g}</span>"
    )


def _cell_detail(cell: GridCell, label: str, token_top: float, cmap: str = CMAP) -> str:
    mean = "n/a" if math.isnan(cell.mean_relevancy) else f"{cell.mean_relevancy:.3f}"
    head = (
        f'<div class="stl-meta">layer {cell.layer}, token {cell.token} {esc(label)} · mean relevancy {mean}'
    )
    if cell.count > 1:
        head += f" · first of {cell.count} rows for this cell"
    head += "</div>"
    if cell.tokens is not None:
        body = (
            f'<span class="stl-interp">{shaded_tokens(cell.tokens, cell.relevancy, token_top, cmap)}</span>'
        )
    else:
        body = f'<span class="stl-interp">{esc(cell.interpretation)}</span>'
    return head + body


def _token_scale(grid: Grid, vmax: float | None) -> float:
    return scale_top([r for c in grid.cells.values() for r in (c.relevancy or [])], vmax)


def grid_html(
    df: pd.DataFrame,
    *,
    prompt: str | None = None,
    max_chars: int = 48,
    vmax: float | None = None,
    token_vmax: float | None = None,
    cmap: str = CMAP,
    show_list: bool = True,
    list_open: bool = False,
) -> str:
    """The layer x token grid as a self-contained, interactive HTML fragment.

    Cells show the truncated interpretation on a background coloured by mean relevancy;
    hovering (or focusing) a cell shows the full interpretation, with each generated token
    shaded by its relevancy, in the panel under the grid, and clicking pins it. Each cell's
    ``title`` holds the full text too, so the grid stays useful where scripts do not run
    (e.g. a notebook on a code host). Styles and script are inline and scoped to this
    fragment, so several fragments can share a page.

    Args:
        df: result of :func:`selfie_tl.interpret`.
        prompt: which prompt, when the frame holds several.
        max_chars: characters shown in each cell (0: all).
        vmax: top of the cell colour scale (default: largest mean relevancy).
        token_vmax: top of the token colour scale (default: largest token relevancy).
        cmap: matplotlib colormap name.
        show_list: append a list of every interpretation, shaded (works without scripts).
        list_open: whether that list starts expanded.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"layer": [0], "token": [1], "interpretation": ["<b>hi</b>"]})
        >>> frag = grid_html(df)
        >>> "&lt;b&gt;hi&lt;/b&gt;" in frag and "<b>hi</b>" not in frag
        True
    """
    grid = grid_data(df, prompt)
    top = scale_top([c.mean_relevancy for c in grid.cells.values()], vmax)
    token_top = _token_scale(grid, token_vmax)
    view_id = f"stl-{uuid.uuid4().hex[:12]}"
    labels = dict(zip(grid.tokens, grid.token_labels, strict=True))

    out = [f'<div class="stl-view" id="{view_id}"><style>{asset("grid.css")}</style>']
    if grid.prompt is not None:
        out.append(f'<div class="stl-prompt"><b>Prompt:</b> <code>{esc(grid.prompt)}</code></div>')
    out.append('<table class="stl-grid"><thead><tr><th class="stl-corner">layer \\ token</th>')
    for tok in grid.tokens:
        lab = labels[tok]
        shown = f'{tok}\n"{visible_token(lab)}"' if lab else str(tok)
        out.append(f'<th class="stl-col" data-token="{tok}">{esc(shown)}</th>')
    out.append("</tr></thead><tbody>")
    for layer in grid.layers:
        out.append(f'<tr><th class="stl-row" data-layer="{layer}">{layer}</th>')
        for tok in grid.tokens:
            cell = grid.cells.get((layer, tok))
            if cell is None:
                out.append(f'<td class="stl-empty" data-layer="{layer}" data-token="{tok}"></td>')
                continue
            bg = relevancy_color(cell.mean_relevancy, top, cmap)
            mean_attr = "" if math.isnan(cell.mean_relevancy) else f"{cell.mean_relevancy:.6g}"
            label = f'"{visible_token(labels[tok])}"' if labels[tok] else ""
            out.append(
                f'<td class="stl-cell" tabindex="0" data-layer="{layer}" data-token="{tok}" '
                f'data-mean-relevancy="{mean_attr}" style="background-color:{bg};color:{text_color(bg)}" '
                f'title="{esc(cell.interpretation)}">{esc(short(cell.interpretation, max_chars)) or "∅"}'
                f'<div class="stl-full">{_cell_detail(cell, label, token_top, cmap)}</div></td>'
            )
        out.append("</tr>")
    out.append("</tbody></table>")
    out.append(
        f'<div class="stl-legend">{legend("cell: mean relevancy", top, cmap)}'
        f"{legend('token: relevancy', token_top, cmap)}</div>"
    )
    out.append(
        '<div class="stl-detail"><span class="stl-meta">Hover over a cell to read its full '
        "interpretation; click to pin it.</span></div>"
    )
    if show_list:
        out.append(
            f'<details class="stl-list"{" open" if list_open else ""}><summary>All interpretations '
            f"({len(grid.cells)})</summary><ul>"
        )
        for layer in grid.layers:
            for tok in grid.tokens:
                cell = grid.cells.get((layer, tok))
                if cell is not None:
                    label = f'"{visible_token(labels[tok])}"' if labels[tok] else ""
                    out.append(f"<li>{_cell_detail(cell, label, token_top, cmap)}</li>")
        out.append("</ul></details>")
    out.append(f"<script>{asset('grid.js').replace(_VIEW_ID, view_id)}</script></div>")
    return "".join(out)


__all__ = ["grid_html", "interpretation_html"]
