"""Activation patching of components: which heads and MLPs carry a behaviour.

:func:`patching_hooks` gives ``fwd_hooks`` that overwrite components' outputs with those of
another run (``model.hooks(fwd_hooks=...)`` or ``run_with_hooks``), and
:func:`patching_effects` runs the classic scan: one patched run per component, batched,
scored by a metric such as :func:`logit_diff`.

What each kind patches (at the chosen positions, every position by default):

* ``head``: ``blocks.l.attn.hook_z[:, pos, h]`` (the head's output before ``W_O``);
* ``attn`` / ``mlp``: ``blocks.l.hook_attn_out`` / ``blocks.l.hook_mlp_out``;
* ``neuron``: ``blocks.l.mlp.hook_post[:, pos, i]``;
* ``embed``: ``hook_embed`` (and ``hook_pos_embed`` where the model adds one).

``source`` contributions are not patchable (they are a decomposition of a head's write).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer
from transformer_lens.hook_points import HookPoint

from selfie_tl.circuits.writes import Component, _adds_pos_embed, check_components
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.hooks import HookFn, check_positions, prompt_tokens

Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, " batch"]]


def _patch_names(model: HookedTransformer, c: Component) -> list[str]:
    if c.kind == "head":
        return [f"blocks.{c.layer}.attn.hook_z"]
    if c.kind == "attn":
        return [f"blocks.{c.layer}.hook_attn_out"]
    if c.kind == "mlp":
        return [f"blocks.{c.layer}.hook_mlp_out"]
    if c.kind == "neuron":
        return [f"blocks.{c.layer}.mlp.hook_post"]
    if c.kind == "embed":
        return ["hook_embed"] + (["hook_pos_embed"] if _adds_pos_embed(model) else [])
    raise InvalidArgumentError(
        f"{c.label}: 'source' contributions cannot be patched; patch the head ({c.label.split()[0]}) instead"
    )


def _components(model: HookedTransformer, components: Any) -> list[Component]:
    out = check_components(model, components)
    for c in out:
        _patch_names(model, c)
    return out


@torch.no_grad()
def _source_acts(
    model: HookedTransformer, source: ActivationCache | dict[str, Tensor] | str | Tensor, names: Sequence[str]
) -> dict[str, Tensor]:
    if isinstance(source, str | Tensor):
        ids = prompt_tokens(model, source)
        wanted = set(names)
        _, cache = model.run_with_cache(ids[None].to(model.cfg.device), names_filter=lambda n: n in wanted)
        source = cache
    missing = [n for n in names if n not in source]
    if missing:
        raise InvalidArgumentError(f"the source cache lacks {missing}; cache them (or pass a prompt)")
    return {n: source[n][0] for n in names}


def _patch_fn(
    entries: list[tuple[Tensor | None, int | None]], src: Tensor, positions: Tensor | None
) -> HookFn:
    # entries: (rows or None for all rows, index on the head/neuron axis or None)
    def hook(act: Tensor, hook: HookPoint) -> Tensor:
        if positions is not None and act.shape[1] <= int(positions.max()):
            return act  # a shorter forward (a decode step): nothing to patch
        if positions is None and act.shape[1] != src.shape[0]:
            raise InvalidArgumentError(
                f"{hook.name}: patching every position needs runs of the same length, got "
                f"{act.shape[1]} and {src.shape[0]} tokens; pass positions="
            )
        out = act.clone()
        pos = (
            positions.to(act.device)
            if positions is not None
            else torch.arange(act.shape[1], device=act.device)
        )
        for rows, index in entries:
            r = rows.to(act.device) if rows is not None else torch.arange(act.shape[0], device=act.device)
            value = src[pos] if index is None else src[pos, index]
            value = value.to(device=act.device, dtype=act.dtype)
            if index is None:
                out[r[:, None], pos[None, :]] = value
            else:
                out[r[:, None], pos[None, :], index] = value
        return out

    return hook


def _build_hooks(
    model: HookedTransformer,
    acts: dict[str, Tensor],
    assignments: Sequence[tuple[Component, Tensor | None]],
    positions: Tensor | None,
) -> list[tuple[str, HookFn]]:
    grouped: dict[str, list[tuple[Tensor | None, int | None]]] = {}
    for c, rows in assignments:
        index = c.index if c.kind in ("head", "neuron") else None
        for name in _patch_names(model, c):
            grouped.setdefault(name, []).append((rows, index))
    return [(name, _patch_fn(entries, acts[name], positions)) for name, entries in grouped.items()]


def _positions(positions: Any, *lengths: int) -> Tensor | None:
    if positions is None:
        if len(set(lengths)) > 1:
            raise InvalidArgumentError(
                f"the two runs have different lengths {sorted(set(lengths))}; patching every position needs "
                "prompts of the same length in tokens, or pass positions="
            )
        return None
    resolved = [check_positions(positions, n) for n in lengths]
    if len({tuple(r) for r in resolved}) > 1:
        raise InvalidArgumentError(
            "negative positions resolve differently in runs of different lengths; pass non-negative positions"
        )
    return torch.as_tensor(resolved[0], dtype=torch.long)


def patching_hooks(
    model: HookedTransformer,
    source: ActivationCache | dict[str, Tensor] | str | Tensor,
    components: str | Component | Sequence[str | Component],
    positions: int | Sequence[int] | None = None,
) -> list[tuple[str, HookFn]]:
    """``fwd_hooks`` that overwrite ``components``' outputs with their values in ``source``.

    Args:
        model: the model.
        source: an ``ActivationCache`` of the run to copy from (batch row 0), or its prompt.
        components: labels (``"L9H6"``, ``"L12 MLP"``, ``"L3N17"``, ``"embed"``) or
            :class:`~selfie_tl.circuits.Component` objects.
        positions: positions to patch (default: all; the patched run must then have the
            source's length). Forwards shorter than the largest position (decode steps)
            pass through untouched.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> hooks = patching_hooks(model, "abcd", ["L1H0", "L2 MLP"])
        >>> with model.hooks(fwd_hooks=hooks):
        ...     patched = model("wxyz")
        >>> [name for name, _ in hooks]
        ['blocks.1.attn.hook_z', 'blocks.2.hook_mlp_out']
    """
    comps = _components(model, components)
    names = list(dict.fromkeys(n for c in comps for n in _patch_names(model, c)))
    acts = _source_acts(model, source, names)
    src_len = next(iter(acts.values())).shape[0]
    pos = None if positions is None else _positions(positions, src_len)
    return _build_hooks(model, acts, [(c, None) for c in comps], pos)


def logit_diff(model: HookedTransformer, answer: str | int, wrong: str | int, position: int = -1) -> Metric:
    """A metric: ``logit[answer] - logit[wrong]`` at ``position``, per batch row.

    Tokens may be given as ids or as text that is exactly one token (e.g. ``" Paris"``).

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> metric = logit_diff(tiny_model(), "a", "b")
        >>> logits = torch.zeros(2, 3, 259); logits[:, -1, 97] = 2.0
        >>> metric(logits).tolist()
        [2.0, 2.0]
    """
    good, bad = _token_id(model, answer), _token_id(model, wrong)

    def metric(logits: Tensor) -> Tensor:
        last = logits[:, position].float()
        return last[:, good] - last[:, bad]

    return metric


def _token_id(model: HookedTransformer, token: str | int) -> int:
    if isinstance(token, int) and not isinstance(token, bool):
        if not 0 <= token < model.cfg.d_vocab_out:
            raise InvalidArgumentError(f"token id {token} is out of range [0, {model.cfg.d_vocab_out})")
        return token
    if not isinstance(token, str):
        raise InvalidArgumentError(f"a token is an int id or a one-token string, got {token!r}")
    ids = model.tokenizer(token, add_special_tokens=False).input_ids
    if len(ids) != 1:
        pieces = [model.tokenizer.decode([i]) for i in ids]
        raise InvalidArgumentError(f"{token!r} is {len(ids)} tokens {pieces}, not one; pass a single token")
    return int(ids[0])


@torch.no_grad()
def patching_effects(
    model: HookedTransformer,
    clean_prompt: str | Tensor,
    corrupted_prompt: str | Tensor,
    metric: Metric,
    components: str | Component | Sequence[str | Component],
    *,
    positions: int | Sequence[int] | None = None,
    direction: str = "denoise",
    batch_size: int = 64,
) -> pd.DataFrame:
    """Activation patching: the metric with each component patched, one run per component.

    ``direction="denoise"``: run the corrupted prompt with one component's output taken
    from the clean run; ``"noise"``: run the clean prompt with it taken from the corrupted
    run. Runs are batched (``batch_size`` patched copies per forward).

    Args:
        model: the model.
        clean_prompt, corrupted_prompt: text or 1-D ids, the same length in tokens unless
            ``positions`` is given.
        metric: ``logits [batch, pos, d_vocab] -> [batch]``, e.g. :func:`logit_diff`.
        components: labels or :class:`~selfie_tl.circuits.Component` objects (see
            :func:`~selfie_tl.circuits.list_components`).
        positions: positions patched (default: every position).
        direction: ``"denoise"`` or ``"noise"``.
        batch_size: patched runs per forward.

    Returns:
        One row per component: ``component``, ``kind``, ``layer``, ``index``, ``metric``
        (patched), and ``effect``: the share of the clean - corrupted metric gap the patch
        accounts for, ``(m - m_corrupted) / (m_clean - m_corrupted)`` when denoising (1 =
        the component alone restores the clean behaviour) and ``(m_clean - m) /
        (m_clean - m_corrupted)`` when noising (1 = patching it alone destroys it).
        ``df.attrs`` holds ``clean_metric`` and ``corrupted_metric``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> df = patching_effects(model, "abc", "xbc", logit_diff(model, "d", "e"), ["embed", "L0 MLP"])
        >>> round(float(df.loc[0, "effect"]), 4)   # patching the whole embedding restores everything
        1.0
    """
    if direction not in ("denoise", "noise"):
        raise InvalidArgumentError(f"direction must be 'denoise' or 'noise', got {direction!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be an int >= 1, got {batch_size!r}")
    comps = _components(model, components)
    clean_ids = prompt_tokens(model, clean_prompt).to(model.cfg.device)
    corrupt_ids = prompt_tokens(model, corrupted_prompt).to(model.cfg.device)
    pos = _positions(positions, len(clean_ids), len(corrupt_ids))
    names = list(dict.fromkeys(n for c in comps for n in _patch_names(model, c)))
    wanted = set(names)
    clean_logits, clean_cache = model.run_with_cache(clean_ids[None], names_filter=lambda n: n in wanted)
    corrupt_logits, corrupt_cache = model.run_with_cache(
        corrupt_ids[None], names_filter=lambda n: n in wanted
    )
    m_clean, m_corrupt = float(metric(clean_logits)[0]), float(metric(corrupt_logits)[0])
    if direction == "denoise":
        base_ids, acts = corrupt_ids, {n: clean_cache[n][0] for n in names}
    else:
        base_ids, acts = clean_ids, {n: corrupt_cache[n][0] for n in names}
    values: list[float] = []
    for start in range(0, len(comps), batch_size):
        chunk = comps[start : start + batch_size]
        rows = [(c, torch.tensor([i])) for i, c in enumerate(chunk)]
        hooks = _build_hooks(model, acts, rows, pos)
        logits = model.run_with_hooks(base_ids[None].expand(len(chunk), -1), fwd_hooks=hooks)
        values += metric(logits).float().tolist()
    gap = m_clean - m_corrupt
    if direction == "denoise":
        effects = [(v - m_corrupt) / gap if gap else float("nan") for v in values]
    else:
        effects = [(m_clean - v) / gap if gap else float("nan") for v in values]
    df = pd.DataFrame(
        {
            "component": [c.label for c in comps],
            "kind": [c.kind for c in comps],
            "layer": [c.layer for c in comps],
            "index": [c.index for c in comps],
            "metric": values,
            "effect": effects,
        }
    )
    df.attrs.update(clean_metric=m_clean, corrupted_metric=m_corrupt, direction=direction)
    return df


__all__ = ["logit_diff", "patching_effects", "patching_hooks"]
