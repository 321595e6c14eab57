"""The ``ray`` engine: one model per Ray actor, shards handed out as actors free up.

Plain Ray actors rather than Ray Data: the unit of work is a shard whose rows the driver
writes atomically as soon as it is done (resume granularity), and a streaming Ray Data
pipeline would re-block rows and add its executor's scheduling on top for no gain here.
Actors are created with ``max_restarts`` / ``max_task_retries``, so a worker process that
dies (OOM, node lost) is restarted, reloads its model and its shard is retried.

A local cluster is started with ``num_cpus=workers`` (no dashboard, worker logs not sent to
the driver) unless Ray is already initialised or ``address`` names a cluster. CPU actors ask
for ``num_cpus=1`` and run torch with one thread; with CUDA available on the cluster each
actor asks for ``num_gpus=1`` and loads the model on ``cuda``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selfie_tl.errors import ModelLoadError, SelfieError
from selfie_tl.sweep.job import SweepJob

MAX_RESTARTS = 2
MAX_TASK_RETRIES = 2
FAULT_ONCE = "SELFIE_TL_SWEEP_FAULT_ONCE"
"""Testing hook: when this variable names a file that does not exist, the first actor to run a
shard creates it and dies (its process exits), exercising Ray's actor restart and task retry.
Forwarded from the driver's environment to the actors."""


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise SelfieError('the ray engine needs Ray: pip install "selfie_tl[ray]" (or "ray[data]")') from exc
    return ray


def ensure_ray(workers: int, address: str | None = None) -> bool:
    """Connect to ``address`` or start a local Ray; return True when this call started it."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    if address is not None:
        ray.init(address=address, log_to_driver=False)
        return True
    # Workers must import this very selfie_tl (a checkout may shadow an installed copy).
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}},
    )  # fmt: skip
    return True


class _Actor:
    """Body of the Ray actor: a :class:`~selfie_tl.sweep.worker.ShardWorker` plus error capture."""

    def __init__(self, job: dict[str, Any], device: str | None, threads: int | None):
        import torch

        from selfie_tl.sweep.worker import ShardWorker

        if threads:
            torch.set_num_threads(threads)
        self.worker = ShardWorker(job, device=device)

    def setup(self) -> str | None:
        try:
            self.worker.setup()
        except Exception as exc:  # noqa: BLE001 - reported to the driver as one line
            return f"{type(exc).__name__}: {exc}"
        return None

    def run(self, index: int, items: list[dict]) -> tuple[int, list[dict] | None, str | None]:
        marker = os.environ.get(FAULT_ONCE)
        if marker and not os.path.exists(marker):  # fault injection for the retry test
            Path(marker).write_text(str(index))
            os._exit(1)
        try:
            return index, self.worker.run(items), None
        except SelfieError as exc:
            return index, None, f"{type(exc).__name__}: {exc}"


def run_ray(job: SweepJob, todo: list, workers: int = 1, address: str | None = None,
            extra: dict[str, Any] | None = None) -> Iterator[tuple[Any, list[dict]]]:  # fmt: skip
    """Yield ``(shard, rows)`` in completion order, ``workers`` actors at a time."""
    from selfie_tl.sweep.core import SweepItemError

    ray = _import_ray()
    t0 = time.perf_counter()
    started = ensure_ray(workers, address)
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        use_gpu = gpus >= 1
        options: dict[str, Any] = {"max_restarts": MAX_RESTARTS, "max_task_retries": MAX_TASK_RETRIES}
        options.update({"num_gpus": 1, "num_cpus": 1} if use_gpu else {"num_cpus": 1})
        if os.environ.get(FAULT_ONCE):
            options["runtime_env"] = {"env_vars": {FAULT_ONCE: os.environ[FAULT_ONCE]}}
        device = job.device if job.device is not None else ("cuda" if use_gpu else None)
        n = min(workers, len(todo))
        actor_cls = ray.remote(_Actor).options(**options)
        actors = [actor_cls.remote(job.to_dict(), device, None if use_gpu else 1) for _ in range(n)]
        if extra is not None:
            extra.update(ray_gpus=gpus, actors=n, actor_options=options)
        for i, error in enumerate(ray.get([a.setup.remote() for a in actors])):
            if error is not None:
                raise ModelLoadError(
                    f"ray worker {i} could not load model {job.model or 'default'!r}: {error}"
                )
        if extra is not None:
            extra["setup_s"] = time.perf_counter() - t0  # Ray start (if any), actors, model loads
        pending: dict[Any, Any] = {}
        queue = list(todo)
        by_index = {shard.index: shard for shard, _ in todo}

        def submit(actor):
            shard, items = queue.pop(0)
            pending[actor.run.remote(shard.index, items)] = actor

        for actor in actors:
            if queue:
                submit(actor)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(ready[0])
            index, rows, error = ray.get(ready[0])
            shard = by_index[index]
            if error is not None:
                raise SweepItemError(f"shard {index} (items {shard.start}-{shard.stop - 1}): {error}")
            if queue:
                submit(actor)
            yield shard, rows
    finally:
        for ref in list(locals().get("pending", {})):
            ray.cancel(ref, force=True)
        for actor in locals().get("actors", []):
            ray.kill(actor)
        if started:
            ray.shutdown()
