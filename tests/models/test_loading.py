"""loading.py: argument checks at the door, dispatch, and the self-healing GGUF cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import warnings

import pytest
import torch

import selfie_tl.models.cache as cache_module
from selfie_tl.errors import ChecksumMismatchError, InvalidArgumentError, ModelLoadError, UnknownModelError
from selfie_tl.models import CacheWarning, cache_dir, fetch, load_model
from selfie_tl.models.cache import converted_cache_key, open_entry
from selfie_tl.testing import tiny_tokenizer

from .conftest import logits


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """Fail the test if loading gets as far as fetching or converting anything."""
    monkeypatch.setenv("SELFIE_TL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SELFIE_TL_GGUF", raising=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(fetch, "fetch_default_gguf", forbidden)
    monkeypatch.setattr("selfie_tl.models.gguf.convert_gguf", forbidden)
    yield
    assert not (tmp_path / "cache").exists()


# -- arguments are checked before any work -------------------------------------------------


@pytest.mark.parametrize("name", [123, 4.5, b"bytes", ["SmolLM2"], ""])
def test_bad_name(no_work, name):
    with pytest.raises(InvalidArgumentError, match="model name must"):
        load_model(name)


def test_bad_name_is_named(no_work):
    with pytest.raises(InvalidArgumentError, match=r"got 123 \(int\)"):
        load_model(123)


@pytest.mark.parametrize("device", ["banana", "cuda:x", 3.5, "meta"])
def test_bad_device(no_work, device):
    with pytest.raises(InvalidArgumentError, match="device"):
        load_model(device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch build has CUDA")
def test_cuda_on_a_cpu_only_torch(no_work):
    with pytest.raises(
        InvalidArgumentError, match=r"device 'cuda' is not available .*torch.cuda.is_available\(\) is False"
    ):
        load_model(device="cuda")


@pytest.mark.parametrize("dtype", ["float8", torch.int64, torch.float8_e4m3fn, "banana", 32])
def test_bad_dtype(no_work, dtype):
    with pytest.raises(InvalidArgumentError, match="dtype .* is not supported"):
        load_model(None, dtype=dtype)


def test_bad_rebuild_flag(no_work):
    with pytest.raises(InvalidArgumentError, match="rebuild"):
        load_model(rebuild="yes")


def test_cache_that_is_a_file(no_work, monkeypatch, tmp_path):
    path = tmp_path / "cachefile"
    path.write_text("")
    monkeypatch.setenv("SELFIE_TL_CACHE", str(path))
    with pytest.raises(ModelLoadError, match=f"SELFIE_TL_CACHE=.*{path}.*not a directory"):
        load_model()
    gguf_file = tmp_path / "x.gguf"
    gguf_file.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_model(gguf_file)


# -- dispatch ---------------------------------------------------------------------------------


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


def test_hf_directory_round_trip(tiny_hf_llama, tmp_path):
    directory = tmp_path / "my-llama-model"  # "llama" in the path used to confuse TransformerLens
    tiny_hf_llama.save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    model = load_model(directory)
    ids = torch.tensor([model.tokenizer("hello").input_ids])
    with torch.no_grad():
        torch.testing.assert_close(model(ids), tiny_hf_llama(ids).logits, rtol=0, atol=1e-5)
    assert model.unembed.W_U.data_ptr() == model.embed.W_E.data_ptr()  # tied, one tensor


# -- the GGUF cache: converted once, verified on every load, healed when damaged ------------------


def test_gguf_is_converted_once_then_loaded_from_the_cache(tiny_source):
    first = load_model(tiny_source.path)
    assert open_entry(tiny_source.entry)  # complete, with a valid manifest
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # a healthy entry loads silently
        second = load_model(tiny_source.path)
    assert tiny_source.conversions == [tiny_source.path]
    assert torch.equal(logits(first), logits(tiny_source.reference))
    assert torch.equal(logits(second), logits(tiny_source.reference))
    assert second.blocks[0].attn.W_O.permute(2, 0, 1).is_contiguous()


def _overwrite(path, offset_fraction=0.5, data=b"\x7f\xff" * 256):
    with open(path, "r+b") as fh:
        fh.seek(int(path.stat().st_size * offset_fraction))
        fh.write(data)


DAMAGES = {
    "weights partly overwritten": lambda e: _overwrite(e / "weights.safetensors"),
    "weights header overwritten": lambda e: _overwrite(e / "weights.safetensors", 0.0, b"\x01" * 16),
    "weights truncated": lambda e: os.truncate(e / "weights.safetensors", 4096),
    "weights missing": lambda e: (e / "weights.safetensors").unlink(),
    "config.json broken": lambda e: (e / "config.json").write_text("{not json"),
    "tokenizer damaged": lambda e: _overwrite(e / "tokenizer" / "tokenizer.json", 0.3, b"\0" * 64),
    "tokenizer folder missing": lambda e: shutil.rmtree(e / "tokenizer"),
    "manifest missing": lambda e: (e / "manifest.json").unlink(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_entry_is_reported_and_rebuilt(tiny_source, damage):
    load_model(tiny_source.path)
    DAMAGES[damage](tiny_source.entry)
    with pytest.warns(CacheWarning, match=f"cache entry {tiny_source.entry} is damaged .*rebuilding it"):
        model = load_model(tiny_source.path)
    assert len(tiny_source.conversions) == 2
    assert torch.equal(logits(model), logits(tiny_source.reference))
    open_entry(tiny_source.entry)  # healed on disk
    assert [p.name for p in tiny_source.entry.parent.iterdir()] == [tiny_source.entry.name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        load_model(tiny_source.path)
    assert len(tiny_source.conversions) == 2


def test_rebuild_forces_a_new_conversion(tiny_source):
    load_model(tiny_source.path)
    before = tiny_source.entry.stat().st_ino
    model = load_model(tiny_source.path, rebuild=True)
    assert len(tiny_source.conversions) == 2
    assert tiny_source.entry.stat().st_ino != before
    open_entry(tiny_source.entry)
    assert torch.equal(logits(model), logits(tiny_source.reference))
    assert [p.name for p in tiny_source.entry.parent.iterdir()] == [tiny_source.entry.name]


def test_stale_leftovers_are_cleaned_at_the_next_load(tiny_source):
    load_model(tiny_source.path)
    converted, gguf_dir = tiny_source.entry.parent, tiny_source.cache / "gguf"
    gguf_dir.mkdir()
    stale = [converted / f".{tiny_source.entry.name}.x1y2", gguf_dir / ".fetch.abc"]
    for folder in stale:
        folder.mkdir()
        (folder / "partial").write_bytes(b"\0" * 1000)
    fresh = converted / f".{tiny_source.entry.name}.live"
    fresh.mkdir()
    old = time.time() - 2 * cache_module.STALE_AFTER_S
    for folder in stale:
        os.utime(folder / "partial", (old, old))
        os.utime(folder, (old, old))
    load_model(tiny_source.path)
    assert not any(p.exists() for p in stale)
    assert fresh.exists()  # might belong to a conversion running now


def test_unwritable_cache_converts_in_memory_with_one_warning(tiny_source, monkeypatch):
    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache_module, "staging_dir", refuse)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(tiny_source.path)
    messages = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(messages) == 1
    assert f"could not write the model cache entry {tiny_source.entry}" in messages[0]
    assert "converted in memory" in messages[0]
    assert torch.equal(logits(model), logits(tiny_source.reference))
    assert not tiny_source.entry.exists()


def test_damaged_entry_in_an_unwritable_cache_is_not_trusted(tiny_source, monkeypatch):
    load_model(tiny_source.path)
    _overwrite(tiny_source.entry / "weights.safetensors")

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache_module, "staging_dir", refuse)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(tiny_source.path)
    messages = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(messages) == 2 and "is damaged" in messages[0] and "could not write" in messages[1]
    assert torch.equal(logits(model), logits(tiny_source.reference))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through folder permissions")
def test_read_only_cache_folder(tiny_source):
    tiny_source.cache.mkdir()
    tiny_source.cache.chmod(0o555)
    try:
        with pytest.warns(CacheWarning, match="could not write"):
            load_model(tiny_source.path)
    finally:
        tiny_source.cache.chmod(0o755)


def test_default_model_with_a_damaged_cached_gguf_is_fetched_again(fake_release, tiny_source):
    gguf_file = tiny_source.cache / "gguf" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf_file.parent.mkdir(parents=True)
    gguf_file.write_bytes(os.urandom(len(fake_release.payload)))  # random bytes under the real name
    with pytest.warns(CacheWarning, match=f"cached GGUF file {gguf_file} is damaged"):
        model = load_model()
    assert tiny_source.conversions == [gguf_file]
    assert gguf_file.read_bytes() == fake_release.payload  # converted from the verified copy
    entry = (
        tiny_source.cache
        / "converted"
        / converted_cache_key(gguf_file.stem, fetch.GGUF_SHA256, torch.float32)
    )
    open_entry(entry)
    assert torch.equal(logits(model), logits(tiny_source.reference))


def test_warm_default_load_needs_no_gguf(fake_release, tiny_source):
    load_model()
    (tiny_source.cache / "gguf" / "SmolLM2-135M-Instruct.Q4_1.gguf").unlink()
    load_model()
    assert len(tiny_source.conversions) == 1 and len(fake_release.downloads) == 1


def test_selfie_tl_gguf_with_the_published_name_but_other_bytes(tiny_source, monkeypatch, tmp_path):
    impostor = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    impostor.write_bytes(b"GGUF" + os.urandom(100))
    monkeypatch.setenv("SELFIE_TL_GGUF", str(impostor))
    with pytest.raises(ChecksumMismatchError, match=f"GGUF file {impostor} has sha256"):
        load_model()
    with pytest.raises(ChecksumMismatchError, match=str(impostor)):
        load_model(impostor)
    assert tiny_source.conversions == []


# -- the real default model (slow) ------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, torch, warnings, selfie_tl
    warnings.simplefilter("always")
    model = selfie_tl.load_model()
    ids = torch.tensor([model.tokenizer("The capital of France is").input_ids])
    with torch.no_grad():
        print(json.dumps(model(ids)[0, -1].topk(5).indices.tolist()))
    """
)


@pytest.mark.integration
def test_two_processes_on_an_empty_cache(tmp_path):
    real = cache_dir() / "gguf" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    cache = tmp_path / "cache"
    if real.is_file():  # saves a download; it is verified again before conversion anyway
        (cache / "gguf").mkdir(parents=True)
        shutil.copy(real, cache / "gguf" / real.name)
    env = {k: v for k, v in os.environ.items() if k != "SELFIE_TL_GGUF"}
    env["SELFIE_TL_CACHE"] = str(cache)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=900) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err[-3000:]
        assert "CacheWarning" not in err, err[-3000:]
    tops = [json.loads(out.strip().splitlines()[-1]) for out, _ in results]
    assert tops[0] == tops[1]
    entries = sorted(p.name for p in (cache / "converted").iterdir())
    assert len(entries) == 1 and not entries[0].startswith("."), entries
    open_entry(cache / "converted" / entries[0])
    third = subprocess.run(
        [sys.executable, "-c", _CHILD], check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert third.returncode == 0 and json.loads(third.stdout.strip().splitlines()[-1]) == tops[0]


def test_bfloat16_entries_are_kept_apart_and_read_back_exactly(tiny_source):
    first = load_model(tiny_source.path, dtype="bfloat16")
    second = load_model(tiny_source.path, dtype=torch.bfloat16)
    assert len(tiny_source.conversions) == 1
    assert second.cfg.dtype == torch.bfloat16 and second.blocks[1].mlp.W_out.dtype == torch.bfloat16
    assert torch.equal(logits(first), logits(second))
    assert not tiny_source.entry.exists()  # the float32 entry is another key
    assert len(list(tiny_source.entry.parent.iterdir())) == 1
