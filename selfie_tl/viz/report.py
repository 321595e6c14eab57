"""Standalone HTML report: one interactive grid per prompt, with the run's settings.

This is what ``selfie-tl interpret ... --html report.html`` writes. The page needs nothing
from the network (no external scripts, fonts or styles).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from selfie_tl._values import as_list
from selfie_tl.files import check_output_path, write_text
from selfie_tl.viz.colors import scale_top
from selfie_tl.viz.grid import check_frame, mean_relevancy, prompts_of
from selfie_tl.viz.html import asset, esc, grid_html


def report_html(df: pd.DataFrame, *, title: str = "SelfIE interpretations", max_chars: int = 48) -> str:
    """A standalone HTML page: one interactive grid per prompt, settings, and a full list.

    Needs nothing from the network (no external scripts, fonts or styles).

    Example:
        >>> import pandas as pd
        >>> page = report_html(pd.DataFrame({"layer": [1], "token": [0], "interpretation": ["x"]}))
        >>> page.startswith("<!DOCTYPE html>") and "http" not in page
        True
    """
    df = check_frame(df)
    # One colour scale for the whole page, so grids of different prompts compare.
    top = scale_top([mean_relevancy(r) for r in df.to_dict("records")], None)
    tok_rel = [r for v in (df["relevancy"] if "relevancy" in df.columns else []) for r in (as_list(v) or [])]
    token_top = scale_top(tok_rel, None)
    body = []
    for p in prompts_of(df):
        frag = grid_html(df, prompt=p, max_chars=max_chars, vmax=top, token_vmax=token_top, list_open=True)
        body.append(f"<section>{frag}</section>")
    meta = ""
    attrs = getattr(df, "attrs", {}) or {}
    if attrs.get("interpretation_prompt") is not None:
        meta += (
            '<p class="stl-meta">Interpretation prompt: <code style="white-space:pre-wrap">'
            f"{esc(attrs['interpretation_prompt'])}</code></p>"
        )
    if isinstance(attrs.get("config"), Mapping):
        items = ", ".join(f"{esc(k)}={esc(v)}" for k, v in attrs["config"].items())
        meta += f'<p class="stl-meta">Settings: {items}</p>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        f"<style>{asset('report.css')}</style></head><body>"
        f"<h1>{esc(title)}</h1>{meta}{''.join(body)}</body></html>\n"
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


__all__ = ["report_html", "write_report"]
