"""gguf.py: Llama config, conversion, and refusing non-finite weights from a damaged file."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig

from selfie_tl.errors import ModelLoadError
from selfie_tl.models import gguf


def test_llama_config_dict():
    cfg = gguf.llama_config_dict(
        LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
        "m",
    )
    assert (cfg["d_head"], cfg["n_key_value_heads"], cfg["tie_word_embeddings"]) == (16, 2, True)


def test_unsupported_rope_is_refused():
    config = LlamaConfig(hidden_size=64, num_attention_heads=4)
    config.rope_parameters = {"rope_type": "yarn", "rope_theta": 10000.0}
    with pytest.raises(ModelLoadError, match="rope_type 'yarn'"):
        gguf.llama_config_dict(config, "m")


def test_convert_llama_names_fit_a_hooked_transformer(tiny_hf_llama):
    cfg_dict, state_dict = gguf.convert_llama(tiny_hf_llama, torch.float32, "tiny")
    assert cfg_dict["n_layers"] == 2 and "blocks.1.attn._W_K" in state_dict


def test_nan_weights_from_a_damaged_gguf_are_refused(tiny_hf_llama, monkeypatch, tmp_path):
    import copy

    broken = copy.deepcopy(tiny_hf_llama)
    with torch.no_grad():
        broken.model.layers[1].mlp.up_proj.weight[0, 0] = float("nan")
    monkeypatch.setattr(gguf, "load_hf_model_from_gguf", lambda path, dtype: (broken, None))
    source = tmp_path / "damaged.gguf"
    with pytest.raises(ModelLoadError, match=f"converting {source} gave NaN .*blocks.1.mlp.W_in"):
        gguf.convert_gguf(source, torch.float32)


def test_unreadable_gguf_is_a_model_load_error(tmp_path):
    path = tmp_path / "random.gguf"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ModelLoadError, match=f"could not read GGUF file {path}"):
        gguf.load_hf_model_from_gguf(path)
