"""Supervised Control: move a source embedding to a target by training one MLP addition.

Two objectives:

* ``"embedding"`` (the paper): MSE between the edited source embeddings at layer ``l`` and
  target embeddings, plus ``beta`` times the mean squared change of reference embeddings.
  Since the edit acts after block ``l - 1``'s attention, the edited residual is
  ``h + delta(x)`` with ``h, x`` cached once: a step costs two small matmuls, no forward.
* ``"interpretation"``: the edited source embedding (with grad) is injected into the
  interpretation prompt at layer ``k`` (with the edit attached, as
  :func:`~selfie_tl.interpret.interpret` would see it) and the target interpretation text is
  teacher-forced; the loss is its mean token cross-entropy, plus the same preservation term.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from selfie_tl.config import ConfigMixin, resolve_config
from selfie_tl.control._common import (
    ControlResult,
    NanGuard,
    block_cache,
    check_positive,
    frozen_base,
    normalize_sources,
    prepare_edit,
    preservation,
)
from selfie_tl.control.edits import MLPEdit, check_edit_layer
from selfie_tl.errors import InvalidArgumentError, PromptError, VectorError
from selfie_tl.hooks import check_layer, injection_hooks, serialized
from selfie_tl.prompts import InterpretationPrompt, as_prompt, tokenize
from selfie_tl.validation import check_context

OBJECTIVES = ("embedding", "interpretation")


@dataclass
class SupervisedConfig(ConfigMixin):
    """Settings of :func:`supervised_control`.

    Attributes:
        objective: ``"embedding"`` (MSE to target embeddings) or ``"interpretation"``
            (likelihood of a target interpretation text).
        rank: rank of the edit's linear map (0 with ``bias=True`` for bias-only).
        bias: learn a constant vector too.
        lr: Adam learning rate (> 0).
        max_steps: upper bound on optimisation steps (>= 1).
        beta: weight of the preservation term (>= 0; needs ``reference_texts``).
        tol: stop as soon as the main loss is <= ``tol``. For ``"embedding"`` the main loss is
            relative: MSE divided by the initial MSE, so 0.05 means 95% of the way.
        patience: stop when the total loss has not improved by a relative ``min_delta`` for
            this many steps (0 disables).
        min_delta: relative improvement that resets the patience counter.
        k: injection layer of the interpretation objective.
        seed: initialisation seed (runs are deterministic on CPU).
        verbose: show a progress bar.

    Example:
        >>> cfg = SupervisedConfig(objective="interpretation", max_steps=50)
        >>> SupervisedConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    objective: str = "embedding"
    rank: int = 8
    bias: bool = False
    lr: float = 1e-2
    max_steps: int = 300
    beta: float = 1.0
    tol: float = 0.02
    patience: int = 30
    min_delta: float = 1e-3
    k: int = 2
    seed: int = 0
    verbose: bool = True

    def validate(self, model: HookedTransformer) -> SupervisedConfig:
        if self.objective not in OBJECTIVES:
            raise InvalidArgumentError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        check_positive("lr", self.lr)
        check_positive("max_steps", self.max_steps, integer=True)
        check_positive("rank", self.rank, integer=True, allow_zero=True)
        check_positive("beta", self.beta, allow_zero=True)
        check_positive("tol", self.tol, allow_zero=True)
        check_positive("patience", self.patience, integer=True, allow_zero=True)
        check_positive("min_delta", self.min_delta, allow_zero=True)
        if self.objective == "interpretation":
            check_layer(model, self.k, "injection")
        return self


def _target_embeddings(
    model: HookedTransformer, target: Any, layer: int, n_items: int, n_rows: int, owner: list[int]
) -> Float[Tensor, "n d_model"]:
    """One target row per cached source row."""
    d = model.cfg.d_model
    if isinstance(target, str) or (isinstance(target, Sequence) and not isinstance(target, Tensor)):
        texts = [target] if isinstance(target, str) else list(target)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise PromptError(f"target texts must be non-empty strings, got {target!r}")
        if len(texts) not in (1, n_items):
            raise InvalidArgumentError(f"got {len(texts)} target texts for {n_items} source prompts; pass 1 or {n_items}")
        cache = block_cache(model, [(t, -1) for t in texts], layer)
        rows = cache.h if len(texts) == n_items else cache.h.expand(n_items, -1)
        return rows[owner]
    if not isinstance(target, Tensor):
        raise VectorError(f"target must be text or a tensor, got {type(target).__name__}")
    if target.numel() == 0:
        raise VectorError("target tensor is empty")
    target = target.detach().float().to(model.cfg.device)
    if target.shape[-1] != d:
        raise VectorError(f"target has dimension {target.shape[-1]}, but this model's d_model is {d}")
    if target.ndim == 1:
        target = target[None].expand(n_rows, -1)
    if target.ndim != 2 or target.shape[0] not in (1, n_rows):
        raise VectorError(f"target must be [d_model], [1, d_model] or [{n_rows}, d_model]; got {tuple(target.shape)}")
    if not bool(torch.isfinite(target).all()):
        raise VectorError("target contains NaN or inf")
    return target.expand(n_rows, -1)


class _InterpretationLoss:
    """Cross-entropy of target interpretation texts given injected edited embeddings."""

    def __init__(
        self, model: HookedTransformer, edit: MLPEdit, prompt: InterpretationPrompt, targets: list[str],
        owner: list[int], k: int,
    ) -> None:  # fmt: skip
        self.model, self.edit, self.k = model, edit, k
        self.positions = prompt.placeholder_positions
        rows = []
        for text in targets:
            ids = tokenize(model.tokenizer, text)
            rows.append(torch.cat([prompt.input_ids, ids]))
        width = max(len(r) for r in rows)
        self.start = len(prompt.input_ids)
        # Targets of different lengths: right-pad and mask the padding out of the loss.
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, self.start : len(r)] = True
        index = torch.as_tensor(owner if len(targets) > 1 else [0] * len(owner))
        self.ids, self.mask = ids[index].to(model.cfg.device), mask[index].to(model.cfg.device)

    def __call__(self, h: Float[Tensor, "n d_model"]) -> Tensor:
        hooks = [*injection_hooks(self.model, h, self.positions, self.k), *self.edit.fwd_hooks()]
        attention = torch.ones_like(self.ids)
        logits = self.model.run_with_hooks(self.ids, fwd_hooks=hooks, attention_mask=attention)
        pred = logits[:, self.start - 1 : -1]
        gold = self.ids[:, self.start :]
        keep = self.mask[:, self.start :]
        return F.cross_entropy(pred[keep].float(), gold[keep])


@serialized
def supervised_control(
    model: HookedTransformer,
    source: str | Sequence[str | tuple[str, Any]],
    target: str | Sequence[str] | Float[Tensor, "... d_model"],
    layer: int,
    *,
    positions: int | Sequence[int] | str = -1,
    reference_texts: Sequence[str] = (),
    interpretation_prompt: InterpretationPrompt | Sequence | None = None,
    config: SupervisedConfig | None = None,
    edit: MLPEdit | None = None,
    **options: Any,
) -> ControlResult:
    """Train an edit so that the source embedding at ``layer`` becomes the target.

    Only the edit's parameters take gradients; the base model is never written. All
    inputs are validated before anything is created or changed.

    Args:
        model: the model.
        source: prompt(s) whose embeddings should change; items may be ``(prompt,
            positions)`` pairs, bare prompts use ``positions``.
        target: for ``"embedding"``: target text(s) (one, or one per source prompt; the
            embedding at their last token at ``layer`` is the target) or a tensor
            ``[d_model]`` / ``[n_source_rows, d_model]``. For ``"interpretation"``: the
            interpretation text(s) to make likely (a leading space reads naturally after
            the default prompt's "...summarize the message:").
        layer: edit layer ``l`` in ``[1, n_layers]``; the MLP addition lives in block ``l-1``.
        positions: token positions of bare source prompts (negative from the end, or
            ``"all"``).
        reference_texts: texts whose embeddings at ``layer`` (all tokens) should not move.
        interpretation_prompt: prompt for the ``"interpretation"`` objective (default: the
            paper's summary prompt).
        config: a :class:`SupervisedConfig`; keyword ``options`` override its fields.
        edit: continue training this edit instead of a fresh one (must not be attached).

    Returns:
        A :class:`~selfie_tl.control._common.ControlResult` (edit, per-step history,
        stop reason, seconds).

    Raises:
        LayerOutOfRangeError, InvalidArgumentError, PromptError, VectorError: bad input.
        TrainingError: the loss became NaN/inf (edit restored to its last finite state).

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model(n_layers=3)
        >>> res = supervised_control(model, "The cat", "A dog", layer=2, verbose=False, max_steps=20)
        >>> res.losses[-1] < res.losses[0]
        True
    """
    started = time.perf_counter()
    config = resolve_config(SupervisedConfig, config, options).validate(model)
    layer = check_edit_layer(model, layer)
    items = normalize_sources(source, positions)
    if edit is not None and edit.is_attached:
        raise InvalidArgumentError("detach the edit before training it")
    src = block_cache(model, items, layer)
    if isinstance(reference_texts, str):
        raise PromptError("reference_texts must be a list of texts, not one string; wrap it: [text]")
    refs = [t for t in reference_texts]
    if any(not isinstance(t, str) or not t.strip() for t in refs):
        raise PromptError("reference_texts must be non-empty strings")
    ref = block_cache(model, [(t, "all") for t in refs], layer) if refs else None
    if config.objective == "embedding":
        tgt = _target_embeddings(model, target, layer, len(items), src.x.shape[0], src.owner)
        scale = (tgt - src.h).pow(2).mean().clamp_min(1e-12)
    else:
        texts = [target] if isinstance(target, str) else list(target) if isinstance(target, Sequence) else None
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise PromptError(f"the interpretation objective needs non-empty target text(s), got {target!r}")
        if len(texts) not in (1, len(items)):
            raise InvalidArgumentError(f"got {len(texts)} target texts for {len(items)} source prompts")
        prompt = as_prompt(model.tokenizer, interpretation_prompt)
        longest = max(len(tokenize(model.tokenizer, t)) for t in texts)
        check_context(model, len(prompt.input_ids) + longest, 0, "interpretation prompt + longest target text")
    edit = prepare_edit(model, layer, edit, config.rank, config.bias, config.seed)
    if config.objective == "interpretation":
        interp_loss = _InterpretationLoss(model, edit, prompt, texts, src.owner, config.k)

    def main_loss() -> Tensor:
        h = src.h + edit.delta(src.x)
        if config.objective == "embedding":
            return (h - tgt).pow(2).mean() / scale
        return interp_loss(h)

    optimizer = torch.optim.Adam(edit.parameters(), lr=config.lr)
    guard = NanGuard(edit)
    history: list[dict[str, Any]] = []
    best, stale, stop_reason = float("inf"), 0, "max_steps"
    edit.train()
    with frozen_base(model):
        bar = tqdm(range(config.max_steps), desc=f"supervised ({config.objective})", disable=not config.verbose)
        for step in bar:
            optimizer.zero_grad(set_to_none=True)
            main = main_loss()
            pres = preservation(edit, ref)
            loss = main + config.beta * pres
            guard.check(loss, step)
            guard.save()
            row = {"step": step, "loss": loss.item(), "main": main.item(), "preservation": pres.item()}
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4g}", main=f"{row['main']:.4g}")
            if row["main"] <= config.tol:
                stop_reason = "converged"
                break
            if row["loss"] < best * (1 - config.min_delta):
                best, stale = row["loss"], 0
            else:
                stale += 1
                if config.patience and stale >= config.patience:
                    stop_reason = "patience"
                    break
            if step == config.max_steps - 1:
                break  # keep the parameters that produced the last logged loss
            guard.update(loss, optimizer, step)
        bar.close()
    edit.eval()
    edit.info = {
        "method": "supervised", "objective": config.objective, "config": config.to_dict(),
        "steps": len(history), "stop_reason": stop_reason, "final_loss": history[-1]["loss"],
        "sources": [p if isinstance(p, str) else "<token ids>" for p, _ in items][:20],
    }  # fmt: skip
    return ControlResult(edit, history, stop_reason, time.perf_counter() - started)
