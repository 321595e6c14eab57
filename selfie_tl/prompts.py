"""Interpretation prompts: text with placeholder slots whose residual stream gets replaced.

The one home of everything prompt-shaped: tokenization (:func:`tokenize`), chat turns
(:func:`chat_text`, :func:`chat_parts`), the placeholder rule, the default prompt and the
coercion of whatever a user passes as an interpretation prompt (:func:`as_prompt`).

A prompt is a tuple of parts, each a string or the placeholder ``0``::

    ("<|im_start|>user\\n", 0, 0, 0, 0, 0,
     "<|im_end|>\\n<|im_start|>assistant\\nSure, I will summarize the message:")

Every placeholder is rendered as the text ``"_ "``, as in the published SelfIE code.

Where the vector goes (``position_rule``):

* ``"offsets"`` (default): a placeholder's positions are the tokens that carry its ``_``
  character, plus a token made only of the placeholder's trailing space when the tokenizer
  splits one off. Found from the tokenizer's character offsets, so it is right for any
  text around the placeholder.
* ``"reference"``: the published code's rule, kept for exact reproduction of published
  runs: tokenize the text before the placeholder and the text with ``"_ "`` appended; the
  new token indices are the positions. With byte-level BPE tokenizers (SmolLM2, GPT-2)
  this is one token off whenever the text before a placeholder ends with a space: ``" _"``
  becomes one token, so ``("The word ", 0, "means")`` would overwrite ``" means"``.

The two rules agree on the chat-format default prompt (the text before the first
placeholder ends with a newline, not a space). They differ on the plain fallback
``"Message: _ _ _ _ _"`` used for tokenizers without a chat format (GPT-2), where the
published rule misses the first ``" _"``; selfie_tl now writes there too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from jaxtyping import Int
from torch import Tensor

from selfie_tl.errors import PromptError

PLACEHOLDER = 0
"""The value that marks a placeholder in ``parts`` (the published code uses ``0``)."""

PLACEHOLDER_TEXT = "_ "
"""How a placeholder is written in the prompt text."""

SUMMARY_REPLY = "Sure, I will summarize the message:"
"""The assistant prefix of the paper's default interpretation prompt."""

N_PLACEHOLDERS = 5
"""Placeholder slots of the paper's prompts."""

PositionRule = Literal["offsets", "reference"]
POSITION_RULES = ("offsets", "reference")

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


# --------------------------------------------------------------------------- chat turns


def is_chatml(tokenizer: Any) -> bool:
    """Whether the tokenizer speaks ChatML (``<|im_start|>`` / ``<|im_end|>`` tokens).

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> is_chatml(tiny_tokenizer())
        True
    """
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    return "<|im_start|>" in vocab and "<|im_end|>" in vocab


def chat_text(
    tokenizer: Any, user: str, assistant: str = "", *, system: str | None = None, plain_fallback: bool = True
) -> str:
    """A user turn followed by the start of the assistant's reply, as text.

    ChatML tokenizers get ChatML written out without a system turn unless ``system`` is
    given (a template's default system message, such as SmolLM2's "You are a helpful AI
    assistant named SmolLM", leaks into interpretations and answers). Other tokenizers with
    a chat template use it; tokenizers without one get ``"User: ...\\nAssistant: ..."`` when
    ``plain_fallback`` is true.

    Raises:
        PromptError: no chat format is available and ``plain_fallback`` is false.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> chat_text(tiny_tokenizer(), "Hi?", "Hello")
        '<|im_start|>user\\nHi?<|im_end|>\\n<|im_start|>assistant\\nHello'
    """
    if is_chatml(tokenizer):
        head = f"<|im_start|>system\n{system}<|im_end|>\n" if system is not None else ""
        return f"{head}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}"
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": user}]
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return rendered + assistant
    if not plain_fallback:
        raise PromptError(
            "tokenizer has no chat template; build the prompt from parts instead, e.g. "
            "InterpretationPrompt(tokenizer, ('Message: ', 0, 0, 0, '\\nSummary:'))"
        )
    head = f"{system}\n" if system is not None else ""
    return f"{head}User: {user}\nAssistant: {assistant}"


def check_n_placeholders(n_placeholders: Any) -> int:
    """``n_placeholders`` when it is an int >= 1; :class:`PromptError` naming it otherwise.

    Example:
        >>> check_n_placeholders(3)
        3
    """
    if not isinstance(n_placeholders, int) or isinstance(n_placeholders, bool) or n_placeholders < 1:
        raise PromptError(f"n_placeholders must be an int >= 1, got {n_placeholders!r}")
    return n_placeholders


def chat_parts(
    tokenizer: Any,
    user_before: str = "",
    user_after: str = "",
    assistant_prefix: str = SUMMARY_REPLY,
    n_placeholders: int = N_PLACEHOLDERS,
    *,
    system: str | None = None,
    plain_fallback: bool = True,
) -> tuple:
    """Parts of a chat interpretation prompt: placeholders inside the user turn.

    Built with :func:`chat_text`, so every chat prompt in selfie_tl has one shape.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> chat_parts(tiny_tokenizer(), "Say ", "!", "Ok", n_placeholders=2)
        ('<|im_start|>user\\nSay ', 0, 0, '!<|im_end|>\\n<|im_start|>assistant\\nOk')
    """
    check_n_placeholders(n_placeholders)
    rendered = chat_text(tokenizer, _SENTINEL, assistant_prefix, system=system, plain_fallback=plain_fallback)
    prefix, suffix = rendered.split(_SENTINEL)
    parts = (prefix + user_before, *([PLACEHOLDER] * n_placeholders), user_after + suffix)
    return tuple(p for p in parts if p != "")


# --------------------------------------------------------------------------- placeholders


def _render(parts: tuple) -> tuple[str, list[tuple[int, int]]]:
    """The prompt text and the character span of each placeholder's ``"_ "``."""
    text, spans = "", []
    for part in parts:
        if isinstance(part, str):
            text += part
        else:
            spans.append((len(text), len(text) + len(PLACEHOLDER_TEXT)))
            text += PLACEHOLDER_TEXT
    return text, spans


def _char_offsets(tokenizer: Any, text: str, ids: list[int]) -> list[tuple[int, int]]:
    """Character span of each token: the tokenizer's offsets, else by incremental decoding."""
    try:
        offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) == len(ids):
            return [(int(s), int(e)) for s, e in offsets]
    except (NotImplementedError, TypeError, KeyError, ValueError):
        pass
    # Slow tokenizers: decode growing prefixes; a token's span is what its decoding adds.
    spans, previous = [], 0
    for i in range(len(ids)):
        length = len(tokenizer.decode(ids[: i + 1]))
        spans.append((previous, max(previous, length)))
        previous = max(previous, length)
    return spans


def _offset_positions(tokenizer: Any, text: str, ids: list[int], spans: list[tuple[int, int]]) -> list[int]:
    offsets = _char_offsets(tokenizer, text, ids)
    positions = []
    for index, (s, e) in enumerate(offsets):
        if e <= s:  # BOS and other tokens that carry no text
            continue
        carries_mark = any(s <= a < e for a, _ in spans)
        only_placeholder_space = any(a + 1 <= s and e <= b for a, b in spans)
        if carries_mark or only_placeholder_space:
            positions.append(index)
    for number, (a, _) in enumerate(spans):
        if not any(offsets[i][0] <= a < offsets[i][1] for i in positions):
            raise PromptError(
                f"placeholder {number} (character {a} of {text!r}) maps to no token; the tokenizer "
                "merged it away. Put a space or a newline before it, or use position_rule='reference'"
            )
    return positions


def _reference_positions(tokenizer: Any, parts: tuple) -> list[int]:
    text, positions = "", []
    for part in parts:
        if isinstance(part, str):
            text += part
            continue
        before = len(tokenizer(text).input_ids) if text else 0
        text += PLACEHOLDER_TEXT
        positions.extend(range(before, len(tokenizer(text).input_ids)))
    return positions


@dataclass(frozen=True)
class InterpretationPrompt:
    """An interpretation prompt with the token positions of its placeholders.

    Args:
        tokenizer: a Hugging Face tokenizer (``model.tokenizer``).
        parts: strings and placeholders (the int ``0``), in order.
        position_rule: ``"offsets"`` (default: the tokens carrying each ``_``) or
            ``"reference"`` (the published code's length-growth rule); see the module doc.

    Attributes:
        text: the full prompt text (placeholders rendered as ``"_ "``).
        input_ids: 1-D LongTensor of token ids.
        placeholder_positions: token indices whose residual stream is overwritten.

    Raises:
        PromptError: ``parts`` is empty, holds something other than strings and ``0``, has
            no placeholder, or a placeholder cannot be located in the tokens.

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
    position_rule: PositionRule = "offsets"
    text: str = field(init=False)
    input_ids: Tensor = field(init=False, repr=False, compare=False)
    placeholder_positions: list[int] = field(init=False)

    def __post_init__(self) -> None:
        if self.tokenizer is None or not callable(self.tokenizer):
            raise PromptError(
                f"an interpretation prompt needs a tokenizer (model.tokenizer), got {self.tokenizer!r:.60}"
            )
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
        if self.position_rule not in POSITION_RULES:
            raise PromptError(f"position_rule must be one of {POSITION_RULES}, got {self.position_rule!r}")
        text, spans = _render(parts)
        ids = tokenize(self.tokenizer, text)
        if self.position_rule == "offsets":
            positions = _offset_positions(self.tokenizer, text, ids.tolist(), spans)
        else:
            positions = _reference_positions(self.tokenizer, parts)
        if not positions or max(positions) >= len(ids):
            raise PromptError(f"placeholder positions {positions} do not fit the {len(ids)} tokens of {text!r}")
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "input_ids", ids)
        object.__setattr__(self, "placeholder_positions", positions)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def placeholder_tokens(self) -> list[str]:
        """The placeholder positions' tokens, decoded (to check where vectors go).

        Example:
            >>> from selfie_tl.testing import tiny_tokenizer
            >>> InterpretationPrompt(tiny_tokenizer(), ("a", 0, "b")).placeholder_tokens
            ['_', ' ']
        """
        return [self.tokenizer.decode([int(self.input_ids[i])]) for i in self.placeholder_positions]

    def filled(self, text: str) -> str:
        """The prompt's text with each run of placeholders written as ``text`` instead.

        What the model would read if the entity were spelled out: the reference an
        injected vector is compared with (the adapter's ``describe`` objective, literal
        ceilings). A space separates ``text`` from a word character next to it.

        Example:
            >>> from selfie_tl.testing import tiny_tokenizer
            >>> p = InterpretationPrompt(tiny_tokenizer(), ("About ", 0, 0, "? It is", 0, "is"))
            >>> p.filled("Paris")
            'About Paris? It is Paris is'
        """
        if not isinstance(text, str) or not text.strip():
            raise PromptError(f"filled() needs a non-empty text, got {text!r}")
        out: list[str] = []
        for i, part in enumerate(self.parts):
            if not _is_placeholder(part):
                out.append(part)
            elif i + 1 == len(self.parts) or not _is_placeholder(self.parts[i + 1]):
                following = self.parts[i + 1] if i + 1 < len(self.parts) else ""
                before = " " if out and out[-1][-1:].isalnum() else ""
                out.append(before + text + (" " if following[:1].isalnum() else ""))
        return "".join(out)

    @classmethod
    def from_format(cls, tokenizer: Any, template: str, **kwargs: Any) -> InterpretationPrompt:
        """Build a prompt from text in which each ``{}`` is a placeholder.

        Example:
            >>> from selfie_tl.testing import tiny_tokenizer
            >>> InterpretationPrompt.from_format(tiny_tokenizer(), "Word: {}{} means").parts
            ('Word: ', 0, 0, ' means')
        """
        if not isinstance(template, str) or "{}" not in template:
            raise PromptError(f"interpretation prompt text needs at least one '{{}}' placeholder, got {template!r}")
        pieces = template.split("{}")
        parts: list = []
        for i, piece in enumerate(pieces):
            if piece:
                parts.append(piece)
            if i < len(pieces) - 1:
                parts.append(PLACEHOLDER)
        return cls(tokenizer, tuple(parts), **kwargs)

    @classmethod
    def from_chat(
        cls,
        tokenizer: Any,
        user_before: str = "",
        user_after: str = "",
        assistant_prefix: str = SUMMARY_REPLY,
        n_placeholders: int = N_PLACEHOLDERS,
        system: str | None = None,
        *,
        plain_fallback: bool = False,
        position_rule: PositionRule = "offsets",
    ) -> InterpretationPrompt:
        """Build a prompt in the tokenizer's chat format (see :func:`chat_parts`).

        The user turn holds ``user_before``, the placeholders and ``user_after``; the
        assistant turn starts with ``assistant_prefix``, which the model then continues.

        Args:
            tokenizer: a tokenizer with a chat template (or ChatML tokens).
            user_before: user text before the placeholders.
            user_after: user text after the placeholders.
            assistant_prefix: the start of the assistant's reply.
            n_placeholders: how many placeholder slots (>= 1).
            system: a system message; ``None`` writes no system turn.
            plain_fallback: without a chat format, use ``"User: ...\\nAssistant: ..."``
                instead of raising.
            position_rule: see :class:`InterpretationPrompt`.

        Example:
            >>> from selfie_tl.testing import tiny_tokenizer
            >>> p = InterpretationPrompt.from_chat(tiny_tokenizer(), n_placeholders=2)
            >>> p.text.endswith("<|im_start|>assistant\\nSure, I will summarize the message:")
            True
        """
        parts = chat_parts(
            tokenizer, user_before, user_after, assistant_prefix, n_placeholders,
            system=system, plain_fallback=plain_fallback,
        )  # fmt: skip
        return cls(tokenizer, parts, position_rule)


def default_interpretation_prompt(tokenizer: Any, reply: str = SUMMARY_REPLY) -> InterpretationPrompt:
    """The paper's summary prompt, in the tokenizer's chat format when it has one.

    For ChatML tokenizers (SmolLM2, Qwen, ...) this is exactly::

        ("<|im_start|>user\\n", 0, 0, 0, 0, 0,
         "<|im_end|>\\n<|im_start|>assistant\\nSure, I will summarize the message:")

    with no system turn. Other chat templates go through :func:`chat_parts`; tokenizers
    without one get ``"Message: _ _ _ _ _\\n" + reply``. ``reply`` changes the assistant's
    start (the paper's reinforcement-control prompt uses its "materials" reply).

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> default_interpretation_prompt(tiny_tokenizer()).parts[0]
        '<|im_start|>user\\n'
    """
    if tokenizer is None:
        raise PromptError("an interpretation prompt needs a tokenizer (model.tokenizer), got None")
    if is_chatml(tokenizer) or getattr(tokenizer, "chat_template", None):
        return InterpretationPrompt.from_chat(tokenizer, assistant_prefix=reply)
    summary = "Summary of the message:" if reply == SUMMARY_REPLY else reply
    return InterpretationPrompt(tokenizer, ("Message: ", *[PLACEHOLDER] * N_PLACEHOLDERS, f"\n{summary}"))


def prompt_from_spec(tokenizer: Any, spec: dict[str, Any] | None) -> InterpretationPrompt:
    """Build a prompt from its JSON-able description, the form presets and evaluation
    templates are stored in.

    ``None`` is the default prompt; ``{"chat": {...}}`` holds :func:`chat_parts` keyword
    arguments (placeholders inside the user turn, rendered in the tokenizer's chat format);
    ``{"parts": [...]}`` holds literal parts (strings and ``0``).

    Raises:
        PromptError: the spec is neither of these.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> prompt_from_spec(tiny_tokenizer(), {"parts": ["Say ", 0, "!"]}).text
        'Say _ !'
    """
    if spec is None:
        return as_prompt(tokenizer, None)
    if isinstance(spec, dict) and set(spec) == {"chat"} and isinstance(spec["chat"], dict):
        return InterpretationPrompt(tokenizer, chat_parts(tokenizer, **spec["chat"]))
    if isinstance(spec, dict) and set(spec) == {"parts"} and isinstance(spec["parts"], list | tuple):
        return InterpretationPrompt(tokenizer, tuple(spec["parts"]))
    raise PromptError(f'a prompt spec is None, {{"chat": {{...}}}} or {{"parts": [...]}}, got {spec!r:.120}')


def spec_with_placeholders(spec: dict[str, Any], n_placeholders: int) -> dict[str, Any]:
    """A copy of prompt spec ``spec`` (see :func:`prompt_from_spec`) whose every run of
    placeholders is ``n_placeholders`` long: the placeholder count as a setting of a stored
    prompt (the evaluation's search tries it as a lever).

    Raises:
        PromptError: ``n_placeholders`` is not an int >= 1, or ``spec`` is not a chat or
            parts spec (``None``, the default prompt, stores no count; pass its chat spec).

    Example:
        >>> spec_with_placeholders({"parts": ["Say ", 0, 0, "!"]}, 3)
        {'parts': ['Say ', 0, 0, 0, '!']}
        >>> spec_with_placeholders({"chat": {"user_before": "Hi "}}, 1)
        {'chat': {'user_before': 'Hi ', 'n_placeholders': 1}}
    """
    n = check_n_placeholders(n_placeholders)
    if isinstance(spec, dict) and set(spec) == {"chat"} and isinstance(spec["chat"], dict):
        return {"chat": {**spec["chat"], "n_placeholders": n}}
    if isinstance(spec, dict) and set(spec) == {"parts"} and isinstance(spec["parts"], list | tuple):
        parts: list[Any] = []
        for part in spec["parts"]:
            if not _is_placeholder(part):
                parts.append(part)
            elif not parts or not _is_placeholder(parts[-1]):  # the first of a run stands for the run
                parts.extend([PLACEHOLDER] * n)
        return {"parts": parts}
    raise PromptError(f'spec_with_placeholders needs a {{"chat": {{...}}}} or {{"parts": [...]}} spec, got {spec!r:.120}')


def as_prompt(tokenizer: Any, prompt: Any = None) -> InterpretationPrompt:
    """Whatever a user passes as an interpretation prompt, as an :class:`InterpretationPrompt`.

    Accepts ``None`` (:func:`default_interpretation_prompt`), an
    :class:`InterpretationPrompt`, a parts tuple or list, or a string in which each ``{}`` is
    a placeholder. Every entry point (interpretation, control, evaluation, CLI) calls this.

    Raises:
        PromptError: anything else, or a string without ``{}``.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> tok = tiny_tokenizer()
        >>> as_prompt(tok, "Say {}!").parts, as_prompt(tok, ["x", 0]).parts
        (('Say ', 0, '!'), ('x', 0))
    """
    if prompt is None:
        return default_interpretation_prompt(tokenizer)
    if isinstance(prompt, InterpretationPrompt):
        return prompt
    if isinstance(prompt, str):
        return InterpretationPrompt.from_format(tokenizer, prompt)
    if isinstance(prompt, tuple | list):
        return InterpretationPrompt(tokenizer, tuple(prompt))
    raise PromptError(
        "interpretation_prompt must be None, an InterpretationPrompt, a parts tuple such as "
        f"('Message: ', 0, 0, '\\nSummary:') or a string with {{}} placeholders; got {type(prompt).__name__}"
    )


__all__ = [
    "N_PLACEHOLDERS",
    "PLACEHOLDER",
    "PLACEHOLDER_TEXT",
    "POSITION_RULES",
    "SUMMARY_REPLY",
    "InterpretationPrompt",
    "as_prompt",
    "chat_parts",
    "chat_text",
    "check_n_placeholders",
    "default_interpretation_prompt",
    "is_chatml",
    "spec_with_placeholders",
    "tokenize",
]
