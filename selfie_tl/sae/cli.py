"""``selfie-tl sae``: train an SAE, explain its features with SelfIE, score, ablate.

Wire it into a CLI with :func:`register` (its handler is :func:`run_sae`, also in
``args.func``); run it standalone with ``python -m selfie_tl.sae.cli``::

    python -m selfie_tl.sae.cli train                        # cached SAE for the default model
    python -m selfie_tl.sae.cli explain --features 0:200 --score --csv f.csv --html f.html
    python -m selfie_tl.sae.cli ablate "The capital of France is" --features 12,40

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["sae", "explain", "--features", "0:10", "--score"])
    >>> args.sae_command, args.features, args.score
    ('explain', '0:10', True)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.sae.train import add_train_arguments, config_from_args, run_train


def _add_sae_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sae", default=None, metavar="DIR",
                   help="a SAELens SAE folder (cfg.json + sae_weights.safetensors); default: the cached SAE "
                   "that 'train' makes with the same --layer/--d-sae/... flags (trained first if missing)")  # fmt: skip


def add_explain_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags of ``sae explain``."""
    add_train_arguments(p)
    _add_sae_source(p)
    p.add_argument("--features", default="0:100", help="feature indices: slice or list (default 0:100)")
    p.add_argument("--prompt", default="meaning",
                   help="explanation prompt: meaning, word, summary, or text with {} placeholders (default meaning)")  # fmt: skip
    p.add_argument("--inject-k", type=int, default=2, help="injection layer of SelfIE (default 2)")
    p.add_argument("--max-new-tokens", type=int, default=12, help="tokens per explanation (default 12)")
    p.add_argument("--explain-batch-size", type=int, default=64, help="features interpreted together (default 64)")
    p.add_argument("--chunk-size", type=int, default=256, help="features per resumable chunk (default 256)")
    p.add_argument("--out-dir", default=None, help="folder for finished chunks; rerun to resume")
    p.add_argument("--n-context-tokens", type=int, default=8192, help="corpus tokens for top-activating tokens")
    p.add_argument("--score", action="store_true", help="score explanations and baselines (AUROC, bootstrap CI)")
    p.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap resamples for the score intervals (default 1000)")
    p.add_argument("--csv", metavar="PATH", help="write the features table as CSV")
    p.add_argument("--parquet", metavar="PATH", help="write the features table as Parquet (needs pyarrow)")
    p.add_argument("--html", metavar="PATH", help="write an HTML page of the features")
    p.add_argument("--json", metavar="PATH", help="write the score summary as JSON")
    return p


def add_ablate_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags of ``sae ablate``."""
    add_train_arguments(p)
    _add_sae_source(p)
    p.add_argument("prompt", help="prompt whose residual state and answer are compared")
    p.add_argument("--features", required=True, help="features to ablate: list or slice")
    p.add_argument("--position", type=int, default=-1, help="token position to interpret (default -1)")
    p.add_argument("--inject-k", type=int, default=2, help="injection layer of SelfIE (default 2)")
    p.add_argument("--max-new-tokens", type=int, default=20, help="tokens per interpretation (default 20)")
    return p


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sae`` (with ``train``, ``explain``, ``ablate``) to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "sae", help="sparse autoencoders: train one, explain its features with SelfIE, score, ablate",
        description=__doc__.split("\n\n")[0],
    )  # fmt: skip
    sub = parser.add_subparsers(dest="sae_command", required=True, metavar="SAE_COMMAND")
    add_train_arguments(sub.add_parser("train", help="train (or find cached) an SAE with SAELens' trainer"))
    add_explain_arguments(sub.add_parser("explain", help="explain features with SelfIE; CSV/Parquet/HTML; scores"))
    add_ablate_arguments(sub.add_parser("ablate", help="ablate features: interpretation and answer before/after"))
    parser.set_defaults(func=run_sae)
    return parser


def _model(args: argparse.Namespace):
    from selfie_tl.models import load_model

    return load_model(args.model) if args.model else load_model()


def _sae(args: argparse.Namespace, model) -> Any:
    from selfie_tl.sae.train import load_or_train, require_sae_lens

    if args.sae:
        require_sae_lens()
        from sae_lens import SAE

        path = Path(args.sae).expanduser()
        if not (path / "cfg.json").is_file():
            raise InvalidArgumentError(f"--sae {path}: no cfg.json there; give a folder saved by SAELens")
        return SAE.load_from_disk(path, device=str(model.cfg.device)).eval()
    sae, _ = load_or_train(model, config_from_args(args), rebuild=args.rebuild, verbose=not args.quiet)
    return sae


def run_explain(args: argparse.Namespace, model: Any = None, sae: Any = None) -> dict[str, Any]:
    """Handler of ``sae explain``; returns the frames it made (``explained``, ``scores``, ``summary``)."""
    from selfie_tl.files import check_output_path
    from selfie_tl.indices import parse_index_spec
    from selfie_tl.sae._compat import sae_info
    from selfie_tl.sae.explain import explain_features
    from selfie_tl.sae.report import write_features_html

    for flag in ("csv", "parquet", "html", "json"):
        if getattr(args, flag):
            check_output_path(getattr(args, flag), f"--{flag}")
    model = model if model is not None else _model(args)
    sae = sae if sae is not None else _sae(args, model)
    features = parse_index_spec(args.features, sae_info(sae).d_sae, "feature")
    t0 = time.perf_counter()
    df = explain_features(
        model, sae, features, prompt=args.prompt.replace("\\n", "\n"), k=args.inject_k,
        max_new_tokens=args.max_new_tokens, batch_size=args.explain_batch_size, chunk_size=args.chunk_size,
        out_dir=args.out_dir, n_context_tokens=args.n_context_tokens, verbose=not args.quiet,
    )  # fmt: skip
    out: dict[str, Any] = {"explained": df, "explain_s": time.perf_counter() - t0}
    for row in df.head(20).itertuples():
        flag = "" if row.auto_scale_ok is not False else "  [self-similarity below threshold]"
        tops = ", ".join(t.strip() for t in (row.top_tokens or [])[:5])
        print(f"{row.feature:>6}  {' '.join(row.explanation.split())[:70]:<70}  top: {tops[:40]}{flag}")
    if len(df) > 20:
        print(f"... {len(df) - 20} more")
    scores = summary = None
    if args.score:
        from selfie_tl.sae.scoring import (
            baseline_explanations,
            score_explanations,
            summarize_scores,
            threshold_evaluation,
        )

        scores = score_explanations(model, sae, df["feature"].tolist(), baseline_explanations(df), verbose=not args.quiet)
        summary = summarize_scores(scores, args.n_bootstrap)
        thresholds = threshold_evaluation(df, scores) if df["self_similarity"].notna().any() else None
        print("\nExplanation score: AUROC of the feature's activation on its own explanation vs others' (95% CI)")
        for r in summary.itertuples():
            print(f"  {r.method:<11} {r.mean_auroc:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]  (n={r.n_features})")
        out.update(scores=scores, summary=summary, thresholds=thresholds)
        if args.json:
            from selfie_tl.files import write_text

            write_text(args.json, json.dumps({
                "summary": summary.to_dict(orient="records"),
                "thresholds": thresholds.to_dict(orient="records") if thresholds is not None else None,
                "n_features": len(df), "explain_s": round(out["explain_s"], 1),
            }, indent=1, default=str))  # fmt: skip
    if scores is not None:
        wide = scores.pivot_table(index="feature", columns="method", values="auroc").add_prefix("auroc_")
        df = df.merge(wide, left_on="feature", right_index=True, how="left")
    if args.csv:
        df.to_csv(args.csv, index=False)
    if args.parquet:
        try:
            df.to_parquet(args.parquet, index=False)
        except ImportError as exc:
            raise InvalidArgumentError(f"--parquet needs pyarrow ({exc}); use --csv instead") from exc
    if args.html:
        write_features_html(out["explained"], args.html, scores=scores, summary=summary,
                            meta={"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])})  # fmt: skip
    if not args.quiet:
        print(f"{len(df)} features explained in {out['explain_s']:.0f} s", file=sys.stderr)
    return out


def run_ablate(args: argparse.Namespace, model: Any = None, sae: Any = None) -> dict[str, Any]:
    """Handler of ``sae ablate``."""
    from selfie_tl.indices import parse_index_spec
    from selfie_tl.sae._compat import sae_info
    from selfie_tl.sae.ablate import ablation_flow

    model = model if model is not None else _model(args)
    sae = sae if sae is not None else _sae(args, model)
    features = parse_index_spec(args.features, sae_info(sae).d_sae, "feature")
    out = ablation_flow(model, sae, features, args.prompt, position=args.position, k=args.inject_k,
                        max_new_tokens=args.max_new_tokens)  # fmt: skip
    print(f"features at position {args.position}: {out['top_features']}")
    print(f"ablated {features}: activations {out['activations']}, |x - x'| = {out['delta_norm']:.3f}")
    for r in out["interpretations"].itertuples():
        print(f"  SelfIE {r.state:<6}: {' '.join(r.interpretation.split())}")
    for r in out["answers"].itertuples():
        print(f"  answer {r.state:<6}: {' '.join(r.answer.split())}")
    return out


def run_sae(args: argparse.Namespace) -> int:
    """Dispatch ``selfie-tl sae <command>``; returns an exit status."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    handlers = {"train": run_train, "explain": run_explain, "ablate": run_ablate}
    handlers[args.sae_command](args)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m selfie_tl.sae.cli``: the same as ``selfie-tl sae ...`` (one parser, one error handler)."""
    from selfie_tl.cli import main as cli_main

    return cli_main(['sae', *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["add_ablate_arguments", "add_explain_arguments", "main", "register", "run_ablate", "run_explain", "run_sae"]
