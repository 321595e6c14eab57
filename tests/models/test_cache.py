"""cache.py: cache folder, entry keys, atomic entries with a manifest, verification, cleanup."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch

from selfie_tl.errors import ModelLoadError
from selfie_tl.models import cache
from selfie_tl.models.build import build_hooked
from selfie_tl.testing import tiny_tokenizer

from .conftest import TINY_CFG, logits


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFIE_TL_CACHE", str(tmp_path / "x"))
    assert cache.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("SELFIE_TL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "selfie_tl"


def test_cache_dir_that_is_a_file(monkeypatch, tmp_path):
    path = tmp_path / "oops"
    path.write_text("")
    monkeypatch.setenv("SELFIE_TL_CACHE", str(path))
    with pytest.raises(
        ModelLoadError, match=f"SELFIE_TL_CACHE='{path}' points at {path}, which is not a directory"
    ):
        cache.cache_dir()


def _save_tiny(reference, entry):
    state = {n: p.detach() for n, p in reference.named_parameters()}
    cache.save_converted(entry, dict(TINY_CFG), state, tiny_tokenizer())


def test_entry_round_trip_with_manifest(tiny_reference, tmp_path):
    entry = tmp_path / "converted" / "tiny"
    _save_tiny(tiny_reference, entry)
    assert sorted(p.name for p in entry.iterdir()) == [
        "config.json", "manifest.json", "tokenizer", "weights.safetensors",
    ]  # fmt: skip
    assert [p.name for p in entry.parent.iterdir()] == ["tiny"]  # staging folder renamed away
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["entry"] == "tiny" and manifest["format"] == cache.CACHE_FORMAT
    assert manifest["files"]["weights.safetensors"]["sha256"] == cache.sha256_file(
        entry / "weights.safetensors"
    )
    assert any(name.startswith("tokenizer/") for name in manifest["files"])
    found = cache.open_entry(entry)
    model = build_hooked(found.cfg_dict, found.weights, found.tokenizer, None, torch.float32,
                         weights_sha256=found.weights_sha256)  # fmt: skip
    assert torch.equal(logits(model), logits(tiny_reference))


def _overwrite_middle(path):
    with open(path, "r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        fh.write(b"\xff" * 64)


DAMAGES = {
    "no manifest": (lambda e: (e / "manifest.json").unlink(), "manifest.json is missing"),
    "manifest not JSON": (lambda e: (e / "manifest.json").write_text("{"), "manifest.json is unreadable"),
    "config.json edited": (lambda e: (e / "config.json").write_text("{\"n_layers\": 9" + " " * 200 + "}"),
                           "config.json|bytes"),
    "weights truncated": (lambda e: os.truncate(e / "weights.safetensors", 1000), "weights.safetensors has 1000 bytes"),
    "weights missing": (lambda e: (e / "weights.safetensors").unlink(), "missing files"),
    "tokenizer file missing": (lambda e: (e / "tokenizer" / "tokenizer.json").unlink(), "missing files"),
    "extra file": (lambda e: (e / "tokenizer" / "special_tokens_map.json").write_text("{}"), "unexpected files"),
    "tokenizer edited": (lambda e: _overwrite_middle(e / "tokenizer" / "tokenizer.json"), "tokenizer/tokenizer.json"),
}  # fmt: skip


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_open_entry_refuses_damaged_entries(tiny_reference, tmp_path, damage):
    entry = tmp_path / "tiny"
    _save_tiny(tiny_reference, entry)
    apply, match = DAMAGES[damage]
    apply(entry)
    with pytest.raises(ModelLoadError, match=match):
        cache.open_entry(entry)


def test_overwritten_weights_fail_their_checksum_while_read(tiny_reference, tmp_path):
    entry = tmp_path / "tiny"
    _save_tiny(tiny_reference, entry)
    _overwrite_middle(entry / "weights.safetensors")  # same size: only the hash can tell
    found = cache.open_entry(entry)
    with pytest.raises(ModelLoadError, match="weights.safetensors has sha256"):
        build_hooked(found.cfg_dict, found.weights, found.tokenizer, None, torch.float32,
                     weights_sha256=found.weights_sha256)  # fmt: skip


def test_failed_save_leaves_no_partial_entry(tiny_reference, tmp_path):
    class Broken:
        def save_pretrained(self, path):
            raise OSError("disk full")

    entry = tmp_path / "converted" / "tiny"
    state = {n: p.detach() for n, p in tiny_reference.named_parameters()}
    with pytest.raises(OSError, match="disk full"):
        cache.save_converted(entry, dict(TINY_CFG), state, Broken())
    assert list(entry.parent.iterdir()) == []


def test_replace_only_the_entry_that_was_seen(tiny_reference, tmp_path):
    entry = tmp_path / "tiny"
    _save_tiny(tiny_reference, entry)
    seen = entry.stat().st_ino
    (entry / "manifest.json").unlink()  # damaged...
    state = {n: p.detach() for n, p in tiny_reference.named_parameters()}
    cache.save_converted(entry, dict(TINY_CFG), state, tiny_tokenizer(), replace_inode=seen)
    cache.open_entry(entry)  # ...and replaced
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]
    fresh = entry.stat().st_ino
    cache.save_converted(entry, dict(TINY_CFG), state, tiny_tokenizer(), replace_inode=seen)
    assert entry.stat().st_ino == fresh  # someone else's newer entry is kept


def test_remove_stale_spares_live_work(tmp_path):
    old_staging = tmp_path / ".entry.k3j2"
    old_staging.mkdir()
    (old_staging / "weights.safetensors").write_bytes(b"x" * 100)
    old_tmp = tmp_path / ".file.gguf.abc.tmp"
    old_tmp.write_bytes(b"x")
    live = tmp_path / ".fetch.live"
    live.mkdir()
    (live / "wheel.whl").write_bytes(b"x")
    hours_ago = time.time() - 7200
    for path in (old_staging / "weights.safetensors", old_staging, old_tmp, live):
        os.utime(path, (hours_ago, hours_ago))  # live's file inside is fresh: still being written
    (tmp_path / "entry").mkdir()
    removed = cache.remove_stale(tmp_path)
    assert sorted(p.name for p in removed) == [".entry.k3j2", ".file.gguf.abc.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fetch.live", "entry"]
    assert cache.remove_stale(tmp_path / "missing") == []
