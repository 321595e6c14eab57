"""Fact completion: does the model's greedy continuation contain the known attribute?"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd
from transformer_lens import HookedTransformer

from selfie_tl.generation import complete


def normalize(text: str) -> str:
    """Lower-case, strip accents, collapse non-alphanumerics to single spaces.

    Example:
        >>> normalize("  São-Paulo!! ")
        'sao paulo'
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()


def attribute_match(text: str, attribute: str) -> bool:
    """The matching rule: the normalised attribute occurs in the normalised text as whole
    words (``"Paris"`` matches ``"in Paris."``, not ``"Parisian"``).

    Example:
        >>> attribute_match("It is in Paris, France.", "paris"), attribute_match("Parisian", "Paris")
        (True, False)
    """
    needle = normalize(attribute)
    return bool(needle) and f" {needle} " in f" {normalize(text)} "


def fact_completion(
    model: HookedTransformer,
    facts: pd.DataFrame,
    max_new_tokens: int = 10,
    batch_size: int = 16,
    *,
    verbose: bool = False,
) -> pd.DataFrame:
    """Greedy completion of each fact prompt, scored with :func:`attribute_match`.

    Args:
        model: the model (hooks on it, such as control edits, are active).
        facts: rows with ``prompt`` and ``attribute`` (see
            :func:`selfie_tl.eval.load_known_facts`).
        max_new_tokens: continuation length.
        batch_size: prompts per batch.
        verbose: progress bar.

    Returns:
        ``facts`` with two new columns, ``completion`` and ``correct``; accuracy is
        ``result.correct.mean()``.

    Example:
        >>> from selfie_tl.eval import load_known_facts
        >>> from selfie_tl.testing import tiny_model
        >>> result = fact_completion(tiny_model(), load_known_facts(limit=3), max_new_tokens=2)
        >>> list(result.columns[-2:]), bool(0.0 <= result.correct.mean() <= 1.0)
        (['completion', 'correct'], True)
    """
    out = facts.copy()
    out["completion"] = complete(model, list(facts["prompt"]), max_new_tokens, batch_size, verbose=verbose)
    out["correct"] = [attribute_match(c, a) for c, a in zip(out["completion"], out["attribute"])]
    return out
