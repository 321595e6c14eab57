"""The ``ray`` engine: one model per Ray actor, shards handed out as actors free up.

Plain Ray actors rather than Ray Data: the unit of work is a shard whose rows the driver
writes atomically as soon as it is done (resume granularity), and a streaming Ray Data
pipeline would re-block rows and add its executor's scheduling on top for no gain here.
Actors are created with ``max_restarts`` / ``max_task_retries``, so a worker process that
dies (OOM, node lost) is restarted, reloads its model and its shard is retried.

Fixed costs are kept off the critical path:

* :class:`RayPool` starts Ray (if needed) and creates the actors, whose model loading
  begins at once, *before* the driver plans the work (:func:`selfie_tl.sweep.core.run`
  checks the output directory and the finished shards meanwhile).
* There is no barrier after loading: each actor's first shard is queued right behind its
  ``setup`` call, so an actor starts computing as soon as its own model is loaded.
* A local cluster is started with ``num_cpus = max(workers, os.cpu_count())``, no dashboard,
  worker logs not sent to the driver, usage stats off (unless the user set
  ``RAY_USAGE_STATS_ENABLED``) and no job ``runtime_env`` (``PYTHONPATH`` etc. are
  inherited), so actors take the worker processes Ray prestarts at init. Each CPU actor asks
  for ``cpus // workers`` CPUs and runs torch with that many threads (cores / workers).
* With GPUs on the cluster each actor asks for ``num_gpus=1`` (and one CPU) and loads the
  model on ``cuda`` (or the job's ``device``) in the job's ``dtype``.
"""

from __future__ import annotations

import contextlib
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
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage-stats reporting thread
    if address is not None:
        ray.init(address=address, log_to_driver=False)
        return True
    # Workers must import this very selfie_tl (a checkout may shadow an installed copy). The
    # variables are handed to the local cluster through the environment it inherits rather
    # than a job runtime_env: workers that need no runtime_env are the ones Ray prestarts at
    # init, so an actor lands on a ready process (measured: ~0.2 s instead of ~2 s).
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    inherited = {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    saved = {key: os.environ.get(key) for key in inherited}
    os.environ.update(inherited)
    try:
        ray.init(
            num_cpus=max(workers, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False,
            configure_logging=False,
        )  # fmt: skip
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return True


def actor_resources(ray, workers: int) -> tuple[dict[str, Any], int | None, bool]:
    """``(ray options, torch threads or None, use_gpu)`` of one actor on the connected cluster.

    GPU clusters: ``num_gpus=1, num_cpus=1`` (torch's threads left alone). CPU clusters:
    ``num_cpus = threads = cpus // workers`` (at least 1, at most the CPUs of the smallest
    node, so every actor stays schedulable).
    """
    resources = ray.cluster_resources()
    if float(resources.get("GPU", 0)) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}, None, True
    per_node = [
        n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU")
    ]
    cpus = int(float(resources.get("CPU", 1)) // workers)
    if per_node:
        cpus = min(cpus, int(min(per_node)))
    cpus = max(1, cpus)
    return {"num_cpus": cpus}, cpus, False


class _Actor:
    """Body of the Ray actor: a :class:`~selfie_tl.sweep.worker.ShardWorker` plus error capture."""

    def __init__(self, job: dict[str, Any], device: str | None, threads: int | None):
        self.created_at = time.time()  # after this module (selfie_tl, torch, TransformerLens) imported
        self.job, self.device, self.threads = job, device, threads
        self.worker = None

    def setup(self) -> tuple[str | None, dict[str, float]]:
        """Import torch/selfie_tl and load the model; ``(error or None, timings)``."""
        timings = {"created_at": self.created_at, "setup_at": time.time()}
        try:
            t0 = time.perf_counter()
            import torch

            from selfie_tl.sweep.worker import ShardWorker

            if self.threads:
                torch.set_num_threads(self.threads)
            timings["import_s"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            if self.worker is None:
                self.worker = ShardWorker(self.job, device=self.device)
            self.worker.setup()
            timings["load_s"] = time.perf_counter() - t1
        except Exception as exc:  # noqa: BLE001 - reported to the driver as one line
            return f"{type(exc).__name__}: {exc}", timings
        timings["torch_threads"] = torch.get_num_threads()
        timings["ready_at"] = time.time()
        return None, timings

    def run(self, index: int, items: list[dict]) -> tuple[int, list[dict] | None, str | None]:
        marker = os.environ.get(FAULT_ONCE)
        if marker and not os.path.exists(marker):  # fault injection for the retry test
            Path(marker).write_text(str(index))
            os._exit(1)
        if self.worker is None:  # restarted actor: setup ran again first, but be safe
            error, _ = self.setup()
            if error is not None:
                return index, None, error
        try:
            return index, self.worker.run(items), None
        except SelfieError as exc:
            return index, None, f"{type(exc).__name__}: {exc}"


class RayPool:
    """Ray started (or joined) and ``workers`` actors created, their models loading.

    Made by :func:`selfie_tl.sweep.core.run` before it plans the work, so Ray's start and
    the actors' imports and model loads overlap the driver's planning; consumed by
    :func:`run_ray`. :meth:`close` kills the actors (and stops a Ray this pool started).
    """

    def __init__(self, job: SweepJob, workers: int = 1, address: str | None = None):
        self.ray = ray = _import_ray()
        self.t0 = time.perf_counter()
        self.t0_wall = time.time()
        self.started_ray = False
        self.actors: list[Any] = []
        self.setup_refs: list[Any] = []
        self.started_ray = ensure_ray(workers, address)
        self.ray_init_s = time.perf_counter() - self.t0
        try:
            options, threads, use_gpu = actor_resources(ray, workers)
            options.update(max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)
            if os.environ.get(FAULT_ONCE):
                options["runtime_env"] = {"env_vars": {FAULT_ONCE: os.environ[FAULT_ONCE]}}
            self.device = job.device if job.device is not None else ("cuda" if use_gpu else None)
            self.options, self.threads, self.use_gpu = options, threads, use_gpu
            actor_cls = ray.remote(_Actor).options(**options)
            spec = job.to_dict()
            for _ in range(workers):
                actor = actor_cls.remote(spec, self.device, threads)
                self.actors.append(actor)
                self.setup_refs.append(actor.setup.remote())
        except BaseException:
            self.close()
            raise

    def trim(self, n: int) -> None:
        """Keep only the first ``n`` actors (fewer shards than workers)."""
        for actor in self.actors[n:]:
            self.ray.kill(actor)
        self.actors, self.setup_refs = self.actors[:n], self.setup_refs[:n]

    def close(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(actor)
        self.actors, self.setup_refs = [], []
        if self.started_ray:
            self.ray.shutdown()
            self.started_ray = False


def run_ray(job: SweepJob, todo: list, workers: int = 1, address: str | None = None,
            extra: dict[str, Any] | None = None, pool: RayPool | None = None) -> Iterator[tuple[Any, list[dict]]]:  # fmt: skip
    """Yield ``(shard, rows)`` in completion order, ``workers`` actors at a time.

    ``pool``: actors already started by :func:`selfie_tl.sweep.core.run` (this generator
    closes it); ``None`` starts one here.
    """
    from selfie_tl.sweep.core import SweepItemError

    if pool is None:
        pool = RayPool(job, workers, address)
    ray = pool.ray
    pending: dict[Any, tuple[str, int]] = {}
    try:
        pool.trim(min(len(pool.actors), len(todo)))
        actors = pool.actors
        if extra is not None:
            extra.update(
                ray_gpus=float(ray.cluster_resources().get("GPU", 0)), actors=len(actors),
                actor_options=pool.options, torch_threads_per_actor=pool.threads, ray_init_s=pool.ray_init_s,
                actor_setup=[None] * len(actors),
            )  # fmt: skip
        queue = list(todo)
        by_index = {shard.index: shard for shard, _ in todo}
        setup_done = [False] * len(actors)

        def submit(i: int) -> None:
            shard, items = queue.pop(0)
            pending[actors[i].run.remote(shard.index, items)] = ("run", i)

        def check_setup(i: int) -> None:
            if setup_done[i]:
                return
            error, timings = ray.get(pool.setup_refs[i])
            if error is not None:
                raise ModelLoadError(
                    f"ray worker {i} could not load model {job.model or 'default'!r}: {error}"
                )
            setup_done[i] = True
            if extra is not None:
                for key in ("created_at", "setup_at", "ready_at"):  # seconds since the pool started
                    if key in timings:
                        timings[key.replace("_at", "_after_s")] = timings.pop(key) - pool.t0_wall
                extra["actor_setup"][i] = timings
                if all(setup_done):
                    extra["setup_s"] = time.perf_counter() - pool.t0  # Ray start (if any), actors, loads

        # Each actor's first shard is queued behind its setup (actor calls run in order).
        for i, ref in enumerate(pool.setup_refs):
            pending[ref] = ("setup", i)
            if queue:
                submit(i)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            kind, i = pending.pop(ready[0])
            check_setup(i)  # its setup has finished (it ran before this call): raise if it failed
            if kind == "setup":
                continue
            index, rows, error = ray.get(ready[0])
            shard = by_index[index]
            if error is not None:
                raise SweepItemError(f"shard {index} (items {shard.start}-{shard.stop - 1}): {error}")
            if queue:
                submit(i)
            if extra is not None and "first_shard_s" not in extra:
                extra["first_shard_s"] = time.perf_counter() - pool.t0
            yield shard, rows
    finally:
        for ref, (kind, _) in pending.items():
            if kind == "run":
                with contextlib.suppress(Exception):  # the actor is killed next anyway
                    ray.cancel(ref, force=True)
        pool.close()
