"""Interpretation prompts: text with placeholder slots whose residual stream gets replaced.

A prompt is described by a tuple of parts, each a string or the placeholder ``0``::

    ("<|im_start|>user\\n", 0, 0, 0, 0, 0,
     "<|im_end|>\\n<|im_start|>assistant\\nSure, I will summarize the message:")

It is built as in the published SelfIE code: every placeholder appends the text ``"_ "``
and its positions are the token indices by which the tokenized length grows. Tokenization
uses the tokenizer's own defaults (a BOS only if the tokenizer adds one itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from selfie_tl.errors import PromptError

PLACEHOLDER = 0
"""The value that marks a placeholder in ``parts`` (the published code uses ``0``)."""

PLACEHOLDER_TEXT = "_ "

SUMMARY_REPLY = "Sure, I will summarize the message:"
"""The assistant prefix of the paper's default interpretation prompt."""

_SENTINEL = "\u2063SELFIE_TL_SLOT\u2063"


def _is_placeholder(part: Any) -> bool:
    return isinstance(part, int) and not isinstance(part, bool) and part == PLACEHOLDER


def tokenize(tokenizer: Any, text: str) -> Int[Tensor, " pos"]:
    """Token ids of ``text`` with the tokenizer's own defaults, as a 1-D LongTensor.

    This is how selfie_tl tokenizes every prompt, original or interpretation, so that
    positions mean the tokens a user sees from the tokenizer (TransformerLens' ``to_tokens``
    would prepend a BOS by default).

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> tokenize(tiny_tokenizer(), "hi").tolist()
        [104, 105]
    """
    if not isinstance(text, str) or text == "":
        raise PromptError(f"prompt must be a non-empty string, got {text!r}")
    return torch.tensor(tokenizer(text).input_ids, dtype=torch.long)


@dataclass(frozen=True)
class InterpretationPrompt:
    """An interpretation prompt with the token positions of its placeholders.

    Args:
        tokenizer: a Hugging Face tokenizer (``model.tokenizer``).
        parts: strings and placeholders (the int ``0``), in order.

    Attributes:
        text: the full prompt text (placeholders rendered as ``"_ "``).
        input_ids: 1-D LongTensor of token ids.
        placeholder_positions: token indices whose residual stream is overwritten.

    Raises:
        PromptError: ``parts`` is empty, holds something other than strings and ``0``, or
            has no placeholder.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> p = InterpretationPrompt(tiny_tokenizer(), ("[", 0, 0, "] means"))
        >>> p.text
        '[_ _ ] means'
        >>> p.placeholder_positions
        [1, 2, 3, 4]
    """

    tokenizer: Any = field(repr=False, compare=False)
    parts: tuple
    text: str = field(init=False)
    input_ids: Tensor = field(init=False, repr=False, compare=False)
    placeholder_positions: list[int] = field(init=False)

    def __post_init__(self) -> None:
        parts = tuple(self.parts) if isinstance(self.parts, Sequence) and not isinstance(self.parts, str) else None
        if not parts:
            raise PromptError(
                f"parts must be a non-empty tuple of strings and placeholders (0), got {self.parts!r}"
            )
        bad = [p for p in parts if not (isinstance(p, str) or _is_placeholder(p))]
        if bad:
            raise PromptError(
                f"parts may hold only strings and the placeholder 0; got {bad[0]!r} "
                f"of type {type(bad[0]).__name__}"
            )
        if not any(_is_placeholder(p) for p in parts):
            raise PromptError(
                f"interpretation prompt {parts!r} has no placeholder; put at least one 0 in parts"
            )
        text = ""
        positions: list[int] = []
        for part in parts:
            if isinstance(part, str):
                text += part
                continue
            before = len(self.tokenizer(text).input_ids) if text else 0
            text += PLACEHOLDER_TEXT
            after = len(self.tokenizer(text).input_ids)
            positions.extend(range(before, after))
        ids = tokenize(self.tokenizer, text)
        if max(positions) >= len(ids):
            raise PromptError(f"placeholder positions {positions} exceed the {len(ids)} tokens of {text!r}")
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "input_ids", ids)
        object.__setattr__(self, "placeholder_positions", positions)

    def __len__(self) -> int:
        return len(self.input_ids)

    @classmethod
    def from_chat(
        cls,
        tokenizer: Any,
        user_before: str = "",
        user_after: str = "",
        assistant_prefix: str = SUMMARY_REPLY,
        n_placeholders: int = 5,
        system: str | None = None,
    ) -> InterpretationPrompt:
        """Build a prompt from the tokenizer's chat template.

        The user turn holds ``user_before``, the placeholders and ``user_after``; the
        assistant turn starts with ``assistant_prefix``, which the model then continues.

        Args:
            tokenizer: a tokenizer with a chat template.
            user_before: user text before the placeholders.
            user_after: user text after the placeholders.
            assistant_prefix: the start of the assistant's reply.
            n_placeholders: how many placeholder slots (>= 1).
            system: a system message; ``None`` keeps the template's default behaviour.

        Example:
            >>> from selfie_tl.testing import tiny_tokenizer
            >>> p = InterpretationPrompt.from_chat(tiny_tokenizer(), n_placeholders=2)
            >>> p.text.endswith("<|im_start|>assistant\\nSure, I will summarize the message:")
            True
        """
        if not isinstance(n_placeholders, int) or n_placeholders < 1:
            raise PromptError(f"n_placeholders must be an int >= 1, got {n_placeholders!r}")
        if not getattr(tokenizer, "chat_template", None):
            raise PromptError(
                "tokenizer has no chat template; build the prompt from parts instead, e.g. "
                "InterpretationPrompt(tokenizer, ('Message: ', 0, 0, 0, '\\nSummary:'))"
            )
        messages = [{"role": "user", "content": _SENTINEL}]
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prefix, suffix = rendered.split(_SENTINEL)
        parts = (prefix + user_before, *([PLACEHOLDER] * n_placeholders), user_after + suffix + assistant_prefix)
        return cls(tokenizer, parts)


def default_interpretation_prompt(tokenizer: Any) -> InterpretationPrompt:
    """The paper's summary prompt, in the tokenizer's chat format when it has one.

    For ChatML tokenizers (SmolLM2, Qwen, ...) this is exactly::

        ("<|im_start|>user\\n", 0, 0, 0, 0, 0,
         "<|im_end|>\\n<|im_start|>assistant\\nSure, I will summarize the message:")

    with no system turn (a template's default system message, such as SmolLM2's "You are
    a helpful AI assistant named SmolLM", leaks into interpretations). Other chat
    templates go through :meth:`InterpretationPrompt.from_chat`; tokenizers without one get
    ``"Message: _ _ _ _ _\\nSummary of the message:"``.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> default_interpretation_prompt(tiny_tokenizer()).parts[0]
        '<|im_start|>user\\n'
    """
    slots = [PLACEHOLDER] * 5
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    if "<|im_start|>" in vocab and "<|im_end|>" in vocab:
        parts = ("<|im_start|>user\n", *slots, f"<|im_end|>\n<|im_start|>assistant\n{SUMMARY_REPLY}")
        return InterpretationPrompt(tokenizer, parts)
    if getattr(tokenizer, "chat_template", None):
        return InterpretationPrompt.from_chat(tokenizer)
    return InterpretationPrompt(tokenizer, ("Message: ", *slots, "\nSummary of the message:"))
