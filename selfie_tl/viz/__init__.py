"""Pictures of SelfIE results: a layer x token grid, relevancy-shaded text, HTML reports.

Everything here reads the DataFrame returned by :func:`selfie_tl.interpret` (columns
``prompt, layer, token, token_decoded, interpretation, relevancy, mean_relevancy,
generated_tokens``); only ``layer``, ``token`` and ``interpretation`` are required, the
rest make the pictures richer when present.

One concern per module:

* ``grid``: :func:`grid_data` arranges one prompt's rows as a :class:`Grid` of
  :class:`GridCell` (score, reply kind, the excerpt a cell shows);
* ``colors``: :func:`relevancy_color` and the colour scales (:data:`CMAP`, :data:`MIN_VMAX`);
* ``figure``: :func:`plot_grid` draws the grid with matplotlib and saves PNG/SVG/PDF;
* ``html``: :func:`grid_html` is the grid as an interactive HTML fragment (hover or click a
  cell to see the full interpretation with each generated token shaded by its relevancy)
  and :func:`interpretation_html` renders one interpretation; styles and script are the
  files in ``assets/``;
* ``report``: :func:`report_html` and :func:`write_report`, a standalone page (inline
  CSS/JS, nothing fetched from the network) with the model, version, date, command and
  settings of the run;
* ``display``: :func:`show` wraps a result for Jupyter (``_repr_html_``).

:func:`relevant_spans` (the stretches whose relevancy exceeds a threshold) lives in
:mod:`selfie_tl.relevancy` and is re-exported here.

Colour of a cell: :func:`~selfie_tl.relevancy.content_relevancy`, the mean relevancy over
the interpretation's content tokens (whitespace-only tokens, special/end tokens and
repetitions left out), read from a ``content_relevancy`` column when the frame has one.
Relevancy is ``|p(token | embedding) - p(token | no embedding)|`` in [0, 1], but typical
values are small, so by default a colour scale runs from 0 to the 95th percentile of the
values in the data (at least :data:`MIN_VMAX`, so that pure noise is never drawn
saturated); higher values get the top colour. Cells and tokens (per-token relevancy) have
separate scales, both shown in the legend. Every piece of text is HTML-escaped:
interpretations are model output.
"""

from selfie_tl.relevancy import RelevantSpan, relevant_spans
from selfie_tl.viz.colors import CMAP, MIN_VMAX, relevancy_color
from selfie_tl.viz.display import ResultView, show
from selfie_tl.viz.figure import plot_grid
from selfie_tl.viz.grid import GRID_COLUMNS, Grid, GridCell, grid_data
from selfie_tl.viz.html import grid_html, interpretation_html
from selfie_tl.viz.report import report_html, write_report

__all__ = [
    "CMAP",
    "GRID_COLUMNS",
    "MIN_VMAX",
    "Grid",
    "GridCell",
    "RelevantSpan",
    "ResultView",
    "grid_data",
    "grid_html",
    "interpretation_html",
    "plot_grid",
    "relevancy_color",
    "relevant_spans",
    "report_html",
    "show",
    "write_report",
]
