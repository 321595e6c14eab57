"""SelfIE together with other TransformerLens analyses.

Small helpers for the usual companions of SelfIE in a circuit study:

* :func:`with_logit_lens`: the logit lens (:mod:`selfie_tl.lens`) on the same vectors
  SelfIE interpreted, as a DataFrame column beside the interpretations;
* :func:`patched_capture`: activation patching (copy a residual vector from a source
  prompt into a target prompt) and capture the patched residual stream for SelfIE;
* :func:`mean_difference`, :func:`sae_directions`, :func:`rescale`,
  :func:`typical_norm`: directions that are not residual states of any prompt
  (difference of means, decoder rows of a sparse autoencoder), brought to a residual-like
  norm before they are injected.

Vectors from a ``run_with_cache`` ``ActivationCache`` need no helper here:
:func:`selfie_tl.vectors_from_cache` picks them out by layer and position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from selfie_tl.errors import InvalidArgumentError, VectorError
from selfie_tl.hooks import (
    capture,
    check_layer,
    check_positions,
    injection_hooks,
    prompt_tokens,
    serialized,
)
from selfie_tl.lens import logit_lens
from selfie_tl.validation import as_float, is_int


@serialized
@torch.no_grad()
def with_logit_lens(model: HookedTransformer, df: pd.DataFrame, top_k: int = 5) -> pd.DataFrame:
    """A copy of an :func:`~selfie_tl.interpret` result with a ``logit_lens`` column.

    The vectors are captured again from each row's prompt at its (layer, token), so the
    logit lens reads exactly the embeddings SelfIE interpreted (give the same
    ``fwd_hooks`` context, e.g. ``with model.hooks(...)``, if interpret ran with hooks).

    Example:
        >>> from selfie_tl import interpret
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> df = interpret(model, "The cat", [(1, -1)], k=1, max_new_tokens=3)
        >>> len(with_logit_lens(model, df, top_k=2).logit_lens[0])
        2
    """
    if not isinstance(df, pd.DataFrame):
        raise InvalidArgumentError(f"df must be the DataFrame returned by interpret, got {type(df).__name__}")
    missing = [c for c in ("prompt", "layer", "token") if c not in df.columns]
    if missing:
        raise InvalidArgumentError(f"DataFrame is missing column(s) {missing}; pass the result of interpret")
    lens: list[Any] = [None] * len(df)
    for prompt, group in df.groupby("prompt", sort=False):
        layers = sorted({int(v) for v in group["layer"]})
        positions = sorted({int(v) for v in group["token"]})
        grid = capture(model, prompt, layers, positions)
        vectors = torch.stack(
            [
                grid[layers.index(int(l)), positions.index(int(t))]
                for l, t in zip(group["layer"], group["token"])
            ]
        )
        for i, reading in zip(group.index, logit_lens(model, vectors, top_k), strict=True):
            lens[df.index.get_loc(i)] = reading
    out = df.copy()
    out["logit_lens"] = lens
    return out


@serialized
@torch.no_grad()
def patched_capture(
    model: HookedTransformer,
    target_prompt: str | Tensor,
    source_prompt: str | Tensor,
    patch_layer: int,
    source_position: int,
    target_position: int,
    layers: int | Sequence[int],
    positions: int | Sequence[int],
) -> Float[Tensor, "layer pos d_model"]:
    """Activation patching, then capture the patched residual stream for SelfIE.

    The residual entering block ``patch_layer`` at ``source_position`` of the source prompt
    replaces the one at ``target_position`` of the target prompt; the target prompt then
    runs on and its residual stream is read at ``layers`` x ``positions`` (pass these to
    :func:`~selfie_tl.interpret_vectors`).

    Args:
        model: the model.
        target_prompt: prompt that receives the patch (text or 1-D ids).
        source_prompt: prompt the vector comes from.
        patch_layer: residual layer patched, in ``[0, n_layers - 1]``.
        source_position, target_position: token positions (negative from the end).
        layers, positions: where to read the patched run (as in :func:`~selfie_tl.capture`).

    Returns:
        ``[len(layers), len(positions), d_model]``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> patched_capture(model, "abc", "xyz", 1, -1, -1, layers=[2, 3], positions=[-1]).shape
        torch.Size([2, 1, 64])
    """
    patch_layer = check_layer(model, patch_layer, "injection")
    source = capture(model, source_prompt, patch_layer, source_position)[0]  # [1, d_model]
    target_ids = prompt_tokens(model, target_prompt)
    pos = check_positions([target_position], len(target_ids))
    with model.hooks(fwd_hooks=injection_hooks(model, source, pos, patch_layer)):
        return capture(model, target_ids, layers, positions)


@serialized
@torch.no_grad()
def mean_difference(
    model: HookedTransformer,
    prompts_a: Sequence[str],
    prompts_b: Sequence[str],
    layer: int,
    position: int = -1,
) -> Float[Tensor, " d_model"]:
    """Mean residual at (layer, position) over ``prompts_a`` minus that over ``prompts_b``.

    The classic "concept direction" (as in steering-vector and probing work), a vector
    that is no single prompt's residual state.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> mean_difference(model, ["good", "great"], ["bad", "awful"], layer=2).shape
        torch.Size([64])
    """
    if isinstance(prompts_a, str) or isinstance(prompts_b, str) or not prompts_a or not prompts_b:
        raise InvalidArgumentError("prompts_a and prompts_b must be non-empty lists of prompts")

    def mean(prompts: Sequence[str]) -> Tensor:
        return torch.stack([capture(model, p, layer, position)[0, 0] for p in prompts]).float().mean(0)

    return (mean(prompts_a) - mean(prompts_b)).to(model.cfg.dtype)


def sae_directions(
    sae: Any,
    indices: int | Sequence[int],
    *,
    model: HookedTransformer | None = None,
) -> Float[Tensor, "n d_model"]:
    """Decoder rows of a sparse autoencoder, as vectors to interpret.

    Duck-typed: any object with a ``W_dec`` of shape ``[d_sae, d_model]`` works (SAELens'
    ``SAE``, a hand-rolled ``nn.Module``, a ``SimpleNamespace``); SAELens is not needed.
    With ``model``, an SAE whose config names its hook is also checked against the model
    (:func:`selfie_tl.sae.check_sae`: width, residual hook, source model).
    Decoder rows are usually unit-norm, far shorter than residual states, so
    :func:`rescale` them (e.g. to :func:`typical_norm`) before injecting.

    Args:
        sae: object with ``W_dec``.
        indices: feature index or indices.
        model: when given, check that ``d_model`` matches.

    Returns:
        ``[len(indices), d_model]`` float tensor (detached copy).

    Example:
        >>> import torch, types
        >>> sae = types.SimpleNamespace(W_dec=torch.eye(4, 64))
        >>> sae_directions(sae, [1, 3]).argmax(-1).tolist()
        [1, 3]
    """
    w_dec = getattr(sae, "W_dec", None)
    if not isinstance(w_dec, Tensor):
        raise InvalidArgumentError(
            f"{type(sae).__name__} has no tensor W_dec; expected an SAE with W_dec of shape [d_sae, d_model]"
        )
    if w_dec.ndim != 2:
        raise InvalidArgumentError(f"W_dec must be 2-D [d_sae, d_model], got shape {tuple(w_dec.shape)}")
    if model is not None and getattr(sae, "cfg", None) is not None:
        # SAELens SAEs (and look-alikes) name their hook and model: check them against this model.
        from selfie_tl.sae._compat import check_sae, sae_info

        if sae_info(sae).hook_name is not None:
            check_sae(model, sae)
    if model is not None and w_dec.shape[1] != model.cfg.d_model:
        raise VectorError(
            f"W_dec has width {w_dec.shape[1]} but the model's d_model is {model.cfg.d_model}; "
            "the SAE was trained on a different model or hook"
        )
    items = [indices] if is_int(indices) else list(indices)
    if not items:
        raise InvalidArgumentError("no feature indices given")
    for i in items:
        if not is_int(i) or not -w_dec.shape[0] <= int(i) < w_dec.shape[0]:
            raise InvalidArgumentError(
                f"feature index {i!r} is out of range or not an int: the SAE has {w_dec.shape[0]} features, "
                f"so indices are ints in [{-w_dec.shape[0]}, {w_dec.shape[0] - 1}]"
            )
    return w_dec.detach()[[int(i) for i in items]].float().clone()


def rescale(vectors: Float[Tensor, "n d_model"], norm: float | Tensor) -> Float[Tensor, "n d_model"]:
    """Each vector scaled to L2 norm ``norm`` (direction kept).

    Example:
        >>> import torch
        >>> rescale(torch.tensor([[3.0, 4.0]]), 10.0).tolist()
        [[6.0, 8.0]]
    """
    try:
        vectors = torch.as_tensor(vectors)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise VectorError(f"vectors must be a float tensor [n, d_model], got {type(vectors).__name__}") from exc
    if not vectors.is_floating_point() or vectors.ndim not in (1, 2):
        raise VectorError(f"vectors must be a float tensor [n, d_model], got {vectors.dtype} of shape {tuple(vectors.shape)}")
    if vectors.ndim == 1:
        vectors = vectors[None]
    if not bool(torch.isfinite(vectors).all()):
        raise VectorError("vectors contain NaN or inf; only finite vectors can be rescaled")
    norm = as_float(norm, "norm", 0.0, low_open=True) if not isinstance(norm, Tensor) or norm.ndim == 0 else norm
    if isinstance(norm, Tensor) and not bool((torch.isfinite(norm) & (norm > 0)).all()):
        raise InvalidArgumentError("norm must hold finite numbers > 0")
    lengths = vectors.float().norm(dim=-1, keepdim=True)
    if (lengths == 0).any():
        raise VectorError("cannot rescale a zero vector")
    scale = norm.float().reshape(-1, 1) if isinstance(norm, Tensor) else norm
    return (vectors.float() / lengths * scale).to(vectors.dtype)


@serialized
@torch.no_grad()
def typical_norm(
    model: HookedTransformer, prompt: str | Tensor, layer: int, skip_first: bool = True
) -> float:
    """Median L2 norm of the residual at ``layer`` over a prompt's tokens.

    The first position is skipped by default: it is often an attention sink with a norm
    far above the others.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> typical_norm(tiny_model(), "hello there", layer=2) > 0
        True
    """
    ids = prompt_tokens(model, prompt)
    positions = list(range(1 if skip_first and len(ids) > 1 else 0, len(ids)))
    vecs = capture(model, ids, layer, positions)[0]
    return float(vecs.float().norm(dim=-1).median())


__all__ = [
    "logit_lens",
    "mean_difference",
    "patched_capture",
    "rescale",
    "sae_directions",
    "typical_norm",
    "with_logit_lens",
]
