"""Shared fixtures.

Unit tests use tiny random models (``tiny_llama``, ``tiny_gpt2``); integration tests,
marked ``integration``, use the embedded default model, loaded once per session.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from selfie_tl.testing import tiny_model

PACKAGED_DATA = Path(str(resources.files("selfie_tl.data")))
"""The data files shipped inside the package (``selfie_tl/data``)."""


@pytest.fixture(scope="session")
def tiny_llama():
    return tiny_model("llama", n_layers=3, d_model=64, seed=0)


@pytest.fixture(scope="session")
def tiny_gpt2():
    return tiny_model("gpt2", n_layers=3, d_model=64, seed=0)


@pytest.fixture(scope="session", params=["llama", "gpt2"])
def tiny(request, tiny_llama, tiny_gpt2):
    """Each unit test that takes ``tiny`` runs on both architectures."""
    return tiny_llama if request.param == "llama" else tiny_gpt2


@pytest.fixture(scope="session")
def default_model():
    from selfie_tl import load_model

    return load_model()


@pytest.fixture(scope="session")
def packaged_data() -> Path:
    """Directory of the packaged data files (``known_facts.csv`` ...)."""
    return PACKAGED_DATA
