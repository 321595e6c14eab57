"""Trained artifacts on disk (control edits, self-interpretation adapters): one file format.

An artifact is one safetensors file whose header metadata holds a JSON document: what it
is (``format``, ``format_version``), its settings, a fingerprint of the model it was
trained on, and a SHA-256 over the JSON document *and* the tensors, so a changed layer in
the metadata is caught as surely as a flipped bit in a weight. Files are written
atomically (:mod:`selfie_tl.files`); no pickle is involved.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from selfie_tl.errors import InvalidArgumentError, SelfieError
from selfie_tl.files import atomic_path

_META_KEY = "selfie_tl_edit"  # the header key (kept from the first edit files)


@dataclass(frozen=True)
class ModelFingerprint:
    """What identifies the model an artifact was trained on.

    Attributes:
        name: ``model.cfg.model_name``.
        n_layers: number of blocks.
        d_model: residual width.
        embed_sha256: SHA-256 of the embedding matrix ``W_E`` (float32 bytes).
    """

    name: str
    n_layers: int
    d_model: int
    embed_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelFingerprint:
        return cls(**data)


_HASH_MEMO: dict[tuple[int, int, int], str] = {}


def fingerprint(model: HookedTransformer) -> ModelFingerprint:
    """Fingerprint of ``model`` (the embedding hash is memoised per tensor version).

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> fp = fingerprint(tiny_model(n_layers=2))
        >>> fp.n_layers, fp.d_model, len(fp.embed_sha256)
        (2, 64, 64)
    """
    w_e = model.W_E
    # Hashing SmolLM2's 28M-entry embedding takes ~1 s; W_E._version changes on in-place edits.
    key = (id(w_e), w_e._version, w_e.data_ptr())
    if key not in _HASH_MEMO:
        data = w_e.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        _HASH_MEMO[key] = hashlib.sha256(data).hexdigest()
    return ModelFingerprint(
        name=str(model.cfg.model_name), n_layers=int(model.cfg.n_layers), d_model=int(model.cfg.d_model),
        embed_sha256=_HASH_MEMO[key],
    )  # fmt: skip


def tensors_hash(tensors: dict[str, Tensor], extra: str = "") -> str:
    """SHA-256 over ``extra`` (a JSON document) and every tensor's name, dtype, shape and values."""
    digest = hashlib.sha256(extra.encode())
    for name in sorted(tensors):
        t = tensors[name]
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_artifact(path: str | os.PathLike, tensors: dict[str, Tensor], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` with the JSON ``meta`` (plus its checksum) atomically.

    Raises:
        InvalidArgumentError: ``meta`` is not plain JSON.
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    try:
        body = json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"artifact metadata must be plain JSON: {exc}") from exc
    text = json.dumps({**meta, "sha256": tensors_hash(tensors, body)}, sort_keys=True)
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: text})
    return path


def read_artifact_metadata(
    path: str | os.PathLike, fmt: str, versions: tuple[int, ...], error: type[SelfieError]
) -> dict[str, Any]:
    """The JSON metadata of an artifact file of format ``fmt``, without loading tensors.

    Raises:
        FileNotFoundError: no such file.
        error: not a readable artifact of that format and a known version.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {fmt} file at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(_META_KEY)
        data = json.loads(raw) if raw else None
    except Exception as exc:  # safetensors raises its own error types on corrupt headers
        raise error(f"{path} is not a readable safetensors file: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise error(f"{path} holds no {fmt} metadata")
    if data.get("format_version") not in versions:
        raise error(f"{path} has {fmt} format version {data.get('format_version')}, expected one of {versions}")
    return data


def load_artifact(
    path: str | os.PathLike,
    model: HookedTransformer | None,
    fmt: str,
    versions: tuple[int, ...],
    error: type[SelfieError],
    *,
    check_fingerprint: bool = True,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read and verify an artifact: checksum over metadata and tensors, then the model.

    Returns:
        ``(meta, tensors)`` with the checksum removed from ``meta``.

    Raises:
        error: damaged file (checksum), or trained on a different model.
    """
    from safetensors.torch import load_file

    meta = read_artifact_metadata(path, fmt, versions, error)
    try:
        tensors = load_file(str(path))
    except Exception as exc:
        raise error(f"{path} could not be read: {exc}") from exc
    recorded = meta.pop("sha256", None)
    legacy = meta.pop("tensors_sha256", None)  # format 1 edits: tensors only
    if recorded is not None:
        ok = tensors_hash(tensors, json.dumps(meta, sort_keys=True, allow_nan=False)) == recorded
    else:
        ok = legacy is not None and tensors_hash(tensors) == legacy
    if not ok:
        raise error(f"{path}: metadata or tensors do not match the recorded SHA-256 (damaged or edited file)")
    if check_fingerprint and model is not None:
        saved = meta.get("model")
        if saved is None:
            raise error(f"{path} records no model fingerprint; pass check_fingerprint=False to load anyway")
        here = fingerprint(model).to_dict()
        diff = {k: (saved.get(k), v) for k, v in here.items() if saved.get(k) != v}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r} vs model {b!r}" for k, (a, b) in diff.items())
            raise error(f"{path} was trained on a different model ({detail})")
    return meta, tensors


__all__ = [
    "ModelFingerprint",
    "fingerprint",
    "load_artifact",
    "read_artifact_metadata",
    "save_artifact",
    "tensors_hash",
]
