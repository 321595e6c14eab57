"""SelfIE inside SAELens' world: a ``HookedSAETransformer`` with SAEs spliced in.

:func:`as_hooked_sae_transformer` turns any ``HookedTransformer`` (selfie_tl's own loader
builds the default model without ``from_pretrained``) into SAELens'
``HookedSAETransformer`` sharing the same weight tensors (no copy). :func:`spliced` attaches
SAEs for a block of code (with the reconstruction error kept by default, so the model's
outputs do not change until you edit features), checks them against the model, and
guarantees that on exit they are detached and no hook is left behind.

During interpretation the SAEs' hook points (``<hook>.hook_sae_acts_post`` etc.) fire like
any other hook, while SelfIE's injection still writes the residual stream at
``blocks.{k}.hook_resid_pre``. An SAE spliced exactly at an injection hook would replace
that hook point, so :func:`check_injection_free` refuses that combination with a clear
error (inject at another ``k``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from transformer_lens import HookedTransformer

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.hooks import hook_count
from selfie_tl.sae._compat import SAEMismatchError, check_sae
from selfie_tl.sae.train import require_sae_lens


def as_hooked_sae_transformer(model: HookedTransformer):
    """``model`` as a SAELens ``HookedSAETransformer`` sharing its weights and tokenizer.

    Returns ``model`` itself when it already is one. The new module is built on the meta
    device and given the original parameter and buffer tensors (``assign=True``), so it costs
    no extra weight memory; changing weights in one changes them in the other.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> hsae = as_hooked_sae_transformer(model)
        >>> type(hsae).__name__, hsae.W_E.data_ptr() == model.W_E.data_ptr()
        ('HookedSAETransformer', True)
    """
    sae_lens = require_sae_lens()
    cls = sae_lens.HookedSAETransformer
    if isinstance(model, cls):
        return model
    if not isinstance(model, HookedTransformer):
        raise InvalidArgumentError(f"expected a HookedTransformer, got {type(model).__name__}")
    from selfie_tl.models import attach_tokenizer

    with torch.device("meta"):
        new = cls(model.cfg, move_to_device=False)
    state = model.state_dict(keep_vars=True)
    new.load_state_dict({k: v.data for k, v in state.items()}, strict=True, assign=True)
    leftover = [n for n, t in [*new.named_parameters(), *new.named_buffers()] if t.is_meta]
    if leftover:  # non-persistent buffers are not in the state dict: copy them over
        own = dict(model.named_buffers())
        for name in leftover:
            if name not in own:
                raise InvalidArgumentError(f"cannot convert the model: {name} has no counterpart")
            module_name, _, attr = name.rpartition(".")
            new.get_submodule(module_name)._buffers[attr] = own[name]
    if model.tokenizer is not None:
        attach_tokenizer(new, model.tokenizer)
    new.train(model.training)
    return new


def attached_saes(model: HookedTransformer) -> dict[str, Any]:
    """Hook name -> SAE currently spliced into ``model`` (empty for a plain model)."""
    acts = getattr(model, "acts_to_saes", None)
    return dict(acts) if isinstance(acts, dict) else {}


def check_injection_free(model: HookedTransformer, k: int, inject_layers: int = 1) -> None:
    """Raise if an SAE is spliced where SelfIE would inject (``blocks.k.hook_resid_pre``...).

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> check_injection_free(tiny_model(), 1)
    """
    names = {f"blocks.{layer}.hook_resid_pre" for layer in range(k, k + inject_layers)}
    clash = sorted(names & set(attached_saes(model)))
    if clash:
        raise InvalidArgumentError(
            f"an SAE is spliced into {clash[0]}, where SelfIE injects with k={k}; its hook point is replaced by "
            "the SAE, so inject at another layer k (any layer without a spliced SAE)"
        )


@contextlib.contextmanager
def spliced(
    model: HookedTransformer,
    saes: Any | Sequence[Any],
    *,
    use_error_term: bool = True,
    allow_other_model: bool = False,
) -> Iterator[Any]:
    """Splice SAEs into a ``HookedSAETransformer`` for the duration of a ``with`` block.

    Each SAE is checked against the model first (:func:`~selfie_tl.sae.check_sae`). On exit
    (also after an exception) the SAEs are detached, the model's hook points are the ones
    it had before, and no hook function is left registered.

    Args:
        model: a ``HookedSAETransformer`` (see :func:`as_hooked_sae_transformer`).
        saes: one SAE or several (at different hooks).
        use_error_term: add the reconstruction error back, so outputs are unchanged unless
            features are edited (SAELens' own option).

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.sae.testing import tiny_sae
        >>> model = as_hooked_sae_transformer(tiny_model())
        >>> sae = tiny_sae(model)
        >>> with spliced(model, sae):
        ...     "blocks.1.hook_resid_pre.hook_sae_acts_post" in model.hook_dict
        True
        >>> "blocks.1.hook_resid_pre" in model.hook_dict, attached_saes(model)
        (True, {})
    """
    sae_lens = require_sae_lens()
    if not isinstance(model, sae_lens.HookedSAETransformer):
        raise InvalidArgumentError(
            f"spliced needs a HookedSAETransformer, got {type(model).__name__}; convert it with as_hooked_sae_transformer(model)"
        )
    items = [saes] if not isinstance(saes, list | tuple) else list(saes)
    if not items:
        raise InvalidArgumentError("no SAEs given")
    hooks = []
    for sae in items:
        if not isinstance(sae, sae_lens.SAE):
            raise InvalidArgumentError(f"only SAELens SAE objects can be spliced, got {type(sae).__name__}")
        info = check_sae(model, sae, allow_other_model=allow_other_model)
        if info.hook_name in attached_saes(model) or info.hook_name in hooks:
            raise SAEMismatchError(f"an SAE is already spliced into {info.hook_name}")
        hooks.append(info.hook_name)
    before_hooks = set(model.hook_dict)
    before_count = hook_count(model)
    try:
        with model.saes(saes=items, use_error_term=use_error_term):
            missing = [h for h in hooks if h not in attached_saes(model)]
            if missing:
                raise SAEMismatchError(f"SAELens did not attach the SAE at {missing[0]} (no such hook point)")
            yield model
    finally:
        leaked = [h for h in hooks if h in attached_saes(model)]
        if leaked:  # pragma: no cover - SAELens' own context manager resets them
            model.reset_saes(leaked)
        if set(model.hook_dict) != before_hooks or hook_count(model) != before_count:  # pragma: no cover
            raise RuntimeError("SAEs or hooks were left on the model after spliced(); this is a bug")


__all__ = ["as_hooked_sae_transformer", "attached_saes", "check_injection_free", "spliced"]
