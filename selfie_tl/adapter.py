"""A trainable self-interpretation adapter: an affine map on the injected vector.

"Learning Self-Interpretation from Interpretability Artifacts" (arXiv 2602.10352) trains,
on a frozen model, only a scalar scale and a bias vector (``d_model + 1`` parameters)
applied to the vector before it is injected, and reports large gains on
self-interpretation tasks, most of it from the bias. :class:`SelfInterpretationAdapter`
is that map, ``v -> scale * v + bias`` (optionally ``+ (v @ A) @ B``, low rank);
:func:`train_adapter` fits it with a teacher-forced objective on training data only: the
interpretation of an entity's state should name the entity. It never sees the attribute
questions of the evaluation.

Files are :mod:`selfie_tl.artifacts` (safetensors + JSON with the model's fingerprint),
like control edits. Pass an adapter to :func:`selfie_tl.interpret` /
:func:`~selfie_tl.interpret_vectors` (``adapter=``) or ``selfie-tl interpret --adapter``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from selfie_tl.artifacts import ModelFingerprint, fingerprint, load_artifact, save_artifact
from selfie_tl.config import ConfigMixin, resolve_config
from selfie_tl.errors import InvalidArgumentError, SelfieError
from selfie_tl.generation import final_logits, left_pad, pad_id
from selfie_tl.hooks import check_layer, check_vectors, injection_hooks, serialized
from selfie_tl.prompts import InterpretationPrompt, as_prompt, tokenize
from selfie_tl.validation import as_bool, as_float, as_int, check_context, check_model

FORMAT = "selfie_tl.adapter"
FORMAT_VERSION = 1


class AdapterMismatchError(SelfieError, ValueError):
    """A saved adapter does not fit the model, or its file is damaged."""


class SelfInterpretationAdapter(nn.Module):
    """``v -> scale * v + bias (+ (v @ A) @ B)``, applied before injection.

    Starts as the identity (scale 1, bias 0, ``B`` 0), so an untrained adapter changes
    nothing.

    Example:
        >>> import torch
        >>> adapter = SelfInterpretationAdapter(d_model=4)
        >>> v = torch.randn(2, 4)
        >>> torch.equal(adapter(v), v)
        True
    """

    def __init__(self, d_model: int, rank: int = 0, seed: int = 0) -> None:
        super().__init__()
        d_model, rank = as_int(d_model, "d_model", 1), as_int(rank, "rank", 0)
        seed = as_int(seed, "seed", 0, 2**63 - 1)
        self.d_model, self.rank, self.seed = d_model, rank, seed
        self.scale = nn.Parameter(torch.ones(()))
        self.bias = nn.Parameter(torch.zeros(d_model))
        gen = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(torch.randn(d_model, rank, generator=gen) / d_model**0.5)
        self.B = nn.Parameter(torch.zeros(rank, d_model))
        self.info: dict[str, Any] = {}
        self.trained_on: ModelFingerprint | None = None

    def forward(self, v: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_model"]:
        out = self.scale * v + self.bias
        if self.rank:
            out = out + (v @ self.A) @ self.B
        return out

    def check_model(self, model: HookedTransformer) -> None:
        check_model(model)
        if model.cfg.d_model != self.d_model:
            raise AdapterMismatchError(f"adapter has d_model {self.d_model}, the model {model.cfg.d_model}")

    def save(self, path: str | os.PathLike, model: HookedTransformer | None = None) -> Path:
        """Write the adapter (safetensors + JSON metadata with the model fingerprint).

        Example:
            >>> import tempfile, os
            >>> from selfie_tl.testing import tiny_model
            >>> model = tiny_model()
            >>> path = SelfInterpretationAdapter(64).save(os.path.join(tempfile.mkdtemp(), "a.safetensors"), model)
            >>> load_adapter(path, model).d_model
            64
        """
        if not isinstance(path, str | os.PathLike):
            raise InvalidArgumentError(f"path must be a str or os.PathLike file path, got {type(path).__name__}")
        if model is not None:
            self.check_model(model)
            self.trained_on = fingerprint(model)
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "d_model": self.d_model, "rank": self.rank,
            "seed": self.seed, "info": self.info, "model": self.trained_on.to_dict() if self.trained_on else None,
        }  # fmt: skip
        return save_artifact(path, self.state_dict(), meta)


def load_adapter(
    path: str | os.PathLike, model: HookedTransformer, *, check_fingerprint: bool = True
) -> SelfInterpretationAdapter:
    """Load an adapter saved by :meth:`SelfInterpretationAdapter.save` for ``model``.

    Raises:
        FileNotFoundError: no such file.
        AdapterMismatchError: damaged file or a different model.
    """
    if not isinstance(path, str | os.PathLike):
        raise InvalidArgumentError(f"path must be a str or os.PathLike file path, got {type(path).__name__} {path!r:.60}")
    check_model(model)
    meta, tensors = load_artifact(
        path, model, FORMAT, (FORMAT_VERSION,), AdapterMismatchError, check_fingerprint=check_fingerprint
    )
    try:
        adapter = SelfInterpretationAdapter(int(meta["d_model"]), int(meta["rank"]), int(meta.get("seed", 0)))
        adapter.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise AdapterMismatchError(f"{path} has inconsistent adapter metadata or tensors: {exc}") from exc
    adapter.info = dict(meta.get("info") or {})
    adapter.trained_on = ModelFingerprint.from_dict(meta["model"]) if meta.get("model") else None
    adapter.check_model(model)
    return adapter.to(model.cfg.device)


def as_adapter(model: HookedTransformer, adapter: Any) -> SelfInterpretationAdapter | None:
    """``None``, an adapter, or a path to one, as an adapter checked against ``model``."""
    if adapter is None or isinstance(adapter, SelfInterpretationAdapter):
        if adapter is not None:
            adapter.check_model(model)
        return adapter
    if isinstance(adapter, str | os.PathLike):
        return load_adapter(adapter, model)
    raise InvalidArgumentError(f"adapter must be None, a SelfInterpretationAdapter or a path, got {type(adapter).__name__}")


@dataclass
class AdapterConfig(ConfigMixin):
    """Settings of :func:`train_adapter`.

    Attributes:
        k: injection layer used while training (use the same at inference).
        steps: optimiser steps.
        lr: Adam learning rate.
        rank: extra low-rank term (0: scale + bias only, as published).
        weight_decay: L2 pull of the bias toward 0.
        seed: initialisation and minibatch seed.
        batch_size: training pairs per step, drawn without replacement and reshuffled
            each pass over the set (with ``batch_size >= n`` every step sees all pairs).
        verbose: progress bar.

    Example:
        >>> AdapterConfig.from_dict(AdapterConfig(steps=5).to_dict()).steps
        5
    """

    k: int = 2
    steps: int = 60
    lr: float = 0.05
    rank: int = 0
    weight_decay: float = 0.0
    batch_size: int = 32
    seed: int = 0
    verbose: bool = True

    def validate(self, model: HookedTransformer) -> AdapterConfig:
        """A checked copy (numpy numbers as Python ones).

        Raises:
            InvalidArgumentError: a field of the wrong type or out of range.
        """
        return AdapterConfig(
            k=check_layer(model, self.k, "injection"), steps=as_int(self.steps, "steps", 1),
            lr=as_float(self.lr, "lr", 0.0, low_open=True), rank=as_int(self.rank, "rank", 0),
            weight_decay=as_float(self.weight_decay, "weight_decay", 0.0),
            batch_size=as_int(self.batch_size, "batch_size", 1), seed=as_int(self.seed, "seed", 0, 2**63 - 1),
            verbose=as_bool(self.verbose, "verbose"),
        )  # fmt: skip


@serialized
def train_adapter(
    model: HookedTransformer,
    vectors: Float[Tensor, "n d_model"],
    targets: Sequence[str],
    interpretation_prompt: InterpretationPrompt | Sequence | str | None = None,
    config: AdapterConfig | None = None,
    **options: Any,
) -> SelfInterpretationAdapter:
    """Fit an adapter so the interpretation of ``vectors[i]`` starts with ``targets[i]``.

    Teacher forcing: the interpretation prompt with ``adapter(v)`` injected at layer ``k``
    is followed by the target text, and the loss is the mean negative log-likelihood of the
    target tokens. Only the adapter's parameters get gradients; the model is frozen.

    Args:
        model: the model.
        vectors: ``[n, d_model]`` training states (e.g. entities' last-token states).
        targets: one text per vector (e.g. the entity's name, with a leading space).
        interpretation_prompt: where to inject (default: the paper's summary prompt).
        config: an :class:`AdapterConfig`; keyword ``options`` override it.

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> adapter = train_adapter(model, torch.randn(3, 64), [" a", " b", " c"], k=1, steps=2, verbose=False)
        >>> adapter.trained_on.d_model
        64
    """
    check_model(model)
    config = resolve_config(AdapterConfig, config, options).validate(model)
    k = config.k
    vectors = check_vectors(model, vectors).detach()
    if isinstance(targets, str):
        raise InvalidArgumentError("targets must be a list of texts, one per vector, not one string")
    targets = list(targets)
    if len(targets) != vectors.shape[0] or any(not isinstance(t, str) or not t.strip() for t in targets):
        raise InvalidArgumentError(f"need one non-empty target text per vector; got {len(targets)} for {vectors.shape[0]}")
    prompt = as_prompt(model.tokenizer, interpretation_prompt)
    longest = max(len(tokenize(model.tokenizer, t)) for t in targets)
    check_context(model, len(prompt.input_ids) + longest, 0, "interpretation prompt + longest target")
    adapter = SelfInterpretationAdapter(model.cfg.d_model, config.rank, config.seed).to(model.cfg.device)
    target_ids = [tokenize(model.tokenizer, t) for t in targets]
    prompt_len = len(prompt.input_ids)
    # right-padded targets after the shared prompt; loss only on real target tokens
    ids_t, mask_t = left_pad([t.flip(0) for t in target_ids], pad_id(model.tokenizer))
    ids_t, mask_t = ids_t.flip(1), mask_t.flip(1)
    full = torch.cat([prompt.input_ids[None].expand(len(targets), -1), ids_t], dim=1).to(model.cfg.device)
    mask = torch.cat([torch.ones(len(targets), prompt_len, dtype=torch.long), mask_t], dim=1).to(model.cfg.device)
    optimizer = torch.optim.Adam(adapter.parameters(), lr=config.lr)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    history: list[float] = []
    order = torch.Generator().manual_seed(config.seed)
    queue: list[int] = []
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        for _ in tqdm(range(config.steps), desc="training adapter", disable=not config.verbose, leave=False):
            if len(queue) < min(config.batch_size, len(targets)):
                queue += torch.randperm(len(targets), generator=order).tolist()
            rows, queue = queue[: config.batch_size], queue[config.batch_size :]
            optimizer.zero_grad()
            loss = _target_nll(model, adapter(vectors[rows]), prompt, full[rows], mask[rows], k)
            if config.weight_decay:
                loss = loss + config.weight_decay * adapter.bias.pow(2).mean()
            loss.backward()
            optimizer.step()
            history.append(float(loss.detach()))
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    adapter.trained_on = fingerprint(model)
    adapter.info = {"config": config.to_dict(), "n_train": len(targets), "prompt": prompt.text, "losses": history}
    return adapter.eval()


def _target_nll(
    model: HookedTransformer,
    injected: Float[Tensor, "batch d_model"],
    prompt: InterpretationPrompt,
    tokens: Tensor,
    mask: Tensor,
    k: int,
) -> Tensor:
    """Mean NLL of the target tokens after ``prompt`` with ``injected`` at layer ``k``.

    Only the target positions are unembedded (the vocabulary projection of the prompt
    positions would cost about a fifth of the forward pass for nothing).
    """
    prompt_len = len(prompt.input_ids)
    hooks = injection_hooks(model, injected, prompt.placeholder_positions, k)
    resid = model.run_with_hooks(tokens, fwd_hooks=hooks, attention_mask=mask, stop_at_layer=model.cfg.n_layers)
    logits = final_logits(model, resid[:, prompt_len - 1 : -1])
    nll = -logits.float().log_softmax(-1).gather(-1, tokens[:, prompt_len:, None]).squeeze(-1)
    weight = mask[:, prompt_len:].float()
    return (nll * weight).sum() / weight.sum().clamp_min(1)


__all__ = [
    "AdapterConfig",
    "AdapterMismatchError",
    "SelfInterpretationAdapter",
    "as_adapter",
    "load_adapter",
    "train_adapter",
]
