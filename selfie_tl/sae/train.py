"""Train a small SAE for a model with SAELens' own trainer, on a CPU, from offline text.

One command trains (or finds in the cache) the SAE the rest of :mod:`selfie_tl.sae` uses::

    python -m selfie_tl.sae.train                      # default model, layer 12, 4096 features
    python -m selfie_tl.sae.train --d-sae 2048 --n-tokens 60000 --layer 6

What happens (:func:`train_sae`):

1. text from :mod:`selfie_tl.sae.corpus` (``"auto"``: WordNet's glosses when installed,
   else CPython's documentation), split into training and held-out parts;
2. the training text tokenized into contexts of ``context_size`` tokens, the residual
   stream read at ``blocks.{layer}.hook_resid_pre`` (position 0 of each context left out:
   it is an attention sink with an outsized norm) and kept in memory;
3. a SAELens ``TopKTrainingSAE`` trained by SAELens' ``SAETrainer`` on shuffled batches of
   those activations for ``epochs`` passes (norm scaling estimated and folded in, dead
   features revived by the TopK auxiliary loss), then saved and reloaded as an inference
   ``SAE`` with SAELens' own ``save_inference_model`` / ``SAE.load_from_disk``;
4. held-out statistics: fraction of variance explained, L0, dead features, and the
   next-token loss with the SAE spliced in versus without.

The result is cached under ``<cache>/sae/<entry>/`` (``$SELFIE_TL_CACHE`` or
``~/.cache/selfie_tl``): SAELens' ``cfg.json`` and ``sae_weights.safetensors``, plus
``selfie_tl.json`` with the training settings and statistics. Nothing is written in the
repository. :func:`load_or_train` returns the cached SAE when the settings match.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer

from selfie_tl.config import ConfigMixin
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.hooks import check_layer, hook_name
from selfie_tl.sae.activations import collect_activations, encode
from selfie_tl.sae.corpus import CORPORA, load_corpus, resolve_corpus, split_texts, token_contexts

CACHE_FORMAT = 1
"""Bump when what a cache entry holds changes."""


def require_sae_lens():
    """Import SAELens or raise an error that says how to install it."""
    try:
        import sae_lens
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "SAELens is needed for this; install the extra: pip install 'selfie_tl[sae]'"
        ) from exc
    return sae_lens


@dataclass
class SAETrainConfig(ConfigMixin):
    """Settings of :func:`train_sae` (all have CPU-friendly defaults).

    Attributes:
        layer: residual layer; the SAE reads ``blocks.{layer}.hook_resid_pre`` (or the last
            block's output for ``layer == n_layers``).
        d_sae: dictionary size (features).
        k: active features per token (TopK).
        corpus: text source (:data:`selfie_tl.sae.corpus.CORPORA`).
        n_tokens: training tokens read from the model (before the first-position skip).
        context_size: tokens per context.
        heldout_fraction: share of the texts kept out of training.
        heldout_tokens: held-out tokens used for the statistics.
        epochs: passes over the training activations.
        batch_size: activations per training step.
        lr: Adam learning rate (warm-up over the first 5% of steps, decay over the last 20%).
        seed: corpus shuffle, initialisation and batch order.
        n_generated: texts generated when ``corpus="generated"``.
    """

    layer: int = 12
    d_sae: int = 2048
    k: int = 16
    corpus: str = "auto"
    n_tokens: int = 60_000
    context_size: int = 64
    heldout_fraction: float = 0.05
    heldout_tokens: int = 4096
    epochs: float = 5.0
    batch_size: int = 256
    lr: float = 3e-3
    seed: int = 0
    n_generated: int = 64

    def validate(self, model: HookedTransformer) -> SAETrainConfig:
        """Raise :class:`~selfie_tl.errors.InvalidArgumentError` on a bad setting."""
        check_layer(model, self.layer)
        for name in ("d_sae", "k", "n_tokens", "context_size", "batch_size", "heldout_tokens", "n_generated"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgumentError(f"{name} must be an int >= 1, got {value!r}")
        if self.k > self.d_sae:
            raise InvalidArgumentError(f"k={self.k} must not exceed d_sae={self.d_sae}")
        if self.context_size < 2:
            raise InvalidArgumentError(f"context_size must be >= 2, got {self.context_size}")
        if not self.epochs > 0 or not math.isfinite(self.epochs):
            raise InvalidArgumentError(f"epochs must be > 0, got {self.epochs!r}")
        if not self.lr > 0:
            raise InvalidArgumentError(f"lr must be > 0, got {self.lr!r}")
        if self.corpus not in CORPORA:
            raise InvalidArgumentError(f"corpus must be one of {list(CORPORA)}, got {self.corpus!r}")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise InvalidArgumentError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction!r}")
        return self

    def hook_name(self, model: HookedTransformer) -> str:
        return hook_name(model, self.layer)


def sae_cache_root() -> Path:
    """``<selfie_tl cache>/sae``."""
    from selfie_tl.models.cache import cache_dir

    return cache_dir() / "sae"


def cache_entry(model: HookedTransformer, config: SAETrainConfig) -> Path:
    """The cache folder of an SAE trained with ``config`` on ``model``."""
    corpus = resolve_corpus(config.corpus)
    name = str(model.cfg.model_name).replace("/", "--")
    return sae_cache_root() / (
        f"{name}-L{config.layer}-{config.d_sae}x{config.k}-{corpus}-{config.n_tokens}t-"
        f"c{config.context_size}-e{config.epochs:g}-b{config.batch_size}-lr{config.lr:g}-s{config.seed}-v{CACHE_FORMAT}"
    )


def _batches(acts: torch.Tensor, batch_size: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(acts.shape[0], generator=gen)
        for start in range(0, acts.shape[0] - batch_size + 1, batch_size):
            yield acts[order[start : start + batch_size]]


@contextlib.contextmanager
def _quiet_trainer(quiet: bool):
    """SAELens' trainer draws progress bars unconditionally; silence them when asked."""
    if not quiet:
        yield
        return
    import functools

    from sae_lens.training import activation_scaler, sae_trainer

    saved = (sae_trainer.tqdm, activation_scaler.tqdm)
    sae_trainer.tqdm = functools.partial(saved[0], disable=True)
    activation_scaler.tqdm = functools.partial(saved[1], disable=True)
    try:
        yield
    finally:
        sae_trainer.tqdm, activation_scaler.tqdm = saved


@torch.no_grad()
def heldout_statistics(
    model: HookedTransformer, sae: Any, contexts: torch.Tensor, *, batch_size: int = 16, ce_contexts: int = 16
) -> dict[str, float]:
    """Reconstruction quality of ``sae`` on held-out ``contexts`` (position 0 left out).

    Returns ``explained_variance`` (1 - residual variance / variance), ``l0`` (mean active
    features per token), ``dead_fraction`` (features that never fired on these tokens: an
    upper bound on the truly dead), and the mean next-token loss on the first
    ``ce_contexts`` contexts: ``ce_clean`` without and ``ce_spliced`` with the SAE's
    reconstruction in place of the residual (positions >= 1), and ``ce_zero_ablated``
    (residual zeroed there). A full forward pass costs far more than reading one layer, so
    the losses use fewer tokens.
    """
    from selfie_tl.sae._compat import sae_info

    hook = sae_info(sae).hook_name
    acts = collect_activations(model, contexts, hook, batch_size=batch_size)
    feats = encode(sae, acts)
    recon = sae.decode(feats.to(sae.W_dec.dtype)).float()
    resid_var = (acts - recon).pow(2).sum(-1).mean()
    total_var = (acts - acts.mean(0)).pow(2).sum(-1).mean()
    fired = (feats > 0).any(0)

    def replace(kind: str):
        def fn(resid, hook):
            out = resid.clone()
            if kind == "sae":
                out[:, 1:] = sae.decode(sae.encode(resid[:, 1:].to(sae.W_dec.dtype))).to(resid.dtype)
            else:
                out[:, 1:] = 0
            return out

        return fn

    def loss(hooks) -> float:
        losses = []
        with model.hooks(fwd_hooks=hooks):
            for start in range(0, min(ce_contexts, contexts.shape[0]), batch_size):
                rows = contexts[start : min(start + batch_size, ce_contexts)].to(model.cfg.device)
                per_tok = model(rows, return_type="loss", loss_per_token=True, attention_mask=torch.ones_like(rows))
                losses.append(per_tok[:, 1:].float().flatten())
        return float(torch.cat(losses).mean())

    return {
        "explained_variance": float(1 - resid_var / total_var),
        "l0": float((feats > 0).float().sum(-1).mean()),
        "dead_fraction": float(1 - fired.float().mean()),
        "ce_clean": loss([]),
        "ce_spliced": loss([(hook, replace("sae"))]),
        "ce_zero_ablated": loss([(hook, replace("zero"))]),
        "n_tokens": int(acts.shape[0]),
    }


def train_sae(
    model: HookedTransformer,
    config: SAETrainConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    verbose: bool = True,
    **overrides: Any,
):
    """Train a TopK SAE on ``model``'s residual stream with SAELens' ``SAETrainer``.

    Args:
        model: the model.
        config: an :class:`SAETrainConfig`; keyword ``overrides`` replace its fields.
        out_dir: where to save the SAE (SAELens' layout plus ``selfie_tl.json``); ``None``
            keeps it in memory only.
        verbose: progress bars and a summary line.

    Returns:
        ``(sae, info)``: a SAELens inference ``SAE`` (hook and model name in
        ``sae.cfg.metadata``) and a dict with the settings, corpus, timings and
        :func:`heldout_statistics`.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> sae, info = train_sae(tiny_model(), layer=1, d_sae=16, k=2, corpus="pydoc", n_tokens=2048,
        ...                       context_size=32, epochs=1, batch_size=128, heldout_tokens=256, verbose=False)
        >>> sae.cfg.metadata.hook_name, sae.cfg.d_sae, 0 < info["stats"]["l0"] <= 2
        ('blocks.1.hook_resid_pre', 16, True)
    """
    from selfie_tl.config import resolve_config

    require_sae_lens()
    from sae_lens import SAE, LoggingConfig, SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.sae import SAEMetadata

    config = resolve_config(SAETrainConfig, config, overrides).validate(model)
    hook = config.hook_name(model)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    corpus = resolve_corpus(config.corpus)
    texts = load_corpus(corpus, model=model, n_generated=config.n_generated, seed=config.seed)
    train_texts, heldout_texts = split_texts(texts, config.heldout_fraction)
    contexts = token_contexts(model.tokenizer, train_texts, config.context_size, max_tokens=config.n_tokens)
    held = token_contexts(model.tokenizer, heldout_texts, config.context_size, max_tokens=config.heldout_tokens)
    timings["corpus_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    acts = collect_activations(model, contexts, hook, verbose=verbose)
    timings["activations_s"] = time.perf_counter() - t0

    torch.manual_seed(config.seed)
    sae_cfg = TopKTrainingSAEConfig(
        d_in=int(model.cfg.d_model), d_sae=config.d_sae, k=config.k, normalize_activations="expected_average_only_in",
        metadata=SAEMetadata(
            hook_name=hook, model_name=str(model.cfg.model_name), context_size=config.context_size,
            dataset_path=f"selfie_tl.sae.corpus:{corpus}", prepend_bos=False, seqpos_slice=(1, None),
        ),
    )  # fmt: skip
    training_sae = TopKTrainingSAE(sae_cfg)
    batch = min(config.batch_size, acts.shape[0])
    total = max(batch, int(config.epochs * acts.shape[0]))
    steps = total // batch
    trainer_cfg = SAETrainerConfig(
        total_training_samples=total, train_batch_size_samples=batch, lr=config.lr, lr_end=config.lr / 10,
        lr_warm_up_steps=max(1, steps // 20), lr_decay_steps=max(1, steps // 5), lr_scheduler_name="constant",
        dead_feature_window=max(10, steps // 4), feature_sampling_window=max(10, steps // 2),
        n_batches_for_norm_estimate=max(1, min(20, steps)), logger=LoggingConfig(log_to_wandb=False),
        device=str(acts.device),
    )  # fmt: skip
    t0 = time.perf_counter()
    with _quiet_trainer(not verbose):
        trained = SAETrainer(cfg=trainer_cfg, sae=training_sae, data_provider=_batches(acts, batch, config.seed)).fit()
    timings["training_s"] = time.perf_counter() - t0
    del acts

    import tempfile

    with contextlib.ExitStack() as stack:
        folder = Path(out_dir) if out_dir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        trained.save_inference_model(folder)
        sae = SAE.load_from_disk(folder, device=str(model.cfg.device))
    sae.eval()
    t0 = time.perf_counter()
    stats = heldout_statistics(model, sae, held)
    timings["heldout_stats_s"] = time.perf_counter() - t0
    info = {
        "config": config.to_dict(), "hook_name": hook, "model_name": str(model.cfg.model_name),
        "corpus": corpus, "n_texts": len(texts), "n_train_contexts": int(contexts.shape[0]),
        "n_train_activations": int(contexts.shape[0] * (contexts.shape[1] - 1)), "training_steps": steps,
        "stats": stats, "num_dead_features_training": getattr(sae.cfg.metadata, "num_dead_features", None),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "sae_lens_version": require_sae_lens().__version__, "format": CACHE_FORMAT,
    }  # fmt: skip
    if out_dir is not None:
        from selfie_tl.files import write_text

        write_text(Path(out_dir) / "selfie_tl.json", json.dumps(info, indent=1))
    if verbose:
        print(
            f"SAE {hook} {config.d_sae}x{config.k}: explained variance {stats['explained_variance']:.3f}, "
            f"L0 {stats['l0']:.1f}, dead {stats['dead_fraction']:.1%}, next-token loss {stats['ce_clean']:.3f} -> "
            f"{stats['ce_spliced']:.3f} spliced (zeroed: {stats['ce_zero_ablated']:.3f}); "
            f"{sum(timings.values()):.0f} s",
            file=sys.stderr,
        )
    return sae, info


def load_or_train(
    model: HookedTransformer,
    config: SAETrainConfig | None = None,
    *,
    rebuild: bool = False,
    verbose: bool = True,
    **overrides: Any,
):
    """The cached SAE for these settings, trained (and cached) first when missing.

    Returns:
        ``(sae, info)`` as :func:`train_sae`; ``info["path"]`` is the cache folder.
    """
    from selfie_tl.config import resolve_config
    from selfie_tl.files import staging_dir

    require_sae_lens()
    from sae_lens import SAE

    config = resolve_config(SAETrainConfig, config, overrides).validate(model)
    entry = cache_entry(model, config)
    marker = entry / "selfie_tl.json"
    if marker.is_file() and not rebuild:
        try:
            info = json.loads(marker.read_text())
            sae = SAE.load_from_disk(entry, device=str(model.cfg.device)).eval()
            info["path"] = str(entry)
            return sae, info
        except Exception as exc:  # noqa: BLE001 - a damaged entry is rebuilt
            if verbose:
                print(f"cached SAE at {entry} could not be read ({exc}); training again", file=sys.stderr)
    if rebuild and entry.exists():
        import shutil

        shutil.rmtree(entry, ignore_errors=True)
    with staging_dir(entry) as tmp:
        sae, info = train_sae(model, config, out_dir=tmp, verbose=verbose)
    info["path"] = str(entry)
    return sae, info


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of ``python -m selfie_tl.sae.train`` / ``selfie-tl sae train``."""
    d = SAETrainConfig()
    parser.add_argument("--model", default=None, help="model name/path (default: embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--layer", type=int, default=d.layer, help=f"residual layer (default {d.layer})")
    parser.add_argument("--d-sae", type=int, default=d.d_sae, help=f"features (default {d.d_sae})")
    parser.add_argument("--k", type=int, default=d.k, help=f"active features per token, TopK (default {d.k})")
    parser.add_argument("--corpus", default=d.corpus, choices=CORPORA, help="text source (default auto)")
    parser.add_argument("--n-tokens", type=int, default=d.n_tokens, help=f"training tokens (default {d.n_tokens})")
    parser.add_argument("--context-size", type=int, default=d.context_size,
                        help=f"tokens per training context (default {d.context_size})")
    parser.add_argument("--epochs", type=float, default=d.epochs, help=f"passes over the activations (default {d.epochs:g})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size,
                        help=f"training activations per step (default {d.batch_size})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"training seed (default {d.seed})")
    parser.add_argument("--rebuild", action="store_true", help="train again even if cached")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return parser


def config_from_args(args: argparse.Namespace) -> SAETrainConfig:
    return SAETrainConfig(
        layer=args.layer, d_sae=args.d_sae, k=args.k, corpus=args.corpus, n_tokens=args.n_tokens,
        context_size=args.context_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
    )  # fmt: skip


def run_train(args: argparse.Namespace, model: HookedTransformer | None = None) -> dict[str, Any]:
    """Handler of the train command: load the model, train or load from cache, print the facts."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if model is None:
        from selfie_tl.models import load_model

        model = load_model(args.model) if args.model else load_model()
    _, info = load_or_train(model, config_from_args(args), rebuild=args.rebuild, verbose=not args.quiet)
    s = info["stats"]
    print(
        f"{info['path']}\n  {info['hook_name']}, {info['config']['d_sae']} features (k={info['config']['k']}), "
        f"corpus {info['corpus']}, {info['n_train_activations']} activations x {info['config']['epochs']:g} epochs\n"
        f"  held-out: explained variance {s['explained_variance']:.3f}, L0 {s['l0']:.1f}, dead {s['dead_fraction']:.1%}, "
        f"next-token loss {s['ce_clean']:.3f} clean / {s['ce_spliced']:.3f} spliced / {s['ce_zero_ablated']:.3f} zeroed\n"
        f"  timings (s): {info['timings_s']}"
    )
    return info


def main(argv: list[str] | None = None) -> int:
    """``python -m selfie_tl.sae.train``: the same as ``selfie-tl sae train ...`` (one parser, one error handler)."""
    from selfie_tl.cli import main as cli_main

    return cli_main(['sae', 'train', *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["SAETrainConfig", "cache_entry", "heldout_statistics", "load_or_train", "train_sae"]
