"""Standalone HTML report: what was run, then one interactive grid per prompt.

This is what ``selfie-tl interpret ... --html report.html`` writes. The page needs nothing
from the network (no external scripts, fonts or styles) and holds each interpretation once
(in the grids' JSON data blocks), so its size grows linearly with the number of cells.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from selfie_tl.files import check_output_path, write_text
from selfie_tl.viz.colors import CMAP
from selfie_tl.viz.grid import check_frame, grid_data, prompts_of
from selfie_tl.viz.html import asset, cell_scale, esc, grid_fragment, token_scale

NOISE_SETTINGS = ("verbose", "batch_size")
"""Settings that do not change what was computed; the report leaves them out."""

_SAMPLING = ("temperature", "top_k", "top_p", "seed")


def report_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings worth reading: ``config`` without :data:`NOISE_SETTINGS`, without the
    sampling controls under greedy decoding, and without the strength that ``mode`` does
    not use.

    Example:
        >>> report_settings({"k": 2, "verbose": True, "do_sample": False, "temperature": 1.0,
        ...                  "mode": "replace", "overlay_strength": 1.0, "scale": 1.0})
        {'k': 2, 'do_sample': False, 'mode': 'replace', 'overlay_strength': 1.0}
    """
    drop = set(NOISE_SETTINGS)
    if not config.get("do_sample", False):
        drop.update(_SAMPLING)
    if config.get("mode") == "replace":
        drop.add("scale")
    elif config.get("mode") == "add":
        drop.add("overlay_strength")
    return {k: v for k, v in config.items() if k not in drop}


def report_meta(df: pd.DataFrame, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the report's header shows: ``df.attrs`` (``model_name``, ``command``,
    ``config``, ``interpretation_prompt``) overridden by ``meta``, plus the package version
    and the date.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"layer": [0], "token": [0], "interpretation": ["x"]})
        >>> df.attrs["config"] = {"k": 2, "verbose": False}
        >>> m = report_meta(df, {"model_name": "tiny", "date": "2026-01-01"})
        >>> m["model_name"], m["settings"], m["date"], sorted(m)
        ('tiny', {'k': 2}, '2026-01-01', ['date', 'model_name', 'settings', 'version'])
    """
    from selfie_tl import __version__

    merged: dict[str, Any] = dict(getattr(df, "attrs", {}) or {})
    merged.update(meta or {})
    config = merged.pop("config", None)
    if isinstance(config, Mapping):
        merged.setdefault("settings", report_settings(config))
    merged.setdefault("version", __version__)
    merged.setdefault("date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip())
    return {k: v for k, v in merged.items() if v is not None}


_LABELS = {
    "model_name": "model",
    "version": "selfie_tl",
    "date": "date",
    "command": "command",
    "settings": "settings",
    "interpretation_prompt": "interpretation prompt",
}
_PRE = ("command", "interpretation_prompt")  # shown verbatim, newlines kept


def _meta_html(meta: Mapping[str, Any]) -> str:
    rows = []
    for key in [*[k for k in _LABELS if k in meta], *[k for k in meta if k not in _LABELS]]:
        value = meta[key]
        if key == "settings" and isinstance(value, Mapping):
            shown = "<code>" + esc(", ".join(f"{k}={v}" for k, v in value.items())) + "</code>"
        elif key in _PRE:
            shown = f'<div class="stl-pre">{esc(value)}</div>'
        else:
            shown = esc(value)
        rows.append(f'<dt>{esc(_LABELS.get(key, key))}</dt><dd data-key="{esc(key)}">{shown}</dd>')
    return f'<dl class="stl-run">{"".join(rows)}</dl>'


def report_html(
    df: pd.DataFrame,
    *,
    title: str = "SelfIE interpretations",
    max_chars: int = 48,
    meta: Mapping[str, Any] | None = None,
    cmap: str = CMAP,
) -> str:
    """A standalone HTML page: what was run (:func:`report_meta`), then one interactive grid
    per prompt, all on one colour scale.

    Needs nothing from the network (no external scripts, fonts or styles).

    Example:
        >>> import pandas as pd
        >>> page = report_html(pd.DataFrame({"layer": [1], "token": [0], "interpretation": ["x"]}))
        >>> page.startswith("<!DOCTYPE html>") and "http" not in page
        True
    """
    df = check_frame(df)
    grids = [grid_data(df, p) for p in prompts_of(df)]
    # One colour scale for the whole page, so grids of different prompts compare.
    top, token_top = cell_scale(grids), token_scale(grids)
    body = [
        "<section>"
        + grid_fragment(g, top=top, token_top=token_top, max_chars=max_chars, cmap=cmap, list_open=False)
        + "</section>"
        for g in grids
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        f"<style>{asset('report.css')}</style></head><body>"
        f"<header><h1>{esc(title)}</h1>{_meta_html(report_meta(df, meta))}</header>"
        f"{''.join(body)}</body></html>\n"
    )


def write_report(
    df: pd.DataFrame,
    path: str | os.PathLike,
    *,
    title: str = "SelfIE interpretations",
    max_chars: int = 48,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write :func:`report_html` to ``path`` atomically (temporary file, then rename).

    This is what ``selfie-tl interpret ... --html report.html`` calls. A reader never sees
    a half-written file, and a failure leaves any previous report in place.

    Args:
        df: result of :func:`selfie_tl.interpret`; ``df.attrs`` supplies the settings and
            interpretation prompt (and ``model_name``, ``command`` when present).
        path: the file to write.
        title: page title.
        max_chars: characters of each cell's excerpt.
        meta: more header entries, or overrides of those from ``df.attrs`` (``model_name``,
            ``command``, ``date``, ...).

    Returns:
        The path written.

    Example:
        >>> import pandas as pd, tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "r.html"
        >>> write_report(pd.DataFrame({"layer": [1], "token": [0], "interpretation": ["x"]}), out).exists()
        True
    """
    path = check_output_path(path, "report")
    page = report_html(df, title=title, max_chars=max_chars, meta=meta)
    return write_text(path, page)


__all__ = ["report_html", "write_report"]
