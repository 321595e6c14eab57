"""The grid behind every picture: one prompt's rows as a layer x token table.

Package-internal helpers (frame checks, text shortening, token labels) live here too, since
every other module of :mod:`selfie_tl.viz` starts from a checked frame and a :class:`Grid`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from selfie_tl._values import as_list, float_or_nan, is_missing
from selfie_tl.errors import InvalidArgumentError

GRID_COLUMNS = ("layer", "token", "interpretation")
"""Columns every function of :mod:`selfie_tl.viz` needs."""


# --------------------------------------------------------------------------- checks


def check_frame(df: Any, columns: Sequence[str] = GRID_COLUMNS) -> pd.DataFrame:
    """``df`` if it is a non-empty DataFrame with ``columns``; else InvalidArgumentError."""
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


def prompts_of(df: pd.DataFrame) -> list[str | None]:
    """The distinct prompts in first-seen order (``[None]`` without a prompt column)."""
    return list(dict.fromkeys(df["prompt"])) if "prompt" in df.columns else [None]


def select_prompt(df: pd.DataFrame, prompt: str | None) -> pd.DataFrame:
    """Rows of one prompt: a grid shows a single prompt's layers and tokens."""
    if "prompt" not in df.columns:
        if prompt is not None:
            raise InvalidArgumentError("prompt= given but the DataFrame has no 'prompt' column")
        return df
    prompts = prompts_of(df)
    if prompt is None:
        if len(prompts) > 1:
            raise InvalidArgumentError(
                f"DataFrame holds {len(prompts)} prompts; a grid shows one. Pass prompt= one of "
                f"{[short(p, 60) for p in prompts[:5]]}{' ...' if len(prompts) > 5 else ''}, "
                "or use write_report, which draws one grid per prompt"
            )
        return df
    if prompt not in prompts:
        raise InvalidArgumentError(f"prompt {short(prompt, 60)!r} is not in the DataFrame")
    return df[df["prompt"] == prompt]


# --------------------------------------------------------------------------- text


def short(text: str, max_chars: int) -> str:
    """``text`` on one line, cut to ``max_chars`` with an ellipsis (0: no limit)."""
    text = " ".join(str(text).split())
    if max_chars > 0 and len(text) > max_chars:
        return text[: max(1, max_chars - 1)].rstrip() + "…"
    return text


def visible_token(tok: str) -> str:
    """A token label in which leading/trailing whitespace and newlines can be seen."""
    return str(tok).replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


# --------------------------------------------------------------------------- scores


def mean_relevancy(row: Mapping[str, Any]) -> float:
    """A row's cell score: its ``mean_relevancy``, else the mean of ``relevancy``, else NaN."""
    if "mean_relevancy" in row and not is_missing(row["mean_relevancy"]):
        return float(row["mean_relevancy"])
    rel = as_list(row.get("relevancy"))
    if rel:
        return sum(float(r) for r in rel) / len(rel)
    return float("nan")


# --------------------------------------------------------------------------- grid


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
    """The layer x token table behind :func:`~selfie_tl.viz.plot_grid` and
    :func:`~selfie_tl.viz.grid_html`.

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
    df = select_prompt(check_frame(df), prompt)
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
        rel = as_list(row.get("relevancy"))
        toks = as_list(row.get("generated_tokens"))
        cells[key] = GridCell(
            layer=key[0],
            token=key[1],
            interpretation="" if row["interpretation"] is None else str(row["interpretation"]),
            mean_relevancy=mean_relevancy(row),
            tokens=[str(t) for t in toks] if toks is not None else None,
            relevancy=[float_or_nan(r) for r in rel] if rel is not None else None,
        )
    cells = {k: dataclasses.replace(c, count=counts[k]) for k, c in cells.items()}
    layers = sorted({k[0] for k in cells})
    tokens = sorted({k[1] for k in cells})
    prompt_text = str(df["prompt"].iloc[0]) if "prompt" in df.columns else None
    return Grid(prompt_text, layers, tokens, [labels.get(t, "") for t in tokens], cells)


__all__ = ["GRID_COLUMNS", "Grid", "GridCell", "grid_data"]
