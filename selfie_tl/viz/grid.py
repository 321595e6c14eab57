"""The grid behind every picture: one prompt's rows as a layer x token table.

A cell's colour value is its *score*, :func:`selfie_tl.relevancy.content_relevancy` (mean
relevancy over content tokens), and its text is an excerpt around its most relevant
tokens (:func:`cell_text`). Empty and whitespace-only replies are told apart
(:attr:`GridCell.kind`) so that the pictures can mark them.

Package-internal helpers (frame checks, text shortening, token labels) live here too, since
every other module of :mod:`selfie_tl.viz` starts from a checked frame and a :class:`Grid`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from selfie_tl._values import as_list, float_or_nan, is_missing
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.relevancy import content_relevancy, token_kinds

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


def is_missing_text(value: Any) -> bool:
    """``None`` or NaN where a text was expected (e.g. a CSV round trip of an empty reply)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


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


EMPTY_MARK = "∅"
"""Cell text of an empty reply (nothing generated)."""

BLANK_MARK = "␣"
"""Cell text of a reply of whitespace (or special tokens) only."""


def mean_relevancy(row: Mapping[str, Any]) -> float:
    """A row's ``mean_relevancy``, else the mean of its ``relevancy``, else NaN."""
    if "mean_relevancy" in row and not is_missing(row["mean_relevancy"]):
        return float(row["mean_relevancy"])
    rel = as_list(row.get("relevancy"))
    if rel:
        return sum(float(r) for r in rel) / len(rel)
    return float("nan")


def cell_score(row: Mapping[str, Any], tokens: list[str] | None, relevancy: list[float] | None) -> float:
    """The colour value of a row's cell: its content relevancy.

    The ``content_relevancy`` column when the frame has one (``interpret`` can fill it
    with the tokenizer's exact special tokens), else
    :func:`~selfie_tl.relevancy.content_relevancy` of ``tokens`` and ``relevancy``; a frame
    without token lists falls back to ``mean_relevancy``. NaN when there is nothing to score.
    """
    if "content_relevancy" in row and not is_missing(row["content_relevancy"]):
        return float(row["content_relevancy"])
    if tokens is not None:
        return content_relevancy(tokens, relevancy) if relevancy is not None else float("nan")
    return mean_relevancy(row)


def reply_kind(interpretation: str, kinds: list[str] | None) -> str:
    """``"empty"`` (nothing generated), ``"blank"`` (whitespace or special tokens only) or ``"text"``."""
    if kinds is not None:
        if not kinds:
            return "empty" if not interpretation else "text"
        return "text" if any(k in ("content", "repeat") for k in kinds) else "blank"
    if not interpretation:
        return "empty"
    return "text" if interpretation.strip() else "blank"


def _excerpt(tokens: list[str], relevancy: list[float], kinds: list[str], max_chars: int) -> str | None:
    # Start at the most relevant content token and grow towards the more relevant
    # neighbour while the excerpt (with "…" where it is cut) fits in max_chars.
    def rank(i: int) -> float:
        r = relevancy[i]
        return r if kinds[i] == "content" and not math.isnan(r) else -1.0

    n = len(tokens)
    best = max(range(n), key=rank, default=None)
    if best is None or rank(best) < 0:
        return None

    def text(lo: int, hi: int) -> str:
        body = " ".join("".join(tokens[lo:hi]).split())
        return ("…" if lo > 0 else "") + body + ("…" if hi < n else "")

    lo, hi = best, best + 1
    while True:
        options = []
        if hi < n:
            options.append((rank(hi), 1, lo, hi + 1))
        if lo > 0:
            options.append((rank(lo - 1), 0, lo - 1, hi))
        grown = False
        for _, _, new_lo, new_hi in sorted(options, reverse=True):
            if len(text(new_lo, new_hi)) <= max_chars:
                lo, hi, grown = new_lo, new_hi, True
                break
        if not grown:
            break
    return short(text(lo, hi), max_chars)


# --------------------------------------------------------------------------- grid


@dataclass(frozen=True)
class GridCell:
    """One (layer, token) cell of the grid.

    Attributes:
        layer, token: where the embedding was read.
        interpretation: the full interpretation text.
        mean_relevancy: mean relevancy over all generated tokens (NaN when not computed).
        tokens, relevancy: generated tokens and their relevancy (may be ``None``).
        count: rows of the DataFrame with this (layer, token); the grid shows the first.
        score: the cell's colour value, :func:`cell_score` (content relevancy; NaN: none).
        kind: ``"text"``, ``"empty"`` (nothing generated) or ``"blank"`` (whitespace or
            special tokens only), see :func:`reply_kind`.
        token_kinds: :func:`~selfie_tl.relevancy.token_kinds` of ``tokens`` (``None``
            without tokens).
    """

    layer: int
    token: int
    interpretation: str
    mean_relevancy: float
    tokens: list[str] | None
    relevancy: list[float] | None
    count: int = 1
    score: float = float("nan")
    kind: str = "text"
    token_kinds: list[str] | None = None


def cell_text(cell: GridCell, max_chars: int) -> str:
    """What a grid cell shows: an excerpt of up to ``max_chars`` characters around its most
    relevant content tokens (the start of the text when there are no scores), or
    :data:`EMPTY_MARK` / :data:`BLANK_MARK` for empty / whitespace-only replies.

    Example:
        >>> cell = GridCell(0, 0, "a b c d e", 0.1, ["a", " b", " c", " d", " e"], [0, 0, 0.1, 0.9, 0])
        >>> cell_text(cell, 5), cell_text(cell, 0)
        ('…c d…', 'a b c d e')
    """
    if cell.kind == "empty":
        return EMPTY_MARK
    if cell.kind == "blank":
        return BLANK_MARK
    if max_chars > 0 and cell.tokens is not None and cell.relevancy is not None:
        kinds = cell.token_kinds or token_kinds(cell.tokens)
        excerpt = _excerpt(cell.tokens, cell.relevancy, kinds, max_chars)
        if excerpt:
            return excerpt
    return short(cell.interpretation, max_chars)


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
        """The cell's score (NaN for an empty or unscored cell)."""
        cell = self.cells.get((layer, token))
        return cell.score if cell else float("nan")


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
        toks = [str(t) for t in toks] if toks is not None else None
        rel = [float_or_nan(r) for r in rel] if rel is not None else None
        if toks is not None and rel is not None and len(rel) != len(toks):
            raise InvalidArgumentError(
                f"layer {key[0]}, token {key[1]}: {len(toks)} generated tokens but {len(rel)} relevancy "
                "scores; they must align"
            )
        text = "" if is_missing_text(row["interpretation"]) else str(row["interpretation"])
        kinds = token_kinds(toks) if toks is not None else None
        cells[key] = GridCell(
            layer=key[0],
            token=key[1],
            interpretation=text,
            mean_relevancy=mean_relevancy(row),
            tokens=toks,
            relevancy=rel,
            score=cell_score(row, toks, rel),
            kind=reply_kind(text, kinds),
            token_kinds=kinds,
        )
    cells = {k: dataclasses.replace(c, count=counts[k]) for k, c in cells.items()}
    layers = sorted({k[0] for k in cells})
    tokens = sorted({k[1] for k in cells})
    prompt_text = str(df["prompt"].iloc[0]) if "prompt" in df.columns else None
    return Grid(prompt_text, layers, tokens, [labels.get(t, "") for t in tokens], cells)


__all__ = ["BLANK_MARK", "EMPTY_MARK", "GRID_COLUMNS", "Grid", "GridCell", "cell_text", "grid_data"]
