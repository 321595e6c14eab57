"""``explain_features`` throughput on the default model and its cached SAE (not a test).

Explains ``--n-features`` features (default 1000) with the default settings
(``selfie_tl.sae.EXPLAIN_DEFAULTS``: ``scale="auto"`` with norm matching, relevancy, 12 new
tokens), in resumable chunks written to a temporary folder, after computing the
top-activating tokens on a corpus sample. Optionally scores the explanations and the two
baselines (``--score``). Prints timings and writes a JSON record.

Usage::

    python -m selfie_tl.sae.train                       # once: the SAE (cached)
    OMP_NUM_THREADS=2 python benchmarks/bench_sae_explain.py --threads 2
    python benchmarks/bench_sae_explain.py --n-features 100 --threads 1    # smoke run

Target: 1,000 features within 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

import selfie_tl
from selfie_tl.sae import (
    EXPLAIN_COLUMNS,
    baseline_explanations,
    corpus_sample,
    explain_features,
    feature_activations,
    load_or_train,
    score_explanations,
    summarize_scores,
    threshold_evaluation,
)
from selfie_tl.sae.train import SAETrainConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-features", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="override EXPLAIN_DEFAULTS' batch size")
    p.add_argument("--fast", action="store_true",
                   help="cheaper settings: no relevancy, auto scale over [1, 2, 4] (about half the work)")  # fmt: skip
    p.add_argument("--score", action="store_true", help="also score SelfIE and the baselines")
    p.add_argument("--only-live", action="store_true", help="explain only features that fire on the sample")
    p.add_argument("--out", default="benchmarks/results/sae_explain_benchmark.json")
    p.add_argument("--csv", default=None, help="also write the explained features")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    record: dict = {"threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    t0 = time.perf_counter()
    model = selfie_tl.load_model()
    sae, info = load_or_train(model, SAETrainConfig(), verbose=True)
    record["sae"] = {k: info[k] for k in ("path", "hook_name", "corpus")} | {"stats": info["stats"]}
    record["load_s"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    contexts = corpus_sample(model, 8192)
    stats = feature_activations(model, sae, contexts, top_k=32, verbose=True)
    record["top_tokens_s"] = round(time.perf_counter() - t0, 1)
    pool = [f for f in range(sae.cfg.d_sae) if stats.frequency[f] > 0] if args.only_live else list(range(sae.cfg.d_sae))
    features = pool[: args.n_features]
    options = {"batch_size": args.batch_size} if args.batch_size else {}
    if args.fast:
        options.update(relevancy=False, auto_scales=[1.0, 2.0, 4.0])
    with tempfile.TemporaryDirectory() as out_dir:
        t0, c0 = time.perf_counter(), time.process_time()
        df = explain_features(model, sae, features, stats=stats, out_dir=out_dir, verbose=True, **options)
        record["explain_s"] = round(time.perf_counter() - t0, 1)
        # CPU seconds of this process (all threads): on a machine shared with other jobs the
        # wall time depends on their load, the CPU time much less.
        record["explain_cpu_s"] = round(time.process_time() - c0, 1)
        with open("/proc/loadavg") if os.path.exists("/proc/loadavg") else open(os.devnull) as fh:
            record["loadavg_after"] = fh.read().strip()
    record.update(
        n_features=len(df), seconds_per_feature=round(record["explain_s"] / len(df), 3),
        settings=df.attrs["config"], auto_scale_ok=float(df.auto_scale_ok.mean()),
        chosen_scales=df.scale.value_counts().sort_index().to_dict(),
    )  # fmt: skip
    print(f"explained {len(df)} features in {record['explain_s']:.0f} s ({record['seconds_per_feature']:.2f} s/feature, "
          f"{record['threads']} threads) + {record['top_tokens_s']:.0f} s for top tokens")  # fmt: skip
    if args.score:
        t0 = time.perf_counter()
        scores = score_explanations(model, sae, df.feature.tolist(), baseline_explanations(df), verbose=True)
        summary = summarize_scores(scores, 1000)
        record["score_s"] = round(time.perf_counter() - t0, 1)
        record["summary"] = summary.to_dict(orient="records")
        record["thresholds"] = threshold_evaluation(df, scores).to_dict(orient="records")
        print(summary.to_string())
    if args.csv:
        df[EXPLAIN_COLUMNS].to_csv(args.csv, index=False)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
