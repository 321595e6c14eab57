"""Process-wide settings for long CPU runs: the ``selfie-tl`` commands apply them at start;
a script that runs many interpretations may call them too.

Why: a forward over a batch allocates and frees tensors of several megabytes per layer
(the MLP's hidden activations at 128 rows and 20 positions are 16 MB each). glibc's
``malloc`` serves such blocks with fresh ``mmap`` pages and returns them on ``free``, so
every layer of every forward page-faults its activations in again: about a million minor
page faults, and 3-4 s of kernel time, per 256 interpretations on the default model.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
"""Blocks up to this size come from (and go back to) the heap instead of ``mmap``; 32 MB is
glibc's upper limit for the setting on 64-bit systems."""
TRIM_THRESHOLD = 1 << 30
"""Free memory at the top of the heap kept for reuse, up to this much, instead of being
returned to the system after every free."""

_applied = False


def keep_freed_memory() -> bool:
    """Let glibc reuse freed blocks of up to 32 MB instead of unmapping them.

    Measured on 2 cores, 256 interpretations at 128 rows (20 tokens, paper prompt; three
    interleaved pairs): wall 21.7 s against 23.5 s (medians), kernel time 1.4 s against 3.8
    s, minor page faults 0.26 M against 1.2 M, peak RSS unchanged (2.1-2.2 GB). The outputs
    are the same: where a tensor's memory comes from does not change its arithmetic.

    Returns:
        ``True`` when the settings are in effect (glibc), ``False`` elsewhere (other C
        libraries manage memory their own way; nothing is changed).

    Example:
        >>> keep_freed_memory() in (True, False)
        True
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied


__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]
