"""Planning, resuming, writing and merging a sweep; the engines only compute shards.

Layout of an output directory::

    manifest.json                 format, fingerprint, job, items, shard list (+ done)
    shards/shard-00000.parquet    rows of items [0, shard_size)
    shards/shard-00001.parquet    ...

Only the driver (the process calling :func:`run`) writes files. Each shard is written to a
temporary sibling and renamed into place when complete (:func:`selfie_tl.files.atomic_path`),
so a shard file either holds all its rows or does not exist. Resuming = computing the shards
whose file is missing (or unreadable, or not holding exactly its items' ids).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from selfie_tl.errors import InvalidArgumentError, SelfieError
from selfie_tl.files import write_text
from selfie_tl.sweep.job import FORMAT, OutputConflictError, SweepJob, work_items
from selfie_tl.sweep.worker import SCHEMA

MANIFEST = "manifest.json"
SHARD_DIR = "shards"


class SweepItemError(SelfieError, RuntimeError):
    """A work item failed on a worker with an error of selfie_tl (bad layer, token, setting)."""


@dataclass
class Shard:
    index: int
    start: int
    stop: int

    @property
    def file(self) -> str:
        return f"{SHARD_DIR}/shard-{self.index:05d}.parquet"


@dataclass
class SweepResult:
    """What :func:`run` did."""

    output: Path
    fingerprint: str
    n_items: int
    n_shards: int
    shards_computed: int
    shards_skipped: int
    items_computed: int
    seconds: float
    engine: str
    workers: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def items_per_second(self) -> float:
        return self.items_computed / self.seconds if self.seconds > 0 else 0.0


def plan(n_items: int, shard_size: int) -> list[Shard]:
    return [
        Shard(i, start, min(start + shard_size, n_items))
        for i, start in enumerate(range(0, n_items, shard_size))
    ]


def _as_job(job: SweepJob | dict | str | Path) -> SweepJob:
    if isinstance(job, SweepJob):
        return job.check()
    if isinstance(job, dict):
        return SweepJob.from_dict(job).check()
    if isinstance(job, str | Path):
        return SweepJob.load(job)
    raise InvalidArgumentError(
        f"job must be a SweepJob, a dict or a config file path, got {type(job).__name__}"
    )


def _manifest(job: SweepJob, fingerprint: str, shards: list[Shard], done: set[int], n_items: int) -> dict:
    return {
        "format": FORMAT, "fingerprint": fingerprint, "job": job.to_dict(), "settings_hash": job.settings_hash(),
        "n_items": n_items, "shard_size": job.shard_size,
        "shards": [{"index": s.index, "file": s.file, "start": s.start, "stop": s.stop, "done": s.index in done}
                   for s in shards],
    }  # fmt: skip


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidArgumentError(
            f"{directory} holds no {MANIFEST}; is it a sweep output directory?"
        ) from exc
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidArgumentError(f"{path} is not a sweep manifest of format {FORMAT!r}")
    return data


def _shard_complete(path: Path, ids: list[str]) -> bool:
    try:
        table = pq.read_table(path, columns=["item_id"])
    except Exception:  # noqa: BLE001 - missing, truncated or foreign file: redo it
        return False
    return table.column("item_id").to_pylist() == ids


def prepare(job: SweepJob, directory: Path) -> tuple[str, list[dict], list[Shard], set[int]]:
    """Check the output directory, write/refresh the manifest; return what is left to do.

    Raises:
        OutputConflictError: the directory holds another job's manifest, or shards without
            a manifest.
    """
    fingerprint = job.fingerprint()
    items = work_items(job)
    shards = plan(len(items), job.shard_size)
    if directory.exists() and not directory.is_dir():
        raise OutputConflictError(f"sweep output {directory} exists and is not a directory")
    manifest_path = directory / MANIFEST
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        if old.get("fingerprint") != fingerprint:
            raise OutputConflictError(
                f"sweep output {directory} holds another job (fingerprint {old.get('fingerprint')!r}, this job "
                f"{fingerprint!r}): the model, inputs, settings or shard size differ. Use another 'output' "
                "directory, or delete that one to start over"
            )
    elif (directory / SHARD_DIR).is_dir() and any((directory / SHARD_DIR).glob("*.parquet")):
        raise OutputConflictError(
            f"sweep output {directory} holds shards but no {MANIFEST}; use another directory"
        )
    (directory / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    for leftover in (directory / SHARD_DIR).glob(".shard-*.tmp"):  # from a run killed mid-write
        leftover.unlink(missing_ok=True)
    done = {s.index for s in shards
            if _shard_complete(directory / s.file, [it["item_id"] for it in items[s.start : s.stop]])}  # fmt: skip
    write_text(
        manifest_path, json.dumps(_manifest(job, fingerprint, shards, done, len(items)), indent=2) + "\n"
    )
    return fingerprint, items, shards, done


def _all_done_per_manifest(directory: Path) -> bool:
    """Whether ``directory``'s manifest marks every shard done (then no engine is started early)."""
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        return bool(data["shards"]) and all(s["done"] for s in data["shards"])
    except Exception:  # noqa: BLE001 - no or unreadable manifest: a fresh job
        return False


def write_shard(directory: Path, shard: Shard, rows: list[dict]) -> Path:
    """Write one shard atomically (temporary sibling, then rename)."""
    from selfie_tl.files import atomic_path

    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    path = directory / shard.file
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


Engine = Callable[[SweepJob, list[tuple[Shard, list[dict]]], int], Iterator[tuple[Shard, list[dict]]]]


def run(
    job: SweepJob | dict | str | Path,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run (or resume) a sweep and return what was done.

    Args:
        job: a :class:`SweepJob`, its dict, or a config file path.
        engine: ``"local"`` (in this process, one model) or ``"ray"`` (one model per actor;
            needs ``pip install "selfie_tl[ray]"``).
        workers: Ray actors (``local`` takes 1).
        address: an existing Ray cluster (``"auto"``, ``"ray://host:10001"``); ``None``
            starts a local one with ``workers`` CPUs.
        progress: show a tqdm bar over items (on stderr).

    Raises:
        SweepConfigError: a bad job. OutputConflictError: the output holds another job.
        ModelLoadError: the model does not load (in this process or on a worker).
        SweepItemError: an item failed (its shard is not written; finished shards stay).
    """
    from tqdm.auto import tqdm

    job = _as_job(job)
    if engine not in ("local", "ray"):
        raise InvalidArgumentError(f"engine must be 'local' or 'ray', got {engine!r}")
    if type(workers) is not int or workers < 1:
        raise InvalidArgumentError(f"workers must be an integer >= 1, got {workers!r}")
    if engine == "local" and (workers != 1 or address is not None):
        raise InvalidArgumentError("the local engine runs one model in this process; use engine='ray' for "
                                   "workers > 1 or an address")  # fmt: skip
    directory = Path(job.output).expanduser()
    started = time.perf_counter()  # wall time of the whole call: planning, engine start-up, shards
    pool = None
    if engine == "ray" and not _all_done_per_manifest(directory):
        # Start Ray and the actors (their imports and model loads) now, while this process
        # plans the work and checks the finished shards.
        from selfie_tl.sweep.ray_engine import RayPool

        pool = RayPool(job, workers, address)
    computed = 0
    extra: dict[str, Any] = {}
    stream = None
    try:
        fingerprint, items, shards, done = prepare(job, directory)
        todo = [(s, items[s.start : s.stop]) for s in shards if s.index not in done]
        n_todo = sum(len(chunk) for _, chunk in todo)
        if todo:
            if engine == "local":
                from selfie_tl.sweep.local import run_local

                stream = run_local(job, todo, extra=extra)
            else:
                from selfie_tl.sweep.ray_engine import run_ray

                stream = run_ray(job, todo, workers=workers, address=address, extra=extra, pool=pool)
            bar = tqdm(
                total=n_todo, unit="item", desc=f"sweep ({engine})", disable=not progress, file=sys.stderr
            )
            try:
                for shard, rows in stream:
                    write_shard(directory, shard, rows)
                    done.add(shard.index)
                    computed += len(rows)
                    write_text(
                        directory / MANIFEST,
                        json.dumps(_manifest(job, fingerprint, shards, done, len(items)), indent=2) + "\n",
                    )
                    bar.update(len(rows))
                    elapsed = time.perf_counter() - started
                    bar.set_postfix_str(f"{computed / elapsed:.2f} items/s" if elapsed > 0 else "")
            finally:
                bar.close()
    finally:
        if stream is not None:
            stream.close()  # stop the engine now (Ray: cancel tasks, kill actors), not at GC
        if pool is not None:
            pool.close()  # idempotent; also when there was nothing to do or planning failed
    seconds = time.perf_counter() - started
    return SweepResult(
        output=directory, fingerprint=fingerprint, n_items=len(items), n_shards=len(shards),
        shards_computed=len(todo), shards_skipped=len(shards) - len(todo), items_computed=computed,
        seconds=seconds, engine=engine, workers=workers, extra=extra,
    )  # fmt: skip


def merge(directory: str | Path, out: str | Path | None = None, allow_partial: bool = False):
    """Every finished row of a sweep as one pandas DataFrame, in item order.

    Args:
        directory: the sweep's output directory.
        out: also write the table: ``.parquet`` or ``.csv`` (list columns as JSON).
        allow_partial: merge the finished shards of an unfinished sweep instead of raising.

    Raises:
        InvalidArgumentError: not a sweep directory, missing shards (unless
            ``allow_partial``), or duplicated item ids.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    tables, missing = [], []
    for shard in manifest["shards"]:
        path = directory / shard["file"]
        try:
            tables.append(pq.read_table(path, schema=SCHEMA))
        except Exception:  # noqa: BLE001 - missing or unreadable: reported below
            missing.append(shard["file"])
    if missing and not allow_partial:
        raise InvalidArgumentError(
            f"sweep {directory} is unfinished: {len(missing)} of {len(manifest['shards'])} shards missing "
            f"({missing[:3]}...); re-run the sweep to finish it, or merge with allow_partial"
        )
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    df = table.to_pandas()
    if df["item_id"].duplicated().any():
        raise InvalidArgumentError(f"sweep {directory}: duplicated item ids in its shards")
    df = df.sort_values("item_index", kind="stable").reset_index(drop=True)
    if out is not None:
        from selfie_tl.files import atomic_path, check_output_path

        out = check_output_path(out, "merge output")
        with atomic_path(out) as tmp:
            if out.suffix.lower() == ".csv":
                flat = df.copy()
                for col in ("generated_tokens", "generated_token_ids", "relevancy"):
                    flat[col] = [None if v is None else json.dumps(v.tolist() if hasattr(v, "tolist") else list(v))
                                 for v in flat[col]]  # fmt: skip
                flat.to_csv(tmp, index=False)
            elif out.suffix.lower() == ".parquet":
                pq.write_table(pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False), tmp)
            else:
                raise InvalidArgumentError(f"merge output must end in .parquet or .csv, got {out.name!r}")
    return df


__all__ = ["SweepItemError", "SweepResult", "merge", "plan", "read_manifest", "run", "write_shard"]
