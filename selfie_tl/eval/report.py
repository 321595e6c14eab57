"""Presentation of an attribute-extraction summary (from
:func:`selfie_tl.eval.stats.summarize`): a terminal table and a per-layer PNG plot.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from selfie_tl.files import atomic_path


def format_table(summary: pd.DataFrame) -> str:
    """Layers down, methods across, ``acc% [lo, hi]`` in each cell (control: one row, ``-1``).

    Example:
        >>> s = pd.DataFrame({"method": ["m"], "layer": [3], "accuracy": [0.5], "ci_low": [0.25],
        ...                   "ci_high": [0.75]})
        >>> print(format_table(s))  # doctest: +NORMALIZE_WHITESPACE
        method          m
        layer
        3      50.0 [25-75]
    """
    if summary.empty:
        return "(no rows)"
    cells = summary.assign(
        cell=[f"{a * 100:.1f} [{lo * 100:.0f}-{hi * 100:.0f}]" for a, lo, hi in
              zip(summary.accuracy, summary.ci_low, summary.ci_high)]
    )  # fmt: skip
    table = cells.pivot(index="layer", columns="method", values="cell").fillna("")
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        return table.to_string()


def plot_accuracy(summary: pd.DataFrame, path: str | os.PathLike, title: str = "Attribute extraction") -> Path:
    """Per-layer accuracy with 95% bands, one line per method; layer-free control rows
    (``layer == -1``) as dashed horizontal lines. Saves a PNG (Agg backend, written
    atomically) and returns its path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (method, group) in enumerate(summary.groupby("method", sort=True)):
        color = f"C{i % 10}"
        group = group.sort_values("layer")
        if (group.layer == -1).all():
            row = group.iloc[0]
            ax.axhline(row.accuracy * 100, color=color, ls="--", lw=1, label=f"{method} (no layer)")
            ax.axhspan(row.ci_low * 100, row.ci_high * 100, color=color, alpha=0.08)
            continue
        ax.plot(group.layer, group.accuracy * 100, marker="o", ms=3, color=color, label=method)
        ax.fill_between(group.layer, group.ci_low * 100, group.ci_high * 100, color=color, alpha=0.15)
    # layers are whole numbers: tick exactly the layers read (no fractional axis for one layer)
    layers = sorted({int(v) for v in summary.layer if v >= 0})
    if layers:
        ax.set_xticks(layers if len(layers) <= 16 else layers[:: -(-len(layers) // 16)])
        ax.set_xlim(layers[0] - 1, layers[-1] + 1)
    ax.set_xlabel("layer read (residual stream entering block L)")
    ax.set_ylabel("attribute found (%)")
    ax.set_title(title)
    top = float((summary.ci_high * 100).max()) if len(summary) else 0.0
    ax.set_ylim(0, max(5.0, top * 1.1))  # an all-zero result still gets a readable axis
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
