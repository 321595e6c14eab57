"""safetensors_io.py: the streaming reader fills existing tensors, hashes the whole file, refuses damage."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from selfie_tl.errors import ModelLoadError
from selfie_tl.models.safetensors_io import read_index, read_into, write_file


@pytest.fixture
def tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "a": torch.randn(3, 5, generator=g),
        "b": torch.randn(2, 3, 4, generator=g),
        "c": torch.randn(7, generator=g).to(torch.bfloat16),
    }


@pytest.mark.parametrize("permute", [False, True])
def test_round_trip_and_whole_file_hash(tmp_path, tensors, permute):
    path = tmp_path / "w.safetensors"
    perms = {"a": (1, 0), "b": (2, 0, 1)} if permute else {}
    write_file(path, tensors, perms)
    targets = {
        "a": torch.empty(5, 3).T,  # the memory order that "a" is stored in when permuted
        "b": torch.empty(4, 2, 3).permute(1, 2, 0),
        "c": torch.empty(7, dtype=torch.float32),  # another dtype: converted by copy_
    }
    digest = hashlib.sha256()
    read_into(path, targets, digest)
    for name, tensor in tensors.items():
        assert torch.equal(targets[name].to(tensor.dtype), tensor), name
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sorted(load_file(str(path))) == ["a", "b", "c"]  # still a plain safetensors file


def test_skipped_tensors_are_still_hashed(tmp_path, tensors):
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    out, digest = torch.empty(3, 5), hashlib.sha256()
    read_into(path, {"a": out}, digest)
    assert torch.equal(out, tensors["a"])
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_index(tmp_path, tensors):
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    index, start = read_index(path)
    assert index["b"]["shape"] == [2, 3, 4] and start > 8


def test_truncated_file(tmp_path, tensors):
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelLoadError, match="inconsistent offsets|truncated"):
        read_into(path, {"a": torch.empty(3, 5)})


@pytest.mark.parametrize(
    "content, match",
    [
        (b"\x01\x02", "only 2 bytes"),
        ((10**9).to_bytes(8, "little") + b"{}", "header length"),
        ((4).to_bytes(8, "little") + b"{{{{", "not valid JSON"),
        ((2).to_bytes(8, "little") + b"[]", "not a JSON object"),
    ],
)
def test_malformed_headers(tmp_path, content, match):
    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=match):
        read_index(path)


def test_missing_tensor_and_wrong_shape(tmp_path, tensors):
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    with pytest.raises(ModelLoadError, match="lacks tensors"):
        read_into(path, {"zzz": torch.empty(1)})
    with pytest.raises(ModelLoadError, match="shape"):
        read_into(path, {"a": torch.empty(5, 3)})


def test_bad_permutation_metadata(tmp_path, tensors):
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path), metadata={"selfie_tl.permutations": json.dumps({"a": [0, 0]})})
    with pytest.raises(ModelLoadError, match="bad permutation"):
        read_into(path, {"a": torch.empty(3, 5)})
