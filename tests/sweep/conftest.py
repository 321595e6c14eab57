"""Fixtures of the sweep tests: small vectors/prompts files and job factories on tiny models."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def vectors_file(tmp_path):
    path = tmp_path / "vectors.npy"
    np.save(path, np.random.default_rng(0).normal(size=(7, 64)).astype("float32"))
    return path


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("The cat sat\n\nParis is a city\n", encoding="utf-8")
    return path


@pytest.fixture
def make_job(tmp_path, vectors_file):
    from selfie_tl.sweep import SweepJob

    def make(name="out", **over):
        fields = {"output": str(tmp_path / name), "model": "tiny:llama", "vectors": str(vectors_file),
                  "settings": {"k": 1, "max_new_tokens": 4, "batch_size": 2}, "shard_size": 3}  # fmt: skip
        fields.update(over)
        return SweepJob(**fields)

    return make
