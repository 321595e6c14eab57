"""Interpretation speed and memory on the default model, side by side with plain Hugging Face.

Measures, in one process and interleaved (so both sides see the same machine load):

1. ``interpret_vectors`` throughput at several batch sizes vs the same algorithm run by
   plain ``transformers`` (``selfie_tl.hf_reference``) on the same input ids, and the ratio;
2. the relevancy overhead (interpretation with vs without relevancy, and forward passes
   counted through ``hook_embed``);
3. the full grid: every layer x the last 5 tokens of the demo prompt, with relevancy;
4. cold (GGUF conversion) and warm ``load_model()`` time, and the peak RSS of
   ``selfie-tl demo`` (each in a fresh subprocess);
5. ``profile``: ``torch.profiler`` over one batch-32, 20-token interpretation run, the top
   operators by self time (with %), plus prefill vs decode time, and the findings written
   down from the profiles (``PROFILE_FINDINGS``);
6. ``levers``: the same generation with each optimisation switched off, interleaved
   (``shared_ln1``, ``fast_attention``, ``lean_decode``, ``shared_prefill``, ``drop_finished``;
   the prefill alone with ``shared_prefill`` forced on, and off);
7. ``floors``: the best rate this machine reaches on the model's own matrix product, and
   what the relevancy pass's arithmetic alone costs at that rate (the lower bound on the
   relevancy overhead; the pass repeats the decode's products in one forward); with
   ``--eval-run DIR``, the same for the SelfIE and patchscope stages of a finished
   ``selfie-tl eval`` run, counted from the tokens each of its rows generated;
8. ``cuda``: the throughput comparison on CUDA in float16 and bfloat16 (plain HF with its
   default attention), or a line saying no GPU was available.

Usage::

    python benchmarks/bench_interpret.py                 # full run, ~10 min on 2 cores
    python benchmarks/bench_interpret.py --quick         # smaller, for a smoke test
    OMP_NUM_THREADS=1 python benchmarks/bench_interpret.py --clock cpu   # on a loaded machine

Prints a table and writes ``benchmarks/results/interpret_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's selfie_tl, not another install
import selfie_tl
from selfie_tl.hf_reference import hf_interpret_ids
from selfie_tl.models import GGUF_MEMBER, cache_dir, load_default_hf_model
from selfie_tl.runtime import keep_freed_memory

DEMO = "What is the highest mountain in the world?"
RESULTS = Path(__file__).resolve().parent / "results"


CLOCK = time.perf_counter
"""Wall time by default; ``--clock cpu`` uses this process's CPU time (``time.process_time``),
steadier than wall time on a machine loaded by other jobs when torch runs one thread."""


def timed(fn):
    start = CLOCK()
    out = fn()
    return CLOCK() - start, out


def count_forwards(model, fn) -> int:
    calls = []
    with model.hooks(fwd_hooks=[("hook_embed", lambda t, hook: calls.append(t.shape))]):
        fn()
    return len(calls)


def interpret_ids(model, prompt, vecs, bs, new_tokens, k=2, **options):
    """The benchmark's one interpretation call (greedy), as ``generate_interpretations``."""
    return selfie_tl.generate_interpretations(
        model, vecs, prompt, k=k, max_new_tokens=new_tokens, batch_size=bs, **options
    )


def throughput(model, hf_model, prompt, vectors, batch_sizes, new_tokens, repeats, sync=False):
    rows = []
    timed_ = (lambda fn: timed(lambda: (fn(), torch.cuda.synchronize())[0])) if sync else timed
    for bs in batch_sizes:
        n = max(bs, min(len(vectors), 4 if bs == 1 else bs))
        vecs = vectors[:n]
        ours_t, probs_t, hf_t, same = [], [], [], True
        for _ in range(repeats):
            # What interpret_vectors runs (no per-token probabilities: the screened argmax
            # applies), and the same with each chosen token's probability recorded (a softmax
            # over the vocabulary per step, as relevancy needs), interleaved with plain HF.
            t1, ours = timed_(
                lambda vecs=vecs, bs=bs: interpret_ids(
                    model, prompt, vecs, bs, new_tokens, relevancy=False, token_probs=False
                ).token_ids
            )
            t0, with_probs = timed_(
                lambda vecs=vecs, bs=bs: interpret_ids(model, prompt, vecs, bs, new_tokens, relevancy=False).token_ids
            )
            probs_t.append(t0)
            same &= with_probs == ours
            ids = torch.as_tensor(prompt.input_ids, device=hf_model.device)
            t2, ref = timed_(
                lambda vecs=vecs, bs=bs, ids=ids: hf_interpret_ids(
                    hf_model, ids, prompt.placeholder_positions, vecs, 2, new_tokens, bs
                )
            )
            ours_t.append(t1)
            hf_t.append(t2)
            same &= ours == ref
        o, h, op = statistics.median(ours_t), statistics.median(hf_t), statistics.median(probs_t)
        rows.append(
            {
                "batch_size": bs, "n_vectors": n, "new_tokens": new_tokens,
                "selfie_tl_s": round(o, 3), "hf_s": round(h, 3),
                "selfie_tl_per_s": round(n / o, 2), "hf_per_s": round(n / h, 2),
                "time_ratio": round(o / h, 3), "identical_tokens": same,
                "selfie_tl_with_probs_s": round(op, 3), "time_ratio_with_probs": round(op / h, 3),
                "selfie_tl_runs": [round(x, 3) for x in ours_t], "hf_runs": [round(x, 3) for x in hf_t],
                "selfie_tl_with_probs_runs": [round(x, 3) for x in probs_t],
            }
        )  # fmt: skip
        print(
            f"  batch {bs:>3}: selfie_tl {o:6.2f} s  hf {h:6.2f} s  ratio {o / h:.2f}  identical={same}  "
            f"(with token probabilities {op:6.2f} s, ratio {op / h:.2f})",
            flush=True,
        )
    return rows


def relevancy_overhead(model, prompt, vectors, bs, new_tokens, repeats):
    from selfie_tl.fast import prefix_sharing

    vecs = vectors[:bs]

    def run(rel, token_probs=True):
        return interpret_ids(model, prompt, vecs, bs, new_tokens, relevancy=rel, token_probs=token_probs)

    def unshared():
        prefix_sharing.ENABLED = False
        try:
            return run(True)
        finally:
            prefix_sharing.ENABLED = True

    # Two baselines without relevancy: interpret_vectors' (no token probabilities, so the
    # screened argmax chooses) and the one that records each token's probability, which
    # relevancy needs anyway (the baseline of sessions 5-7).
    with_t, without_t, unshared_t, texts_t = [], [], [], []
    for _ in range(repeats):
        texts_t.append(timed(lambda: run(False, token_probs=False))[0])
        without_t.append(timed(lambda: run(False))[0])
        with_t.append(timed(lambda: run(True))[0])
        unshared_t.append(timed(unshared)[0])
    fw_without = count_forwards(model, lambda: run(False))
    fw_with = count_forwards(model, lambda: run(True))
    a, b, c = statistics.median(without_t), statistics.median(with_t), statistics.median(unshared_t)
    t = statistics.median(texts_t)
    return {
        "batch_size": bs, "new_tokens": new_tokens,
        "without_relevancy_s": round(a, 3), "with_relevancy_s": round(b, 3),
        "overhead_fraction": round(b / a - 1, 3),
        "texts_only_s": round(t, 3), "overhead_fraction_vs_texts_only": round(b / t - 1, 3),
        "with_relevancy_unshared_s": round(c, 3), "overhead_fraction_unshared": round(c / a - 1, 3),
        "forwards_without": fw_without, "forwards_with": fw_with,
        "extra_forwards": fw_with - fw_without,
        "note": "extra forwards (counted through a hook, which takes the single pass) = 1 teacher-forced pass per "
        "batch + 1 uninjected prompt pass per call; unhooked, shared prefixes are computed once, in up to 4 stages",
    }  # fmt: skip


def grid(model, new_tokens, bs):
    n_tokens = len(model.tokenizer(DEMO).input_ids)
    pairs = selfie_tl.layer_token_pairs(range(model.cfg.n_layers + 1), range(n_tokens - 5, n_tokens))
    t, df = timed(lambda: selfie_tl.interpret(model, DEMO, pairs, max_new_tokens=new_tokens, batch_size=bs))
    return {
        "interpretations": len(df), "new_tokens": new_tokens, "batch_size": bs, "relevancy": True,
        "seconds": round(t, 2), "per_second": round(len(df) / t, 2),
    }  # fmt: skip


def _python(code: str, env: dict) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1800, check=False
    )  # the error below carries the child's stderr
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return proc.stdout.strip().splitlines()[-1]


LOAD_CODE = (
    "import time; t0=time.perf_counter(); import selfie_tl; t1=time.perf_counter(); "
    "selfie_tl.load_model(); t2=time.perf_counter(); print(f'{t1-t0} {t2-t1}')"
)
RSS_CODE = (
    "import resource, subprocess, sys; "
    "subprocess.run([sys.executable, '-m', 'selfie_tl.cli', 'demo', '-q'], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def loading_and_memory():
    gguf = cache_dir() / "gguf" / Path(GGUF_MEMBER).name
    env = dict(os.environ)
    out = {}
    if os.environ.get("SELFIE_TL_GGUF") or gguf.exists():
        source = Path(os.environ.get("SELFIE_TL_GGUF") or gguf)
        with tempfile.TemporaryDirectory() as tmp:
            cold_env = dict(env, SELFIE_TL_CACHE=tmp, SELFIE_TL_GGUF=str(source))
            imp, load = map(float, _python(LOAD_CODE, cold_env).split())
            out["cold_load_s"] = round(load, 2)
            out["cold_note"] = "GGUF already fetched; time = dequantize + convert + write cache"
    imp, load = map(float, _python(LOAD_CODE, env).split())
    out["warm_load_s"] = round(load, 2)
    out["import_s"] = round(imp, 2)
    out["demo_peak_rss_mb"] = round(int(_python(RSS_CODE, env)) / 1024, 1)
    return out


def profile_run(model, prompt, vectors, bs, new_tokens, top=12):
    """Where the time goes: top operators by self CPU time, and prefill vs decode."""
    from torch.profiler import ProfilerActivity, profile

    from selfie_tl.generation import generate

    vecs = vectors[:bs]

    def run():
        return interpret_ids(model, prompt, vecs, bs, new_tokens, relevancy=False)

    run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    rows = [
        {"op": e.key, "self_ms": round(e.self_cpu_time_total / 1000, 1),
         "percent": round(100 * e.self_cpu_time_total / total, 1), "calls": e.count}
        for e in events[:top]
    ]  # fmt: skip
    for r in rows:
        print(f"  {r['op']:<28} {r['percent']:5.1f}%  {r['self_ms']:9.1f} ms  {r['calls']:>6} calls", flush=True)
    ids = torch.as_tensor(prompt.input_ids)[None].expand(bs, -1)
    pre, full = [], []
    for _ in range(3):
        pre.append(timed(lambda: generate(model, ids, 1))[0])
        full.append(timed(lambda: generate(model, ids, new_tokens, eos_token_ids=[]))[0])
    p, f = statistics.median(pre), statistics.median(full)
    split = {"prefill_s": round(p, 3), "decode_per_step_ms": round(1000 * (f - p) / max(1, new_tokens - 1), 1),
             "prefill_fraction": round(p / f, 3), "prompt_tokens": ids.shape[1], "batch_size": bs}  # fmt: skip
    print(f"  {split}", flush=True)
    return {"top_ops": rows, "split": split, "total_self_ms": round(total / 1000, 1)}


def levers(model, prompt, vectors, bs, new_tokens, repeats):
    """Each optimisation on/off, interleaved; medians and ratios.

    ``generate`` levers run the plain prompt with no end token (every row decodes every
    step); ``interpret`` levers run ``generate_interpretations`` on real vectors (injection,
    shared prefill, rows ending at their own end token); ``prefill`` levers are the same
    with one new token, i.e. the prefill alone.
    """
    from selfie_tl.generation import generate

    ids = torch.as_tensor(prompt.input_ids)[None].expand(bs, -1)
    vecs = vectors[:bs]

    def interp(tokens, k=2, **kw):
        return lambda: interpret_ids(model, prompt, vecs, bs, tokens, k=k, relevancy=False, **kw)

    settings = {
        "generate: all on": lambda: generate(model, ids, new_tokens, eos_token_ids=[]),
        "generate: shared_ln1=False": lambda: generate(model, ids, new_tokens, eos_token_ids=[], shared_ln1=False),
        "generate: fast_attention=False": lambda: generate(model, ids, new_tokens, eos_token_ids=[], fast_attention=False),
        "generate: lean_decode=False": lambda: generate(model, ids, new_tokens, eos_token_ids=[], lean_decode=False),
        "interpret: all on": interp(new_tokens),
        "interpret: shared_prefill=False": interp(new_tokens, shared_prefill=False),
        "interpret: drop_finished=False": interp(new_tokens, drop_finished=False),
        "prefill (k=2): all on": interp(1, shared_prefill=True),
        "prefill (k=2): shared_prefill=False": interp(1, shared_prefill=False),
        "prefill (k=15): all on": interp(1, k=15, shared_prefill=True),
        "prefill (k=15): shared_prefill=False": interp(1, k=15, shared_prefill=False),
    }  # fmt: skip
    times = {k: [] for k in settings}
    for _ in range(repeats):
        for name, fn in settings.items():
            times[name].append(timed(fn)[0])
    out = {}
    for name, ts in times.items():
        group = name.split(":")[0]
        base = statistics.median(times[f"{group}: all on"])
        m = statistics.median(ts)
        out[name] = {"median_s": round(m, 3), "vs_all_on": round(m / base, 3), "runs": [round(t, 3) for t in ts]}
        print(f"  {name:<38} {m:7.2f} s  x{m / base:.3f}", flush=True)
    return out


PROFILE_FINDINGS = [
    (
        "Matrix products (aten::addmm + aten::mm) are ~77% of self CPU time at batch 32 (the same products plain HF "
        "runs; the unembedding of the last position alone is ~20% of a decode step's arithmetic)."
    ),
    (
        "The prefill was ~24% of generate time at batch 32 / 23 prompt tokens; shared_prefill computes layers < k and "
        "the positions before the first placeholder once per call (k=2 on the default prompt shares 2 of 30 layers "
        "plus 3 prompt positions; the identity patchscope at k=layer shares most of its prefill)."
    ),
    (
        "Fused q/k/v projection: measured, not built. With optimize_layout's weight layout the three F.linear calls "
        "cost ~0.72 ms vs 0.63 ms fused per layer at batch 32 decode (~1% of a step), within noise on this machine."
    ),
    (
        "Rows ending early: in the benchmark's 32 vectors 3 rows end before 20 tokens, so drop_finished saves little "
        "here; it pays on prompts/templates where interpretations end at different lengths."
    ),
    (
        "Remaining non-matmul time: copies (~2%), elementwise mul/add (~4%, incl. zero biases), softmax, per-hook-point "
        "Python calls; none above a few percent each."
    ),
    (
        "Decode products at 126-128 rows run at 108-124 GFLOP/s (every weight streamed in again each step) against "
        "~185 for the same product at 2,048 rows; MKL's prepacked weights (torch.ops.mkl._mkl_linear) are bit-identical "
        "but slower (the blocks of one batch-32 step: 68 -> 80 ms)."
    ),
    (
        "Per decode step at 128 rows, timed with wall clocks around each line: block arithmetic ~295 ms, unembedding "
        "~63 ms, argmax and the probability softmax ~3 ms together (torch.profiler shows the 128-row softmax at ~30 ms: "
        "its own overhead, not the op's)."
    ),
]


def token_flops(cfg, context: int, unembed: bool = True) -> float:
    """Floating-point operations for one position through every block (matrix products and
    attention over ``context`` keys; elementwise work left out), plus the unembedding."""
    kv_heads = cfg.n_key_value_heads or cfg.n_heads
    attn = cfg.d_model * cfg.d_head * (2 * cfg.n_heads + 2 * kv_heads)  # W_Q, W_O; W_K, W_V
    mlp = (3 if cfg.gated_mlp else 2) * cfg.d_model * cfg.d_mlp
    scores = 2 * cfg.n_heads * cfg.d_head * context  # q.k and pattern.v
    return 2 * cfg.n_layers * (attn + mlp + scores) + (2 * cfg.d_model * cfg.d_vocab if unembed else 0)


def fed_flops(cfg, context: int, steps: int) -> float:
    """``steps`` positions fed one after another behind ``context`` earlier ones, each through
    every block and unembedded: the decode's arithmetic, and the relevancy pass's."""
    return sum(token_flops(cfg, context + j + 1) for j in range(steps))


def gemm_peak(model, rows: int = 2048, repeats: int = 5) -> float:
    """The best rate (FLOP/s) measured for the model's own MLP product at ``rows`` rows, in
    either weight layout (``x @ W`` and ``F.linear`` on ``W.T``): the most this machine does
    on these shapes, whatever the code around it."""
    import torch.nn.functional as F

    w = model.blocks[0].mlp.W_in.detach()
    w_t = w.T.contiguous()
    x = torch.randn(rows, w.shape[0], dtype=w.dtype, device=w.device)
    best = float("inf")
    with torch.no_grad():
        for fn in (lambda: x @ w, lambda: F.linear(x, w_t)):
            fn()
            for _ in range(repeats):
                best = min(best, timed(fn)[0])
    return 2 * rows * w.shape[0] * w.shape[1] / best


def floors(model, prompt, vectors, bs, new_tokens, measured_relevancy=None, eval_run=None):
    """What the arithmetic alone costs at this machine's measured peak, beside the measured
    times: the lower bounds the throughput targets are up against."""
    cfg, n_prompt = model.cfg, len(prompt.input_ids)
    peak = gemm_peak(model)
    rel = measured_relevancy or relevancy_overhead(model, prompt, vectors, bs, new_tokens, 1)
    # The teacher-forced pass feeds every generated token but the last, each scored over the
    # whole vocabulary (the softmax normaliser needs every logit).
    steps = new_tokens - 1
    pass_flops = bs * fed_flops(cfg, n_prompt, steps)
    # With prefix sharing only the plan's position-rows are computed (on these rows' own tokens).
    from selfie_tl.fast.prefix_sharing import plan_prefixes

    ids = interpret_ids(model, prompt, vectors[:bs], bs, new_tokens, relevancy=False).token_ids
    fed = torch.tensor([(row + [row[-1]] * new_tokens)[:steps] for row in ids])
    shared_share = plan_prefixes(fed).cost / fed.numel()
    without = rel["without_relevancy_s"]
    out = {
        "gemm_peak_gflops": round(peak / 1e9, 1),
        "relevancy_pass_gflop": round(pass_flops / 1e9, 1),
        "relevancy_pass_floor_s": round(pass_flops / peak, 3),
        "relevancy_overhead_floor": round(pass_flops / peak / without, 3),
        "shared_position_rows_fraction": round(shared_share, 3),
        "relevancy_overhead_floor_shared": round(shared_share * pass_flops / peak / without, 3),
        "relevancy_overhead_measured": rel["overhead_fraction"],
        "interpretation_s_measured": without,
        "note": "floors count matrix products and attention only, at the best rate measured for the model's "
        "MLP product (2,048 rows); the single relevancy pass does the decode's arithmetic again; prefix sharing "
        "computes only the distinct prefixes' positions of these rows",
    }  # fmt: skip
    print(f"  GEMM peak {out['gemm_peak_gflops']} GFLOP/s; relevancy pass {out['relevancy_pass_gflop']} GFLOP "
          f"-> at least {out['relevancy_pass_floor_s']} s = {100 * out['relevancy_overhead_floor']:.0f}% of the "
          f"{without} s interpretation; with prefix sharing {100 * shared_share:.0f}% of its position-rows -> "
          f"{100 * out['relevancy_overhead_floor_shared']:.0f}% (measured {100 * rel['overhead_fraction']:.0f}%)",
          flush=True)  # fmt: skip
    if eval_run is not None:
        out["eval"] = eval_floor(model, eval_run, peak)
    return out


def prompt_flops(cfg, prompt, k: int, new_tokens: int) -> float:
    """One interpretation's arithmetic on the fast paths: the prompt from its first
    placeholder on through blocks ``k..`` (the rest is shared by every row), the first
    token's unembedding, then ``new_tokens - 1`` decode steps."""
    n, split = len(prompt.input_ids), min(prompt.placeholder_positions)
    prefill = sum(token_flops(cfg, j + 1, unembed=False) for j in range(split, n)) * (cfg.n_layers - k) / cfg.n_layers
    return prefill + 2 * cfg.d_model * cfg.d_vocab + fed_flops(cfg, n, new_tokens - 1)


def eval_floor(model, run_dir: Path, peak: float) -> dict:
    """The SelfIE and patchscope arithmetic of a finished ``selfie-tl eval`` run (its
    ``rows.csv`` and ``summary.json``), from the number of tokens each row generated, at
    ``peak`` FLOP/s, beside the stage times the run measured."""
    import pandas as pd

    from selfie_tl.eval.templates import identity_prompt, template_prompt

    summary = json.loads((run_dir / "summary.json").read_text())
    config, timings = summary["config"], summary["timings_s"]
    if config.get("preset") or config.get("interpretation"):
        raise SystemExit("--eval-run: only runs without --preset or interpretation settings are counted")
    rows = pd.read_csv(run_dir / "rows.csv", keep_default_na=False)
    tok, cfg, out = model.tokenizer, model.cfg, {}

    def generated(text: str, limit: int) -> int:  # the end token is generated too when a row stops early
        return min(limit, len(tok(text, add_special_tokens=False).input_ids) + 1)

    for method in sorted(set(rows.method)):
        if method.startswith("selfie:") and method != "selfie:relation":
            prompt, new = template_prompt(tok, method.split(":", 1)[1]), config["max_new_tokens"]
            k_of = lambda layer: config["k"] if config["k"] is not None else selfie_tl.InterpretationConfig().k
        elif method == "patchscope":
            prompt, new = identity_prompt(tok), config["patchscope_max_new_tokens"]
            k_of = lambda layer: min(layer, cfg.n_layers - 1)
        else:
            continue
        part = rows[rows.method == method]
        flops = sum(prompt_flops(cfg, prompt, k_of(layer), generated(text, new))
                    for text, layer in zip(part.output, part.layer))  # fmt: skip
        out[method] = {"rows": len(part), "tflop": round(flops / 1e12, 1), "floor_s": round(flops / peak),
                       "measured_s": timings.get(method), "fraction_of_peak": round(flops / peak / timings[method], 2)}  # fmt: skip
        print(f"  {method}: {len(part)} rows, {flops / 1e12:.1f} TFLOP -> at least {flops / peak:.0f} s "
              f"(measured {timings[method]} s: {100 * flops / peak / timings[method]:.0f}% of peak)", flush=True)  # fmt: skip
    out["total_measured_s"] = timings["total"]
    return out


def cuda_throughput(prompt, vectors, batch_sizes, new_tokens, repeats):
    """The throughput comparison on CUDA, in float16 and bfloat16 (HF: default attention)."""
    if not torch.cuda.is_available():
        print("  no GPU available (torch.cuda.is_available() is False): skipped", flush=True)
        return {"skipped": "no GPU available"}
    out = {"device": torch.cuda.get_device_name(0)}
    for dtype in (torch.float16, torch.bfloat16):
        model = selfie_tl.load_model(device="cuda", dtype=dtype)
        hf_model, _ = load_default_hf_model()
        hf_model = hf_model.to(device="cuda", dtype=dtype)
        vecs = vectors.to("cuda", dtype)
        print(f"  {dtype}:", flush=True)
        out[str(dtype)] = throughput(model, hf_model, prompt, vecs, batch_sizes, new_tokens, repeats, sync=True)
        del model, hf_model
        torch.cuda.empty_cache()
    return out


PARTS = ["throughput", "relevancy", "grid", "loading", "profile", "levers", "floors", "cuda"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a smaller grid")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=20)
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--grid-batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS / "interpret_benchmark.json")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {PARTS} (default: all)")
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="wall time, or this process's CPU time (steadier on a loaded machine; use with OMP_NUM_THREADS=1)",
    )  # fmt: skip
    parser.add_argument("--skip-load", action="store_true", help="same as leaving 'loading' out of --parts")
    parser.add_argument("--unmap-freed-memory", action="store_true",
                        help="leave glibc's default (freed blocks unmapped) instead of what selfie-tl applies "
                        "(selfie_tl.runtime.keep_freed_memory); both sides of every comparison share the setting")  # fmt: skip
    parser.add_argument("--eval-run", type=Path, metavar="DIR",
                        help="with the floors part: also count the arithmetic of a finished `selfie-tl eval` run "
                        "(the --out folder holding rows.csv and summary.json)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.eval_run is not None and not (args.eval_run / "rows.csv").is_file():
        parser.error(f"--eval-run {str(args.eval_run)!r} holds no rows.csv; give a `selfie-tl eval --out` folder")
    keep_freed = False if args.unmap_freed_memory else keep_freed_memory()
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if unknown := sorted(set(parts) - set(PARTS)):
        parser.error(f"unknown --parts {unknown}; choose from {PARTS}")
    if args.skip_load and "loading" in parts:
        parts.remove("loading")
    repeats = 1 if args.quick else args.repeats
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    model = selfie_tl.load_model()
    hf_model, _ = load_default_hf_model()
    prompt = selfie_tl.default_interpretation_prompt(model.tokenizer)
    n_tokens = len(model.tokenizer(DEMO).input_ids)
    vectors = selfie_tl.capture(model, DEMO, list(range(model.cfg.n_layers + 1)), list(range(n_tokens - 5, n_tokens)))
    vectors = vectors.reshape(-1, model.cfg.d_model)
    vectors = vectors[torch.randperm(len(vectors), generator=torch.Generator().manual_seed(0))]

    result = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "torch": torch.__version__, "load_average": os.getloadavg(), "clock": args.clock,
                    "keep_freed_memory": keep_freed},
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
    }  # fmt: skip
    if "throughput" in parts:
        print("throughput (interpret_vectors vs plain transformers, no relevancy):", flush=True)
        result["throughput"] = throughput(model, hf_model, prompt, vectors, batch_sizes, args.new_tokens, repeats)
    if "relevancy" in parts:
        print("relevancy overhead:", flush=True)
        result["relevancy"] = relevancy_overhead(model, prompt, vectors, max(batch_sizes), args.new_tokens, repeats)
        print(f"  {result['relevancy']}", flush=True)
    if "grid" in parts:
        print("grid:", flush=True)
        result["grid"] = grid(model, args.new_tokens if not args.quick else 5, args.grid_batch_size)
        print(f"  {result['grid']}", flush=True)
    if "profile" in parts:
        print(f"profile (batch {max(batch_sizes)}, {args.new_tokens} tokens, top ops by self CPU time):", flush=True)
        result["profile"] = profile_run(model, prompt, vectors, max(batch_sizes), args.new_tokens)
        result["profile"]["findings"] = PROFILE_FINDINGS
        print("profile findings (written down from this and earlier runs):", flush=True)
        for line in PROFILE_FINDINGS:
            print(f"  - {line}", flush=True)
    if "levers" in parts:
        print(f"levers (generate, batch {max(batch_sizes)}, {args.new_tokens} tokens, interleaved):", flush=True)
        result["levers"] = levers(model, prompt, vectors, max(batch_sizes), args.new_tokens, repeats)
    if "floors" in parts:
        print(f"floors (batch {max(batch_sizes)}, {args.new_tokens} tokens, arithmetic at the measured peak):", flush=True)
        result["floors"] = floors(
            model, prompt, vectors, max(batch_sizes), args.new_tokens, result.get("relevancy"), args.eval_run
        )
    if "cuda" in parts:
        print("cuda (float16 / bfloat16):", flush=True)
        result["cuda"] = cuda_throughput(prompt, vectors, batch_sizes, args.new_tokens, repeats)
    if "loading" in parts:
        del hf_model
        print("loading and memory:", flush=True)
        result["loading"] = loading_and_memory()
        print(f"  {result['loading']}", flush=True)
    result["machine"]["load_average_end"] = os.getloadavg()

    print("\n| measure | value |\n|---|---|")
    for row in result.get("throughput", []):
        print(f"| batch {row['batch_size']}: selfie_tl / HF time | {row['time_ratio']:.2f} "
              f"({row['selfie_tl_per_s']} vs {row['hf_per_s']} interp/s, identical={row['identical_tokens']}) |")  # fmt: skip
    if rel := result.get("relevancy"):
        print(f"| relevancy overhead (batch {rel['batch_size']}) | {100 * rel['overhead_fraction']:.0f}% "
              f"(+{rel['extra_forwards']} forwards; {100 * rel['overhead_fraction_unshared']:.0f}% without "
              f"prefix sharing; {100 * rel['overhead_fraction_vs_texts_only']:.0f}% against texts only, "
              "no token probabilities) |")  # fmt: skip
    if g := result.get("grid"):
        print(f"| grid {g['interpretations']} interpretations, relevancy | {g['seconds']} s |")
    if prof := result.get("profile"):
        for r in prof["top_ops"][:6]:
            print(f"| profile: {r['op']} | {r['percent']}% of self CPU time ({r['calls']} calls) |")
        print(f"| profile: prefill share of generate time | {100 * prof['split']['prefill_fraction']:.0f}% |")
    if fl := result.get("floors"):
        print(f"| relevancy overhead floor (arithmetic at {fl['gemm_peak_gflops']} GFLOP/s) | "
              f"{100 * fl['relevancy_overhead_floor']:.0f}% single pass, "
              f"{100 * fl['relevancy_overhead_floor_shared']:.0f}% with prefix sharing "
              f"(measured {100 * fl['relevancy_overhead_measured']:.0f}%) |")
        for method, v in fl.get("eval", {}).items():
            if isinstance(v, dict):
                print(f"| eval {method}: arithmetic floor | {v['floor_s']} s (measured {v['measured_s']} s) |")
    for name, v in result.get("levers", {}).items():
        print(f"| lever {name} | {v['median_s']} s (x{v['vs_all_on']}) |")
    for key, value in result.get("loading", {}).items():
        print(f"| {key} | {value} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, args.out)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
