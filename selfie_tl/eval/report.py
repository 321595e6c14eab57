"""Summaries of attribute-extraction rows: accuracy per method and layer with bootstrap
intervals, a terminal table, a per-layer PNG plot and a JSON-ready digest.

Example:
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"method": ["selfie:summary"] * 4, "template": ["summary"] * 4,
    ...                      "layer": [3, 3, 6, 6], "correct": [True, False, True, True],
    ...                      "model_knows": [True, False, True, False],
    ...                      "first_token_hit": [None] * 4})
    >>> summarize(rows, n_bootstrap=200)[["layer", "n", "accuracy"]].values.tolist()
    [[3, 2, 0.5], [6, 2, 1.0]]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.eval.attributes import bootstrap_ci

SUMMARY_COLUMNS = [
    "method", "layer", "n", "accuracy", "ci_low", "ci_high", "n_known", "accuracy_known",
    "first_token_accuracy",
]  # fmt: skip


def summarize(rows: pd.DataFrame, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Accuracy per (method, layer) with a 95% percentile-bootstrap interval.

    ``accuracy_known`` is the accuracy over facts the model completes itself
    (``model_knows``), when that column is filled; ``first_token_accuracy`` the logit lens'
    looser first-token rule.

    Raises:
        InvalidArgumentError: ``rows`` lacks ``method``, ``layer`` or ``correct``.
    """
    missing = {"method", "layer", "correct"} - set(rows.columns)
    if missing:
        raise InvalidArgumentError(f"rows lack columns {sorted(missing)}")
    out = []
    for (method, layer), group in rows.groupby(["method", "layer"], sort=True):
        hits = group["correct"].astype(bool).to_numpy()
        acc, lo, hi = bootstrap_ci(hits, n_bootstrap, seed)
        known = group[group["model_knows"] == True] if "model_knows" in group else group.iloc[:0]
        first = group["first_token_hit"].dropna() if "first_token_hit" in group else pd.Series(dtype=float)
        out.append(
            {
                "method": method, "layer": int(layer), "n": len(group), "accuracy": acc, "ci_low": lo,
                "ci_high": hi, "n_known": len(known),
                "accuracy_known": float(known["correct"].mean()) if len(known) else float("nan"),
                "first_token_accuracy": float(first.astype(bool).mean()) if len(first) else float("nan"),
            }
        )  # fmt: skip
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def best_layers(summary: pd.DataFrame) -> pd.DataFrame:
    """Per method, the row of its best layer (highest accuracy; the shallower on ties)."""
    ordered = summary.sort_values(["method", "accuracy", "layer"], ascending=[True, False, True])
    return ordered.groupby("method", sort=True).head(1).reset_index(drop=True)


def selfie_vs_control(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """For each ``selfie:<template>``: its best layer against ``control:<template>``, and
    whether the 95% intervals do not overlap (SelfIE's low end above the control's high)."""
    best = best_layers(summary).set_index("method")
    out = []
    for method in best.index:
        if not method.startswith("selfie:"):
            continue
        template = method.split(":", 1)[1]
        s = best.loc[method]
        entry: dict[str, Any] = {
            "template": template, "best_layer": int(s.layer), "selfie_accuracy": float(s.accuracy),
            "selfie_ci": [float(s.ci_low), float(s.ci_high)],
        }  # fmt: skip
        control = f"control:{template}"
        if control in best.index:
            c = best.loc[control]
            entry.update(
                control_accuracy=float(c.accuracy), control_ci=[float(c.ci_low), float(c.ci_high)],
                non_overlapping=bool(s.ci_low > c.ci_high),
            )  # fmt: skip
        out.append(entry)
    return out


def logit_lens_vs_selfie(summary: pd.DataFrame, template: str = "summary") -> pd.DataFrame:
    """Per layer: logit-lens accuracy, SelfIE accuracy for ``template``, and which is higher."""
    ll = summary[summary.method == "logit_lens"].set_index("layer")["accuracy"]
    se = summary[summary.method == f"selfie:{template}"].set_index("layer")["accuracy"]
    both = pd.DataFrame({"logit_lens": ll, f"selfie:{template}": se}).dropna()
    both["winner"] = np.where(
        both["logit_lens"] > both[f"selfie:{template}"], "logit_lens",
        np.where(both["logit_lens"] < both[f"selfie:{template}"], f"selfie:{template}", "tie"),
    )  # fmt: skip
    return both.reset_index()


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
    (``layer == -1``) as dashed horizontal lines. Saves a PNG (Agg backend) and returns its path.
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
    ax.set_xlabel("layer read (residual stream entering block L)")
    ax.set_ylabel("attribute found (%)")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
