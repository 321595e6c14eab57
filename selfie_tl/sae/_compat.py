"""Reading an SAE's facts across SAELens versions, and checking it fits a model.

SAELens moved the hook name and model name from the config (``sae.cfg.hook_name``, up to
5.x) to its metadata (``sae.cfg.metadata.hook_name``, 6.x). Everything in
:mod:`selfie_tl.sae` reads them through :func:`sae_info`, so an SAE of either generation,
or any object with ``W_dec`` and a ``cfg`` carrying ``d_in``/``d_sae``/``hook_name``, works.
SAELens itself is not imported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from selfie_tl.errors import InvalidArgumentError

_RESID = re.compile(r"^blocks\.(\d+)\.hook_resid_(pre|mid|post)$")


class SAEMismatchError(InvalidArgumentError):
    """An SAE does not fit the model: width, hook point or source model differ."""


class FeatureIndexError(InvalidArgumentError):
    """A feature index is not an int in ``[0, d_sae)``."""


@dataclass(frozen=True)
class SAEInfo:
    """What selfie_tl needs to know about an SAE.

    Attributes:
        hook_name: TransformerLens hook the SAE reads and writes (``None`` if unknown).
        d_in: input width.
        d_sae: number of features.
        model_name: the model it was trained on, if recorded.
        layer: selfie_tl residual layer of ``hook_name`` (``blocks.L.hook_resid_pre`` is
            layer ``L``, ``blocks.L.hook_resid_post`` is ``L + 1``); ``None`` for other
            hooks (``hook_resid_mid``, attention or MLP outputs).
    """

    hook_name: str | None
    d_in: int
    d_sae: int
    model_name: str | None
    layer: int | None


def _meta_get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    try:
        return getattr(obj, key, None)
    except Exception:  # noqa: BLE001 - exotic metadata objects
        return None


def residual_layer(hook_name: str | None) -> int | None:
    """selfie_tl residual layer of a hook name, or ``None`` when it is not a residual hook.

    Example:
        >>> residual_layer("blocks.12.hook_resid_pre"), residual_layer("blocks.3.hook_resid_post")
        (12, 4)
        >>> residual_layer("blocks.3.hook_mlp_out") is None
        True
    """
    match = _RESID.match(hook_name or "")
    if not match or match.group(2) == "mid":
        return None
    block = int(match.group(1))
    return block if match.group(2) == "pre" else block + 1


def sae_info(sae: Any) -> SAEInfo:
    """Hook name, widths, model name and layer of an SAE (SAELens 5.x or 6.x, or duck-typed).

    Raises:
        InvalidArgumentError: the object has no 2-D ``W_dec``.

    Example:
        >>> import torch, types
        >>> cfg = types.SimpleNamespace(d_in=64, d_sae=8, metadata={"hook_name": "blocks.1.hook_resid_pre"})
        >>> sae_info(types.SimpleNamespace(W_dec=torch.zeros(8, 64), cfg=cfg)).layer
        1
    """
    w_dec = getattr(sae, "W_dec", None)
    if not isinstance(w_dec, Tensor) or w_dec.ndim != 2:
        raise InvalidArgumentError(
            f"{type(sae).__name__} is not an SAE: expected a 2-D tensor W_dec of shape [d_sae, d_in]"
        )
    cfg = getattr(sae, "cfg", None)
    meta = _meta_get(cfg, "metadata")
    hook = _meta_get(meta, "hook_name") or _meta_get(cfg, "hook_name")
    model_name = _meta_get(meta, "model_name") or _meta_get(cfg, "model_name")
    d_in = _meta_get(cfg, "d_in") or int(w_dec.shape[1])
    d_sae = _meta_get(cfg, "d_sae") or int(w_dec.shape[0])
    return SAEInfo(
        hook_name=str(hook) if hook else None, d_in=int(d_in), d_sae=int(d_sae),
        model_name=str(model_name) if model_name else None, layer=residual_layer(hook),
    )  # fmt: skip


def _norm_name(name: str) -> str:
    return name.rsplit("/", 1)[-1].strip().lower()


def check_sae(model: HookedTransformer, sae: Any, *, allow_other_model: bool = False) -> SAEInfo:
    """Check that ``sae`` fits ``model`` and return its :class:`SAEInfo`.

    Checks: ``d_in`` equals the model's ``d_model`` (SelfIE injects decoder rows into the
    residual stream), the hook is a residual-stream hook the model has, and the model the
    SAE records (if any) is this one (compared by base name, case-insensitive).

    Raises:
        SAEMismatchError: naming the SAE's and the model's values.

    Example:
        >>> import torch, types
        >>> from selfie_tl.testing import tiny_model
        >>> cfg = types.SimpleNamespace(d_in=32, d_sae=8, hook_name="blocks.1.hook_resid_pre")
        >>> try:
        ...     check_sae(tiny_model(), types.SimpleNamespace(W_dec=torch.zeros(8, 32), cfg=cfg))
        ... except SAEMismatchError as exc:
        ...     print(exc)
        the SAE reads vectors of width d_in=32 at blocks.1.hook_resid_pre, but the model's d_model is 64; ...
    """
    info = sae_info(sae)
    d_model = int(model.cfg.d_model)
    if info.d_in != d_model or sae.W_dec.shape[1] != d_model:
        raise SAEMismatchError(
            f"the SAE reads vectors of width d_in={info.d_in} at {info.hook_name}, but the model's d_model is "
            f"{d_model}; it was trained on another model or on a non-residual hook"
        )
    if info.hook_name is None:
        raise SAEMismatchError(
            "the SAE records no hook name (cfg.metadata.hook_name or cfg.hook_name); set it, "
            "e.g. sae.cfg.metadata.hook_name = 'blocks.12.hook_resid_pre'"
        )
    if info.layer is None:
        raise SAEMismatchError(
            f"the SAE's hook {info.hook_name!r} is not a residual-stream hook (blocks.L.hook_resid_pre or "
            "blocks.L.hook_resid_post); SelfIE interprets residual directions"
        )
    if info.layer > model.cfg.n_layers:
        raise SAEMismatchError(
            f"the SAE's hook {info.hook_name!r} is residual layer {info.layer}, but the model has only "
            f"{model.cfg.n_layers} layers"
        )
    model_name = str(getattr(model.cfg, "model_name", "") or "")
    if (
        not allow_other_model
        and info.model_name
        and model_name
        and _norm_name(info.model_name) != _norm_name(model_name)
    ):
        raise SAEMismatchError(
            f"the SAE was trained on model {info.model_name!r}, but this model is {model_name!r}; "
            "pass allow_other_model=True if they are the same weights under another name"
        )
    return info


def check_features(features: int | Iterable[int] | Tensor, d_sae: int) -> list[int]:
    """Feature indices as a list of ints in ``[0, d_sae)`` (negative indices count from the end).

    Raises:
        FeatureIndexError: empty, not integers, or out of range (the message names them).

    Example:
        >>> check_features([0, -1], 8)
        [0, 7]
        >>> try:
        ...     check_features([3, 9], 8)
        ... except FeatureIndexError as exc:
        ...     print(exc)
        feature index 9 is out of range: this SAE has 8 features (0 to 7)
    """
    if isinstance(features, Tensor):
        features = features.flatten().tolist()
    items = [features] if isinstance(features, int) else list(features)
    if not items:
        raise FeatureIndexError("no feature indices given; pass at least one")
    out = []
    for f in items:
        if isinstance(f, bool) or not isinstance(f, int):
            try:
                import operator

                f = operator.index(f)
            except TypeError:
                raise FeatureIndexError(f"feature indices must be ints, got {f!r}") from None
        if not -d_sae <= f < d_sae:
            raise FeatureIndexError(
                f"feature index {f} is out of range: this SAE has {d_sae} features (0 to {d_sae - 1})"
            )
        out.append(int(f) % d_sae)
    return out


def decoder_rows(sae: Any, features: list[int]) -> Tensor:
    """Float copies of the decoder rows ``W_dec[features]`` (detached)."""
    return sae.W_dec.detach()[features].float().clone()


def sae_dtype_device(sae: Any) -> tuple[torch.dtype, torch.device]:
    w = sae.W_dec
    return w.dtype, w.device


__all__ = [
    "FeatureIndexError",
    "SAEInfo",
    "SAEMismatchError",
    "check_features",
    "check_sae",
    "decoder_rows",
    "residual_layer",
    "sae_info",
]
