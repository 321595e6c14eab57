"""Statistics over attribute-extraction rows: bootstrap intervals, accuracy per method and
layer, best layers and the comparisons the evaluation reports.

Example:
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"method": ["selfie:summary"] * 4, "template": ["summary"] * 4,
    ...                      "layer": [3, 3, 6, 6], "correct": [True, False, True, True],
    ...                      "model_knows": [True, False, True, False],
    ...                      "first_token_hit": [None] * 4})
    >>> summary = summarize(rows, n_bootstrap=200)
    >>> summary.layer.tolist(), summary.n.tolist(), summary.accuracy.tolist()
    ([3, 6], [2, 2], [0.5, 1.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from selfie_tl.errors import InvalidArgumentError

SUMMARY_COLUMNS = [
    "method", "layer", "n", "accuracy", "ci_low", "ci_high", "n_known", "accuracy_known",
    "first_token_accuracy",
]  # fmt: skip


def bootstrap_ci(
    hits: Sequence[bool] | np.ndarray, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``hits`` and its percentile-bootstrap confidence interval.

    Args:
        hits: 0/1 outcomes.
        n_bootstrap: resamples.
        seed: RNG seed (same seed, same interval).
        level: interval coverage.

    Returns:
        ``(mean, low, high)``; ``(nan, nan, nan)`` for no outcomes.

    Example:
        >>> bootstrap_ci([1, 0, 1, 1], seed=0)[0]
        0.75
        >>> bootstrap_ci([1, 1, 1])
        (1.0, 1.0, 1.0)
    """
    values = np.asarray(hits, dtype=float)
    if values.ndim != 1:
        raise InvalidArgumentError(f"hits must be 1-D, got shape {values.shape}")
    if not 0 < level < 1:
        raise InvalidArgumentError(f"level must be in (0, 1), got {level!r}")
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_bootstrap, values.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(values.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summarize(rows: pd.DataFrame, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Accuracy per (method, layer) with a 95% percentile-bootstrap interval.

    ``accuracy_known`` is the accuracy over facts the model completes itself
    (``model_knows``), when that column is filled; ``first_token_accuracy`` the logit lens'
    looser first-token rule.

    Returns:
        One row per (method, layer), columns :data:`SUMMARY_COLUMNS`.

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
    """Per method, the row of its best layer (highest accuracy; the shallower on ties).

    Example:
        >>> s = pd.DataFrame({"method": ["m", "m", "m"], "layer": [3, 6, 9], "accuracy": [0.2, 0.5, 0.5]})
        >>> best_layers(s).layer.tolist()
        [6]
    """
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
