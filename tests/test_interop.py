"""SelfIE next to other TransformerLens analyses, on tiny models."""

from __future__ import annotations

import types

import pytest
import torch

from selfie_tl import (
    InvalidArgumentError,
    VectorError,
    capture,
    interpret,
    interpret_vectors,
    vectors_from_cache,
)
from selfie_tl.hooks import hook_count, prompt_tokens
from selfie_tl.interop import (
    logit_lens,
    mean_difference,
    patched_capture,
    rescale,
    sae_directions,
    typical_norm,
    with_logit_lens,
)

OPTS = {"k": 1, "max_new_tokens": 6}


def test_interpret_vectors_from_activation_cache(tiny):
    prompt = "The cat sat on"
    ids = prompt_tokens(tiny, prompt)
    _, cache = tiny.run_with_cache(ids[None])  # a plain, unfiltered cache
    pairs = [(0, 2), (2, -1), (3, -1)]
    vectors = torch.cat([vectors_from_cache(cache, tiny, [layer], [tok])[0] for layer, tok in pairs])
    from_cache = interpret_vectors(tiny, vectors, **OPTS)
    direct = interpret(tiny, prompt, pairs, relevancy=False, **OPTS)
    assert from_cache == direct.interpretation.tolist()
    # The cache holds the exact residual interpret captures.
    torch.testing.assert_close(vectors[1], capture(tiny, prompt, 2, -1)[0, 0])


def test_logit_lens_last_layer_is_the_models_prediction(tiny):
    ids = prompt_tokens(tiny, "hello world")
    logits = tiny(ids[None])[0, -1]
    vec = capture(tiny, ids, tiny.cfg.n_layers, -1)[0]
    (reading,) = logit_lens(tiny, vec, top_k=4)
    probs = logits.float().softmax(-1)
    top = probs.topk(4)
    assert [tok for tok, _ in reading] == [tiny.tokenizer.decode([i]) for i in top.indices.tolist()]
    assert [p for _, p in reading] == pytest.approx(top.values.tolist(), rel=1e-4)
    # Earlier layers give a different reading (the lens is not constant).
    early = logit_lens(tiny, capture(tiny, ids, 1, -1)[0], top_k=4)[0]
    assert early != reading
    with pytest.raises(InvalidArgumentError, match="top_k"):
        logit_lens(tiny, vec, top_k=0)


def test_selfie_next_to_logit_lens(tiny_llama):
    df = interpret(tiny_llama, "The cat sat", [(1, -1), (3, -1), (3, 0)], **OPTS)
    both = with_logit_lens(tiny_llama, df, top_k=3)
    assert "logit_lens" not in df.columns and list(both.columns) == [*df.columns, "logit_lens"]
    assert both.interpretation.tolist() == df.interpretation.tolist()
    for row in both.itertuples():
        vec = capture(tiny_llama, row.prompt, row.layer, row.token)[0]
        expected = logit_lens(tiny_llama, vec, top_k=3)[0]
        assert [t for t, _ in row.logit_lens] == [t for t, _ in expected]
        assert [p for _, p in row.logit_lens] == pytest.approx([p for _, p in expected], rel=1e-4)
    with pytest.raises(InvalidArgumentError, match="missing"):
        with_logit_lens(tiny_llama, df.drop(columns=["prompt"]))


def test_patching_then_selfie(tiny):
    target, source = "The cat sat", "A dog ran"  # same length, byte tokenizer
    before = hook_count(tiny)
    n = tiny.cfg.n_layers
    read_layers, positions = [1, 2, n], [3, 4, 6, -1]
    patched = patched_capture(tiny, target, source, patch_layer=1, source_position=4, target_position=4,
                              layers=read_layers, positions=positions)  # fmt: skip
    clean = capture(tiny, target, read_layers, positions)
    assert hook_count(tiny) == before
    # At the patched layer the target position holds the source's vector ...
    torch.testing.assert_close(patched[0, 1], capture(tiny, source, 1, 4)[0, 0])
    # ... earlier positions are untouched at every layer (causal attention) ...
    torch.testing.assert_close(patched[:, 0], clean[:, 0])
    # ... and the patch propagates to later positions and layers.
    assert not torch.allclose(patched[1:, 2], clean[1:, 2])
    # Patching a prompt with itself changes nothing, down to the interpretation.
    same = patched_capture(tiny, target, target, 1, 4, 4, read_layers, positions)
    torch.testing.assert_close(same, clean)
    texts = interpret_vectors(tiny, patched[:, -1], **OPTS)
    assert len(texts) == 3
    assert interpret_vectors(tiny, same[:, -1], **OPTS) == interpret_vectors(tiny, clean[:, -1], **OPTS)


def test_mean_difference(tiny_gpt2):
    a, b = ["good day", "great fun"], ["bad day", "awful"]
    diff = mean_difference(tiny_gpt2, a, b, layer=2)
    manual = torch.stack([capture(tiny_gpt2, p, 2, -1)[0, 0] for p in a]).mean(0) - torch.stack(
        [capture(tiny_gpt2, p, 2, -1)[0, 0] for p in b]
    ).mean(0)
    torch.testing.assert_close(diff, manual)
    scaled = rescale(diff, typical_norm(tiny_gpt2, "good day", 2))
    assert scaled.norm().item() == pytest.approx(typical_norm(tiny_gpt2, "good day", 2), rel=1e-5)
    assert len(interpret_vectors(tiny_gpt2, scaled, **OPTS)) == 1
    with pytest.raises(InvalidArgumentError):
        mean_difference(tiny_gpt2, "good", b, layer=2)


class ToySAE(torch.nn.Module):
    """Shaped like SAELens' SAE where it matters: W_dec [d_sae, d_model] as a Parameter."""

    def __init__(self, d_sae: int, d_model: int) -> None:
        super().__init__()
        self.W_dec = torch.nn.Parameter(torch.nn.functional.normalize(torch.randn(d_sae, d_model), dim=-1))


def test_sae_directions_duck_typed(tiny_llama):
    torch.manual_seed(0)
    sae = ToySAE(32, tiny_llama.cfg.d_model)
    dirs = sae_directions(sae, [3, 7], model=tiny_llama)
    assert not dirs.requires_grad
    torch.testing.assert_close(dirs, sae.W_dec.detach()[[3, 7]])
    norm = typical_norm(tiny_llama, "The cat sat", 1)
    texts = interpret_vectors(tiny_llama, rescale(dirs, norm), **OPTS)
    assert texts == interpret_vectors(tiny_llama, sae.W_dec.detach()[[3, 7]] * norm, **OPTS)
    ns = types.SimpleNamespace(W_dec=sae.W_dec.detach())
    torch.testing.assert_close(sae_directions(ns, 5), sae.W_dec.detach()[[5]])
    with pytest.raises(InvalidArgumentError, match="W_dec"):
        sae_directions(object(), [0])
    with pytest.raises(VectorError, match="d_model"):
        sae_directions(ToySAE(4, 32), [0], model=tiny_llama)
    with pytest.raises(InvalidArgumentError, match="out of range"):
        sae_directions(sae, [32])
    with pytest.raises(VectorError):
        rescale(torch.zeros(1, 4), 1.0)


def test_saelens_if_installed(tiny_llama):
    sae_lens = pytest.importorskip("sae_lens")
    assert hasattr(sae_lens, "SAE")  # API shape only; loading weights needs the network
