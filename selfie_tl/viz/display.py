"""Jupyter: a result that draws itself as the interactive grid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from selfie_tl.relevancy import relevant_spans
from selfie_tl.viz.figure import plot_grid
from selfie_tl.viz.grid import check_frame, prompts_of
from selfie_tl.viz.html import grid_html
from selfie_tl.viz.report import write_report


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
        self.df = check_frame(df)
        self.max_chars, self.vmax, self.token_vmax = max_chars, vmax, token_vmax

    def _repr_html_(self) -> str:
        return "".join(
            grid_html(self.df, prompt=p, max_chars=self.max_chars, vmax=self.vmax, token_vmax=self.token_vmax)
            for p in prompts_of(self.df)
        )

    def __repr__(self) -> str:
        return f"<ResultView: {len(self.df)} interpretations, {len(prompts_of(self.df))} prompt(s)>"

    def figure(self, path: str | os.PathLike | None = None, **kwargs: Any):
        """:func:`~selfie_tl.viz.plot_grid` of this result."""
        return plot_grid(self.df, path, **{"max_chars": self.max_chars, "vmax": self.vmax, **kwargs})

    def save(self, path: str | os.PathLike, **kwargs: Any) -> Path:
        """:func:`~selfie_tl.viz.write_report` of this result."""
        return write_report(self.df, path, **{"max_chars": self.max_chars, **kwargs})

    def spans(self, threshold: float = 0.1) -> pd.Series:
        """:func:`~selfie_tl.relevancy.relevant_spans` of every row, as a Series aligned with ``df``."""
        check_frame(self.df, ("generated_tokens", "relevancy"))
        return self.df.apply(lambda row: relevant_spans(row, threshold=threshold), axis=1)


def show(df: pd.DataFrame, **kwargs: Any) -> ResultView:
    """Wrap a result so Jupyter renders it as the interactive grid.

    Example:
        >>> import pandas as pd
        >>> show(pd.DataFrame({"layer": [0], "token": [0], "interpretation": ["x"]}))
        <ResultView: 1 interpretations, 1 prompt(s)>
    """
    return ResultView(df, **kwargs)


__all__ = ["ResultView", "show"]
