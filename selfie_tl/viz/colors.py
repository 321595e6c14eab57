"""Colour scales: relevancy to colour, the top of a scale, readable text on a colour.

Relevancy is ``|p(token | embedding) - p(token | no embedding)|`` in [0, 1], but typical
values are small, so by default a scale runs from 0 to the largest value in the data (at
least :data:`MIN_VMAX`, so that pure noise is never drawn saturated). The figure and the
HTML share the colormap :data:`CMAP`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from selfie_tl._values import is_missing
from selfie_tl.errors import InvalidArgumentError

CMAP = "YlOrRd"
"""Matplotlib colormap shared by the figure and the HTML (light = low relevancy)."""

MIN_VMAX = 0.05
"""Smallest top of the default colour scale."""

MISSING_BG = "#eeeeee"
"""Background of a value that was not computed."""


def colormap(name: str = CMAP):
    """The matplotlib colormap called ``name``."""
    import matplotlib

    return matplotlib.colormaps[name]


def scale_top(values: Sequence[float], vmax: float | None) -> float:
    """``vmax`` if given (checked), else the largest finite value, at least :data:`MIN_VMAX`."""
    if vmax is not None:
        if not (isinstance(vmax, int | float) and math.isfinite(vmax) and vmax > 0):
            raise InvalidArgumentError(f"vmax must be a positive finite number, got {vmax!r}")
        return float(vmax)
    finite = [v for v in values if not is_missing(v)]
    return max([MIN_VMAX, *finite])


def relevancy_color(value: float | None, vmax: float = 1.0, cmap: str = CMAP) -> str:
    """Hex colour of a relevancy value on a 0..``vmax`` scale (values are clipped).

    Missing values (``None``/NaN, e.g. ``relevancy=False``) get a neutral grey.

    Example:
        >>> relevancy_color(0.0), relevancy_color(1.0), relevancy_color(None)
        ('#ffffcc', '#800026', '#eeeeee')
    """
    from matplotlib.colors import to_hex

    if is_missing(value):
        return MISSING_BG
    frac = min(max(float(value) / vmax, 0.0), 1.0)
    return to_hex(colormap(cmap)(frac))


def text_color(background: str) -> str:
    """Black or white, whichever reads better on ``background`` (relative luminance).

    Example:
        >>> text_color("#ffffcc"), text_color("#800026")
        ('#000000', '#ffffff')
    """
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(background)
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#000000" if lum > 0.45 else "#ffffff"


__all__ = ["CMAP", "MIN_VMAX", "relevancy_color"]
