"""SelfIE for circuit studies: interpret what each component writes.

* :mod:`~selfie_tl.circuits.writes`: :func:`component_writes`, the writes of heads,
  attention and MLP outputs, neurons, the embedding and per-source head contributions at
  one position, as ``[n, d_model]`` vectors with labels (``"L9H6"``, ``"L12 MLP"``, ...);
* :mod:`~selfie_tl.circuits.interpret`: :func:`interpret_components` (SelfIE on those
  writes, each brought to the injection layer's residual norm) and
  :func:`compare_components` (the same components in a clean and a corrupted or patched
  run, side by side);
* :mod:`~selfie_tl.circuits.patching`: :func:`patching_effects` (activation patching scan)
  with :func:`logit_diff`, and :func:`patching_hooks`;
* :mod:`~selfie_tl.circuits.viz`: :func:`plot_components` / :func:`components_html`,
  component x layer grids drawn by :mod:`selfie_tl.viz`.

Layers are block indices (``blocks.l``) throughout this package. See ``docs/circuits.md``.
"""

from selfie_tl.circuits.interpret import COMPONENT_COLUMNS, compare_components, interpret_components
from selfie_tl.circuits.patching import logit_diff, patching_effects, patching_hooks
from selfie_tl.circuits.viz import component_grid_frame, components_html, plot_components
from selfie_tl.circuits.writes import (
    KINDS,
    Component,
    ComponentWrites,
    component_writes,
    hooks_needed,
    kv_head,
    list_components,
    parse_component,
)

__all__ = [
    "COMPONENT_COLUMNS",
    "KINDS",
    "Component",
    "ComponentWrites",
    "compare_components",
    "component_grid_frame",
    "component_writes",
    "components_html",
    "hooks_needed",
    "interpret_components",
    "kv_head",
    "list_components",
    "logit_diff",
    "parse_component",
    "patching_effects",
    "patching_hooks",
    "plot_components",
]
