"""Interpretation-prompt templates for the evaluation, with placeholder positions located
from the tokenizer's character offsets.

:class:`~selfie_tl.prompts.InterpretationPrompt` counts placeholder tokens by tokenizing
text prefixes. With BPE tokenizers that merge a leading space into the next word (SmolLM2,
GPT-2), a prefix ending in a space tokenizes differently from the full text, and the
counted positions can be off by one (``"Where is _ _ _"``: the first ``" _"`` is missed and
the following token is overwritten instead). :func:`repair_placeholder_positions` recomputes
them from offsets, so the evaluation injects exactly where the ``_`` tokens are.

Templates (``TEMPLATES``) are functions ``tokenizer -> InterpretationPrompt``; the
``relation`` template is special: it is built per fact from the fact's own relation
template (``"{} is located in the country of"`` -> ``"_ _ _ _ _ is located in the country of"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfie_tl.errors import InvalidArgumentError, PromptError
from selfie_tl.prompts import PLACEHOLDER, PLACEHOLDER_TEXT, SUMMARY_REPLY, InterpretationPrompt

N_SLOTS = 5


def _placeholder_spans(parts: tuple) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for part in parts:
        if isinstance(part, str):
            pos += len(part)
        else:
            spans.append((pos, pos + len(PLACEHOLDER_TEXT)))
            pos += len(PLACEHOLDER_TEXT)
    return spans


def placeholder_positions_from_offsets(tokenizer: Any, parts: tuple) -> list[int]:
    """Token positions of the placeholders of ``parts``, from character offsets.

    A token is a placeholder token when it contains a placeholder's ``_`` or lies entirely
    inside a placeholder's ``"_ "`` text (the trailing space, when it is its own token).

    Raises:
        PromptError: the tokenizer gives no offsets, or a placeholder maps to no token.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> placeholder_positions_from_offsets(tiny_tokenizer(), ("ab", 0, "c"))
        [2, 3]
    """
    text = "".join(p if isinstance(p, str) else PLACEHOLDER_TEXT for p in parts)
    try:
        offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    except (NotImplementedError, TypeError, KeyError) as exc:
        raise PromptError("the tokenizer gives no offset mapping (needs a fast tokenizer)") from exc
    spans = _placeholder_spans(parts)
    positions = []
    for i, (s, e) in enumerate(offsets):
        if e <= s:
            continue
        has_mark = any(s <= a < e for a, _ in spans)
        inside = any(a <= s and e <= b for a, b in spans)
        if has_mark or inside:
            positions.append(i)
    for a, _ in spans:
        if not any(offsets[i][0] <= a < offsets[i][1] for i in positions):
            raise PromptError(f"placeholder at character {a} of {text!r} maps to no token")
    return positions


def repair_placeholder_positions(prompt: InterpretationPrompt) -> InterpretationPrompt:
    """Return ``prompt`` with ``placeholder_positions`` recomputed from offsets.

    A no-op when the prompt's own positions are already right or the tokenizer has no
    offsets.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> p = repair_placeholder_positions(InterpretationPrompt(tiny_tokenizer(), ("x", 0)))
        >>> p.placeholder_positions
        [1, 2]
    """
    try:
        fixed = placeholder_positions_from_offsets(prompt.tokenizer, prompt.parts)
    except PromptError:
        return prompt
    if fixed != prompt.placeholder_positions and max(fixed) < len(prompt.input_ids):
        object.__setattr__(prompt, "placeholder_positions", fixed)
    return prompt


def _is_chatml(tokenizer: Any) -> bool:
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    return "<|im_start|>" in vocab and "<|im_end|>" in vocab


def chat_prompt(
    tokenizer: Any, before: str, after: str, assistant: str = "", n_placeholders: int = N_SLOTS
) -> InterpretationPrompt:
    """A user turn ``before + "_ " * n + after`` and an assistant reply starting with
    ``assistant`` (ChatML without a system turn when the tokenizer has ChatML tokens, plain
    ``"User: ... Assistant: ..."`` text otherwise), positions repaired.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> p = chat_prompt(tiny_tokenizer(), "Where is ", "from?", n_placeholders=2)
        >>> p.text
        '<|im_start|>user\\nWhere is _ _ from?<|im_end|>\\n<|im_start|>assistant\\n'
    """
    slots = [PLACEHOLDER] * n_placeholders
    if _is_chatml(tokenizer):
        parts = (f"<|im_start|>user\n{before}", *slots, f"{after}<|im_end|>\n<|im_start|>assistant\n{assistant}")
    else:
        parts = (f"User: {before}", *slots, f"{after}\nAssistant: {assistant}")
    return repair_placeholder_positions(InterpretationPrompt(tokenizer, parts))


def plain_prompt(tokenizer: Any, before: str, after: str, n_placeholders: int = N_SLOTS) -> InterpretationPrompt:
    """A non-chat prompt ``before + "_ " * n + after``, positions repaired."""
    parts = tuple(p for p in (before, *([PLACEHOLDER] * n_placeholders), after) if p != "")
    return repair_placeholder_positions(InterpretationPrompt(tokenizer, parts))


def identity_prompt(tokenizer: Any) -> InterpretationPrompt:
    """The token-identity patchscope prompt ``"cat -> cat; 135 -> 135; hello -> hello; _ ->"``
    with a single placeholder token.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> p = identity_prompt(tiny_tokenizer())
        >>> p.text, [p.text[i] for i in p.placeholder_positions]
        ('cat -> cat; 135 -> 135; hello -> hello; _ ->', ['_', ' '])
    """
    return plain_prompt(tokenizer, "cat -> cat; 135 -> 135; hello -> hello; ", "->", n_placeholders=1)


def relation_prompt(tokenizer: Any, template: str, n_placeholders: int = N_SLOTS) -> InterpretationPrompt:
    """The fact's relation template with placeholders for the subject (Patchscopes-style
    attribute extraction): ``"{} is owned by"`` -> ``"_ _ _ _ _ is owned by"``.

    Raises:
        PromptError: ``template`` has no ``{}``.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> relation_prompt(tiny_tokenizer(), "{} is owned by", 2).text
        '_ _ is owned by'
    """
    if template.count("{}") != 1:
        raise PromptError(f"relation template must contain exactly one '{{}}', got {template!r}")
    before, after = template.split("{}")
    after = after.removeprefix(" ")  # "_ " already ends in a space
    return plain_prompt(tokenizer, before, after, n_placeholders)


TemplateFn = Callable[[Any], InterpretationPrompt]


def _summary(tok: Any) -> InterpretationPrompt:
    return chat_prompt(tok, "", "", SUMMARY_REPLY)


TEMPLATES: dict[str, TemplateFn] = {
    # The paper's default prompt (what selfie_tl.default_interpretation_prompt builds).
    "summary": _summary,
    # The prompt that did best in an independent run on this data (see issue 7).
    "where_from": lambda tok: chat_prompt(tok, "Where is ", "from, and what is it known for?"),
    "tell_me": lambda tok: chat_prompt(tok, "Tell me about ", "", "Sure!"),
    "facts": lambda tok: chat_prompt(
        tok, "What are the key facts about ", "? Mention its country, owner, language or field.",
        "Key facts:",
    ),  # fmt: skip
    "wiki": lambda tok: plain_prompt(tok, "Wikipedia article: ", "\n\n", N_SLOTS),
    "repeat": lambda tok: chat_prompt(tok, "Repeat the name: ", "", "The name is"),
}
"""Fixed templates by name. ``"relation"`` (per fact) is handled by :func:`template_prompt`."""

RELATION = "relation"


def template_names() -> list[str]:
    """Every accepted template name, fixed ones first, then ``"relation"``."""
    return [*TEMPLATES, RELATION]


def template_prompt(tokenizer: Any, name: str, relation_template: str | None = None) -> InterpretationPrompt:
    """Build template ``name``; ``relation`` needs the fact's ``relation_template``.

    Raises:
        InvalidArgumentError: unknown name or missing relation template.
    """
    if name == RELATION:
        if relation_template is None:
            raise InvalidArgumentError("template 'relation' needs the fact's relation template")
        return relation_prompt(tokenizer, relation_template)
    if name not in TEMPLATES:
        raise InvalidArgumentError(f"unknown interpretation template {name!r}; choose from {template_names()}")
    return TEMPLATES[name](tokenizer)
