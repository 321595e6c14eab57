"""Sweep throughput: the same job on the local engine and on Ray with N CPU workers.

The job: ``--n`` vectors (residual states of the default model, captured from a few
prompts at layer 6) interpreted on the default model (SmolLM2-135M-Instruct) with
``--new-tokens`` new tokens, in shards of ``--shard-size``. Every engine runs into a fresh
output directory; the rows of the engines are compared (greedy decoding: identical).

Reported per run: wall seconds of :func:`selfie_tl.sweep.run` (planning, model loading on
the worker(s) and every shard; Ray's own ``ray.init`` is timed apart, as on a running
cluster, and also added back for a "cold" ratio), items/s, and the 1-minute load average
before and after the run (the machine may be shared). Ratios: Ray's throughput over the
local engine's, for each ``--local-threads`` value (comma-separated; the first one is the
reference whose rows must be identical to Ray's). Run with ``OMP_NUM_THREADS=1``; each Ray
CPU actor runs ``cpus // workers`` torch threads (1 with 2 workers on 2 cores).

    OMP_NUM_THREADS=1 python benchmarks/bench_sweep.py --n 64 --workers 2 --local-threads 1,2 --json bench_sweep.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

PROMPTS = [
    "The Eiffel Tower is in Paris, the capital of France.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Shakespeare wrote Hamlet and Macbeth in the early seventeenth century.",
    "The mitochondria is the powerhouse of the cell.",
    "Bitcoin is a decentralised digital currency.",
    "Mount Everest is the highest mountain on Earth.",
]


def make_vectors(path: Path, n: int, layer: int = 6) -> None:
    from selfie_tl import capture, load_model

    model = load_model()
    states = []
    for prompt in PROMPTS:
        length = len(model.tokenizer(prompt)["input_ids"])
        states.append(capture(model, prompt, [layer], list(range(length)))[0])
    vectors = torch.cat(states)
    while vectors.shape[0] < n:
        vectors = torch.cat([vectors, vectors])
    np.save(path, vectors[:n].float().numpy())


def _row(engine: str, workers: int, threads, result, load_before, load_after) -> dict:
    setup = result.extra.get("setup_s", 0.0)
    steady = result.seconds - setup
    return {
        "engine": engine, "workers": workers, "threads_per_worker": threads, "seconds": result.seconds,
        "items_per_s": result.items_per_second, "setup_s": setup,
        "steady_items_per_s": result.items_computed / steady if steady > 0 else None,
        "load_avg_1m_before": load_before, "load_avg_1m_after": load_after,
        "extra": {k: v for k, v in result.extra.items() if k != "actor_options"},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=64, help="vectors to interpret")
    parser.add_argument("--new-tokens", type=int, default=12)
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="Ray CPU actors")
    parser.add_argument(
        "--local-threads",
        default="1",
        help="torch threads of the local engine, comma-separated for several runs",
    )
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    from selfie_tl import sweep

    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep."))
    vectors = tmp / "vectors.npy"
    make_vectors(vectors, args.n)
    base = {
        "model": None, "vectors": str(vectors), "shard_size": args.shard_size,
        "settings": {"max_new_tokens": args.new_tokens, "batch_size": args.batch_size},
    }  # fmt: skip
    runs = []
    frames = {}

    local_threads = [int(t) for t in str(args.local_threads).split(",")]
    for threads in local_threads:
        torch.set_num_threads(threads)
        job = sweep.SweepJob(output=str(tmp / f"local{threads}"), **base)
        before = os.getloadavg()[0]
        result = sweep.run(job, progress=False)
        runs.append(_row("local", 1, threads, result, before, os.getloadavg()[0]))
        frames[f"local{threads}"] = sweep.merge(job.output)

    ray_row = None
    if not args.skip_ray:
        import ray

        from selfie_tl.sweep.ray_engine import ensure_ray

        before = os.getloadavg()[0]
        t0 = time.perf_counter()
        ensure_ray(args.workers)
        init_s = time.perf_counter() - t0
        job = sweep.SweepJob(output=str(tmp / "ray"), **base)
        result = sweep.run(job, engine="ray", workers=args.workers, progress=False)
        ray_row = dict(_row("ray", args.workers, result.extra.get("torch_threads_per_actor"), result, before,
                            os.getloadavg()[0]), ray_init_s=init_s)  # fmt: skip
        runs.append(ray_row)
        frames["ray"] = sweep.merge(job.output)
        ray.shutdown()

    same = None
    ratios = {}
    if ray_row is not None:
        reference = frames[f"local{local_threads[0]}"]
        try:
            pd.testing.assert_frame_equal(reference, frames["ray"])
            same = True
        except AssertionError:
            same = False
        cold_rate = ray_row["items_per_s"] * ray_row["seconds"] / (ray_row["seconds"] + ray_row["ray_init_s"])
        for r in runs[:-1]:
            ratios[f"local_{r['threads_per_worker']}_threads"] = {
                "end_to_end": ray_row["items_per_s"] / r["items_per_s"],
                "incl_ray_init": cold_rate / r["items_per_s"],
                "after_setup": ray_row["steady_items_per_s"] / r["steady_items_per_s"],
                "texts_identical": frames[f"local{r['threads_per_worker']}"]["interpretation"].tolist()
                == frames["ray"]["interpretation"].tolist(),
            }
    report = {
        "job": {"n": args.n, "new_tokens": args.new_tokens, "shard_size": args.shard_size,
                "batch_size": args.batch_size, "model": "SmolLM2-135M-Instruct (default)"},
        "machine": {"cpus": os.cpu_count(), "load_avg_end": os.getloadavg(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "runs": runs,
        "ray_over_local": ratios,
        "rows_identical": same,
    }  # fmt: skip
    print(f"{'engine':<8}{'workers':>8}{'threads':>8}{'seconds':>10}{'setup s':>10}{'items/s':>10}"
          f"{'steady/s':>10}{'load1m':>14}")  # fmt: skip
    for r in runs:
        print(f"{r['engine']:<8}{r['workers']:>8}{r['threads_per_worker']!s:>8}{r['seconds']:>10.2f}"
              f"{r['setup_s']:>10.2f}{r['items_per_s']:>10.2f}{r['steady_items_per_s']:>10.2f}"
              f"{r['load_avg_1m_before']:>7.2f}->{r['load_avg_1m_after']:<5.2f}")  # fmt: skip
    if ray_row is not None:
        print(f"ray.init: {ray_row['ray_init_s']:.1f} s (apart); actors (s after sweep.run's Ray start): "
              + "; ".join(f"process+imports done {a['created_after_s']:.1f}, model loaded {a['ready_after_s']:.1f} "
                          f"(load {a['load_s']:.1f})" for a in ray_row["extra"]["actor_setup"] if a)
              + f"; first shard back {ray_row['extra'].get('first_shard_s', float('nan')):.1f}")  # fmt: skip
        for name, r in ratios.items():
            print(f"ray / {name}: {r['end_to_end']:.2f}x end to end ({r['incl_ray_init']:.2f}x counting ray.init), "
                  f"{r['after_setup']:.2f}x after setup; texts identical: {r['texts_identical']}")  # fmt: skip
        print(f"rows identical to local_{local_threads[0]}_threads: {same}")
    print(json.dumps(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
