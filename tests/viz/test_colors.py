"""Colour scales."""

from __future__ import annotations

import pytest

from selfie_tl import InvalidArgumentError, viz


def test_relevancy_color_clips_and_orders():
    assert viz.relevancy_color(2.0, 1.0) == viz.relevancy_color(1.0, 1.0)
    assert viz.relevancy_color(-1.0, 1.0) == viz.relevancy_color(0.0, 1.0)
    assert viz.relevancy_color(float("nan")) == "#eeeeee"
    # Higher relevancy -> darker colour.
    from matplotlib.colors import to_rgb

    lum = [sum(to_rgb(viz.relevancy_color(v, 1.0))) for v in (0.0, 0.5, 1.0)]
    assert lum[0] > lum[1] > lum[2]


def test_scale_top_is_a_robust_percentile():
    from selfie_tl.viz.colors import palette, scale_top

    # One outlier does not wash out the rest: the top is the 95th percentile, not the max.
    values = [0.1] * 50 + [0.2] * 49 + [0.95]
    assert scale_top(values, None) == pytest.approx(0.2)
    assert scale_top([0.001, float("nan"), None], None) == viz.MIN_VMAX
    assert scale_top([], 0.4) == 0.4
    with pytest.raises(InvalidArgumentError, match="vmax"):
        scale_top([0.1], -1.0)
    colors, ink = palette()
    # What the report's script computes: entry min(255, floor(256 * v / top)).
    for v, top in [(0.0, 0.3), (0.1, 0.3), (0.29, 0.3), (0.3, 0.3), (0.7, 0.3)]:
        assert colors[min(255, int(min(v / top, 1.0) * 256))] == viz.relevancy_color(v, top)
    assert ink[0] == "0" and ink[255] == "1"
