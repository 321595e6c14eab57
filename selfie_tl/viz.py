"""Pictures of SelfIE results: a layer x token grid, relevancy-shaded text, HTML reports.

Everything here reads the DataFrame returned by :func:`selfie_tl.interpret` (columns
``prompt, layer, token, token_decoded, interpretation, relevancy, mean_relevancy,
generated_tokens``); only ``layer``, ``token`` and ``interpretation`` are required, the
rest make the pictures richer when present.

* :func:`plot_grid` draws the grid with matplotlib (cell colour = mean relevancy) and saves
  PNG/SVG/PDF;
* :func:`grid_html` is the same grid as an HTML fragment: hover or click a cell to see the
  full interpretation with each generated token shaded by its relevancy;
* :func:`interpretation_html` renders one interpretation with per-token shading and
  :func:`relevant_spans` returns the stretches whose relevancy exceeds a threshold;
* :func:`show` wraps a result for Jupyter (``_repr_html_``) and :func:`write_report`
  writes a standalone page (inline CSS/JS, nothing fetched from the network).

Colours: relevancy is ``|p(token | embedding) - p(token | no embedding)|`` in [0, 1], but
typical values are small, so by default the colour scale runs from 0 to the largest value
in the data (at least :data:`MIN_VMAX`, so that pure noise is never drawn saturated). Cells
(mean relevancy) and tokens (per-token relevancy) have separate scales, both shown in the
legend. Every piece of text is HTML-escaped: interpretations are model output.
"""

from __future__ import annotations

import dataclasses
import html
import importlib
import math
import os
import sys
import textwrap
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.files import check_output_path, write_text

GRID_COLUMNS = ("layer", "token", "interpretation")
"""Columns every function here needs."""

CMAP = "YlOrRd"
"""Matplotlib colormap shared by the figure and the HTML (light = low relevancy)."""

MIN_VMAX = 0.05
"""Smallest top of the default colour scale."""

_MISSING_BG = "#eeeeee"


# --------------------------------------------------------------------------- checks


def _check_frame(df: Any, columns: Sequence[str] = GRID_COLUMNS) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise InvalidArgumentError(
            f"expected the pandas DataFrame returned by selfie_tl.interpret, got {type(df).__name__}"
        )
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InvalidArgumentError(
            f"DataFrame is missing column(s) {missing}; it has {list(df.columns)}. "
            "Pass the result of selfie_tl.interpret (or a frame with at least "
            f"{list(columns)})."
        )
    if len(df) == 0:
        raise InvalidArgumentError("DataFrame has no rows; nothing to draw")
    return df


def _select_prompt(df: pd.DataFrame, prompt: str | None) -> pd.DataFrame:
    """Rows of one prompt: a grid shows a single prompt's layers and tokens."""
    if "prompt" not in df.columns:
        if prompt is not None:
            raise InvalidArgumentError("prompt= given but the DataFrame has no 'prompt' column")
        return df
    prompts = list(dict.fromkeys(df["prompt"]))
    if prompt is None:
        if len(prompts) > 1:
            raise InvalidArgumentError(
                f"DataFrame holds {len(prompts)} prompts; a grid shows one. Pass prompt= one of "
                f"{[_short(p, 60) for p in prompts[:5]]}{' ...' if len(prompts) > 5 else ''}, "
                "or use write_report, which draws one grid per prompt"
            )
        return df
    if prompt not in prompts:
        raise InvalidArgumentError(f"prompt {_short(prompt, 60)!r} is not in the DataFrame")
    return df[df["prompt"] == prompt]


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _float_or_nan(value: Any) -> float:
    return float("nan") if _is_missing(value) else float(value)


def _as_list(value: Any) -> list | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return list(value)


def _mean_relevancy(row: Mapping[str, Any]) -> float:
    if "mean_relevancy" in row and not _is_missing(row["mean_relevancy"]):
        return float(row["mean_relevancy"])
    rel = _as_list(row.get("relevancy"))
    if rel:
        return sum(float(r) for r in rel) / len(rel)
    return float("nan")


def _short(text: str, max_chars: int) -> str:
    text = " ".join(str(text).split())
    if max_chars > 0 and len(text) > max_chars:
        return text[: max(1, max_chars - 1)].rstrip() + "…"
    return text


def _visible_token(tok: str) -> str:
    """A token label in which leading/trailing whitespace and newlines can be seen."""
    return str(tok).replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


# --------------------------------------------------------------------------- colour


def _cmap(name: str = CMAP):
    import matplotlib

    return matplotlib.colormaps[name]


def _scale_top(values: Sequence[float], vmax: float | None) -> float:
    if vmax is not None:
        if not (isinstance(vmax, int | float) and math.isfinite(vmax) and vmax > 0):
            raise InvalidArgumentError(f"vmax must be a positive finite number, got {vmax!r}")
        return float(vmax)
    finite = [v for v in values if not _is_missing(v)]
    return max([MIN_VMAX, *finite])


def relevancy_color(value: float | None, vmax: float = 1.0, cmap: str = CMAP) -> str:
    """Hex colour of a relevancy value on a 0..``vmax`` scale (values are clipped).

    Missing values (``None``/NaN, e.g. ``relevancy=False``) get a neutral grey.

    Example:
        >>> relevancy_color(0.0), relevancy_color(1.0), relevancy_color(None)
        ('#ffffcc', '#800026', '#eeeeee')
    """
    from matplotlib.colors import to_hex

    if _is_missing(value):
        return _MISSING_BG
    frac = min(max(float(value) / vmax, 0.0), 1.0)
    return to_hex(_cmap(cmap)(frac))


def _text_color(background: str) -> str:
    """Black or white, whichever reads better on ``background`` (relative luminance)."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(background)
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#000000" if lum > 0.45 else "#ffffff"


# --------------------------------------------------------------------------- grid data


@dataclass(frozen=True)
class GridCell:
    """One (layer, token) cell of the grid.

    Attributes:
        layer, token: where the embedding was read.
        interpretation: the full interpretation text.
        mean_relevancy: cell colour value (NaN when relevancy was not computed).
        tokens, relevancy: generated tokens and their relevancy (may be ``None``).
        count: rows of the DataFrame with this (layer, token); the grid shows the first.
    """

    layer: int
    token: int
    interpretation: str
    mean_relevancy: float
    tokens: list[str] | None
    relevancy: list[float] | None
    count: int = 1


@dataclass(frozen=True)
class Grid:
    """The layer x token table behind :func:`plot_grid` and :func:`grid_html`.

    Attributes:
        prompt: the prompt (``None`` if the frame has no prompt column).
        layers: row labels, ascending.
        tokens: column positions, ascending.
        token_labels: decoded token per column (``""`` when unknown).
        cells: ``{(layer, token): GridCell}``; absent pairs are empty cells.
    """

    prompt: str | None
    layers: list[int]
    tokens: list[int]
    token_labels: list[str]
    cells: dict[tuple[int, int], GridCell]

    def value(self, layer: int, token: int) -> float:
        cell = self.cells.get((layer, token))
        return cell.mean_relevancy if cell else float("nan")


def grid_data(df: pd.DataFrame, prompt: str | None = None) -> Grid:
    """Arrange one prompt's rows as a layer x token table.

    Args:
        df: result of :func:`selfie_tl.interpret`.
        prompt: which prompt, when the frame holds several.

    Raises:
        InvalidArgumentError: not a DataFrame, missing columns, no rows, several prompts
            and no ``prompt``.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"layer": [0, 3], "token": [2, 2], "interpretation": ["a", "b"]})
        >>> g = grid_data(df)
        >>> g.layers, g.tokens, g.cells[(3, 2)].interpretation
        ([0, 3], [2], 'b')
    """
    df = _select_prompt(_check_frame(df), prompt)
    cells: dict[tuple[int, int], GridCell] = {}
    labels: dict[int, str] = {}
    counts: dict[tuple[int, int], int] = {}
    for row in df.to_dict("records"):
        try:
            key = (int(row["layer"]), int(row["token"]))
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"layer and token must be integers, got {row['layer']!r}, {row['token']!r}"
            ) from exc
        counts[key] = counts.get(key, 0) + 1
        if "token_decoded" in row and row["token_decoded"] is not None:
            labels.setdefault(key[1], str(row["token_decoded"]))
        if key in cells:
            continue
        rel = _as_list(row.get("relevancy"))
        toks = _as_list(row.get("generated_tokens"))
        cells[key] = GridCell(
            layer=key[0],
            token=key[1],
            interpretation="" if row["interpretation"] is None else str(row["interpretation"]),
            mean_relevancy=_mean_relevancy(row),
            tokens=[str(t) for t in toks] if toks is not None else None,
            relevancy=[_float_or_nan(r) for r in rel] if rel is not None else None,
        )
    cells = {k: dataclasses.replace(c, count=counts[k]) for k, c in cells.items()}
    layers = sorted({k[0] for k in cells})
    tokens = sorted({k[1] for k in cells})
    prompt_text = str(df["prompt"].iloc[0]) if "prompt" in df.columns else None
    return Grid(prompt_text, layers, tokens, [labels.get(t, "") for t in tokens], cells)


def _token_axis_label(position: int, decoded: str) -> str:
    return f'{position}\n"{_visible_token(decoded)}"' if decoded else str(position)


# --------------------------------------------------------------------------- matplotlib


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
    decoded token; each cell holds the interpretation truncated to ``max_chars`` and is
    coloured by its mean relevancy (grey: not computed or no such pair).

    Args:
        df: result of :func:`selfie_tl.interpret`.
        path: save the figure here; the suffix picks the format (``.png``, ``.svg``, ...).
        prompt: which prompt, when the frame holds several.
        max_chars: characters of each interpretation shown in its cell (0: all).
        wrap: line width (characters) inside a cell.
        vmax: top of the colour scale (default: the largest mean relevancy, at least
            :data:`MIN_VMAX`).
        cmap: matplotlib colormap name.
        ax: draw on this Axes instead of a new figure.
        title: figure title (default: the prompt).
        dpi: resolution of raster output.

    Returns:
        The ``matplotlib.figure.Figure``. The Axes' image holds the mean relevancy matrix
        (NaN for empty cells), ``ax.texts`` the cell texts.

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
    top = _scale_top(values.ravel().tolist(), vmax)

    if ax is None:
        # A bare Figure (not pyplot) so that loops over many prompts do not pile up
        # global figures; Jupyter still displays it.
        fig = Figure(figsize=(1.6 + 2.3 * n_cols, 1.4 + 0.62 * n_rows), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure

    colormap = _cmap(cmap).with_extremes(bad=_MISSING_BG)
    norm = Normalize(vmin=0.0, vmax=top, clip=True)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colormap, norm=norm, aspect="auto")
    for i, layer in enumerate(grid.layers):
        for j, tok in enumerate(grid.tokens):
            cell = grid.cells.get((layer, tok))
            if cell is None:
                continue
            bg = relevancy_color(cell.mean_relevancy, top, cmap)
            text = textwrap.fill(_short(cell.interpretation, max_chars), wrap) or "∅"
            # parse_math=False: a "$" in model output must not switch to mathtext.
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=_text_color(bg), parse_math=False)
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
    heading = title if title is not None else (_short(grid.prompt, 90) if grid.prompt else None)
    if heading:
        ax.set_title(heading.replace("$", r"\$"), fontsize=10)
    fig.colorbar(image, ax=ax, label="mean relevancy", shrink=0.8)
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


# --------------------------------------------------------------------------- HTML pieces


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _shown_token(tok: str) -> str:
    # Newlines are drawn as a visible symbol, not a line break: interpretations often
    # start with blank lines, and a shaded newline would otherwise be invisible.
    return _esc(tok).replace("\r\n", "\n").replace("\n", '<span class="stl-nl">↵</span>')


def _shaded_tokens(
    tokens: Sequence[str], relevancy: Sequence[float] | None, vmax: float, cmap: str = CMAP
) -> str:
    parts = []
    for i, tok in enumerate(tokens):
        rel = relevancy[i] if relevancy is not None and i < len(relevancy) else None
        bg = relevancy_color(rel, vmax, cmap)
        tip = "relevancy n/a" if _is_missing(rel) else f"relevancy {float(rel):.3f}"
        parts.append(
            f'<span class="stl-tok" style="background-color:{bg};color:{_text_color(bg)}" '
            f'data-relevancy="{"" if _is_missing(rel) else f"{float(rel):.6g}"}" title="{tip}">{_shown_token(tok)}</span>'
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
            :data:`MIN_VMAX`).

    Returns:
        A ``<span class="stl-interp">`` with one ``<span class="stl-tok">`` per token; each
        carries its score in ``data-relevancy`` and a ``title`` tooltip. Text is escaped.

    Example:
        >>> html = interpretation_html(["Mount", " Everest"], [0.02, 0.6])
        >>> html.count('class="stl-tok"'), 'data-relevancy="0.6"' in html
        (2, True)
    """
    if hasattr(tokens, "_asdict"):  # a row from df.itertuples()
        tokens = tokens._asdict()
    if isinstance(tokens, (Mapping, pd.Series)):
        row = tokens
        if "generated_tokens" not in row:
            raise InvalidArgumentError("row has no 'generated_tokens'; pass tokens and relevancy instead")
        tokens = _as_list(row["generated_tokens"]) or []
        relevancy = _as_list(row.get("relevancy"))
    if isinstance(tokens, str):
        raise InvalidArgumentError("tokens must be a list of token strings, not one string")
    tokens = [str(t) for t in tokens]
    rel = None if relevancy is None else [_float_or_nan(r) for r in relevancy]
    if rel is not None and len(rel) != len(tokens):
        raise InvalidArgumentError(f"{len(tokens)} tokens but {len(rel)} relevancy scores; they must align")
    top = _scale_top(rel or [], vmax)
    # Inline style: this fragment is often shown on its own, outside a grid's stylesheet.
    return f'<span class="stl-interp" style="{_INTERP_STYLE}">{_shaded_tokens(tokens, rel, top)}</span>'


@dataclass(frozen=True)
class RelevantSpan:
    """A run of consecutive generated tokens whose relevancy exceeds a threshold.

    Attributes:
        start: index of the first token.
        end: one past the last token.
        text: the tokens joined.
        max_relevancy, mean_relevancy: over the span.
    """

    start: int
    end: int
    text: str
    max_relevancy: float
    mean_relevancy: float


def relevant_spans(
    tokens: Sequence[str] | Mapping[str, Any],
    relevancy: Sequence[float] | None = None,
    threshold: float = 0.1,
) -> list[RelevantSpan]:
    """The stretches of an interpretation that came from the embedding.

    A token belongs to a span when its relevancy is strictly greater than ``threshold``;
    neighbouring such tokens merge into one span. Tokens with low relevancy are what the
    interpretation prompt would have produced anyway.

    Args:
        tokens: generated tokens, or a result row with ``generated_tokens`` and ``relevancy``.
        relevancy: one score per token (ignored when a row is given).
        threshold: scores above it count as relevant.

    Raises:
        InvalidArgumentError: no relevancy (interpret ran with ``relevancy=False``) or
            lengths that do not match.

    Example:
        >>> spans = relevant_spans(["The", " Himal", "ayas", " are"], [0.0, 0.5, 0.4, 0.05], 0.1)
        >>> [(s.start, s.end, s.text) for s in spans]
        [(1, 3, ' Himalayas')]
    """
    if hasattr(tokens, "_asdict"):  # a row from df.itertuples()
        tokens = tokens._asdict()
    if isinstance(tokens, (Mapping, pd.Series)):
        row = tokens
        if "generated_tokens" not in row or "relevancy" not in row:
            raise InvalidArgumentError("row needs 'generated_tokens' and 'relevancy' columns")
        tokens, relevancy = _as_list(row["generated_tokens"]) or [], _as_list(row["relevancy"])
    if isinstance(tokens, str):
        raise InvalidArgumentError("tokens must be a list of token strings, not one string")
    if relevancy is None:
        raise InvalidArgumentError("no relevancy scores; run interpret with relevancy=True")
    tokens, rel = [str(t) for t in tokens], [_float_or_nan(r) for r in relevancy]
    if len(rel) != len(tokens):
        raise InvalidArgumentError(f"{len(tokens)} tokens but {len(rel)} relevancy scores; they must align")
    if not isinstance(threshold, int | float) or math.isnan(threshold):
        raise InvalidArgumentError(f"threshold must be a number, got {threshold!r}")
    spans, start = [], None
    for i, r in enumerate([*rel, float("nan")]):  # NaN sentinel closes a trailing span
        above = not math.isnan(r) and r > threshold
        if above and start is None:
            start = i
        elif not above and start is not None:
            chunk = rel[start:i]
            spans.append(
                RelevantSpan(start, i, "".join(tokens[start:i]), max(chunk), sum(chunk) / len(chunk))
            )
            start = None
    return spans


_INTERP_STYLE = (
    "white-space:pre-wrap;line-height:1.7;font-family:system-ui,-apple-system,'Segoe UI',sans-serif"
)

_CSS = """
.stl-view{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;font-size:13px;color:#222;max-width:100%}
.stl-view .stl-prompt{margin:4px 0 8px}
.stl-view table.stl-grid{border-collapse:separate;border-spacing:2px;table-layout:fixed}
.stl-view .stl-grid th{font-weight:600;padding:3px 6px;background:#f6f6f6;white-space:pre;font-size:12px}
.stl-view .stl-grid th.stl-corner{background:none;color:#666;font-weight:400}
.stl-view .stl-grid td.stl-cell{padding:4px 6px;width:11em;max-width:14em;vertical-align:top;cursor:pointer;
 font-size:12px;line-height:1.25;border:2px solid transparent;border-radius:3px}
.stl-view .stl-grid td.stl-cell:hover,.stl-view .stl-grid td.stl-cell:focus{border-color:#333;outline:none}
.stl-view .stl-grid td.stl-pinned{border-color:#1f5fbf}
.stl-view .stl-grid td.stl-empty{background:#fafafa}
.stl-view .stl-full{display:none}
.stl-view .stl-detail{margin:10px 0;padding:8px 10px;border:1px solid #ccc;border-radius:4px;min-height:2.5em;
 background:#fff}
.stl-view .stl-interp{white-space:pre-wrap;line-height:1.7}
.stl-view .stl-tok{border-radius:2px;padding:1px 0}
.stl-view .stl-nl{opacity:.55;font-size:90%}
.stl-view .stl-legend{display:flex;gap:18px;align-items:center;font-size:11px;color:#555;margin:6px 0}
.stl-view .stl-bar{display:inline-block;width:120px;height:10px;vertical-align:middle;margin:0 4px;
 border:1px solid #ccc}
.stl-view .stl-meta{color:#666;font-size:11px}
.stl-view details.stl-list li{margin:4px 0}
"""

_JS = """
(function(){
 var root=document.getElementById("%(id)s"); if(!root) return;
 var detail=root.querySelector(".stl-detail"), pinned=null, initial=detail.innerHTML;
 function show(cell){detail.innerHTML=cell.querySelector(".stl-full").innerHTML;}
 root.querySelectorAll("td.stl-cell").forEach(function(cell){
  cell.addEventListener("mouseenter",function(){if(!pinned) show(cell);});
  cell.addEventListener("focus",function(){if(!pinned) show(cell);});
  cell.addEventListener("mouseleave",function(){if(!pinned) detail.innerHTML=initial;});
  cell.addEventListener("click",function(){
   if(pinned) pinned.classList.remove("stl-pinned");
   if(pinned===cell){pinned=null; show(cell); return;}
   pinned=cell; cell.classList.add("stl-pinned"); show(cell);});
  cell.addEventListener("keydown",function(e){if(e.key==="Enter"||e.key===" "){e.preventDefault();cell.click();}});
 });
})();
"""


def _legend(label: str, top: float, cmap: str) -> str:
    stops = ",".join(relevancy_color(top * i / 8, top, cmap) for i in range(9))
    return (
        f'<span>{_esc(label)}: 0<span class="stl-bar" style="background:linear-gradient(to right,{stops})">'
        f"</span>{top:.3g}</span>"
    )


def _cell_detail(cell: GridCell, label: str, token_top: float, cmap: str = CMAP) -> str:
    mean = "n/a" if math.isnan(cell.mean_relevancy) else f"{cell.mean_relevancy:.3f}"
    head = (
        f'<div class="stl-meta">layer {cell.layer}, token {cell.token} {_esc(label)} · mean relevancy {mean}'
    )
    if cell.count > 1:
        head += f" · first of {cell.count} rows for this cell"
    head += "</div>"
    if cell.tokens is not None:
        body = (
            f'<span class="stl-interp">{_shaded_tokens(cell.tokens, cell.relevancy, token_top, cmap)}</span>'
        )
    else:
        body = f'<span class="stl-interp">{_esc(cell.interpretation)}</span>'
    return head + body


def _token_scale(grid: Grid, vmax: float | None) -> float:
    return _scale_top([r for c in grid.cells.values() for r in (c.relevancy or [])], vmax)


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
    top = _scale_top([c.mean_relevancy for c in grid.cells.values()], vmax)
    token_top = _token_scale(grid, token_vmax)
    view_id = f"stl-{uuid.uuid4().hex[:12]}"
    labels = dict(zip(grid.tokens, grid.token_labels, strict=True))

    out = [f'<div class="stl-view" id="{view_id}"><style>{_CSS}</style>']
    if grid.prompt is not None:
        out.append(f'<div class="stl-prompt"><b>Prompt:</b> <code>{_esc(grid.prompt)}</code></div>')
    out.append('<table class="stl-grid"><thead><tr><th class="stl-corner">layer \\ token</th>')
    for tok in grid.tokens:
        lab = labels[tok]
        shown = f'{tok}\n"{_visible_token(lab)}"' if lab else str(tok)
        out.append(f'<th class="stl-col" data-token="{tok}">{_esc(shown)}</th>')
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
            label = f'"{_visible_token(labels[tok])}"' if labels[tok] else ""
            out.append(
                f'<td class="stl-cell" tabindex="0" data-layer="{layer}" data-token="{tok}" '
                f'data-mean-relevancy="{mean_attr}" style="background-color:{bg};color:{_text_color(bg)}" '
                f'title="{_esc(cell.interpretation)}">{_esc(_short(cell.interpretation, max_chars)) or "∅"}'
                f'<div class="stl-full">{_cell_detail(cell, label, token_top, cmap)}</div></td>'
            )
        out.append("</tr>")
    out.append("</tbody></table>")
    out.append(
        f'<div class="stl-legend">{_legend("cell: mean relevancy", top, cmap)}'
        f"{_legend('token: relevancy', token_top, cmap)}</div>"
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
                    label = f'"{_visible_token(labels[tok])}"' if labels[tok] else ""
                    out.append(f"<li>{_cell_detail(cell, label, token_top, cmap)}</li>")
        out.append("</ul></details>")
    out.append(f"<script>{_JS % {'id': view_id}}</script></div>")
    return "".join(out)


# --------------------------------------------------------------------------- report


def report_html(df: pd.DataFrame, *, title: str = "SelfIE interpretations", max_chars: int = 48) -> str:
    """A standalone HTML page: one interactive grid per prompt, settings, and a full list.

    Needs nothing from the network (no external scripts, fonts or styles).

    Example:
        >>> import pandas as pd
        >>> page = report_html(pd.DataFrame({"layer": [1], "token": [0], "interpretation": ["x"]}))
        >>> page.startswith("<!DOCTYPE html>") and "http" not in page
        True
    """
    df = _check_frame(df)
    prompts = list(dict.fromkeys(df["prompt"])) if "prompt" in df.columns else [None]
    # One colour scale for the whole page, so grids of different prompts compare.
    top = _scale_top([_mean_relevancy(r) for r in df.to_dict("records")], None)
    tok_rel = [r for v in (df["relevancy"] if "relevancy" in df.columns else []) for r in (_as_list(v) or [])]
    token_top = _scale_top(tok_rel, None)
    body = []
    for p in prompts:
        frag = grid_html(df, prompt=p, max_chars=max_chars, vmax=top, token_vmax=token_top, list_open=True)
        body.append(f"<section>{frag}</section>")
    meta = ""
    attrs = getattr(df, "attrs", {}) or {}
    if attrs.get("interpretation_prompt") is not None:
        meta += (
            '<p class="stl-meta">Interpretation prompt: <code style="white-space:pre-wrap">'
            f"{_esc(attrs['interpretation_prompt'])}</code></p>"
        )
    if isinstance(attrs.get("config"), Mapping):
        items = ", ".join(f"{_esc(k)}={_esc(v)}" for k, v in attrs["config"].items())
        meta += f'<p class="stl-meta">Settings: {items}</p>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title>"
        "<style>body{margin:20px;font-family:system-ui,sans-serif}h1{font-size:20px}"
        "section{margin-bottom:28px}.stl-meta{color:#666;font-size:11px}</style></head><body>"
        f"<h1>{_esc(title)}</h1>{meta}{''.join(body)}</body></html>\n"
    )


def write_report(
    df: pd.DataFrame, path: str | os.PathLike, *, title: str = "SelfIE interpretations", max_chars: int = 48
) -> Path:
    """Write :func:`report_html` to ``path`` atomically (temporary file, then rename).

    This is what ``selfie-tl interpret ... --html report.html`` calls. A reader never sees
    a half-written file, and a failure leaves any previous report in place.

    Returns:
        The path written.

    Example:
        >>> import pandas as pd, tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "r.html"
        >>> write_report(pd.DataFrame({"layer": [1], "token": [0], "interpretation": ["x"]}), out).exists()
        True
    """
    page = report_html(df, title=title, max_chars=max_chars)
    path = check_output_path(path, "report")
    return write_text(path, page)


add_html_report = write_report
"""Alias of :func:`write_report` for the CLI's ``--html`` option."""


# --------------------------------------------------------------------------- Jupyter


class ResultView:
    """A SelfIE result that draws itself in Jupyter (the DataFrame stays a plain DataFrame).

    Args:
        df: result of :func:`selfie_tl.interpret`.
        max_chars: characters per grid cell.
        vmax, token_vmax: tops of the colour scales (default: from the data).

    Example:
        >>> import pandas as pd
        >>> view = ResultView(pd.DataFrame({"layer": [0], "token": [0], "interpretation": ["x"]}))
        >>> "stl-grid" in view._repr_html_()
        True
    """

    def __init__(
        self,
        df: pd.DataFrame,
        *,
        max_chars: int = 48,
        vmax: float | None = None,
        token_vmax: float | None = None,
    ) -> None:
        self.df = _check_frame(df)
        self.max_chars, self.vmax, self.token_vmax = max_chars, vmax, token_vmax

    def _prompts(self) -> list[str | None]:
        return list(dict.fromkeys(self.df["prompt"])) if "prompt" in self.df.columns else [None]

    def _repr_html_(self) -> str:
        return "".join(
            grid_html(self.df, prompt=p, max_chars=self.max_chars, vmax=self.vmax, token_vmax=self.token_vmax)
            for p in self._prompts()
        )

    def __repr__(self) -> str:
        return f"<ResultView: {len(self.df)} interpretations, {len(self._prompts())} prompt(s)>"

    def figure(self, path: str | os.PathLike | None = None, **kwargs: Any):
        """:func:`plot_grid` of this result."""
        return plot_grid(self.df, path, **{"max_chars": self.max_chars, "vmax": self.vmax, **kwargs})

    def save(self, path: str | os.PathLike, **kwargs: Any) -> Path:
        """:func:`write_report` of this result."""
        return write_report(self.df, path, **{"max_chars": self.max_chars, **kwargs})

    def spans(self, threshold: float = 0.1) -> pd.Series:
        """:func:`relevant_spans` of every row, as a Series aligned with ``df``."""
        _check_frame(self.df, ("generated_tokens", "relevancy"))
        return self.df.apply(lambda row: relevant_spans(row, threshold=threshold), axis=1)


def show(df: pd.DataFrame, **kwargs: Any) -> ResultView:
    """Wrap a result so Jupyter renders it as the interactive grid.

    Example:
        >>> import pandas as pd
        >>> show(pd.DataFrame({"layer": [0], "token": [0], "interpretation": ["x"]}))
        <ResultView: 1 interpretations, 1 prompt(s)>
    """
    return ResultView(df, **kwargs)


__all__ = [
    "CMAP",
    "GRID_COLUMNS",
    "MIN_VMAX",
    "Grid",
    "GridCell",
    "RelevantSpan",
    "ResultView",
    "add_html_report",
    "grid_data",
    "grid_html",
    "interpretation_html",
    "plot_grid",
    "relevancy_color",
    "relevant_spans",
    "report_html",
    "show",
    "write_report",
]
