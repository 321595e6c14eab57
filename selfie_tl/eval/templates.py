"""Interpretation-prompt templates for the evaluation.

Placeholder positions come from :class:`~selfie_tl.prompts.InterpretationPrompt` (character
offsets), the same rule as everywhere else in selfie_tl.

Templates are stored as prompt specs (``TEMPLATE_SPECS``, the JSON form presets use) and
built by :func:`template_prompt` (``TEMPLATES`` holds them as functions); the
``relation`` template is special: it is built per fact from the fact's own relation
template (``"{} is located in the country of"`` -> ``"_ _ _ _ _ is located in the country of"``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from selfie_tl.errors import InvalidArgumentError, PromptError
from selfie_tl.prompts import (
    PLACEHOLDER,
    SUMMARY_REPLY,
    InterpretationPrompt,
    chat_parts,
    prompt_from_spec,
    spec_with_placeholders,
)

N_SLOTS = 5


def chat_prompt(
    tokenizer: Any, before: str, after: str, assistant: str = "", n_placeholders: int = N_SLOTS
) -> InterpretationPrompt:
    """A user turn ``before + "_ " * n + after`` and an assistant reply starting with
    ``assistant``, built by
    :func:`selfie_tl.prompts.chat_parts` (plain ``"User: ... Assistant: ..."`` text without
    a chat format).

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> p = chat_prompt(tiny_tokenizer(), "Where is ", "from?", n_placeholders=2)
        >>> p.text
        '<|im_start|>user\\nWhere is _ _ from?<|im_end|>\\n<|im_start|>assistant\\n'
    """
    return InterpretationPrompt(tokenizer, chat_parts(tokenizer, before, after, assistant, n_placeholders))


def plain_prompt(tokenizer: Any, before: str, after: str, n_placeholders: int = N_SLOTS) -> InterpretationPrompt:
    """A non-chat prompt ``before + "_ " * n + after``."""
    parts = tuple(p for p in (before, *([PLACEHOLDER] * n_placeholders), after) if p != "")
    return InterpretationPrompt(tokenizer, parts)


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


def _chat(before: str, after: str, assistant: str = "") -> dict[str, Any]:
    return {"chat": {"user_before": before, "user_after": after, "assistant_prefix": assistant, "n_placeholders": N_SLOTS}}


def _plain(before: str, after: str) -> dict[str, Any]:
    return {"parts": [p for p in (before, *([PLACEHOLDER] * N_SLOTS), after) if p != ""]}


TEMPLATE_SPECS: dict[str, dict[str, Any]] = {
    # The paper's default prompt (what selfie_tl.default_interpretation_prompt builds).
    "summary": _chat("", "", SUMMARY_REPLY),
    # The prompt that did best in an independent run on this data (see issue 7).
    "where_from": _chat("Where is ", "from, and what is it known for?"),
    "tell_me": _chat("Tell me about ", "", "Sure!"),
    "facts": _chat("What are the key facts about ", "? Mention its country, owner, language or field.", "Key facts:"),
    "wiki": _plain("Wikipedia article: ", "\n\n"),
    # The entity as the subject of an encyclopedia article's first sentence.
    "wiki_is": _plain("From Wikipedia, the free encyclopedia\n\n", "is"),
    "repeat": _chat("Repeat the name: ", "", "The name is"),
}
"""Fixed templates by name, as prompt specs (:func:`selfie_tl.prompts.prompt_from_spec`,
the form presets store). ``"relation"`` (per fact) is handled by :func:`template_prompt`."""

TEMPLATES: dict[str, Callable[[Any], InterpretationPrompt]] = {
    name: functools.partial(prompt_from_spec, spec=spec) for name, spec in TEMPLATE_SPECS.items()
}
"""Fixed templates by name, as functions ``tokenizer -> InterpretationPrompt``."""


def template_spec(name: str) -> dict[str, Any] | None:
    """The prompt spec of a fixed template or ``preset:<name>`` (what a preset file stores).

    Raises:
        InvalidArgumentError: ``relation`` (built per fact) or an unknown name.

    Example:
        >>> template_spec("tell_me")["chat"]["assistant_prefix"]
        'Sure!'
    """
    if name.startswith(PRESET_PREFIX):
        from selfie_tl.presets import get_preset

        return get_preset(name[len(PRESET_PREFIX) :]).prompt
    if name not in TEMPLATE_SPECS:
        raise InvalidArgumentError(f"no fixed prompt spec for template {name!r}; choose from {list(TEMPLATE_SPECS)}")
    return json.loads(json.dumps(TEMPLATE_SPECS[name]))


RELATION = "relation"


PRESET_PREFIX = "preset:"
"""``"preset:best"`` names the interpretation prompt of a shipped preset (:mod:`selfie_tl.presets`)."""


def template_names() -> list[str]:
    """Every accepted template name: fixed ones, ``"relation"``, then ``"preset:<name>"``.

    Example:
        >>> "relation" in template_names() and "preset:best" in template_names()
        True
    """
    from selfie_tl.presets import preset_names

    return [*TEMPLATES, RELATION, *(PRESET_PREFIX + name for name in preset_names())]


def template_prompt(
    tokenizer: Any, name: str, relation_template: str | None = None, n_placeholders: int | None = None
) -> InterpretationPrompt:
    """Build template ``name``; ``relation`` needs the fact's ``relation_template``.

    ``n_placeholders`` replaces the template's placeholder count (:data:`N_SLOTS`, or what
    a preset stores) in each run of placeholders.

    Raises:
        InvalidArgumentError: unknown name or missing relation template.
        PromptError: ``n_placeholders`` is not an int >= 1.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> template_prompt(tiny_tokenizer(), "wiki_is", n_placeholders=2).text
        'From Wikipedia, the free encyclopedia\\n\\n_ _ is'
    """
    if name == RELATION:
        if relation_template is None:
            raise InvalidArgumentError("template 'relation' needs the fact's relation template")
        prompt = relation_prompt(tokenizer, relation_template)
    elif name.startswith(PRESET_PREFIX):
        from selfie_tl.presets import get_preset

        prompt = get_preset(name[len(PRESET_PREFIX) :]).interpretation_prompt(tokenizer)
    elif name in TEMPLATES:
        prompt = TEMPLATES[name](tokenizer)
    else:
        raise InvalidArgumentError(f"unknown interpretation template {name!r}; choose from {template_names()}")
    if n_placeholders is None:
        return prompt
    # resized on the built parts, so a preset's default prompt (stored as None) resizes too
    return prompt_from_spec(tokenizer, spec_with_placeholders({"parts": list(prompt.parts)}, n_placeholders))


def template_groups(
    tokenizer: Any, facts: Any, name: str, n_placeholders: int | None = None
) -> list[tuple[InterpretationPrompt, list[int]]]:
    """``(prompt, fact indices)`` pairs for template ``name`` over the rows of ``facts``
    (a DataFrame, positions ``0..n-1``): one group holding every fact for a fixed template;
    for ``relation``, one group per distinct relation template (``facts["template"]``), in
    order of first appearance. ``n_placeholders``: see :func:`template_prompt`.

    Example:
        >>> import pandas as pd
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> facts = pd.DataFrame({"template": ["{} is in", "{} is owned by", "{} is in"]})
        >>> [(p.text, idx) for p, idx in template_groups(tiny_tokenizer(), facts, "relation")]
        [('_ _ _ _ _ is in', [0, 2]), ('_ _ _ _ _ is owned by', [1])]
        >>> [idx for _, idx in template_groups(tiny_tokenizer(), facts, "summary")]
        [[0, 1, 2]]
    """
    if name != RELATION:
        return [(template_prompt(tokenizer, name, n_placeholders=n_placeholders), list(range(len(facts))))]
    groups: dict[str, list[int]] = {}
    for i, template in enumerate(facts["template"]):
        groups.setdefault(template, []).append(i)
    return [(template_prompt(tokenizer, RELATION, t, n_placeholders), idx) for t, idx in groups.items()]
