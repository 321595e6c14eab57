"""Shared fixtures.

Unit tests use tiny random models (``tiny_llama``, ``tiny_gpt2``); integration tests,
marked ``integration``, use the embedded default model, loaded once per session.

Every shared model is checked after every test: no hook left on a hook point and no
instance ``forward`` left on a module (what interpretation installs must be gone).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from selfie_tl.hooks import hook_count
from selfie_tl.testing import tiny_model

PACKAGED_DATA = Path(str(resources.files("selfie_tl.data")))
"""The data files shipped inside the package (``selfie_tl/data``)."""

_SHARED_MODELS: dict[str, object] = {}


def _shared(name: str, model):
    _SHARED_MODELS[name] = model
    return model


@pytest.fixture(scope="session")
def tiny_llama():
    return _shared("tiny_llama", tiny_model("llama", n_layers=3, d_model=64, seed=0))


@pytest.fixture(scope="session")
def tiny_gpt2():
    return _shared("tiny_gpt2", tiny_model("gpt2", n_layers=3, d_model=64, seed=0))


@pytest.fixture(scope="session")
def tiny_gemma2():
    """Gemma-2-like: soft-capping, norms before and after, local/global attention, GQA."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from selfie_tl.testing import attach_tokenizer, tiny_tokenizer

    cfg = HookedTransformerConfig(
        n_layers=2, d_model=64, d_head=16, n_heads=4, n_key_value_heads=2, d_mlp=128, d_vocab=259,
        n_ctx=128, act_fn="gelu_pytorch_tanh", normalization_type="RMS", positional_embedding_type="rotary",
        rotary_dim=16, gated_mlp=True, final_rms=True, use_normalization_before_and_after=True,
        attn_scores_soft_cap=50.0, output_logits_soft_cap=30.0, attn_types=["local", "global"], window_size=4,
        original_architecture="Gemma2ForCausalLM", seed=0, default_prepend_bos=False, initializer_range=0.2,
    )  # fmt: skip
    torch.manual_seed(0)
    model = HookedTransformer(cfg)
    attach_tokenizer(model, tiny_tokenizer())
    return _shared("tiny_gemma2", model.eval())


@pytest.fixture(scope="session", params=["llama", "gpt2"])
def tiny(request, tiny_llama, tiny_gpt2):
    """Each unit test that takes ``tiny`` runs on both architectures."""
    return tiny_llama if request.param == "llama" else tiny_gpt2


@pytest.fixture(scope="session")
def default_model():
    from selfie_tl import load_model

    return _shared("default_model", load_model())


@pytest.fixture(autouse=True)
def _no_hook_left_behind():
    yield
    for name, model in _SHARED_MODELS.items():
        leaked = hook_count(model)
        overrides = [m for m, module in model.named_modules() if "forward" in vars(module)]
        if leaked or overrides:
            # clean up so that one leak does not fail every later test, then report it
            model.reset_hooks(including_permanent=True)
            for m, module in model.named_modules():
                vars(module).pop("forward", None)
            pytest.fail(f"{name}: {leaked} hook(s) and instance forward on {overrides} left after the test")


@pytest.fixture(scope="session")
def packaged_data() -> Path:
    """Directory of the packaged data files (``known_facts.csv`` ...)."""
    return PACKAGED_DATA
