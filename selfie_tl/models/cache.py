"""The model cache: where it is, what an entry holds, and how an entry is trusted.

Layout under :func:`cache_dir`::

    gguf/SmolLM2-135M-Instruct.Q4_1.gguf          the fetched, verified GGUF
    converted/<stem>-<sha256[:16]>-<dtype>-v<N>/  one converted model (an "entry")
        weights.safetensors                       TransformerLens state dict (stored in
                                                  the loaded parameters' memory order)
        config.json                               HookedTransformerConfig arguments
        tokenizer/                                the tokenizer, save_pretrained form
        manifest.json                             size and SHA-256 of every file above

An entry is written into a staging sibling (``files.staging_dir``) and renamed into place
when complete; ``manifest.json`` is the last file written inside it. On load every file
is checked against the manifest: sizes first (a ``stat``), then SHA-256 of the small files,
and the SHA-256 of ``weights.safetensors`` is computed on the bytes the loader reads anyway
(see :mod:`selfie_tl.models.safetensors_io`), so verifying costs hashing but no second read.
An entry that fails any check is reported with a :class:`CacheWarning` and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from selfie_tl.errors import ModelLoadError
from selfie_tl.files import staging_dir
from selfie_tl.models.layout import storage_permutation
from selfie_tl.models.safetensors_io import write_file

# Bump when the converted-cache layout or the conversion itself changes.
# v2: entries carry manifest.json (v1 entries, without one, are left to the versions that wrote them).
CACHE_FORMAT = 2

# Staging folders, partial downloads and discarded entries (names starting with ".") older
# than this are removed at the next load. A live conversion touches its files every few
# seconds and finishes in well under a minute, so an hour-old one is certainly dead.
STALE_AFTER_S = 3600.0

WEIGHTS, CONFIG, TOKENIZER, MANIFEST = "weights.safetensors", "config.json", "tokenizer", "manifest.json"


class CacheWarning(UserWarning):
    """Something in the model cache was damaged or could not be written; selfie_tl coped."""


def warn(message: str) -> None:
    """Issue a :class:`CacheWarning` attributed to the first caller outside this package."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == package:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, CacheWarning, stacklevel=level)


class _DamagedEntry(ModelLoadError):
    """A converted-model entry failed verification (caught by the loader, which rebuilds it)."""


def cache_dir() -> Path:
    """Directory where fetched GGUF files and converted weights are kept.

    ``$SELFIE_TL_CACHE`` if set, else ``$XDG_CACHE_HOME/selfie_tl`` or ``~/.cache/selfie_tl``.
    The folder need not exist yet.

    Raises:
        ModelLoadError: the path exists but is not a directory.

    Example:
        >>> import os, tempfile
        >>> saved = os.environ.get("SELFIE_TL_CACHE")
        >>> os.environ["SELFIE_TL_CACHE"] = os.path.join(tempfile.mkdtemp(), "cache")
        >>> cache_dir().name
        'cache'
        >>> _ = os.environ.pop("SELFIE_TL_CACHE") if saved is None else os.environ.update(SELFIE_TL_CACHE=saved)
    """
    if os.environ.get("SELFIE_TL_CACHE"):
        path = Path(os.environ["SELFIE_TL_CACHE"]).expanduser()
        source = f"SELFIE_TL_CACHE={os.environ['SELFIE_TL_CACHE']!r}"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "selfie_tl"
        source = "the default cache folder"
    if path.exists() and not path.is_dir():
        raise ModelLoadError(
            f"{source} points at {path}, which is not a directory; set SELFIE_TL_CACHE to a folder"
        )
    return path


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "f"
        >>> _ = path.write_bytes(b"abc")
        >>> sha256_file(path)[:16]
        'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def converted_cache_key(stem: str, digest: str, dtype: torch.dtype) -> str:
    """Folder name of the converted entry for a source file and dtype.

    Example:
        >>> converted_cache_key("m.Q4_1", "ab" * 32, torch.float32)
        'm.Q4_1-abababababababab-float32-v2'
    """
    return f"{stem}-{digest[:16]}-{str(dtype).removeprefix('torch.')}-v{CACHE_FORMAT}"


def remove_stale(directory: Path, max_age_s: float | None = None) -> list[Path]:
    """Remove leftovers of killed runs from ``directory``: dot-named items idle for ``max_age_s``.

    Every temporary sibling selfie_tl makes in the cache starts with a dot (staging
    folders ``.<entry>.*``, downloads ``.fetch.*``, temporary files ``.<name>.*.tmp``,
    discarded entries). An item counts as idle when neither it nor anything directly
    inside it was modified for ``max_age_s`` seconds (default :data:`STALE_AFTER_S`), so a
    folder another process is still writing is never touched. Errors (a read-only cache,
    a race with another cleaner) are ignored.

    Returns:
        The paths removed.

    Example:
        >>> import os, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> (d / ".entry.abc").mkdir(); (d / ".fresh.xyz").mkdir(); (d / "entry").mkdir()
        >>> os.utime(d / ".entry.abc", (0, 0))
        >>> [p.name for p in remove_stale(d)], sorted(p.name for p in d.iterdir())
        (['.entry.abc'], ['.fresh.xyz', 'entry'])
    """
    max_age_s = STALE_AFTER_S if max_age_s is None else max_age_s
    removed: list[Path] = []
    try:
        items = [p for p in directory.iterdir() if p.name.startswith(".")]
    except OSError:
        return removed
    now = time.time()
    for item in items:
        try:
            newest = item.lstat().st_mtime
            if item.is_dir() and not item.is_symlink():
                for child in item.iterdir():
                    newest = max(newest, child.lstat().st_mtime)
            if now - newest < max_age_s:
                continue
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            else:
                item.unlink()
            removed.append(item)
        except OSError:
            continue
    return removed


def _move_aside_and_delete(path: Path, inode: int | None = None) -> bool:
    """Rename ``path`` to a dot-named sibling and delete that; only if it is still ``inode``.

    Renaming first means no reader ever sees a half-deleted entry under the real name.
    Returns whether the entry was removed.
    """
    try:
        if inode is not None and path.stat().st_ino != inode:
            return False  # someone already replaced it
        aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.discard-", dir=path.parent))
        os.replace(path, aside / "entry")
    except OSError:
        return False
    shutil.rmtree(aside, ignore_errors=True)
    return True


def _entry_files(path: Path) -> dict[str, Path]:
    files = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = Path(root) / name
            files[full.relative_to(path).as_posix()] = full
    files.pop(MANIFEST, None)
    return files


def _write_manifest(path: Path, name: str) -> None:
    files = {
        rel: {"size": full.stat().st_size, "sha256": sha256_file(full)}
        for rel, full in sorted(_entry_files(path).items())
    }
    manifest = {"format": CACHE_FORMAT, "entry": name, "algorithm": "sha256", "files": files}
    (path / MANIFEST).write_text(json.dumps(manifest, indent=1))


def save_converted(
    path: Path,
    cfg_dict: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    tokenizer: Any,
    *,
    replace_inode: int | None = None,
) -> None:
    """Write a converted model as a cache entry at ``path``, atomically.

    Args:
        path: the entry folder (``cache_dir() / "converted" / key``).
        cfg_dict: ``HookedTransformerConfig`` arguments (JSON-serialisable).
        state_dict: TransformerLens parameter names -> tensors.
        tokenizer: a ``transformers`` tokenizer (saved with ``save_pretrained``).
        replace_inode: replace an existing entry, but only while it is still the folder with
            this inode (the damaged one that was found, or the one ``rebuild=True`` saw);
            otherwise a complete entry already at ``path`` wins and this one is discarded.

    Raises:
        OSError: the cache could not be written (nothing is left behind).

    Example:
        >>> import tempfile, pathlib
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> entry = pathlib.Path(tempfile.mkdtemp()) / "e"
        >>> save_converted(entry, {"n_layers": 1}, {"w": torch.zeros(2)}, tiny_tokenizer())
        >>> sorted(p.name for p in entry.iterdir())
        ['config.json', 'manifest.json', 'tokenizer', 'weights.safetensors']
    """
    path = Path(path)
    with staging_dir(path) as tmp:
        tied = bool(cfg_dict.get("tie_word_embeddings"))
        gated = bool(cfg_dict.get("gated_mlp"))
        tensors = {k: v for k, v in state_dict.items() if not (tied and k == "unembed.W_U")}
        permutations = {k: p for k in tensors if (p := storage_permutation(k, gated)) is not None}
        write_file(tmp / WEIGHTS, tensors, permutations)
        (tmp / CONFIG).write_text(json.dumps(cfg_dict, indent=1))
        tokenizer.save_pretrained(str(tmp / TOKENIZER))
        _write_manifest(tmp, path.name)  # last: an entry with a manifest is complete
        if replace_inode is not None:
            _move_aside_and_delete(path, replace_inode)


@dataclass
class CachedEntry:
    """A cache entry whose small files passed verification (the weights are checked while read)."""

    path: Path
    cfg_dict: dict[str, Any]
    tokenizer: Any
    weights: Path
    weights_sha256: str


def _damaged(path: Path, reason: str) -> _DamagedEntry:
    return _DamagedEntry(f"{path}: {reason}")


def open_entry(path: Path) -> CachedEntry:
    """Check a cache entry against its manifest and read its config and tokenizer.

    Checks: the manifest exists, is valid and names this entry; the entry holds exactly
    the files listed; each has the recorded size; the config and tokenizer files have the
    recorded SHA-256. The weights' SHA-256 is returned to be checked while they are read.

    Raises:
        ModelLoadError: (a private subclass) the entry is damaged; the message says how.
    """
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not an object")
    except FileNotFoundError:
        raise _damaged(path, "manifest.json is missing (interrupted copy or older cache)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _damaged(path, f"manifest.json is unreadable ({exc!r})") from exc
    if manifest.get("format") != CACHE_FORMAT or manifest.get("algorithm") != "sha256":
        raise _damaged(path, f"manifest.json has format {manifest.get('format')!r}, expected {CACHE_FORMAT}")
    if manifest.get("entry") != path.name:
        raise _damaged(path, f"manifest.json describes entry {manifest.get('entry')!r}, not {path.name!r}")
    if WEIGHTS not in files or CONFIG not in files:
        raise _damaged(path, "manifest.json does not list weights.safetensors and config.json")
    present = _entry_files(path)
    missing = sorted(set(files) - set(present))
    if missing:
        raise _damaged(path, f"missing files {missing}")
    unexpected = sorted(set(present) - set(files))
    if unexpected:
        raise _damaged(path, f"unexpected files {unexpected}")
    for rel, info in files.items():
        try:
            size, digest = int(info["size"]), str(info["sha256"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _damaged(path, f"manifest.json entry for {rel} is malformed") from exc
        actual = present[rel].stat().st_size
        if actual != size:
            raise _damaged(path, f"{rel} has {actual} bytes, the manifest records {size}")
        if rel != WEIGHTS and sha256_file(present[rel]) != digest:
            raise _damaged(path, f"{rel} does not match its SHA-256 in manifest.json")
    try:
        cfg_dict = json.loads((path / CONFIG).read_text())
        if not isinstance(cfg_dict, dict):
            raise TypeError("config.json is not an object")
    except (OSError, ValueError, TypeError) as exc:
        raise _damaged(path, f"config.json is unreadable ({exc!r})") from exc
    tokenizer = _load_tokenizer(path)
    return CachedEntry(path, cfg_dict, tokenizer, path / WEIGHTS, str(files[WEIGHTS]["sha256"]))


def _load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path / TOKENIZER))
    except Exception as exc:  # transformers raises many types for unreadable folders
        raise _damaged(path, f"the tokenizer folder does not load ({exc!r})") from exc


__all__ = [
    "CACHE_FORMAT",
    "STALE_AFTER_S",
    "CacheWarning",
    "CachedEntry",
    "cache_dir",
    "converted_cache_key",
    "open_entry",
    "remove_stale",
    "save_converted",
    "sha256_file",
]
