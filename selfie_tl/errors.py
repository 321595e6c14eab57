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
    """A prompt is empty or an interpretation prompt has no placeholder."""


class VectorError(InvalidArgumentError):
    """Vectors to interpret have the wrong shape or contain NaN/inf."""


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
