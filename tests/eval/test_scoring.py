"""Scoring rules, bootstrap intervals and the summary."""

import numpy as np
import pandas as pd
import pytest

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.eval.attributes import _token_hit, bootstrap_ci
from selfie_tl.eval.facts import attribute_match, normalize
from selfie_tl.eval.report import best_layers, format_table, plot_accuracy, selfie_vs_control, summarize


@pytest.mark.parametrize(
    "text, attribute, expected",
    [
        ("It is in Paris, France.", "Paris", True),
        ("A Parisian cafe", "Paris", False),  # whole words only
        ("SÃO PAULO is big", "São Paulo", True),  # case and accents
        ("new-york", "New York", True),  # punctuation is a space
        ("Antarctica", "antarctic", False),
        ("", "Italy", False),
        ("anything", "", False),  # empty attribute never matches
    ],
)
def test_attribute_match(text, attribute, expected):
    assert attribute_match(text, attribute) is expected


def test_normalize():
    assert normalize("  Île-de-France!! ") == "ile de france"


def test_logit_lens_token_rule_needs_whole_attribute_in_one_token():
    assert _token_hit(" Italy", "Italy")
    assert not _token_hit(" It", "Italy")
    assert not _token_hit(" ", "Italy")


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
            rows.append(dict(method="selfie:summary", layer=layer, correct=rng.random() < p,
                             model_knows=i % 2 == 0, first_token_hit=None))
            rows.append(dict(method="logit_lens", layer=layer, correct=False, model_knows=i % 2 == 0,
                             first_token_hit=i < 10))
    for i in range(50):
        rows.append(dict(method="control:summary", layer=-1, correct=False, model_knows=i % 2 == 0,
                         first_token_hit=None))
    return pd.DataFrame(rows)


def test_summarize_best_layer_and_comparison(tmp_path):
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
    table = format_table(summary)
    assert "control:summary" in table and "-1" in table
    png = plot_accuracy(summary, tmp_path / "acc.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_summarize_rejects_missing_columns():
    with pytest.raises(InvalidArgumentError, match="correct"):
        summarize(pd.DataFrame({"method": ["a"], "layer": [1]}))
