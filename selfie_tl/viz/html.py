"""HTML fragments: relevancy-shaded interpretations and the interactive grid.

Every piece of model text is HTML-escaped (or, in the grid's JSON data block, has ``<``,
``>`` and ``&`` escaped, and goes into the page through ``textContent``). Styles and script
come from the package's ``assets/`` folder (``grid.css``, ``grid.js``) and are inlined, so a
fragment works inside Jupyter and in a standalone page without fetching anything.
"""

from __future__ import annotations

import functools
import html
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import pandas as pd

from selfie_tl._values import is_missing
from selfie_tl.relevancy import tokens_and_relevancy
from selfie_tl.viz.colors import (
    CMAP,
    MISSING_BG,
    SCALE_PERCENTILE,
    palette,
    relevancy_color,
    scale_top,
    text_color,
)
from selfie_tl.viz.grid import BLANK_MARK, EMPTY_MARK, Grid, GridCell, cell_text, grid_data, visible_token

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
        vmax: top of the colour scale (default: the 95th percentile of the scores, at
            least :data:`~selfie_tl.viz.MIN_VMAX`).

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

LAYER_COLUMN_EM = 4.0
"""Width of the layer column (em)."""

CELL_COLUMN_EM = 9.0
"""Width of every token column (em): the table has a fixed layout and width."""

_SKIP_CODES = {"whitespace": "w", "special": "s", "repeat": "r", "content": "."}


def _num(value: float, digits: int = 3) -> float | None:
    return None if is_missing(value) or not math.isfinite(value) else float(f"{value:.{digits}g}")


def _utf16_len(text: str) -> int:
    # JavaScript slices strings in UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2


def _cell_record(cell: GridCell) -> dict[str, Any]:
    record: dict[str, Any] = {
        "l": cell.layer, "t": cell.token, "kind": cell.kind, "score": _num(cell.score),
        "mean": _num(cell.mean_relevancy),
    }  # fmt: skip
    if cell.count > 1:
        record["n"] = cell.count
    if cell.tokens is None:
        record["text"] = cell.interpretation
        return record
    # One copy of the text: the tokens joined, cut back into tokens by their lengths.
    record["text"] = "".join(cell.tokens)
    record["len"] = [_utf16_len(t) for t in cell.tokens]
    if cell.relevancy is not None:
        record["rel"] = [_num(r) for r in cell.relevancy]
    kinds = cell.token_kinds or []
    if any(k != "content" for k in kinds):
        record["skip"] = "".join(_SKIP_CODES[k] for k in kinds)
    return record


def json_script(data: Any, cls: str) -> str:
    """``data`` as an inert ``<script type="application/json">`` (``<``, ``>``, ``&`` escaped)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" class="{cls}">{text}</script>'


def legend(label: str, top: float, cmap: str) -> str:
    """A labelled colour bar from 0 to ``top`` (values above ``top`` get the top colour)."""
    stops = ",".join(relevancy_color(top * i / 8, top, cmap) for i in range(9))
    return (
        f'<span>{esc(label)}: 0<span class="stl-bar" style="background:linear-gradient(to right,{stops})">'
        f"</span>≥ {top:.3g}</span>"
    )


def _legend_block(top: float, token_top: float, cmap: str) -> str:
    def swatch(style: str, mark: str, text: str) -> str:
        return f'<span><span class="stl-swatch" style="{style}">{mark}</span>{esc(text)}</span>'

    grey = f"background:{MISSING_BG}"
    return (
        '<div class="stl-legend">'
        f"{legend('cell: content relevancy', top, cmap)}{legend('token: relevancy', token_top, cmap)}"
        f'<span class="stl-meta">scales: 0 to the {SCALE_PERCENTILE:g}th percentile</span>'
        f"{swatch(grey, '', 'grey: no score (relevancy not computed, or no content tokens)')}"
        f"{swatch(grey, EMPTY_MARK, 'empty reply (nothing generated)')}"
        f"{swatch(grey, BLANK_MARK, 'whitespace-only reply')}"
        f'<span><span class="stl-swatch stl-none-swatch" style="background:repeating-linear-gradient(45deg,'
        f'#fff 0 4px,#e4e4e4 4px 8px)"></span>not interpreted</span>'
        '<span><span class="stl-tok stl-skip" style="background:#fff">abc</span> faded token: not in the '
        "score (whitespace, special token, repetition)</span>"
        '<span><span class="stl-swatch" style="outline:3px solid #1f5fbf;outline-offset:-3px"></span>'
        "pinned (click again or Esc)</span>"
        "</div>"
    )


def _columns(grid: Grid) -> dict[int, str]:
    return {t: visible_token(lab) for t, lab in zip(grid.tokens, grid.token_labels, strict=True) if lab}


def grid_fragment(
    grid: Grid,
    *,
    top: float,
    token_top: float,
    max_chars: int = 48,
    cmap: str = CMAP,
    show_list: bool = True,
    list_open: bool = False,
) -> str:
    """The HTML of :func:`grid_html` for a ready :class:`~selfie_tl.viz.grid.Grid` and scales."""
    view_id = f"stl-{uuid.uuid4().hex[:12]}"
    cols = _columns(grid)
    order = [(layer, tok) for layer in grid.layers for tok in grid.tokens if (layer, tok) in grid.cells]
    index = {key: i for i, key in enumerate(order)}

    out = [f'<div class="stl-view" id="{view_id}"><style>{asset("grid.css")}</style>']
    if grid.prompt is not None:
        out.append(
            f'<div class="stl-prompt"><b>Prompt</b><div class="stl-pre">{esc(grid.prompt)}</div></div>'
        )
    out.append(_legend_block(top, token_top, cmap))
    width = LAYER_COLUMN_EM + CELL_COLUMN_EM * len(grid.tokens)
    out.append(
        f'<div class="stl-scroll"><table class="stl-grid" style="width:{width:g}em">'
        f'<colgroup><col style="width:{LAYER_COLUMN_EM:g}em">'
        f'<col span="{len(grid.tokens)}" style="width:{CELL_COLUMN_EM:g}em"></colgroup>'
        '<thead><tr><th class="stl-corner">token →\nlayer ↓</th>'
    )
    for tok in grid.tokens:
        shown = f'{tok}\n"{cols[tok]}"' if tok in cols else str(tok)
        out.append(f'<th class="stl-col" data-token="{tok}">{esc(shown)}</th>')
    out.append("</tr></thead><tbody>")
    for layer in grid.layers:
        out.append(f'<tr><th class="stl-row" data-layer="{layer}">{layer}</th>')
        for tok in grid.tokens:
            cell = grid.cells.get((layer, tok))
            if cell is None:
                out.append(f'<td class="stl-none" data-layer="{layer}" data-token="{tok}"></td>')
                continue
            bg = relevancy_color(cell.score, top, cmap)
            score = "" if math.isnan(cell.score) else f"{cell.score:.6g}"
            text = esc(cell_text(cell, max_chars))
            if cell.kind != "text":
                text = f'<span class="stl-mark">{text}</span>'
            out.append(
                f'<td class="stl-cell" tabindex="0" data-i="{index[(layer, tok)]}" data-layer="{layer}" '
                f'data-token="{tok}" data-kind="{cell.kind}" data-score="{score}" '
                f'style="background:{bg};color:{text_color(bg)}"><div class="stl-clip">{text}</div></td>'
            )
        out.append("</tr>")
    out.append("</tbody></table></div>")
    out.append(
        '<div class="stl-detail" aria-live="polite"><span class="stl-meta">Hover over a cell to read its full '
        "interpretation, each token shaded by its relevancy; click (or Enter) to pin it, Esc to unpin."
        "</span></div>"
    )
    if show_list:
        out.append(
            f'<details class="stl-list"{" open" if list_open else ""}><summary>All interpretations '
            f"({len(order)})</summary><ol></ol></details>"
        )
    colors, ink = palette(cmap)
    data = {
        "cells": [_cell_record(grid.cells[key]) for key in order],
        "cols": {str(t): lab for t, lab in cols.items()},
        "tokenTop": token_top,
        "palette": colors,
        "ink": ink,
        "missing": MISSING_BG,
        "marks": {"empty": EMPTY_MARK, "blank": BLANK_MARK},
    }
    out.append(json_script(data, "stl-data"))
    out.append(f"<script>{asset('grid.js').replace(_VIEW_ID, view_id)}</script></div>")
    return "".join(out)


def token_scale(grids: Sequence[Grid], vmax: float | None = None) -> float:
    """Top of the token colour scale over the generated tokens of ``grids``."""
    return scale_top([r for g in grids for c in g.cells.values() for r in (c.relevancy or [])], vmax)


def cell_scale(grids: Sequence[Grid], vmax: float | None = None) -> float:
    """Top of the cell colour scale over the cell scores of ``grids``."""
    return scale_top([c.score for g in grids for c in g.cells.values()], vmax)


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

    Each cell shows an excerpt around the most relevant part of its interpretation (or
    ``∅`` for an empty reply, ``␣`` for a whitespace-only one) on a background coloured by
    its content relevancy (:func:`~selfie_tl.relevancy.content_relevancy`). Hovering or
    focusing a cell shows the full interpretation, each generated token shaded by its
    relevancy, in a panel docked to the bottom of the window; clicking (or Enter) pins it,
    clicking again or Escape unpins. The header row and the layer column stay in view
    while the grid scrolls. Every interpretation is in the fragment once, in a JSON block
    that the script renders from; styles and script are inline and scoped to this
    fragment, so several fragments can share a page.

    Args:
        df: result of :func:`selfie_tl.interpret`.
        prompt: which prompt, when the frame holds several.
        max_chars: characters shown in each cell (0: all).
        vmax: top of the cell colour scale (default: 95th percentile of the cell scores).
        token_vmax: top of the token colour scale (default: 95th percentile of the token
            relevancies).
        cmap: matplotlib colormap name.
        show_list: add an expandable list of every interpretation, shaded.
        list_open: whether that list starts expanded.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"layer": [0], "token": [1], "interpretation": ["<b>hi</b>"]})
        >>> frag = grid_html(df)
        >>> "&lt;b&gt;hi&lt;/b&gt;" in frag and "<b>hi</b>" not in frag
        True
    """
    grid = grid_data(df, prompt)
    return grid_fragment(
        grid,
        top=cell_scale([grid], vmax),
        token_top=token_scale([grid], token_vmax),
        max_chars=max_chars,
        cmap=cmap,
        show_list=show_list,
        list_open=list_open,
    )


__all__ = ["grid_html", "interpretation_html"]
