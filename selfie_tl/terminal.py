"""What ``selfie-tl`` prints: a results table that fits the terminal.

:func:`format_table` renders a result of :func:`selfie_tl.interpret` as plain text, one
line per (layer, token) cell: the layer, the token (``position:'text'``), the content
relevancy (the score the grids colour by) and the interpretation with its whitespace
collapsed, cut with ``…`` to the terminal's width. An empty reply shows as ``∅ (empty)``,
a reply of whitespace only as ``␣ (whitespace only)``, a missing score as ``–``.
:func:`is_degenerate` flags replies stuck on one token.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"layer": [3, 6], "token": [4, 4], "token_decoded": [" Paris"] * 2,
    ...                    "interpretation": [" The capital of France", "\\n\\n"],
    ...                    "content_relevancy": [0.41, None]})
    >>> print(format_table(df, width=64))
                             content
    layer  token           relevancy  interpretation
    -----  --------------  ---------  ------------------------------
        3  4:' Paris'          0.410  The capital of France
        6  4:' Paris'              –  ␣ (whitespace only)
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from typing import Any

import pandas as pd

ELLIPSIS = "…"
EMPTY = "∅ (empty)"
WHITESPACE_ONLY = "␣ (whitespace only)"
MISSING = "–"

LABEL_WIDTH = 14
"""Widest token label; longer ones are cut with ``…``."""
SCORE_WIDTH = 9
MIN_TEXT_WIDTH = 20
"""The interpretation column never gets narrower than this (long lines then wrap)."""
DEFAULT_WIDTH = 100
"""Width used when the terminal's cannot be read (output to a pipe or file)."""
DEGENERATE_RUN = 4


def terminal_width(width: int | None = None) -> int:
    """``width`` if given, else the terminal's columns (``$COLUMNS`` first,
    :data:`DEFAULT_WIDTH` when unknown)."""
    if width is not None:
        return int(width)
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in ``…`` when cut.

    Example:
        >>> cut("Mount Everest", 8), cut("Everest", 8)
        ('Mount E…', 'Everest')
    """
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + ELLIPSIS


def reply_text(text: Any) -> str:
    """One-line form of an interpretation: whitespace runs collapsed to one space;
    :data:`EMPTY` for an empty reply, :data:`WHITESPACE_ONLY` for whitespace only.

    Example:
        >>> reply_text(" Mount\\n\\nEverest  "), reply_text(""), reply_text("\\n \\n")
        ('Mount Everest', '∅ (empty)', '␣ (whitespace only)')
    """
    if text is None or (isinstance(text, float) and math.isnan(text)) or str(text) == "":
        return EMPTY
    collapsed = " ".join(str(text).split())
    return collapsed if collapsed else WHITESPACE_ONLY


def token_label(token: Any, decoded: Any = None) -> str:
    """``position:'text'`` (the text's ``repr``, so spaces and newlines show), cut with ``…``.

    Example:
        >>> token_label(5, " mountain"), token_label(3, " internationalization")
        ("5:' mountain'", "3:' internati…")
    """
    label = f"{token}" if decoded is None else f"{token}:{str(decoded)!r}"
    return cut(label, LABEL_WIDTH)


def score_text(value: Any) -> str:
    """A score with three decimals, or :data:`MISSING` for ``None``/NaN.

    Example:
        >>> score_text(0.12345), score_text(None), score_text(float("nan"))
        ('0.123', '–', '–')
    """
    if value is None:
        return MISSING
    try:
        number = float(value)
    except (TypeError, ValueError):
        return MISSING
    return MISSING if math.isnan(number) else f"{number:.3f}"


def is_degenerate(tokens: Sequence[Any] | None, run: int = DEGENERATE_RUN) -> bool:
    """Whether a reply repeats one token ``run`` (4) or more times in a row.

    Tokens are compared without surrounding whitespace and case, as
    :func:`selfie_tl.relevancy.token_kinds` does, so ``" max"``, ``"max"`` and ``"Max"``
    are one token: a model barred from exact repeats (``no_repeat_ngram_size``) often
    alternates spellings instead. A run of whitespace-only tokens counts too.

    Args:
        tokens: the generated tokens (a row's ``generated_tokens``), strings or ids.
        run: how many equal tokens in a row make a reply degenerate.

    Example:
        >>> is_degenerate(["The", " max", "max", " Max", " max"])
        True
        >>> is_degenerate(["The", " max", " max", " max", " height"])
        False
        >>> is_degenerate(None)
        False
    """
    if isinstance(tokens, str):
        raise TypeError("is_degenerate takes a sequence of tokens (generated_tokens), not a string")
    if tokens is None or run < 1:
        return False
    previous, count = None, 0
    for tok in tokens:
        norm = str(tok).strip().casefold()
        count = count + 1 if norm == previous else 1
        previous = norm
        if count >= run:
            return True
    return False


def degenerate_count(df: pd.DataFrame, run: int = DEGENERATE_RUN) -> int:
    """How many rows of a result have a degenerate reply (:func:`is_degenerate` of
    ``generated_tokens``).

    Example:
        >>> degenerate_count(pd.DataFrame({"generated_tokens": [["a"] * 4, ["a", "b"]]}))
        1
    """
    if "generated_tokens" not in df:
        return 0
    return int(sum(is_degenerate(t, run) for t in df["generated_tokens"]))


def most_relevant(
    df: pd.DataFrame, top: int | None = None, column: str = "content_relevancy"
) -> pd.DataFrame:
    """Rows sorted by ``column``, highest first (missing scores last; ties keep their
    order), the first ``top`` of them when given.

    Example:
        >>> df = pd.DataFrame({"layer": [0, 1, 2], "content_relevancy": [0.1, None, 0.5]})
        >>> most_relevant(df, 2).layer.tolist()
        [2, 0]
    """
    if column in df:
        df = df.sort_values(column, ascending=False, na_position="last", kind="stable")
    return df if top is None else df.head(top)


def format_table(df: pd.DataFrame, width: int | None = None, *, relevant: bool = False) -> str:
    """The results as a plain-text table ``width`` characters wide.

    Columns: ``layer``, ``token`` (:func:`token_label`), ``content relevancy`` (the
    ``content_relevancy`` column, :func:`score_text`) and ``interpretation``
    (:func:`reply_text`, cut with ``…`` to the space left). Rows keep ``df``'s order.

    Args:
        df: a result of :func:`selfie_tl.interpret` (``token_decoded``,
            ``content_relevancy`` and ``relevant_text`` are optional).
        width: total width; default: the terminal's (:func:`terminal_width`).
        relevant: add a line under each row with ``relevant_text`` (the spans with high
            relevancy), when it is not empty.

    Example:
        >>> df = pd.DataFrame({"layer": [9], "token": [2], "interpretation": [""],
        ...                    "relevant_text": ["x"]})
        >>> print(format_table(df, width=50, relevant=True))
                                 content
        layer  token           relevancy  interpretation
        -----  --------------  ---------  --------------------
            9  2                       –  ∅ (empty)
                                          relevant: x
    """
    total = terminal_width(width)
    head = f"{'layer':>5}  {'token':<{LABEL_WIDTH}}  {'relevancy':>{SCORE_WIDTH}}  "
    text_width = max(MIN_TEXT_WIDTH, total - len(head))
    above = f"{'':>5}  {'':<{LABEL_WIDTH}}  {'content':>{SCORE_WIDTH}}"
    rule = f"{'-' * 5}  {'-' * LABEL_WIDTH}  {'-' * SCORE_WIDTH}  {'-' * text_width}"
    lines = [above, head + "interpretation", rule]
    pad = " " * len(head)
    decoded = df["token_decoded"] if "token_decoded" in df else [None] * len(df)
    scores = df["content_relevancy"] if "content_relevancy" in df else [None] * len(df)
    spans = df["relevant_text"] if relevant and "relevant_text" in df else [None] * len(df)
    for layer, token, dec, score, text, span in zip(
        df["layer"], df["token"], decoded, scores, df["interpretation"], spans, strict=True
    ):
        label = token_label(token, dec)
        lines.append(
            f"{layer!s:>5}  {label:<{LABEL_WIDTH}}  {score_text(score):>{SCORE_WIDTH}}  {cut(reply_text(text), text_width)}"
        )
        if isinstance(span, str) and span.strip():
            lines.append(pad + cut("relevant: " + " ".join(span.split()), text_width))
    return "\n".join(lines)


__all__ = [
    "DEGENERATE_RUN",
    "EMPTY",
    "MISSING",
    "WHITESPACE_ONLY",
    "cut",
    "degenerate_count",
    "format_table",
    "is_degenerate",
    "most_relevant",
    "reply_text",
    "score_text",
    "terminal_width",
    "token_label",
]
