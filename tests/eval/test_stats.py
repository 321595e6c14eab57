"""Bootstrap intervals, the summary and the comparisons (selfie_tl.eval.stats)."""

import numpy as np
import pandas as pd
import pytest

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.eval.stats import (
    SUMMARY_COLUMNS,
    best_layers,
    bootstrap_ci,
    logit_lens_vs_selfie,
    selfie_vs_control,
    summarize,
)


def test_bootstrap_ci_contains_mean_and_is_seeded():
    hits = np.array([1] * 30 + [0] * 70)
    mean, lo, hi = bootstrap_ci(hits, n_bootstrap=2000, seed=1)
    assert mean == pytest.approx(0.3)
    assert lo < 0.3 < hi
    # the normal approximation gives about +-0.09 for p=0.3, n=100
    assert 0.2 < lo < 0.24 and 0.36 < hi < 0.4
    assert bootstrap_ci(hits, 500, seed=3) == bootstrap_ci(hits, 500, seed=3)


def test_bootstrap_ci_degenerate_and_errors():
    assert bootstrap_ci([0, 0, 0]) == (0.0, 0.0, 0.0)
    assert bootstrap_ci([1, 1]) == (1.0, 1.0, 1.0)
    assert all(np.isnan(v) for v in bootstrap_ci([]))
    with pytest.raises(InvalidArgumentError):
        bootstrap_ci([[1, 0]])
    with pytest.raises(InvalidArgumentError):
        bootstrap_ci([1, 0], level=1.5)


def _rows():
    rng = np.random.default_rng(0)
    rows = []
    for layer, p in [(3, 0.1), (6, 0.6), (9, 0.3)]:
        for i in range(50):
            rows.append({"method": "selfie:summary", "layer": layer, "correct": rng.random() < p,
                         "model_knows": i % 2 == 0, "first_token_hit": None})
            rows.append({"method": "logit_lens", "layer": layer, "correct": False, "model_knows": i % 2 == 0,
                         "first_token_hit": i < 10})
    for i in range(50):
        rows.append({"method": "control:summary", "layer": -1, "correct": False, "model_knows": i % 2 == 0,
                     "first_token_hit": None})
    return pd.DataFrame(rows)


def test_summarize_best_layer_and_comparison():
    rows = _rows()
    summary = summarize(rows, n_bootstrap=300)
    sel = summary[summary.method == "selfie:summary"].set_index("layer")
    for layer in (3, 6, 9):
        expected = rows[(rows.method == "selfie:summary") & (rows.layer == layer)].correct.mean()
        assert sel.loc[layer, "accuracy"] == pytest.approx(expected)
        assert sel.loc[layer, "n_known"] == 25
    ll = summary[summary.method == "logit_lens"]
    assert (ll.first_token_accuracy == 0.2).all()
    best = best_layers(summary).set_index("method")
    assert best.loc["selfie:summary", "layer"] == 6
    [cmp] = selfie_vs_control(summary)
    assert cmp["best_layer"] == 6 and cmp["control_accuracy"] == 0.0 and cmp["non_overlapping"]
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert summary[summary.method == "control:summary"].accuracy_known.tolist() == [0.0]


def test_selfie_vs_control_without_control_and_overlap():
    summary = pd.DataFrame({
        "method": ["selfie:a", "selfie:a", "control:a", "selfie:b"], "layer": [3, 6, -1, 3],
        "accuracy": [0.4, 0.5, 0.45, 0.2], "ci_low": [0.3, 0.35, 0.3, 0.1], "ci_high": [0.5, 0.6, 0.6, 0.3],
    })  # fmt: skip
    a, b = selfie_vs_control(summary)
    assert a["template"] == "a" and a["best_layer"] == 6 and a["non_overlapping"] is False
    assert a["control_ci"] == [0.3, 0.6]
    assert b == {"template": "b", "best_layer": 3, "selfie_accuracy": 0.2, "selfie_ci": [0.1, 0.3]}


def test_best_layers_prefers_the_shallower_on_ties():
    summary = pd.DataFrame({"method": ["m"] * 3 + ["n"], "layer": [9, 3, 6, 0], "accuracy": [0.5, 0.5, 0.1, 0.0]})
    assert best_layers(summary)[["method", "layer"]].values.tolist() == [["m", 3], ["n", 0]]


def test_logit_lens_vs_selfie_names_the_winner():
    summary = pd.DataFrame({"method": ["logit_lens"] * 3 + ["selfie:summary"] * 3, "layer": [0, 3, 6] * 2,
                            "accuracy": [0.1, 0.3, 0.5, 0.2, 0.3, 0.4]})  # fmt: skip
    table = logit_lens_vs_selfie(summary)
    assert table.winner.tolist() == ["selfie:summary", "tie", "logit_lens"]
    assert table.layer.tolist() == [0, 3, 6]


def test_summarize_rejects_missing_columns():
    with pytest.raises(InvalidArgumentError, match="correct"):
        summarize(pd.DataFrame({"method": ["a"], "layer": [1]}))
