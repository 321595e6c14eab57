"""Training with SAELens' trainer, the cache, and the corpora."""

from __future__ import annotations

import json

import pytest
import torch

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.sae import SAETrainConfig, load_or_train
from selfie_tl.sae.corpus import load_corpus, resolve_corpus, split_texts, token_contexts, wordnet_dir


def test_trained_sae_is_a_saelens_sae_that_reconstructs(trained_tiny, tiny_llama):
    from sae_lens import SAE

    sae, info = trained_tiny
    assert isinstance(sae, SAE)
    assert sae.cfg.metadata.hook_name == "blocks.2.hook_resid_pre"
    assert sae.cfg.metadata.model_name == "tiny-llama"
    stats = info["stats"]
    assert stats["explained_variance"] > 0.3
    assert 0 < stats["l0"] <= 4
    assert stats["ce_clean"] <= stats["ce_zero_ablated"]
    assert info["corpus"] == "pydoc" and info["training_steps"] >= 1


def test_saved_folder_loads_with_saelens(trained_tiny, tmp_path, tiny_llama):
    from sae_lens import SAE

    sae, _ = trained_tiny
    sae.save_model(tmp_path)
    again = SAE.load_from_disk(tmp_path)
    assert torch.equal(again.W_dec, sae.W_dec)


def test_load_or_train_caches(tiny_llama, tmp_path, monkeypatch):
    monkeypatch.setenv("SELFIE_TL_CACHE", str(tmp_path))
    kw = {"layer": 1, "d_sae": 16, "k": 2, "corpus": "pydoc", "n_tokens": 1024, "context_size": 32, "epochs": 1, "batch_size": 128,
              "heldout_tokens": 256, "verbose": False}  # fmt: skip
    sae, info = load_or_train(tiny_llama, **kw)
    marker = tmp_path / "sae" / info["path"].rsplit("/", 1)[-1] / "selfie_tl.json"
    assert json.loads(marker.read_text())["config"]["d_sae"] == 16
    again, info2 = load_or_train(tiny_llama, **kw)
    assert torch.equal(again.W_dec, sae.W_dec) and info2["path"] == info["path"]


def test_config_validation(tiny_llama):
    with pytest.raises(InvalidArgumentError, match="k=9 must not exceed d_sae=8"):
        SAETrainConfig(layer=1, d_sae=8, k=9).validate(tiny_llama)
    with pytest.raises(InvalidArgumentError, match="corpus"):
        SAETrainConfig(layer=1, corpus="web").validate(tiny_llama)
    with pytest.raises(InvalidArgumentError, match="layer"):
        SAETrainConfig(layer=9).validate(tiny_llama)


def test_corpora_split_and_contexts(tiny_llama):
    texts = load_corpus("pydoc")
    train, held = split_texts(texts, 0.1)
    assert not set(held) & set(train[-10:]) and len(held) == round(len(texts) * 0.1)
    ctx = token_contexts(tiny_llama.tokenizer, train, 16, max_tokens=160)
    assert ctx.shape == (10, 16)
    assert resolve_corpus("auto") == ("wordnet" if wordnet_dir() else "pydoc")
    with pytest.raises(InvalidArgumentError, match="generated"):
        load_corpus("generated")


@pytest.mark.skipif(wordnet_dir() is None, reason="WordNet (Debian's wordnet-base) not installed")
def test_wordnet_corpus():
    from selfie_tl.sae.corpus import wordnet_texts

    texts = wordnet_texts()
    assert len(texts) > 100_000
    assert any(t.startswith("river: a large natural stream of water") for t in texts)
