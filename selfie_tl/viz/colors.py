"""Colour scales: relevancy to colour, the top of a scale, readable text on a colour.

Relevancy is ``|p(token | embedding) - p(token | no embedding)|`` in [0, 1], but typical
values are small, so by default a scale runs from 0 to the :data:`SCALE_PERCENTILE`-th
percentile of the values in the data (at least :data:`MIN_VMAX`, so that pure noise is
never drawn saturated); the few values above it are drawn in the top colour. A percentile
rather than the maximum keeps one outlier from washing out every other cell. The figure
and the HTML share the colormap :data:`CMAP`.
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

SCALE_PERCENTILE = 95.0
"""Percentile of the data at the top of a default colour scale."""

MISSING_BG = "#eeeeee"
"""Background of a value that was not computed."""


def colormap(name: str = CMAP):
    """The matplotlib colormap called ``name``."""
    import matplotlib

    return matplotlib.colormaps[name]


def scale_top(values: Sequence[float], vmax: float | None) -> float:
    """Top of a colour scale: ``vmax`` if given (checked), else the
    :data:`SCALE_PERCENTILE`-th percentile of the finite ``values`` (linear interpolation),
    at least :data:`MIN_VMAX`.

    Example:
        >>> scale_top([0.1] * 99 + [0.9], None), scale_top([0.01], None), scale_top([], 0.5)
        (0.1, 0.05, 0.5)
    """
    if vmax is not None:
        if not (isinstance(vmax, int | float) and math.isfinite(vmax) and vmax > 0):
            raise InvalidArgumentError(f"vmax must be a positive finite number, got {vmax!r}")
        return float(vmax)
    finite = sorted(float(v) for v in values if not is_missing(v) and math.isfinite(float(v)))
    if not finite:
        return MIN_VMAX
    pos = (len(finite) - 1) * SCALE_PERCENTILE / 100
    low = math.floor(pos)
    high = min(low + 1, len(finite) - 1)
    top = finite[low] + (finite[high] - finite[low]) * (pos - low)
    return max(MIN_VMAX, top)


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


def palette(cmap: str = CMAP) -> tuple[list[str], str]:
    """The colormap's 256 colours and, per colour, ``"1"`` for white text or ``"0"`` for black.

    Entry ``min(255, floor(256 * value / vmax))`` is :func:`relevancy_color` of ``value``
    (exactly so for a 256-colour colormap such as the default, since matplotlib looks
    colours up the same way), so scripts can shade with it.

    Example:
        >>> colors, ink = palette()
        >>> colors[0] == relevancy_color(0.0), colors[255] == relevancy_color(1.0), ink[255]
        (True, True, '1')
    """
    from matplotlib.colors import to_hex

    cm = colormap(cmap)
    colors = [to_hex(cm(i * cm.N // 256)) for i in range(256)]
    return colors, "".join("1" if text_color(c) == "#ffffff" else "0" for c in colors)


__all__ = ["CMAP", "MIN_VMAX", "SCALE_PERCENTILE", "relevancy_color"]
