"""Resumable interpretation sweeps: many vectors or (prompt, layer, token) items, written
to Parquet shards, on this machine (``engine="local"``) or on Ray (``engine="ray"``).

See ``docs/sweeps.md``.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from selfie_tl import sweep
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(d / "v.npy", np.random.default_rng(0).normal(size=(3, 64)).astype("float32"))
    >>> job = sweep.SweepJob(output=str(d / "out"), model="tiny:llama", vectors=str(d / "v.npy"),
    ...                      settings={"k": 1, "max_new_tokens": 3}, shard_size=2)
    >>> result = sweep.run(job, progress=False)
    >>> result.n_shards, result.items_computed
    (2, 3)
    >>> len(sweep.merge(d / "out"))
    3
"""

from selfie_tl.sweep.core import SweepItemError, SweepResult, merge, read_manifest, run
from selfie_tl.sweep.job import OutputConflictError, SweepConfigError, SweepJob, work_items
from selfie_tl.sweep.worker import SCHEMA

__all__ = [
    "SCHEMA", "OutputConflictError", "SweepConfigError", "SweepItemError", "SweepJob", "SweepResult",
    "merge", "read_manifest", "run", "work_items",
]  # fmt: skip
