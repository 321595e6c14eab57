"""Subject-token location, capture and the orchestration of evaluate_attributes on tiny
random models."""

import dataclasses

import pandas as pd
import pytest
import torch

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.eval.attributes import (
    ROW_COLUMNS,
    AttributeEvalConfig,
    evaluate_attributes,
    subject_last_token,
    subject_vectors,
)
from selfie_tl.eval.methods import no_injection_text
from selfie_tl.eval.templates import identity_prompt, template_prompt
from selfie_tl.hooks import capture
from selfie_tl.interpret import interpret_vectors
from selfie_tl.prompts import tokenize
from selfie_tl.testing import tiny_tokenizer

FACTS = pd.DataFrame(
    {
        "known_id": [0, 1, 2],
        "subject": ["Vinson Massif", "Audible.com", "MacApp"],
        "attribute": ["Antarctica", "Amazon", "Apple"],
        "prompt": ["Vinson Massif is located in the continent of", "Audible.com is owned by",
                   "MacApp, a product created by"],
        "template": ["{} is located in the continent of", "{} is owned by", "{}, a product created by"],
        "relation_id": ["P30", "P127", "P178"],
    }
)  # fmt: skip


@pytest.mark.parametrize(
    "prompt, subject, expected_text",
    [
        ("Paris is in", "Paris", "s"),
        ("The capital of Italy is Rome", "Italy", "y"),
        ("MacApp, a product", "MacApp", "p"),
        ("in the city of tokyo", "Tokyo", "o"),  # case-insensitive fallback
    ],
)
def test_subject_last_token_byte_tokenizer(prompt, subject, expected_text):
    tok = tiny_tokenizer()
    pos = subject_last_token(tok, prompt, subject)
    ids = tokenize(tok, prompt)
    assert tok.decode([int(ids[pos])]) == expected_text
    start = prompt.lower().find(subject.lower())
    assert pos == start + len(subject) - 1  # one token per byte


def test_subject_last_token_without_offsets_uses_prefix():
    tok = tiny_tokenizer()

    class NoOffsets:
        def __call__(self, text, return_offsets_mapping=False, **kw):
            if return_offsets_mapping:
                raise NotImplementedError
            return tok(text)

    assert subject_last_token(NoOffsets(), "The Eiffel Tower is", "Eiffel Tower") == 15


def test_subject_last_token_bpe_merges():
    """A BPE merge across the subject's end: the answer is the token holding its last
    character, in the full prompt's tokenization (prefix counting would pick the wrong one)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate("apsiĠ")}
    vocab.update({"ps": 5, "pp": 6})
    core = Tokenizer(models.BPE(vocab=vocab, merges=[("p", "s"), ("p", "p")]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=core)
    assert tok.convert_ids_to_tokens(tok("apps is").input_ids)[:3] == ["a", "p", "ps"]
    assert tok.convert_ids_to_tokens(tok("app").input_ids) == ["a", "pp"]
    assert subject_last_token(tok, "apps is", "app") == 2
    assert subject_last_token(tok, "apps is", "apps") == 2
    assert subject_last_token(tok, "apps is", "ap") == 1


def test_subject_last_token_missing_subject():
    with pytest.raises(InvalidArgumentError, match="does not occur"):
        subject_last_token(tiny_tokenizer(), "Paris is in", "Rome")
    with pytest.raises(InvalidArgumentError):
        subject_last_token(tiny_tokenizer(), "Paris is in", " ")


def test_subject_vectors_match_capture(tiny):
    layers = [0, 2, 3]
    vecs, positions, tokens = subject_vectors(tiny, FACTS, layers)
    assert vecs.shape == (3, 3, 64)
    for i, (prompt, pos) in enumerate(zip(FACTS.prompt, positions)):
        expected = capture(tiny, prompt, layers, [pos])[:, 0]
        torch.testing.assert_close(vecs[i], expected)
    assert tokens[1] == "m"  # last byte of "Audible.com"


def test_evaluate_attributes_mechanics(tiny):
    cfg = AttributeEvalConfig(layers=[1, 3], k=1, max_new_tokens=4, batch_size=2, logit_lens_k=3,
                              patchscope_max_new_tokens=3, verbose=False)  # fmt: skip
    rows = evaluate_attributes(tiny, FACTS, cfg, model_knows=[True, False, True])
    counts = rows.groupby("method").size().to_dict()
    assert counts == {"selfie:summary": 6, "control:summary": 3, "logit_lens": 6, "patchscope": 6}
    control = rows[rows.method == "control:summary"]
    assert control.output.nunique() == 1 and (control.layer == -1).all()
    # SelfIE rows are what interpret_vectors gives for the captured vectors
    vecs, _, _ = subject_vectors(tiny, FACTS, [1, 3])
    prompt = template_prompt(tiny.tokenizer, "summary")
    expected = interpret_vectors(tiny, vecs[:, 1], prompt, k=1, max_new_tokens=4)
    got = rows[(rows.method == "selfie:summary") & (rows.layer == 3)].output.tolist()
    assert got == expected
    # the identity patchscope injects at the layer read (capped at n_layers - 1)
    ps = interpret_vectors(tiny, vecs[:, 1], identity_prompt(tiny.tokenizer), k=2, max_new_tokens=3)
    assert rows[(rows.method == "patchscope") & (rows.layer == 3)].output.tolist() == ps
    ll = rows[rows.method == "logit_lens"]
    assert all(len(o.split(" | ")) == 3 for o in ll.output)
    assert rows.model_knows.tolist()[:3] == [True, False, True]
    assert set(rows.subject_position) == {12, 10, 5}
    assert list(rows.columns) == ROW_COLUMNS
    # fixed order: logit lens, control, selfie, patchscope; facts in order within a layer
    assert rows.method.drop_duplicates().tolist() == ["logit_lens", "control:summary", "selfie:summary",
                                                      "patchscope"]  # fmt: skip
    assert rows.known_id.tolist()[:6] == [0, 1, 2, 0, 1, 2]
    assert rows.attrs["layers"] == [1, 3] and set(rows.attrs["timings_s"]) == {
        "capture", "logit_lens", "control:summary", "selfie:summary", "patchscope"}


def test_correct_column_applies_the_rule(tiny_llama):
    # an attribute equal to the control text's words must score a hit; others must not
    prompt = template_prompt(tiny_llama.tokenizer, "summary")
    text = no_injection_text(tiny_llama, prompt, 8)
    words = [w for w in text.split() if w.isalnum()]
    facts = FACTS.copy()
    facts["attribute"] = [words[0] if words else "zzzz", "qqqqqq", "Amazon"]
    rows = evaluate_attributes(tiny_llama, facts, layers=[1], methods=["control"], max_new_tokens=8,
                               verbose=False)  # fmt: skip
    assert rows.correct.tolist() == [bool(words), False, False]


def test_relation_template_groups_facts(tiny_llama):
    rows = evaluate_attributes(tiny_llama, FACTS, layers=[1], methods=["selfie", "control"],
                               templates=["relation"], max_new_tokens=3, k=1, verbose=False)  # fmt: skip
    assert len(rows[rows.method == "control:relation"].output) == 3


def test_config_roundtrip_and_validation(tiny_llama):
    cfg = AttributeEvalConfig(layers=[0, 3], templates=["where_from"])
    assert AttributeEvalConfig.from_dict(cfg.to_dict()) == cfg
    assert AttributeEvalConfig().resolved_layers(tiny_llama) == [0, 3]
    with pytest.raises(InvalidArgumentError, match="unknown AttributeEvalConfig"):
        AttributeEvalConfig.from_dict({"bogus": 1})
    for bad in ({"methods": ["magic"]}, {"templates": ["nope"]}, {"layers": [9]}, {"k": 3},
                {"max_new_tokens": 0}, {"layers": []}):  # fmt: skip
        with pytest.raises(InvalidArgumentError):
            dataclasses.replace(cfg, **bad).validate(tiny_llama)
    with pytest.raises(InvalidArgumentError, match="lack columns"):
        evaluate_attributes(tiny_llama, FACTS.drop(columns="subject"), layers=[1])
    with pytest.raises(InvalidArgumentError, match="model_knows"):
        evaluate_attributes(tiny_llama, FACTS, layers=[1], model_knows=[True])
