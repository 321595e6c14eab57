"""Ablation (vectors, hooks, the flow) and SelfIE on a HookedSAETransformer with SAEs spliced in."""

from __future__ import annotations

import pytest
import torch

from selfie_tl import interpret_vectors
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.hooks import hook_count
from selfie_tl.sae import (
    SAEMismatchError,
    ablate_features,
    ablated,
    ablation_flow,
    ablation_hooks,
    as_hooked_sae_transformer,
    attached_saes,
    capture_features,
    check_injection_free,
    explain_features,
    spliced,
)
from selfie_tl.sae.testing import tiny_sae


@pytest.fixture(scope="module")
def hsae(tiny_llama):
    return as_hooked_sae_transformer(tiny_llama)


def test_ablation_moves_only_chosen_features(tiny_sae_lens):
    x = torch.randn(5, 64)
    out = ablate_features(x, tiny_sae_lens, [3, 7])
    acts_before = tiny_sae_lens.encode(x)
    expected = x - (acts_before[:, [3, 7]] @ tiny_sae_lens.W_dec[[3, 7]]).detach()  # linear decoder
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    inactive = [f for f in range(32) if (acts_before[:, f] == 0).all()]
    torch.testing.assert_close(ablate_features(x, tiny_sae_lens, inactive), x)


def test_ablation_hook_equals_vector_ablation(tiny_llama, tiny_sae_lens):
    ids = tiny_llama.tokenizer("hello world", return_tensors="pt").input_ids
    name = "blocks.1.hook_resid_pre"
    _, clean = tiny_llama.run_with_cache(ids, names_filter=[name])
    with ablated(tiny_llama, tiny_sae_lens, [0, 1, 2]):
        _, cache = tiny_llama.run_with_cache(ids, names_filter=[name])
    torch.testing.assert_close(cache[name], ablate_features(clean[name], tiny_sae_lens, [0, 1, 2]))
    assert hook_count(tiny_llama) == 0
    only_last = ablation_hooks(tiny_llama, tiny_sae_lens, [0, 1, 2], positions=[-1 % ids.shape[1]])
    with tiny_llama.hooks(fwd_hooks=only_last):
        _, part = tiny_llama.run_with_cache(ids, names_filter=[name])
    torch.testing.assert_close(part[name][:, :-1], clean[name][:, :-1])


def test_ablation_flow(tiny_llama, tiny_sae_lens):
    _resid, acts = capture_features(tiny_llama, "The cat sat", tiny_sae_lens, -1)
    top = int(acts[0].argmax())
    out = ablation_flow(tiny_llama, tiny_sae_lens, [top], "The cat sat", max_new_tokens=4, answer_tokens=4, k=1)
    assert out["activations"][top] > 0 and out["delta_norm"] > 0
    assert out["top_features"][0][0] == top
    assert len(out["interpretations"]) == 2 and len(out["answers"]) == 2


def test_conversion_shares_weights_and_matches(tiny_llama, hsae):
    assert type(hsae).__name__ == "HookedSAETransformer"
    assert hsae.W_U.data_ptr() == tiny_llama.W_U.data_ptr()
    assert as_hooked_sae_transformer(hsae) is hsae
    ids = tiny_llama.tokenizer("abc", return_tensors="pt").input_ids
    torch.testing.assert_close(hsae(ids), tiny_llama(ids))


def test_interpretation_with_spliced_sae_fires_its_hooks(hsae, tiny_sae_lens, tiny_llama):
    vectors = torch.randn(2, 64, generator=torch.Generator().manual_seed(1))
    plain = interpret_vectors(tiny_llama, vectors, k=0, max_new_tokens=4)
    seen = []
    with spliced(hsae, tiny_sae_lens):  # error term kept: outputs unchanged
        name = "blocks.1.hook_resid_pre.hook_sae_acts_post"
        hooks = [(name, lambda acts, hook: seen.append(acts.shape) or acts)]
        texts = interpret_vectors(hsae, vectors, k=0, max_new_tokens=4, fwd_hooks=hooks)
        resid, acts = capture_features(hsae, "hello there", tiny_sae_lens, [0, -1])
        df = explain_features(hsae, tiny_sae_lens, [0, 1], contexts=torch.randint(0, 250, (2, 8)),
                              max_new_tokens=2, verbose=False, k=0)  # fmt: skip
        assert len(df) == 2
    assert texts == plain  # injection still writes the residual at k=0
    assert seen and seen[0][-1] == 32  # the SAE's hook point fired during interpretation
    assert resid.shape == (2, 64) and acts.shape == (2, 32)
    assert attached_saes(hsae) == {} and hook_count(hsae) == 0
    assert "blocks.1.hook_resid_pre" in hsae.hook_dict


def test_ablation_on_spliced_sae_zeroes_acts(hsae, tiny_sae_lens):
    ids = hsae.tokenizer("hello world", return_tensors="pt").input_ids
    name = "blocks.1.hook_resid_pre"
    _, clean = hsae.run_with_cache(ids, names_filter=[name])
    expected = ablate_features(clean[name], tiny_sae_lens, [0, 1])
    with spliced(hsae, tiny_sae_lens):
        hooks = ablation_hooks(hsae, tiny_sae_lens, [0, 1])
        assert hooks[0][0].endswith("hook_sae_acts_post")
        with hsae.hooks(fwd_hooks=hooks):
            _, cache = hsae.run_with_cache(ids, names_filter=[f"{name}.hook_sae_output"])
    torch.testing.assert_close(cache[f"{name}.hook_sae_output"], expected, rtol=1e-4, atol=1e-4)


def test_spliced_refusals_and_cleanup_after_error(hsae, tiny_sae_lens, tiny_llama):
    with spliced(hsae, tiny_sae_lens):
        with pytest.raises(InvalidArgumentError, match="spliced into blocks.1.hook_resid_pre"):
            check_injection_free(hsae, 1)
        with pytest.raises(InvalidArgumentError, match="where SelfIE injects with k=1"):
            explain_features(hsae, tiny_sae_lens, [0], contexts=torch.randint(0, 250, (2, 8)), k=1, verbose=False)
        with pytest.raises(SAEMismatchError, match="already spliced"), spliced(hsae, tiny_sae_lens):
            pass
    with pytest.raises(RuntimeError, match="boom"), spliced(hsae, tiny_sae_lens):
        raise RuntimeError("boom")
    assert attached_saes(hsae) == {} and hook_count(hsae) == 0
    with pytest.raises(InvalidArgumentError, match="HookedSAETransformer"), spliced(tiny_llama, tiny_sae_lens):
        pass
    wrong = tiny_sae(tiny_llama, layer=1, use_sae_lens=True)
    wrong.cfg.metadata.model_name = "gpt2-small"
    with pytest.raises(SAEMismatchError, match="gpt2-small"), spliced(hsae, wrong):
        pass
    assert attached_saes(hsae) == {}
