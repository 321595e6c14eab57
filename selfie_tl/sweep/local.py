"""The ``local`` engine: one model in this process, shards one after the other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from selfie_tl.sweep.job import SweepJob
from selfie_tl.sweep.worker import ShardWorker


def run_local(job: SweepJob, todo: list, workers: int = 1, address: str | None = None,
              extra: dict[str, Any] | None = None) -> Iterator[tuple[Any, list[dict]]]:  # fmt: skip
    """Yield ``(shard, rows)`` for each shard of ``todo`` as it is computed."""
    from selfie_tl.sweep.core import SweepItemError

    started = time.perf_counter()
    worker = ShardWorker(job)
    worker.setup()  # ModelLoadError before any shard
    if extra is not None:
        extra["setup_s"] = time.perf_counter() - started
    for shard, items in todo:
        try:
            rows = worker.run(items)
        except SweepItemError:
            raise
        except Exception as exc:
            from selfie_tl.errors import SelfieError

            if isinstance(exc, SelfieError):
                raise SweepItemError(f"shard {shard.index} (items {shard.start}-{shard.stop - 1}): "
                                     f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
            raise
        yield shard, rows
