"""explain_features: rows, settings, resumable chunks; the HTML page; scoring."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.sae import (
    EXPLAIN_COLUMNS,
    baseline_explanations,
    explain_features,
    explanation_prompt,
    feature_activations,
    features_html,
    score_explanations,
    summarize_scores,
    text_activations,
    threshold_evaluation,
)
from selfie_tl.sae.scoring import own_vs_others_auroc

OPTS = {"max_new_tokens": 3, "verbose": False}


@pytest.fixture(scope="module")
def contexts():
    return torch.randint(0, 250, (6, 12), generator=torch.Generator().manual_seed(0))


def test_rows_and_columns(tiny_llama, tiny_sae_lens, contexts):
    df = explain_features(tiny_llama, tiny_sae_lens, [4, 0, 9], contexts=contexts, **OPTS)
    assert list(df.columns) == EXPLAIN_COLUMNS
    assert df.feature.tolist() == [4, 0, 9]
    assert df.scale.isin([0.5, 1.0, 2.0, 4.0]).all()  # the automatic choice, EXPLAIN_DEFAULTS' grid
    assert df.self_similarity.between(-1, 1).all() and df.auto_scale_ok.isin([True, False]).all()
    assert all(len(t) <= 8 for t in df.top_tokens) and all(len(t) == 8 for t in df.logit_lens)
    assert df.attrs["hook_name"] == "blocks.1.hook_resid_pre"
    assert 'What does "_ " mean?' in df.attrs["interpretation_prompt"]


def test_fixed_scale_and_prompts(tiny_llama, tiny_sae_lens, contexts):
    df = explain_features(tiny_llama, tiny_sae_lens, [1, 2], contexts=contexts, scale=2.0, prompt="summary", **OPTS)
    assert df.scale.tolist() == [2.0, 2.0] and df.self_similarity.isna().all()
    assert explanation_prompt(tiny_llama.tokenizer, "word").placeholder_positions
    assert "Word" in explanation_prompt(tiny_llama.tokenizer, "Word {} means").text
    with pytest.raises(InvalidArgumentError, match="unknown explanation prompt"):
        explanation_prompt(tiny_llama.tokenizer, "nonsense")


def test_same_rows_as_one_batch_of_interpret_vectors(tiny_llama, tiny_sae_lens, contexts):
    """Chunking and batching do not change the explanations (greedy decoding)."""
    a = explain_features(tiny_llama, tiny_sae_lens, list(range(6)), contexts=contexts, chunk_size=4, batch_size=3, **OPTS)
    b = explain_features(tiny_llama, tiny_sae_lens, list(range(6)), contexts=contexts, chunk_size=6, batch_size=6, **OPTS)
    assert a.explanation.tolist() == b.explanation.tolist()
    torch.testing.assert_close(torch.tensor(a.scale.tolist()), torch.tensor(b.scale.tolist()))


def test_resume_skips_finished_chunks(tiny_llama, tiny_sae_lens, contexts, tmp_path, monkeypatch):
    from selfie_tl.sae import explain

    first = explain_features(tiny_llama, tiny_sae_lens, list(range(5)), contexts=contexts, chunk_size=2,
                             out_dir=tmp_path, **OPTS)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "chunk-00000.jsonl", "chunk-00001.jsonl", "chunk-00002.jsonl", "manifest.json"
    ]  # fmt: skip
    (tmp_path / "chunk-00001.jsonl").unlink()  # as if interrupted during the second chunk
    calls = []
    real = explain._chunk_rows
    monkeypatch.setattr(explain, "_chunk_rows", lambda m, s, feats, *a: calls.append(feats) or real(m, s, feats, *a))
    again = explain_features(tiny_llama, tiny_sae_lens, list(range(5)), contexts=contexts, chunk_size=2,
                             out_dir=tmp_path, **OPTS)  # fmt: skip
    assert calls == [[2, 3]]
    pd.testing.assert_frame_equal(
        again[["feature", "explanation", "scale"]], first[["feature", "explanation", "scale"]], check_dtype=False
    )
    assert json.loads((tmp_path / "manifest.json").read_text())["features"] == [0, 1, 2, 3, 4]
    with pytest.raises(InvalidArgumentError, match="other settings"):
        explain_features(tiny_llama, tiny_sae_lens, [0, 1], contexts=contexts, out_dir=tmp_path, **OPTS)


def test_feature_activations_top_tokens(tiny_llama, tiny_sae_lens, contexts):
    stats = feature_activations(tiny_llama, tiny_sae_lens, contexts, [0, 5], top_k=4)
    assert stats.top_values.shape == (2, 4)
    assert (stats.top_values[:, :-1] >= stats.top_values[:, 1:]).all()
    # the recorded top activation is what the SAE gives at that token
    from selfie_tl.sae.activations import encode, residual_batch

    full = encode(tiny_sae_lens, residual_batch(tiny_llama, contexts, "blocks.1.hook_resid_pre"))[:, 1:, 5]
    torch.testing.assert_close(stats.max_activation[1], full.max(), rtol=1e-4, atol=1e-5)
    assert len(stats.top_contexts(tiny_llama.tokenizer, 5, n=2)) <= 2


def test_scores_and_summary(tiny_llama, trained_tiny):
    sae, _ = trained_tiny
    feats = list(range(12))
    df = explain_features(tiny_llama, sae, feats, contexts=torch.randint(0, 250, (8, 16)), **OPTS)
    methods = baseline_explanations(df)
    assert set(methods) == {"selfie", "top_tokens", "logit_lens"}
    scores = score_explanations(tiny_llama, sae, feats, methods)
    assert scores.auroc.between(0, 1).all() and len(scores) == 36
    summary = summarize_scores(scores, n_bootstrap=200)
    assert summary.method.tolist() == ["selfie", "top_tokens", "logit_lens"]
    assert (summary.ci_low <= summary.mean_auroc).all() and (summary.mean_auroc <= summary.ci_high).all()
    assert "selfie_minus_this" in summary and pd.isna(summary.loc[0, "selfie_minus_this"])
    thr = threshold_evaluation(df, scores)
    assert thr.threshold.tolist()[-1] == "rank"
    page = features_html(df, scores=scores, summary=summary)
    assert page.count("<tr>") >= len(feats) and "AUROC top_tokens" in page


def test_text_activations_ignore_prefix_and_padding(tiny_llama, tiny_sae_lens):
    alone = text_activations(tiny_llama, tiny_sae_lens, ["a dog barks"], [0, 1, 2])
    padded = text_activations(tiny_llama, tiny_sae_lens, ["a dog barks", "x" * 40, ""], [0, 1, 2])
    torch.testing.assert_close(alone[0], padded[0], rtol=1e-4, atol=1e-5)
    assert padded[2].abs().sum() == 0


def test_own_vs_others_auroc():
    m = torch.tensor([[2.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert own_vs_others_auroc(m).tolist() == [1.0, 0.5, 0.5]
    with pytest.raises(InvalidArgumentError):
        own_vs_others_auroc(torch.zeros(1, 1))
