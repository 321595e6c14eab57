"""Exceptions raised by selfie_tl.

Every error a user can trigger with bad input is a subclass of :class:`SelfieError`, and
the argument errors are also :class:`ValueError` so ``except ValueError`` keeps working.
Messages name the offending value and what would have been accepted.
"""

from __future__ import annotations


class SelfieError(Exception):
    """Base class of every exception raised on purpose by selfie_tl."""


class InvalidArgumentError(SelfieError, ValueError):
    """An argument has a value outside what the function accepts."""


class LayerOutOfRangeError(InvalidArgumentError):
    """A layer index is not in ``[0, n_layers]`` (or ``[0, n_layers - 1]`` for blocks)."""


class PositionOutOfRangeError(InvalidArgumentError):
    """A token position does not exist in the tokenized prompt."""


class PromptError(InvalidArgumentError):
    """A prompt is empty, an interpretation prompt has no placeholder, or token ids are not
    ids of the model (floats, negative, at or beyond the vocabulary size)."""


class ContextLengthError(InvalidArgumentError):
    """A prompt, plus the tokens to generate after it, does not fit the model's context
    (``model.cfg.n_ctx``). Raised before any work is done."""


class HookError(InvalidArgumentError):
    """A hook given to selfie_tl (``fwd_hooks=``, ``prefill_hooks=``) names no hook point of
    the model, is not a ``(name, function)`` pair, or returned something other than ``None``
    or a tensor of its input's shape."""


class VectorError(InvalidArgumentError):
    """Vectors to interpret have the wrong shape or contain NaN/inf."""


class NumericalError(SelfieError, ArithmeticError):
    """The forward pass produced NaN or inf (typically an injected vector scaled far beyond the
    residual stream's range). Raised instead of returning empty or meaningless text."""


class ModelLoadError(SelfieError, RuntimeError):
    """A model could not be found, fetched or converted."""


class UnknownModelError(ModelLoadError, LookupError):
    """The model name is neither a TransformerLens name, a local directory nor a .gguf file."""


class ChecksumMismatchError(ModelLoadError):
    """A downloaded or extracted file does not have the expected SHA-256."""


class TrainingError(SelfieError, RuntimeError):
    """Training a control edit failed (for example the loss became NaN)."""


class EditMismatchError(SelfieError, ValueError):
    """A saved edit does not fit the model it is loaded onto, or its file is corrupt."""


class RewardError(InvalidArgumentError):
    """A reward function returned the wrong number of values, or non-finite/non-numeric ones."""
