"""Pieces both training loops share: the block cache, frozen base weights, the NaN guard."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from selfie_tl.control.edits import MLPEdit, check_edit_layer, fingerprint
from selfie_tl.errors import InvalidArgumentError, PromptError, TrainingError
from selfie_tl.hooks import check_positions, edit_hook_names, prompt_tokens, serialized


def check_positive(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if (
        isinstance(value, bool)
        or not ok_type
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        kind = "an int" if integer else "a finite number"
        raise InvalidArgumentError(f"{name} must be {kind} {'>=' if allow_zero else '>'} 0, got {value!r}")


@dataclass
class ControlResult:
    """What a training run returns.

    Attributes:
        edit: the trained :class:`~selfie_tl.control.edits.MLPEdit` (not attached).
        history: one dict per step (loss terms, and rewards for reinforcement control).
        stop_reason: ``"converged"``, ``"patience"``, ``"target_reward"`` or ``"max_steps"``.
        seconds: wall time of the run, caching included.
    """

    edit: MLPEdit
    history: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "max_steps"
    seconds: float = 0.0

    @property
    def losses(self) -> list[float]:
        return [row["loss"] for row in self.history]

    def history_frame(self):
        """The history as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.history)


@contextlib.contextmanager
def frozen_base(model: HookedTransformer) -> Iterator[None]:
    """Turn off gradients of the base weights for the block (restored after, also on error).

    The values are never written; this only saves the backward pass from computing
    gradients nobody uses.
    """
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def normalize_sources(source: Any, positions: Any) -> list[tuple[str | Tensor, Any]]:
    """``source`` as ``[(prompt, positions), ...]``; a bare prompt gets ``positions``."""
    if isinstance(source, str | Tensor):
        source = [source]
    try:
        items = list(source)
    except TypeError as exc:
        raise InvalidArgumentError(f"source must be a prompt or a list of prompts, got {source!r}") from exc
    if not items:
        raise InvalidArgumentError("source is empty; pass at least one prompt")
    out = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2:
            out.append(item)
        else:
            out.append((item, positions))
    for prompt, _ in out:
        if isinstance(prompt, str) and not prompt.strip():
            raise PromptError(f"source prompt must be a non-empty string, got {prompt!r}")
    return out


@dataclass
class BlockCache:
    """Inputs ``x`` to the edited MLP and residuals ``h`` at the edit layer, plain run.

    With the edit attached the residual is exactly ``h + edit.delta(x)``.
    """

    x: Float[Tensor, "n d_model"]
    h: Float[Tensor, "n d_model"]
    owner: list[int]  # which prompt each row came from
    tokens: list[int]  # token id of each row


@serialized
@torch.no_grad()
def block_cache(
    model: HookedTransformer,
    items: Sequence[tuple[str | Tensor, Any]],
    layer: int,
    *,
    exclude: MLPEdit | None = None,
) -> BlockCache:
    """Cache ``x``/``h`` at edit layer ``layer`` for (prompt, positions) items.

    ``positions`` may be ``"all"``. Other hooks on the model stay active (an edit can be
    trained on top of attached ones); ``exclude`` must not be attached, else ``h`` would
    already contain its delta.
    """
    layer = check_edit_layer(model, layer)
    if exclude is not None and exclude.is_attached:
        raise InvalidArgumentError("detach the edit before training it (its delta would enter the cache)")
    names = edit_hook_names(layer)
    read, write = names.read, names.residual
    xs, hs, owner, toks = [], [], [], []
    for index, (prompt, positions) in enumerate(items):
        ids = prompt_tokens(model, prompt)
        pos = (
            list(range(len(ids)))
            if isinstance(positions, str) and positions == "all"
            else check_positions(positions, len(ids))
        )
        _, cache = model.run_with_cache(
            ids[None].to(model.cfg.device), names_filter=lambda n: n in (read, write), stop_at_layer=layer
        )
        xs.append(cache[read][0, pos].float())
        hs.append(cache[write][0, pos].float())
        owner += [index] * len(pos)
        toks += ids[pos].tolist()
    return BlockCache(torch.cat(xs), torch.cat(hs), owner, toks)


def preservation(edit: MLPEdit, ref: BlockCache | None) -> Tensor:
    """Mean squared change of the reference residuals: ``mean ||delta(x_ref)||^2 / d``."""
    if ref is None or ref.x.shape[0] == 0:
        return torch.zeros((), device=edit.B.device)
    return edit.delta(ref.x).pow(2).mean()


class NanGuard:
    """Snapshot the edit before each update; restore it and raise when training diverges."""

    def __init__(self, edit: MLPEdit) -> None:
        self.edit = edit
        self.snapshot = self._copy()

    def _copy(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in self.edit.state_dict().items()}

    def save(self) -> None:
        self.snapshot = self._copy()

    def update(self, loss: Tensor, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Backward and optimiser step; on overflow restore the snapshot and raise."""
        try:
            loss.backward()
            optimizer.step()
        except RuntimeError as exc:
            self.edit.load_state_dict(self.snapshot)
            raise TrainingError(
                f"training diverged at step {step} ({exc}); the edit was restored to its last finite state"
            ) from exc
        self.check(loss.detach(), step)

    def check(self, loss: Tensor, step: int) -> None:
        """Raise (after restoring the snapshot) if ``loss`` or a parameter is not finite."""
        params_ok = all(bool(torch.isfinite(p).all()) for p in self.edit.parameters())
        if not bool(torch.isfinite(loss)) or not params_ok:
            self.edit.load_state_dict(self.snapshot)
            what = (
                f"loss became {loss.item()}"
                if not bool(torch.isfinite(loss))
                else "a parameter became non-finite"
            )
            raise TrainingError(
                f"training diverged at step {step}: {what}; the edit was restored to its last finite "
                "state. Lower the learning rate or the preservation weight beta."
            )


def prepare_edit(
    model: HookedTransformer, layer: int, edit: MLPEdit | None, rank: int, bias: bool, seed: int
) -> MLPEdit:
    """A fresh edit, or the given one after checking it fits ``layer`` and ``model``."""
    layer = check_edit_layer(model, layer)
    if edit is None:
        edit = MLPEdit.for_model(model, layer, rank=rank, bias=bias, seed=seed)
    else:
        if not isinstance(edit, MLPEdit):
            raise InvalidArgumentError(f"edit must be an MLPEdit, got {type(edit).__name__}")
        edit.check_model(model)
        if edit.layer != layer:
            raise InvalidArgumentError(f"edit acts at layer {edit.layer}, but layer={layer} was requested")
    edit.trained_on = fingerprint(model)
    return edit
