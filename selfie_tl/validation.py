"""Checks at the door: every public engine function validates its arguments with these.

Each check names the argument, shows the value it got and says what is allowed, raising one
of the package's own exceptions (:mod:`selfie_tl.errors`), so that a bad input fails before
any work is done instead of deep inside torch or TransformerLens, or not at all.

Conventions: numpy integers and 0-d integer tensors count as ints (and come back as Python
ints), numpy floats as floats and ``numpy.bool_`` as a bool; a ``bool`` is never accepted
where a number is meant, nor a number where a bool is meant.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from selfie_tl.errors import ContextLengthError, InvalidArgumentError, PromptError


def is_int(value: Any) -> bool:
    """True for ints, numpy ints and 0-d integer tensors; never for bools or floats.

    Example:
        >>> import numpy as np
        >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
        (True, True, False, False)
    """
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, Tensor):
        return value.numel() == 1 and not value.is_floating_point() and not value.is_complex() and value.dtype != (
            torch.bool)  # fmt: skip
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def as_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as a Python int in ``[low, high]`` (either bound optional).

    Raises:
        InvalidArgumentError: not an integer (bools and floats are refused) or out of range.

    Example:
        >>> import numpy as np
        >>> as_int(np.int32(4), "batch_size", 1)
        4
        >>> as_int(2.5, "batch_size", 1)
        Traceback (most recent call last):
        ...
        selfie_tl.errors.InvalidArgumentError: batch_size must be an int >= 1, got 2.5
    """
    if is_int(value):
        number = int(value)
        if (low is None or number >= low) and (high is None or number <= high):
            return number
    if low is not None and high is not None:
        allowed = f"an int in [{low}, {high}]"
    elif low is not None:
        allowed = f"an int >= {low}"
    elif high is not None:
        allowed = f"an int <= {high}"
    else:
        allowed = "an int"
    raise InvalidArgumentError(f"{name} must be {allowed}, got {value!r}")


def as_optional_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int | None:
    """``None`` or :func:`as_int`."""
    return None if value is None else as_int(value, name, low, high)


def as_float(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a Python float within the bounds (``low_open``: ``> low`` instead of ``>=``).

    Ints and numpy numbers are accepted; bools, strings and NaN are not, nor infinities
    unless ``finite=False``.

    Raises:
        InvalidArgumentError: not a real number, or outside the bounds.

    Example:
        >>> as_float(1, "temperature", 0, low_open=True)
        1.0
        >>> as_float(float("inf"), "temperature", 0, low_open=True)
        Traceback (most recent call last):
        ...
        selfie_tl.errors.InvalidArgumentError: temperature must be a finite number > 0, got inf
    """
    number: float | None = None
    is_bool = isinstance(value, bool | np.bool_)
    scalar_tensor = isinstance(value, Tensor) and value.ndim == 0 and value.dtype != torch.bool
    if not is_bool and (isinstance(value, numbers.Real) or scalar_tensor):
        number = float(value)
    ok = number is not None and not math.isnan(number) and (math.isfinite(number) or not finite)
    if ok and low is not None:
        ok = number > low if low_open else number >= low
    if ok and high is not None:
        ok = number < high if high_open else number <= high
    if ok:
        return number  # type: ignore[return-value]
    what = "a finite number" if finite else "a number"
    if low is not None and high is not None:
        what += f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        what += f" {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        what += f" {'<' if high_open else '<='} {high:g}"
    raise InvalidArgumentError(f"{name} must be {what}, got {value!r}")


def as_bool(value: Any, name: str) -> bool:
    """``True``/``False`` (or a numpy bool); anything else, ``"no"`` and ``1`` included, is refused.

    Example:
        >>> as_bool(False, "relevancy")
        False
        >>> as_bool("no", "relevancy")
        Traceback (most recent call last):
        ...
        selfie_tl.errors.InvalidArgumentError: relevancy must be True or False, got 'no'
    """
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise InvalidArgumentError(f"{name} must be True or False, got {value!r}")


def check_model(model: Any, name: str = "model") -> HookedTransformer:
    """Raise unless ``model`` is a TransformerLens ``HookedTransformer``.

    Example:
        >>> check_model("gpt2")
        Traceback (most recent call last):
        ...
        selfie_tl.errors.InvalidArgumentError: model must be a HookedTransformer (e.g. selfie_tl.load_model()), got str 'gpt2'
    """
    if not isinstance(model, HookedTransformer):
        raise InvalidArgumentError(
            f"{name} must be a HookedTransformer (e.g. selfie_tl.load_model()), got {type(model).__name__} {model!r:.60}"
        )
    return model


def check_token_ids(model: HookedTransformer, ids: Any, name: str = "token ids", *, ndim: int | None = None) -> Tensor:
    """Token ids as a LongTensor, checked: integers in ``[0, d_vocab)``.

    Accepts tensors, numpy arrays and (nested) lists of ints. ``ndim`` (1 or 2) fixes the
    number of dimensions; a ``[1, pos]`` input is squeezed when ``ndim=1``, a 1-D input gets
    a batch dimension when ``ndim=2``.

    Raises:
        PromptError: not integers (floats would be truncated, bools are not ids), negative, or
            at or beyond the vocabulary size; empty or of the wrong shape.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> check_token_ids(tiny_model(), [104, 105], ndim=2).tolist()
        [[104, 105]]
    """
    tensor = ids
    if not isinstance(tensor, Tensor):
        if isinstance(ids, str | bytes) or ids is None:
            raise PromptError(f"{name} must be integer token ids (a tensor or a list of ints), got {ids!r:.80}")
        try:
            tensor = torch.as_tensor(ids)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise PromptError(f"{name} must be integer token ids, got {type(ids).__name__} {ids!r:.80}") from exc
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise PromptError(
            f"{name} must be integers, got a {tensor.dtype} tensor {tensor.flatten()[:8].tolist()}; "
            "float ids would be silently truncated, so convert them deliberately (ids.long())"
        )
    if ndim == 1 and tensor.ndim == 2 and tensor.shape[0] == 1:
        tensor = tensor[0]
    elif ndim == 2 and tensor.ndim == 1:
        tensor = tensor[None]
    if (ndim is not None and tensor.ndim != ndim) or tensor.numel() == 0:
        want = {1: "[pos]", 2: "[batch, pos]"}.get(ndim or 0, "non-empty")
        raise InvalidArgumentError(f"{name} must be a non-empty {want} tensor of ids, got shape {tuple(tensor.shape)}")
    vocab = int(model.cfg.d_vocab)
    low, high = int(tensor.min()), int(tensor.max())
    if low < 0 or high >= vocab:
        bad = low if low < 0 else high
        raise PromptError(f"{name} contain {bad}, which is not a token id of this model: ids must be in [0, {vocab - 1}]")
    return tensor.long()


def check_context(model: HookedTransformer, prompt_len: int, max_new_tokens: int = 0, what: str = "prompt") -> None:
    """Raise before any work if ``prompt_len + max_new_tokens`` exceeds the model's context.

    Raises:
        ContextLengthError: too long; the message gives both lengths and ``n_ctx``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> check_context(tiny_model(), 500, 20)
        Traceback (most recent call last):
        ...
        selfie_tl.errors.ContextLengthError: prompt (500 tokens) + max_new_tokens (20) = 520 tokens exceeds this model's context of 512 tokens (model.cfg.n_ctx); shorten the prompt or lower max_new_tokens
    """
    n_ctx = int(model.cfg.n_ctx)
    total = int(prompt_len) + int(max_new_tokens)
    if total <= n_ctx:
        return
    if max_new_tokens:
        raise ContextLengthError(
            f"{what} ({prompt_len} tokens) + max_new_tokens ({max_new_tokens}) = {total} tokens exceeds this "
            f"model's context of {n_ctx} tokens (model.cfg.n_ctx); shorten the {what} or lower max_new_tokens"
        )
    raise ContextLengthError(
        f"{what} is {prompt_len} tokens, longer than this model's context of {n_ctx} tokens (model.cfg.n_ctx); "
        f"shorten it"
    )


def check_sequence(value: Any, name: str, what: str = "items") -> list:
    """A list of ``value``'s items; a string, bytes, a mapping or a non-iterable is refused.

    Example:
        >>> check_sequence(("a", "b"), "prompts")
        ['a', 'b']
    """
    if value is None or isinstance(value, str | bytes | dict):
        raise InvalidArgumentError(f"{name} must be a list of {what}, got {value!r:.80}")
    if isinstance(value, Sequence) or hasattr(value, "__iter__"):
        return list(value)
    raise InvalidArgumentError(f"{name} must be a list of {what}, got {type(value).__name__} {value!r:.80}")


__all__ = [
    "as_bool",
    "as_float",
    "as_int",
    "as_optional_int",
    "check_context",
    "check_model",
    "check_sequence",
    "check_token_ids",
    "is_int",
]
