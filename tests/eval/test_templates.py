"""Interpretation templates of the evaluation (selfie_tl.eval.templates)."""

import pandas as pd
import pytest

from selfie_tl.errors import InvalidArgumentError, PromptError
from selfie_tl.eval.templates import (
    identity_prompt,
    relation_prompt,
    template_groups,
    template_names,
    template_prompt,
)
from selfie_tl.testing import tiny_tokenizer


@pytest.mark.parametrize("name", template_names())
def test_templates_place_placeholders_on_underscores(tiny_llama, name):
    prompt = template_prompt(tiny_llama.tokenizer, name, "{} is owned by")
    ids = prompt.input_ids.tolist()
    decoded = [tiny_llama.tokenizer.decode([ids[p]]) for p in prompt.placeholder_positions]
    assert decoded.count("_") == 5 and set(decoded) <= {"_", " "}


def test_relation_prompt_and_errors():
    tok = tiny_tokenizer()
    assert relation_prompt(tok, "The native language of {} is", 1).text == "The native language of _ is"
    with pytest.raises(PromptError):
        relation_prompt(tok, "no slot here")
    with pytest.raises(InvalidArgumentError, match="unknown interpretation template"):
        template_prompt(tok, "nope")
    p = identity_prompt(tok)
    assert p.text.startswith("cat -> cat; 135 -> 135; hello -> hello;")
    assert tok.decode([int(p.input_ids[p.placeholder_positions[0]])]) == "_"


def test_template_groups():
    tok = tiny_tokenizer()
    facts = pd.DataFrame({"template": ["{} is in", "{} speaks", "{} is in", "{} speaks", "{} has"]})
    groups = template_groups(tok, facts, "relation")
    assert [idx for _, idx in groups] == [[0, 2], [1, 3], [4]]
    assert [p.text for p, _ in groups] == [relation_prompt(tok, t).text for t in ("{} is in", "{} speaks", "{} has")]
    [(prompt, idx)] = template_groups(tok, facts, "where_from")
    assert idx == [0, 1, 2, 3, 4] and prompt.text == template_prompt(tok, "where_from").text
    with pytest.raises(InvalidArgumentError):
        template_groups(tok, facts, "nope")


@pytest.mark.parametrize("name", [n for n in template_names() if n != "relation"])
@pytest.mark.parametrize("n", [1, 3])
def test_templates_take_a_placeholder_count(tiny_llama, name, n):
    tok = tiny_llama.tokenizer
    prompt = template_prompt(tok, name, n_placeholders=n)
    ids = prompt.input_ids.tolist()
    decoded = [tok.decode([ids[p]]) for p in prompt.placeholder_positions]
    assert decoded.count("_") == n and set(decoded) <= {"_", " "}
    # everything but the placeholders is the template's own text
    assert prompt.text.replace("_ ", "") == template_prompt(tok, name).text.replace("_ ", "")


def test_placeholder_count_reaches_relation_groups_and_errors():
    tok = tiny_tokenizer()
    facts = pd.DataFrame({"template": ["{} is in", "{} speaks"]})
    assert [p.text for p, _ in template_groups(tok, facts, "relation", 2)] == ["_ _ is in", "_ _ speaks"]
    [(prompt, _)] = template_groups(tok, facts, "wiki_is", 1)
    assert prompt.text.endswith("\n\n_ is")
    with pytest.raises(PromptError, match="n_placeholders must be an int >= 1, got 0"):
        template_prompt(tok, "wiki_is", n_placeholders=0)
    with pytest.raises(InvalidArgumentError, match="unknown interpretation template"):
        template_prompt(tok, "nope", n_placeholders=2)
