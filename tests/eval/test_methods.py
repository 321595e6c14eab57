"""Each evaluation method on its own (selfie_tl.eval.methods), on tiny random models."""

import pandas as pd
import torch

from selfie_tl.eval.attributes import subject_vectors
from selfie_tl.eval.facts import attribute_match
from selfie_tl.eval.methods import (
    METHOD_COLUMNS,
    control_rows,
    first_token,
    logit_lens_rows,
    method_row,
    no_injection_text,
    patchscope_rows,
    selfie_rows,
    token_hit,
)
from selfie_tl.eval.templates import identity_prompt, relation_prompt, template_groups, template_prompt
from selfie_tl.generation import generate
from selfie_tl.hooks import capture
from selfie_tl.interpret import interpret_vectors
from selfie_tl.lens import logit_lens_topk
from selfie_tl.prompts import tokenize
from tests.eval.test_attributes import FACTS

LAYERS = [1, 3]


def _vectors(model):
    return subject_vectors(model, FACTS, LAYERS)[0]


def test_method_row_scores_with_the_matching_rule():
    row = method_row(FACTS, 1, "selfie:summary", "summary", 3, "owned by amazon.")
    assert set(row) == {"fact", *METHOD_COLUMNS}
    assert row["fact"] == 1 and row["correct"] is True and row["first_token_hit"] is None
    assert method_row(FACTS, 0, "x", None, 0, "Amazon")["correct"] is False


def test_token_hit_needs_the_whole_attribute_in_one_token():
    assert token_hit(" Italy", "Italy")
    assert not token_hit(" It", "Italy")
    assert not token_hit(" ", "Italy")


def test_logit_lens_rows_read_logit_lens_topk(tiny):
    vecs = _vectors(tiny)
    rows = logit_lens_rows(tiny, FACTS, vecs, LAYERS, k=4)
    assert [(r["fact"], r["layer"]) for r in rows] == [(i, layer) for layer in LAYERS for i in range(3)]
    for r in rows:
        ids = logit_lens_topk(tiny, vecs[r["fact"], LAYERS.index(r["layer"])][None], 4)[0].tolist()
        words = [tiny.tokenizer.decode([t]) for t in ids]
        assert r["output"] == " | ".join(words) and r["method"] == "logit_lens" and r["template"] is None
        assert r["first_token_hit"] == (first_token(tiny.tokenizer, FACTS.attribute[r["fact"]]) in ids)
        assert r["correct"] == any(token_hit(w, FACTS.attribute[r["fact"]]) for w in words)


def test_logit_lens_rows_strict_rule(tiny_llama):
    # a vector along the unembedding of "a" puts "a" on top: a strict hit for attribute "a",
    # while the first-token rule looks for the first token of " a", which is " "
    vec = tiny_llama.W_U[:, tokenize(tiny_llama.tokenizer, "a")[0]] * 50
    facts = pd.DataFrame({"attribute": ["a", "Italy"]})
    rows = logit_lens_rows(tiny_llama, facts, torch.stack([vec, vec])[:, None], [2], k=2)
    assert [r["output"].split(" | ")[0] for r in rows] == ["a", "a"]
    assert [r["correct"] for r in rows] == [True, False]
    assert [r["first_token_hit"] for r in rows] == [False, False]


def test_last_layer_logit_lens_is_the_next_token_prediction(tiny):
    ids = tokenize(tiny.tokenizer, FACTS.prompt[0])
    last = capture(tiny, ids, [tiny.cfg.n_layers], [-1])[0]
    assert int(logit_lens_topk(tiny, last, k=1)[0, 0]) == int(tiny(ids[None])[0, -1].argmax())


def test_no_injection_control_is_the_plain_continuation(tiny):
    prompt = template_prompt(tiny.tokenizer, "summary")
    text = no_injection_text(tiny, prompt, 6)
    out = generate(tiny, prompt.input_ids[None], 6)
    assert text == tiny.tokenizer.decode(out.tokens[0, : out.lengths[0]].tolist(), skip_special_tokens=True)


def test_control_rows_one_text_per_template_group(tiny_llama):
    rows = control_rows(tiny_llama, FACTS, "summary", 4)
    assert [r["fact"] for r in rows] == [0, 1, 2] and {r["layer"] for r in rows} == {-1}
    assert {r["output"] for r in rows} == {no_injection_text(tiny_llama, template_prompt(tiny_llama.tokenizer, "summary"), 4)}
    rel = control_rows(tiny_llama, FACTS, "relation", 4)
    assert [r["method"] for r in rel] == ["control:relation"] * 3
    for r in rel:  # three distinct relation templates, each its own continuation
        expected = no_injection_text(tiny_llama, relation_prompt(tiny_llama.tokenizer, FACTS.template[r["fact"]]), 4)
        assert r["output"] == expected
        assert r["correct"] == attribute_match(expected, FACTS.attribute[r["fact"]])


def test_selfie_rows_are_interpret_vectors(tiny):
    vecs = _vectors(tiny)
    seen = []
    rows = selfie_rows(tiny, FACTS, vecs, LAYERS, "where_from", k=1, max_new_tokens=3, batch_size=2,
                       progress=seen.append)  # fmt: skip
    assert seen == [2, 2, 2]  # 3 facts x 2 layers in batches of 2: the batches fill across layers
    prompt = template_prompt(tiny.tokenizer, "where_from")
    for li, layer in enumerate(LAYERS):
        got = [r["output"] for r in rows if r["layer"] == layer]
        assert got == interpret_vectors(tiny, vecs[:, li], prompt, k=1, max_new_tokens=3)
    assert {r["method"] for r in rows} == {"selfie:where_from"}


def test_patchscope_rows_inject_at_the_layer_read(tiny_llama):
    vecs = _vectors(tiny_llama)
    rows = patchscope_rows(tiny_llama, FACTS, vecs, LAYERS, max_new_tokens=3)
    prompt = identity_prompt(tiny_llama.tokenizer)
    for li, (layer, k) in enumerate(zip(LAYERS, [1, 2])):  # layer 3 -> block 2 (n_layers - 1)
        got = [r["output"] for r in rows if r["layer"] == layer]
        assert got == interpret_vectors(tiny_llama, vecs[:, li], prompt, k=k, max_new_tokens=3)
    assert {(r["method"], r["template"]) for r in rows} == {("patchscope", "identity")}


def test_selfie_rows_keep_layer_then_group_order(tiny_llama):
    """Filling batches across layers does not reorder rows: layer by layer, then template
    group by group, each row what its group's prompt gives for that layer's vector."""
    vecs = _vectors(tiny_llama)
    rows = selfie_rows(tiny_llama, FACTS, vecs, LAYERS, "relation", k=1, max_new_tokens=3, batch_size=2)
    groups = template_groups(tiny_llama.tokenizer, FACTS, "relation")
    expected = []
    for li, layer in enumerate(LAYERS):
        for prompt, idx in groups:
            texts = interpret_vectors(tiny_llama, vecs[idx, li], prompt, k=1, max_new_tokens=3)
            expected += [(i, layer, t) for i, t in zip(idx, texts)]
    assert [(r["fact"], r["layer"], r["output"]) for r in rows] == expected
