"""Colour scales."""

from __future__ import annotations

from selfie_tl import viz


def test_relevancy_color_clips_and_orders():
    assert viz.relevancy_color(2.0, 1.0) == viz.relevancy_color(1.0, 1.0)
    assert viz.relevancy_color(-1.0, 1.0) == viz.relevancy_color(0.0, 1.0)
    assert viz.relevancy_color(float("nan")) == "#eeeeee"
    # Higher relevancy -> darker colour.
    from matplotlib.colors import to_rgb

    lum = [sum(to_rgb(viz.relevancy_color(v, 1.0))) for v in (0.0, 0.5, 1.0)]
    assert lum[0] > lum[1] > lum[2]
