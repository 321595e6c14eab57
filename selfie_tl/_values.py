"""Reading cells of a result DataFrame: missing values, floats and list-valued columns.

A row of :func:`selfie_tl.interpret`'s DataFrame may hold ``None`` or NaN where a value was
not computed (``relevancy=False``), and list columns may come back as numpy arrays or
tuples (after a round trip through parquet, say). The readers of results
(:mod:`selfie_tl.relevancy`, :mod:`selfie_tl.viz`) go through these three helpers.
"""

from __future__ import annotations

import math
from typing import Any


def is_missing(value: Any) -> bool:
    """``None``, NaN, or anything that is not a number.

    Example:
        >>> is_missing(None), is_missing(float("nan")), is_missing("x"), is_missing(0.0)
        (True, True, True, False)
    """
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def float_or_nan(value: Any) -> float:
    """``float(value)``, or NaN when it is missing.

    Example:
        >>> float_or_nan("0.5"), float_or_nan(None)
        (0.5, nan)
    """
    return float("nan") if is_missing(value) else float(value)


def as_list(value: Any) -> list | None:
    """A list-valued cell as a list; ``None`` when the cell is empty (``None`` or NaN).

    Example:
        >>> as_list((1, 2)), as_list(float("nan"))
        ([1, 2], None)
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return list(value)


__all__ = ["as_list", "float_or_nan", "is_missing"]
