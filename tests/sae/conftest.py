"""Fixtures of the SAE tests: a tiny SAELens SAE on the tiny llama model, built in milliseconds,
and one trained with SAELens' trainer in a few seconds."""

from __future__ import annotations

import pytest

pytest.importorskip("sae_lens")


@pytest.fixture(scope="session")
def tiny_sae_lens(tiny_llama):
    from selfie_tl.sae.testing import tiny_sae

    return tiny_sae(tiny_llama, d_sae=32, layer=1, k=4, use_sae_lens=True)


@pytest.fixture(scope="session")
def trained_tiny(tiny_llama, tmp_path_factory):
    """(sae, info) trained on the tiny llama with SAELens' SAETrainer (pydoc corpus)."""
    from selfie_tl.sae import train_sae

    out = tmp_path_factory.mktemp("tiny_sae")
    return train_sae(
        tiny_llama, layer=2, d_sae=48, k=4, corpus="pydoc", n_tokens=4096, context_size=32, epochs=4, lr=3e-3,
        batch_size=128, heldout_tokens=512, out_dir=out, verbose=False,
    )  # fmt: skip
