"""SAE facts across SAELens versions, and the errors for SAEs that do not fit the model."""

from __future__ import annotations

import types

import pytest
import torch

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.sae import (
    FeatureIndexError,
    SAEMismatchError,
    check_features,
    check_sae,
    explain_features,
    features_as_vectors,
    sae_info,
)


def _sae(d_in=64, d_sae=8, **cfg):
    return types.SimpleNamespace(W_dec=torch.randn(d_sae, d_in), cfg=types.SimpleNamespace(d_in=d_in, d_sae=d_sae, **cfg))


def test_reads_hook_from_metadata_and_from_old_style_cfg(tiny_sae_lens):
    assert sae_info(tiny_sae_lens).hook_name == "blocks.1.hook_resid_pre"
    old = _sae(hook_name="blocks.2.hook_resid_post", model_name="tiny-llama")  # SAELens <= 5 layout
    info = sae_info(old)
    assert (info.hook_name, info.layer, info.model_name) == ("blocks.2.hook_resid_post", 3, "tiny-llama")


def test_d_in_mismatch_names_both_widths(tiny_llama):
    with pytest.raises(SAEMismatchError, match=r"d_in=32 .* d_model is 64"):
        check_sae(tiny_llama, _sae(d_in=32, hook_name="blocks.1.hook_resid_pre"))


def test_sae_from_another_model(tiny_llama, tiny_sae_lens):
    other = _sae(metadata={"hook_name": "blocks.1.hook_resid_pre", "model_name": "gpt2-small"})
    with pytest.raises(SAEMismatchError, match=r"'gpt2-small'.*'tiny-llama'"):
        check_sae(tiny_llama, other)
    assert check_sae(tiny_llama, other, allow_other_model=True).layer == 1
    with pytest.raises(SAEMismatchError, match="gpt2-small"):
        explain_features(tiny_llama, other, [0], verbose=False)


@pytest.mark.parametrize(
    "hook, match",
    [
        ("blocks.1.hook_mlp_out", "not a residual-stream hook"),
        ("blocks.7.hook_resid_pre", "only 3 layers"),
        (None, "records no hook name"),
    ],
)
def test_hook_mismatch(tiny_llama, hook, match):
    with pytest.raises(SAEMismatchError, match=match):
        check_sae(tiny_llama, _sae(hook_name=hook))


def test_feature_indices(tiny_sae_lens, tiny_llama):
    assert check_features(torch.tensor([1, -1]), 32) == [1, 31]
    with pytest.raises(FeatureIndexError, match="feature index 32 is out of range: this SAE has 32 features"):
        features_as_vectors(tiny_sae_lens, [0, 32], model=tiny_llama)
    with pytest.raises(FeatureIndexError, match="ints"):
        check_features(["a"], 4)
    with pytest.raises(FeatureIndexError, match="no feature"):
        check_features([], 4)
    with pytest.raises(FeatureIndexError, match="out of range"):
        explain_features(tiny_llama, tiny_sae_lens, [99], verbose=False)
    assert isinstance(FeatureIndexError("x"), InvalidArgumentError)


def test_not_an_sae():
    with pytest.raises(InvalidArgumentError, match="not an SAE"):
        sae_info(object())


def test_interop_sae_directions_checks_saelens_objects(tiny_llama, tiny_sae_lens):
    from selfie_tl.interop import sae_directions

    assert sae_directions(tiny_sae_lens, [0, 1], model=tiny_llama).shape == (2, 64)
    other = _sae(metadata={"hook_name": "blocks.1.hook_resid_pre", "model_name": "gpt2-small"})
    with pytest.raises(SAEMismatchError):
        sae_directions(other, [0], model=tiny_llama)
