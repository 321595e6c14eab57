"""Residual activations at an SAE's hook, its feature activations, and top-activating tokens.

Works on a plain ``HookedTransformer`` and on SAELens' ``HookedSAETransformer`` with SAEs
spliced in: there the residual at an SAE's hook is read at ``<hook>.hook_sae_input`` (what
enters the SAE), since the hook point itself has been replaced by the SAE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.sae._compat import check_features, sae_info


def read_hook_name(model: HookedTransformer, hook_name: str) -> str:
    """Where to read the residual of ``hook_name``: itself, or ``<hook>.hook_sae_input`` when
    an SAE is spliced in there (``HookedSAETransformer``).

    Raises:
        InvalidArgumentError: the model has no such hook.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> read_hook_name(tiny_model(), "blocks.1.hook_resid_pre")
        'blocks.1.hook_resid_pre'
    """
    if hook_name in model.hook_dict:
        return hook_name
    spliced = f"{hook_name}.hook_sae_input"
    if spliced in model.hook_dict:
        return spliced
    raise InvalidArgumentError(f"the model has no hook {hook_name!r} (nor an SAE spliced in there)")


def _stop_layer(model: HookedTransformer, hook_name: str) -> int | None:
    parts = hook_name.split(".")
    if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit():
        return min(model.cfg.n_layers, int(parts[1]) + 1)
    return None


@torch.no_grad()
def residual_batch(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], hook_name: str
) -> Float[Tensor, "batch pos d"]:
    """The activations at ``hook_name`` for a batch of token rows (no padding).

    One forward pass, stopped after the hook's block; hooks on the model stay active.
    """
    name = read_hook_name(model, hook_name)
    tokens = tokens.to(model.cfg.device)
    _, cache = model.run_with_cache(
        tokens, names_filter=lambda n: n == name, stop_at_layer=_stop_layer(model, hook_name),
        attention_mask=torch.ones_like(tokens),
    )  # fmt: skip
    return cache[name]


@torch.no_grad()
def collect_activations(
    model: HookedTransformer,
    contexts: Int[Tensor, "n pos"],
    hook_name: str,
    *,
    batch_size: int = 16,
    skip_first: int = 1,
    dtype: torch.dtype = torch.float32,
    verbose: bool = False,
) -> Float[Tensor, "tokens d"]:
    """Activations at ``hook_name`` of every token of ``contexts`` except the first ``skip_first``
    of each row (position 0 is usually an attention sink with an outsized norm).

    Returns:
        ``[n * (pos - skip_first), d]`` in row-major token order.

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> collect_activations(tiny_model(), torch.randint(0, 200, (3, 5)), "blocks.1.hook_resid_pre").shape
        torch.Size([12, 64])
    """
    if contexts.ndim != 2 or contexts.shape[1] <= skip_first:
        raise InvalidArgumentError(f"contexts must be [n, pos] with pos > skip_first, got {tuple(contexts.shape)}")
    out = []
    starts = range(0, contexts.shape[0], batch_size)
    for start in tqdm(starts, desc="activations", unit="batch", disable=not verbose, leave=False):
        acts = residual_batch(model, contexts[start : start + batch_size], hook_name)[:, skip_first:]
        out.append(acts.reshape(-1, acts.shape[-1]).to("cpu", dtype))
    return torch.cat(out)


@torch.no_grad()
def encode(sae: Any, x: Float[Tensor, "... d"]) -> Float[Tensor, "... d_sae"]:
    """Feature activations ``sae.encode(x)`` in float32, in the SAE's dtype and device."""
    w = sae.W_dec
    return sae.encode(x.to(w.device, w.dtype)).float()


@dataclass
class FeatureActivations:
    """Where features fire on a set of token contexts (from :func:`feature_activations`).

    Attributes:
        features: the feature indices, in order.
        contexts: ``[n, pos]`` token ids the statistics come from.
        skip_first: leading positions of each context that were left out.
        top_values: ``[n_features, top_k]`` largest activations, descending.
        top_index: ``[n_features, top_k]`` flat token index (row * pos + position) of each.
        frequency: fraction of (scored) tokens on which each feature is > 0.
        max_activation: largest activation per feature.
        mean_activation: mean activation over tokens where it fires.
    """

    features: list[int]
    contexts: Tensor = field(repr=False)
    skip_first: int
    top_values: Tensor = field(repr=False)
    top_index: Tensor = field(repr=False)
    frequency: Tensor = field(repr=False)
    max_activation: Tensor = field(repr=False)
    mean_activation: Tensor = field(repr=False)

    def row(self, feature: int) -> int:
        try:
            return self.features.index(int(feature))
        except ValueError:
            raise InvalidArgumentError(f"feature {feature} was not among the features analysed") from None

    def top_tokens(self, tokenizer: Any, feature: int, n: int | None = None, unique: bool = True) -> list[str]:
        """The tokens with the largest activations of ``feature`` (distinct ones by default)."""
        r = self.row(feature)
        flat = self.contexts.flatten()
        out: list[str] = []
        for value, idx in zip(self.top_values[r].tolist(), self.top_index[r].tolist(), strict=True):
            if value <= 0:
                break
            tok = tokenizer.decode([int(flat[idx])])
            if unique and tok in out:
                continue
            out.append(tok)
            if n is not None and len(out) >= n:
                break
        return out

    def top_contexts(self, tokenizer: Any, feature: int, n: int = 3, window: int = 8) -> list[tuple[str, str, str, float]]:
        """``(before, token, after, activation)`` for the top ``n`` activations of ``feature``."""
        r = self.row(feature)
        pos = self.contexts.shape[1]
        out = []
        for value, idx in zip(self.top_values[r].tolist(), self.top_index[r].tolist(), strict=True):
            if value <= 0 or len(out) >= n:
                break
            row, col = divmod(int(idx), pos)
            ids = self.contexts[row].tolist()
            out.append(
                (
                    tokenizer.decode(ids[max(0, col - window) : col]),
                    tokenizer.decode([ids[col]]),
                    tokenizer.decode(ids[col + 1 : col + 1 + window // 2]),
                    float(value),
                )
            )
        return out


@torch.no_grad()
def feature_activations(
    model: HookedTransformer,
    sae: Any,
    contexts: Int[Tensor, "n pos"],
    features: Sequence[int] | None = None,
    *,
    top_k: int = 20,
    batch_size: int = 16,
    skip_first: int = 1,
    verbose: bool = False,
) -> FeatureActivations:
    """Run ``contexts`` through the model, encode with ``sae`` at its hook, and keep each
    feature's top-``top_k`` activations, firing frequency and mean.

    Memory stays at one batch of ``[tokens, d_sae]`` activations: the top-k are merged batch
    by batch.

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.sae.testing import tiny_sae
        >>> model = tiny_model(); sae = tiny_sae(model)
        >>> stats = feature_activations(model, sae, torch.randint(0, 200, (4, 6)), [0, 1], top_k=3)
        >>> tuple(stats.top_values.shape)
        (2, 3)
    """
    info = sae_info(sae)
    if info.hook_name is None:
        raise InvalidArgumentError("the SAE records no hook name; cannot tell where to read activations")
    feats = check_features(list(range(info.d_sae)) if features is None else features, info.d_sae)
    index = torch.as_tensor(feats, dtype=torch.long)
    n, pos = contexts.shape
    if pos <= skip_first:
        raise InvalidArgumentError(f"contexts of {pos} tokens leave nothing after skip_first={skip_first}")
    k = min(top_k, n * (pos - skip_first))
    best_v = torch.full((len(feats), k), -torch.inf)
    best_i = torch.zeros((len(feats), k), dtype=torch.long)
    fired = torch.zeros(len(feats))
    total = torch.zeros(len(feats))
    count = 0
    for start in tqdm(range(0, n, batch_size), desc="feature activations", disable=not verbose, leave=False):
        rows = contexts[start : start + batch_size]
        resid = residual_batch(model, rows, info.hook_name)[:, skip_first:]
        acts = encode(sae, resid)[..., index.to(resid.device)].cpu()  # [b, p, F]
        b, p, _ = acts.shape
        flat = acts.reshape(b * p, -1)
        row_ids = torch.arange(start, start + b)[:, None] * pos + torch.arange(skip_first, pos)[None, :]
        positions = row_ids.reshape(-1)
        kk = min(k, flat.shape[0])
        v, i = flat.topk(kk, dim=0)  # [kk, F]
        cand_v = torch.cat([best_v, v.T], dim=1)
        cand_i = torch.cat([best_i, positions[i].T], dim=1)
        top = cand_v.topk(k, dim=1)
        best_v, best_i = top.values, cand_i.gather(1, top.indices)
        fired += (flat > 0).sum(0).float()
        total += flat.clamp_min(0).sum(0)
        count += flat.shape[0]
    best_v = best_v.clamp_min(0.0)
    return FeatureActivations(
        features=feats, contexts=contexts.cpu(), skip_first=skip_first, top_values=best_v, top_index=best_i,
        frequency=fired / max(count, 1), max_activation=best_v[:, 0].clone(),
        mean_activation=total / fired.clamp_min(1),
    )  # fmt: skip


@torch.no_grad()
def capture_features(
    model: HookedTransformer,
    prompt: str | Tensor,
    sae: Any,
    positions: int | Sequence[int] = -1,
) -> tuple[Float[Tensor, "pos d_model"], Float[Tensor, "pos d_sae"]]:
    """Residual states at the SAE's hook and their feature activations, side by side.

    On a ``HookedSAETransformer`` with the SAE spliced in, the residual is what enters the
    SAE (``hook_sae_input``). The residual rows can go straight to
    :func:`selfie_tl.interpret_vectors`.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.sae.testing import tiny_sae
        >>> model = tiny_model(); sae = tiny_sae(model)
        >>> resid, acts = capture_features(model, "hello", sae, [0, -1])
        >>> tuple(resid.shape), tuple(acts.shape)
        ((2, 64), (2, 32))
    """
    from selfie_tl.hooks import check_positions, prompt_tokens

    info = sae_info(sae)
    ids = prompt_tokens(model, prompt)
    pos = check_positions(positions, len(ids))
    resid = residual_batch(model, ids[None], info.hook_name)[0, pos]
    return resid.float().cpu(), encode(sae, resid).cpu()


__all__ = [
    "FeatureActivations",
    "capture_features",
    "collect_activations",
    "encode",
    "feature_activations",
    "read_hook_name",
    "residual_batch",
]
