"""The matching rule (selfie_tl.eval.facts) and fact completion."""

import pandas as pd
import pytest

from selfie_tl.eval.facts import attribute_match, fact_completion, normalize
from selfie_tl.generation import complete


@pytest.mark.parametrize(
    "text, attribute, expected",
    [
        ("It is in Paris, France.", "Paris", True),
        ("A Parisian cafe", "Paris", False),  # whole words only
        ("SÃO PAULO is big", "São Paulo", True),  # case and accents
        ("new-york", "New York", True),  # punctuation is a space
        ("Antarctica", "antarctic", False),
        ("", "Italy", False),
        ("anything", "", False),  # empty attribute never matches
    ],
)
def test_attribute_match(text, attribute, expected):
    assert attribute_match(text, attribute) is expected


def test_normalize():
    assert normalize("  Île-de-France!! ") == "ile de france"


def test_fact_completion_scores_greedy_completions(tiny_llama):
    facts = pd.DataFrame({"prompt": ["Paris is in", "Rome is in"], "attribute": ["France", "Italy"]})
    done = fact_completion(tiny_llama, facts, max_new_tokens=3, batch_size=2)
    assert done.completion.tolist() == complete(tiny_llama, list(facts.prompt), 3)
    assert done.correct.tolist() == [attribute_match(c, a) for c, a in zip(done.completion, facts.attribute)]
    assert "completion" not in facts  # input untouched
