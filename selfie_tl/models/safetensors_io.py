"""A streaming safetensors reader that fills existing tensors and hashes the file on the way.

``safetensors.torch.load_file`` returns new tensors (a second copy of the model next to the
parameters they are copied into) and memory-maps the file (mapped pages count towards the
process' resident memory). This reader goes through the file once, in file order: each
tensor is read straight into its destination parameter when the file stores it in the
parameter's memory order (:func:`write_file` can store tensors permuted for that), else
through one reusable buffer and ``copy_``. Every byte is fed to an optional hash, so
checking a cache entry costs hashing but no second read.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Protocol

import torch

from selfie_tl.errors import ModelLoadError

_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
}
_MAX_HEADER = 100 << 20
_PERMUTATIONS_KEY = "selfie_tl.permutations"


class _Hasher(Protocol):
    def update(self, data: Any, /) -> None: ...


def read_index(path: str | os.PathLike) -> tuple[dict[str, Any], int]:
    """The tensor index of a safetensors file (name -> dtype, shape, offsets) and where data starts.

    Raises:
        ModelLoadError: the file is too short, its header is not JSON, or an entry is
            inconsistent (unknown dtype, size not matching the shape, outside the file).

    Example:
        >>> import tempfile, pathlib, torch
        >>> from safetensors.torch import save_file
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> save_file({"a": torch.zeros(2, 3)}, str(path))
        >>> index, start = read_index(path)
        >>> index["a"]["shape"], index["a"]["dtype"]
        ([2, 3], 'F32')
    """
    path = Path(path)
    with open(path, "rb") as fh:
        return _parse_header(path, fh, os.fstat(fh.fileno()).st_size)[:2]


def _parse_header(
    path: Path, fh: Any, size: int
) -> tuple[dict[str, Any], int, bytes, dict[str, tuple[int, ...]]]:
    prefix = fh.read(8)
    if len(prefix) < 8:
        raise ModelLoadError(f"{path} is not a safetensors file: only {len(prefix)} bytes")
    header_len = int.from_bytes(prefix, "little")
    if header_len > min(_MAX_HEADER, size - 8):
        raise ModelLoadError(f"{path} is not a safetensors file: header length {header_len} exceeds the file")
    raw = fh.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: safetensors header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise ModelLoadError(f"{path}: safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    try:
        permutations = json.loads(metadata.get(_PERMUTATIONS_KEY, "{}"))
        permutations = {str(k): tuple(int(i) for i in v) for k, v in permutations.items()}
    except (AttributeError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: safetensors metadata {_PERMUTATIONS_KEY!r} is malformed") from exc
    for name, perm in permutations.items():
        if name not in header or sorted(perm) != list(range(len(perm))):
            raise ModelLoadError(f"{path}: safetensors metadata has a bad permutation for {name!r}")
    data_size = size - 8 - header_len
    for name, entry in header.items():
        try:
            dtype = _DTYPES[entry["dtype"]]
            start, end = (int(x) for x in entry["data_offsets"])
            numel = math.prod(int(d) for d in entry["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{path}: safetensors entry {name!r} is malformed ({exc!r})") from exc
        if not 0 <= start <= end <= data_size or end - start != numel * dtype.itemsize:
            raise ModelLoadError(
                f"{path}: safetensors entry {name!r} has inconsistent offsets {start}, {end}"
            )
    previous_end = 0
    for name, entry in _in_file_order(header):
        start, end = (int(x) for x in entry["data_offsets"])
        if start < previous_end:
            raise ModelLoadError(f"{path}: safetensors entry {name!r} overlaps the one before it")
        previous_end = end
    return header, 8 + header_len, prefix + raw, permutations


def _in_file_order(index: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted(index.items(), key=lambda item: int(item[1]["data_offsets"][0]))


def write_file(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    permutations: dict[str, tuple[int, ...]] | None = None,
) -> None:
    """Save ``tensors`` (to CPU, contiguous), each named one stored as ``t.permute(perm)``.

    The permutations are recorded in the file's metadata (``selfie_tl.permutations``), so
    :func:`read_into` can undo them; a reader that ignores them sees the permuted shapes.
    Storing a tensor in the order its destination parameter keeps its memory turns loading
    into a plain read into that memory (no intermediate buffer, no strided copy).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> write_file(path, {"a": torch.arange(6.0).reshape(2, 3)}, {"a": (1, 0)})
        >>> read_index(path)[0]["a"]["shape"]
        [3, 2]
    """
    from safetensors.torch import save_file

    permutations = {k: tuple(v) for k, v in (permutations or {}).items() if k in tensors}
    stored = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu")
        if name in permutations:
            tensor = tensor.permute(permutations[name])
        # clone: tied weights share storage, which safetensors refuses
        stored[name] = tensor.contiguous().clone() if tensor.is_contiguous() else tensor.contiguous()
    save_file(stored, str(path), metadata={_PERMUTATIONS_KEY: json.dumps(permutations)})


def read_into(
    path: str | os.PathLike,
    targets: dict[str, torch.Tensor],
    digest: _Hasher | None = None,
) -> None:
    """Copy tensors of a safetensors file into existing tensors, reading the file once.

    Every byte of the file (header included) is passed to ``digest.update`` in file order,
    so ``digest`` ends as the hash of the whole file, whichever tensors were wanted. When a
    destination is a CPU tensor of the file's dtype whose memory is laid out as stored
    (see :func:`write_file`), the bytes are read straight into it.

    Args:
        path: the safetensors file.
        targets: name -> destination tensor (any layout, dtype and device; values are
            converted by ``copy_``). Names of the file not in ``targets`` are skipped.
        digest: a ``hashlib`` object, or ``None``.

    Raises:
        ModelLoadError: a target is missing from the file, shapes differ, or the file is
            malformed or truncated.

    Example:
        >>> import hashlib, tempfile, pathlib, torch
        >>> from safetensors.torch import save_file
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> save_file({"a": torch.arange(6.0).reshape(2, 3)}, str(path))
        >>> out, h = torch.empty(3, 2).T, hashlib.sha256()
        >>> read_into(path, {"a": out}, h)
        >>> out.tolist(), h.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
        ([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], True)
    """
    path = Path(path)
    with open(path, "rb") as fh:
        index, _, header_bytes, permutations = _parse_header(path, fh, os.fstat(fh.fileno()).st_size)
        missing = sorted(set(targets) - set(index))
        if missing:
            raise ModelLoadError(f"{path} lacks tensors {missing[:5]}")
        destinations = {}
        for name, target in targets.items():
            dest = target.detach()
            if name in permutations:
                if len(permutations[name]) != dest.ndim:
                    raise ModelLoadError(f"{path}: tensor {name!r} has a permutation of the wrong length")
                dest = dest.permute(permutations[name])
            if list(dest.shape) != [int(d) for d in index[name]["shape"]]:
                raise ModelLoadError(
                    f"{path}: tensor {name!r} is stored with shape {index[name]['shape']}, "
                    f"expected {list(dest.shape)}"
                )
            destinations[name] = dest
        if digest is not None:
            digest.update(header_bytes)
        scratch: memoryview | None = None
        position = 0
        for name, entry in _in_file_order(index):
            start, end = (int(x) for x in entry["data_offsets"])
            if start > position:  # a gap (safetensors writes none): hash it all the same
                scratch = _scratch(scratch, 1 << 20)
                _skip(path, fh, scratch, start - position, digest)
            position = end
            if end == start:
                continue
            dtype = _DTYPES[entry["dtype"]]
            dest = destinations.get(name)
            direct = dest is not None and dest.device.type == "cpu" and dest.dtype == dtype
            if direct and dest.ndim > 0 and dest.is_contiguous():
                chunk = memoryview(dest.view(torch.uint8).reshape(-1).numpy())
                _read_exactly(path, fh, chunk)  # straight into the parameter's memory
                if digest is not None:
                    digest.update(chunk)
                continue
            scratch = _scratch(scratch, end - start)
            chunk = scratch[: end - start]
            _read_exactly(path, fh, chunk)
            if digest is not None:
                digest.update(chunk)
            if dest is not None:
                source = torch.frombuffer(chunk, dtype=dtype, count=(end - start) // dtype.itemsize)
                with torch.no_grad():
                    dest.copy_(source.reshape(dest.shape))
        scratch = _scratch(scratch, 1 << 20)
        while True:  # trailing bytes after the last tensor still belong to the file's hash
            got = fh.readinto(scratch)
            if not got:
                break
            if digest is not None:
                digest.update(scratch[:got])


def _scratch(current: memoryview | None, size: int) -> memoryview:
    if current is not None and len(current) >= size:
        return current
    return memoryview(bytearray(size))


def _read_exactly(path: Path, fh: Any, view: memoryview) -> None:
    got = fh.readinto(view)
    if got != len(view):
        raise ModelLoadError(f"{path} is truncated: wanted {len(view)} bytes, got {got}")


def _skip(path: Path, fh: Any, view: memoryview, n: int, digest: _Hasher | None) -> None:
    while n > 0:
        chunk = view[: min(n, len(view))]
        _read_exactly(path, fh, chunk)
        if digest is not None:
            digest.update(chunk)
        n -= len(chunk)


__all__ = ["read_index", "read_into", "write_file"]
