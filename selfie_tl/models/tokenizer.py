"""Attaching a tokenizer to a HookedTransformer without changing how it tokenizes."""

from __future__ import annotations

from typing import Any

from transformer_lens import HookedTransformer


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    """Whether ``tokenizer("a")`` starts with the tokenizer's BOS token.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> tokenizer_adds_bos(tiny_tokenizer())
        False
    """
    bos = getattr(tokenizer, "bos_token_id", None)
    ids = tokenizer("a").input_ids
    return bos is not None and len(ids) > 0 and ids[0] == bos


def attach_tokenizer(model: HookedTransformer, tokenizer: Any) -> HookedTransformer:
    """Give ``model`` a tokenizer that keeps its own defaults.

    ``HookedTransformer.set_tokenizer`` swaps in a copy reloaded with ``add_bos_token=True``
    (and reloading needs the hub or a saved directory). SelfIE positions must mean the tokens
    a user sees from the tokenizer itself, so the tokenizer is attached as it is and
    ``cfg.tokenizer_prepends_bos`` is set from its actual behaviour; TransformerLens'
    ``to_tokens`` then adds a BOS only when ``cfg.default_prepend_bos`` asks for one.

    Example:
        >>> from selfie_tl.testing import tiny_model, tiny_tokenizer
        >>> model = attach_tokenizer(tiny_model(), tiny_tokenizer())
        >>> model.tokenizer("ab").input_ids
        [97, 98]
    """
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.padding_side is None:
        tokenizer.padding_side = "right"
    model.tokenizer = tokenizer
    model.cfg.tokenizer_prepends_bos = len(tokenizer.encode("")) > 0
    return model


__all__ = ["attach_tokenizer", "tokenizer_adds_bos"]
