"""Sweep throughput: the same job on the local engine and on Ray with N CPU workers.

The job: ``--n`` vectors (residual states of the default model, captured from a few
prompts at layer 6) interpreted on the default model (SmolLM2-135M-Instruct) with
``--new-tokens`` new tokens, in shards of ``--shard-size``. Every engine runs into a fresh
output directory; the rows of the engines are compared (greedy decoding: identical).

Reported per run: wall seconds of :func:`selfie_tl.sweep.run` (model loading on the
worker(s) included; Ray's own start-up measured apart) and items/s, then the ratio of Ray's
throughput to the local engine's. Run with ``OMP_NUM_THREADS=1`` (each Ray CPU actor uses
one torch thread; the local engine uses ``--local-threads``).

    OMP_NUM_THREADS=1 python benchmarks/bench_sweep.py --workers 2 --json bench_sweep.json
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


def _row(engine: str, workers: int, threads: int, result) -> dict:
    setup = result.extra.get("setup_s", 0.0)
    steady = result.seconds - setup
    return {
        "engine": engine, "workers": workers, "threads_per_worker": threads, "seconds": result.seconds,
        "items_per_s": result.items_per_second, "setup_s": setup,
        "steady_items_per_s": result.items_computed / steady if steady > 0 else None,
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
    parser.add_argument("--local-threads", type=int, default=1, help="torch threads of the local engine")
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

    torch.set_num_threads(args.local_threads)
    job = sweep.SweepJob(output=str(tmp / "local"), **base)
    result = sweep.run(job, progress=False)
    runs.append(_row("local", 1, args.local_threads, result))
    frames = {"local": sweep.merge(job.output)}

    if not args.skip_ray:
        import ray

        from selfie_tl.sweep.ray_engine import ensure_ray

        t0 = time.perf_counter()
        ensure_ray(args.workers)
        init_s = time.perf_counter() - t0
        job = sweep.SweepJob(output=str(tmp / "ray"), **base)
        result = sweep.run(job, engine="ray", workers=args.workers, progress=False)
        runs.append(dict(_row("ray", args.workers, 1, result), ray_init_s=init_s))
        frames["ray"] = sweep.merge(job.output)
        ray.shutdown()

    same = None
    if "ray" in frames:
        try:
            pd.testing.assert_frame_equal(frames["local"], frames["ray"])
            same = True
        except AssertionError:
            same = False
    local_rate = runs[0]["items_per_s"]
    report = {
        "job": {"n": args.n, "new_tokens": args.new_tokens, "shard_size": args.shard_size,
                "batch_size": args.batch_size, "model": "SmolLM2-135M-Instruct (default)"},
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "runs": runs,
        "ray_over_local": (runs[1]["items_per_s"] / local_rate) if len(runs) > 1 and local_rate else None,
        "ray_over_local_steady": (runs[1]["steady_items_per_s"] / runs[0]["steady_items_per_s"])
        if len(runs) > 1 else None,
        "rows_identical": same,
    }  # fmt: skip
    print(
        f"{'engine':<8}{'workers':>8}{'threads':>8}{'seconds':>10}{'setup s':>10}{'items/s':>10}{'steady/s':>10}"
    )
    for r in runs:
        print(f"{r['engine']:<8}{r['workers']:>8}{r['threads_per_worker']:>8}{r['seconds']:>10.2f}"
              f"{r['setup_s']:>10.2f}{r['items_per_s']:>10.2f}{r['steady_items_per_s']:>10.2f}")  # fmt: skip
    if report["ray_over_local"] is not None:
        print(f"ray / local throughput: {report['ray_over_local']:.2f}x end to end, "
              f"{report['ray_over_local_steady']:.2f}x after setup (Ray's own start, {runs[1]['ray_init_s']:.1f} s, "
              f"in neither); rows identical: {same}")  # fmt: skip
    print(json.dumps(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
