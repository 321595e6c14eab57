"""Reinforcement Control: push embeddings along or against themselves by a reward.

Each step: take the embeddings ``h_i`` at the edit layer (every token of the training
prompts, or a seeded sample of them) with the current edit, interpret them with SelfIE
(edit attached), score the interpretations with the reward (edit detached, so a judge that
is the same model is unedited), and minimise::

    loss = -mean_i R_i * <h_i, sg(h_i)> / ||sg(h_i)||^2  +  beta * preservation

whose gradient with respect to ``h_i`` is ``-R_i * h_i / ||h_i||^2 / n``: a negative reward
shrinks the embedding along its own direction, a positive one grows it. Because the edit
acts after block ``l - 1``'s attention, ``h_i = h0_i + delta(x_i)`` from a one-off cache.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
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
    prepare_edit,
    preservation,
)
from selfie_tl.control.edits import MLPEdit, check_edit_layer
from selfie_tl.control.rewards import Reward, check_rewards
from selfie_tl.errors import InvalidArgumentError, PromptError
from selfie_tl.hooks import check_layer, serialized
from selfie_tl.interpret import generate_interpretations
from selfie_tl.prompts import N_PLACEHOLDERS, InterpretationPrompt, as_prompt, default_interpretation_prompt

MATERIALS_REPLY = "Sure, the materials mentioned in the message are:"
"""The assistant prefix of the paper's reinforcement-control interpretation prompt."""


def materials_prompt(
    tokenizer: Any, reply: str = MATERIALS_REPLY, n_placeholders: int = N_PLACEHOLDERS
) -> InterpretationPrompt:
    """The paper's "...materials mentioned in the message are:" interpretation prompt.

    ChatML tokenizers get the same shape as
    :func:`~selfie_tl.prompts.default_interpretation_prompt` (no system turn).

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> materials_prompt(tiny_tokenizer()).text.endswith("mentioned in the message are:")
        True
    """
    if n_placeholders == N_PLACEHOLDERS:
        return default_interpretation_prompt(tokenizer, reply)
    return InterpretationPrompt.from_chat(
        tokenizer, assistant_prefix=reply, n_placeholders=n_placeholders, plain_fallback=True
    )


@dataclass
class ReinforcementConfig(ConfigMixin):
    """Settings of :func:`reinforcement_control`.

    Attributes:
        steps: optimisation steps (>= 1); each interprets the sampled embeddings once.
        lr: Adam learning rate (> 0).
        rank, bias: shape of the edit (see :class:`~selfie_tl.control.edits.MLPEdit`).
        beta: weight of the preservation term on ``reference_texts`` (>= 0).
        k: injection layer of the interpretations.
        max_new_tokens: interpretation length.
        batch_size: interpretations generated together.
        embeddings_per_step: sample this many token embeddings per step (seeded);
            ``None`` uses all of them every step.
        target_reward: stop early once the mean reward of a step is >= this (``None``:
            never).
        n_samples: interpretations recorded per step in the history.
        seed: seed of the edit's initialisation and the sampling.
        verbose: progress bar.

    Example:
        >>> cfg = ReinforcementConfig(steps=5)
        >>> ReinforcementConfig.from_dict(cfg.to_dict()).steps
        5
    """

    steps: int = 10
    lr: float = 1e-2
    rank: int = 8
    bias: bool = False
    beta: float = 1.0
    k: int = 2
    max_new_tokens: int = 12
    batch_size: int = 16
    embeddings_per_step: int | None = None
    target_reward: float | None = None
    n_samples: int = 3
    seed: int = 0
    verbose: bool = True

    def validate(self, model: HookedTransformer) -> ReinforcementConfig:
        check_positive("steps", self.steps, integer=True)
        check_positive("lr", self.lr)
        check_positive("rank", self.rank, integer=True, allow_zero=True)
        check_positive("beta", self.beta, allow_zero=True)
        check_positive("max_new_tokens", self.max_new_tokens, integer=True)
        check_positive("batch_size", self.batch_size, integer=True)
        check_positive("n_samples", self.n_samples, integer=True, allow_zero=True)
        if self.embeddings_per_step is not None:
            check_positive("embeddings_per_step", self.embeddings_per_step, integer=True)
        check_layer(model, self.k, "injection")
        return self


def reinforcement_loss(
    h: Float[Tensor, "n d_model"], rewards: Float[Tensor, " n"]
) -> Float[Tensor, ""]:
    """``-mean_i R_i <h_i, sg(h_i)> / ||sg(h_i)||^2`` (its value is ``-mean R``).

    Example:
        >>> import torch
        >>> h = torch.tensor([[3.0, 4.0]], requires_grad=True)
        >>> reinforcement_loss(h, torch.tensor([-1.0])).backward()
        >>> h.grad  # R=-1: descending the loss shrinks h along itself
        tensor([[0.1200, 0.1600]])
    """
    fixed = h.detach()
    along = (h * fixed).sum(-1) / fixed.pow(2).sum(-1).clamp_min(1e-12)
    return -(rewards.to(h.dtype) * along).mean()


@serialized
def reinforcement_control(
    model: HookedTransformer,
    prompts: str | Sequence[str],
    layer: int,
    reward: Reward,
    *,
    interpretation_prompt: InterpretationPrompt | Sequence | None = None,
    reference_texts: Sequence[str] = (),
    config: ReinforcementConfig | None = None,
    edit: MLPEdit | None = None,
    **options: Any,
) -> ControlResult:
    """Train an edit from rewards on the interpretations of the prompts' embeddings.

    Args:
        model: the model.
        prompts: training prompts; every token's embedding at ``layer`` is used.
        layer: edit layer ``l`` in ``[1, n_layers]`` (the MLP addition lives in block l-1).
        reward: callable ``list[str] -> list[float]`` (see :mod:`selfie_tl.control.rewards`).
        interpretation_prompt: default :func:`materials_prompt` (the paper's choice).
        reference_texts: texts whose embeddings at ``layer`` should not move.
        config: a :class:`ReinforcementConfig`; keyword ``options`` override its fields.
        edit: continue training this edit (must not be attached).

    Returns:
        A :class:`~selfie_tl.control._common.ControlResult`; each history row holds
        ``step, loss, mean_reward, n_negative, preservation, seconds, samples``.

    Raises:
        LayerOutOfRangeError, InvalidArgumentError, PromptError: bad input.
        RewardError: the reward returned the wrong length or NaN/non-numeric values (the
            edit keeps its last good state).
        TrainingError: the loss became non-finite (edit restored).

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.control.rewards import KeywordReward
        >>> model = tiny_model(n_layers=3)
        >>> res = reinforcement_control(model, ["a bomb"], 2, KeywordReward(["a"]), steps=2,
        ...                             max_new_tokens=3, verbose=False)
        >>> len(res.history)
        2
    """
    started = time.perf_counter()
    config = resolve_config(ReinforcementConfig, config, options).validate(model)
    layer = check_edit_layer(model, layer)
    if not callable(reward):
        raise InvalidArgumentError(f"reward must be callable list[str] -> list[float], got {reward!r}")
    if isinstance(reference_texts, str):
        raise PromptError("reference_texts must be a list of texts, not one string; wrap it: [text]")
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list:
        raise InvalidArgumentError("prompts is empty; pass at least one training prompt")
    if any(not isinstance(p, str) or not p.strip() for p in prompt_list + list(reference_texts)):
        raise PromptError("prompts and reference_texts must be non-empty strings")
    if edit is not None and edit.is_attached:
        raise InvalidArgumentError("detach the edit before training it")
    interp = (
        materials_prompt(model.tokenizer)
        if interpretation_prompt is None
        else as_prompt(model.tokenizer, interpretation_prompt)
    )
    src = block_cache(model, [(p, "all") for p in prompt_list], layer)
    ref = block_cache(model, [(t, "all") for t in reference_texts], layer) if reference_texts else None
    edit = prepare_edit(model, layer, edit, config.rank, config.bias, config.seed)
    tokenizer = model.tokenizer
    gen = torch.Generator().manual_seed(config.seed)
    n_all = src.x.shape[0]
    optimizer = torch.optim.Adam(edit.parameters(), lr=config.lr)
    guard = NanGuard(edit)
    history: list[dict[str, Any]] = []
    stop_reason = "max_steps"
    with frozen_base(model):
        bar = tqdm(range(config.steps), desc="reinforcement", disable=not config.verbose)
        for step in bar:
            t0 = time.perf_counter()
            if config.embeddings_per_step is None or config.embeddings_per_step >= n_all:
                index = torch.arange(n_all)
            else:
                index = torch.randperm(n_all, generator=gen)[: config.embeddings_per_step].sort().values
            x, h0 = src.x[index], src.h[index]
            with torch.no_grad():
                current = h0 + edit.delta(x)
            with edit.attached(model):
                texts = generate_interpretations(
                    model, current, interp, k=config.k, max_new_tokens=config.max_new_tokens,
                    batch_size=config.batch_size, relevancy=False, token_probs=False,
                ).texts  # fmt: skip
            # Scored with the edit detached; a raising reward leaves the edit untouched.
            rewards = check_rewards(reward(list(texts)), len(texts))
            r = torch.tensor(rewards, device=x.device)
            optimizer.zero_grad(set_to_none=True)
            h = h0 + edit.delta(x)
            pres = preservation(edit, ref)
            loss = reinforcement_loss(h, r) + config.beta * pres
            guard.check(loss, step)
            guard.save()
            mean_reward = float(r.mean())
            reached = config.target_reward is not None and mean_reward >= config.target_reward
            if not reached:  # once the target is met, keep the edit that met it
                guard.update(loss, optimizer, step)
            samples = [
                {"token": tokenizer.decode([src.tokens[i]]), "interpretation": texts[j], "reward": rewards[j]}
                for j, i in enumerate(index.tolist()[: config.n_samples])
            ]
            history.append({
                "step": step, "loss": loss.item(), "mean_reward": mean_reward,
                "n_negative": int((r < 0).sum()), "n": len(rewards), "preservation": pres.item(),
                "seconds": time.perf_counter() - t0, "samples": samples,
            })  # fmt: skip
            bar.set_postfix(reward=f"{mean_reward:.3f}", loss=f"{loss.item():.4g}")
            if reached:
                stop_reason = "target_reward"
                break
        bar.close()
    edit.info = {
        "method": "reinforcement", "objective": "reward", "config": config.to_dict(), "steps": len(history),
        "stop_reason": stop_reason, "reward": repr(reward)[:200], "prompts": prompt_list[:20],
    }  # fmt: skip
    return ControlResult(edit, history, stop_reason, time.perf_counter() - started)
