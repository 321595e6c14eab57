import math

import pandas as pd
import pytest
import torch

from selfie_tl import viz
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.generation import final_logits, residual_stream
from selfie_tl.interpret import generate_interpretations
from selfie_tl.prompts import default_interpretation_prompt
from selfie_tl.relevancy import (
    PromptBaseline,
    baseline_probs,
    content_relevancy,
    content_relevancy_column,
    relevancy_scores,
    relevant_spans,
    token_kinds,
    tokens_and_relevancy,
)


def test_shared_prompt_baseline_equals_a_full_teacher_forced_pass(tiny):
    prompt = default_interpretation_prompt(tiny.tokenizer).input_ids
    generated = torch.randint(0, 256, (3, 5))
    fast = baseline_probs(tiny, prompt, generated)
    seq = torch.cat([prompt[None].expand(3, -1), generated], dim=1)
    logprobs = final_logits(tiny, residual_stream(tiny, seq)).log_softmax(-1)
    T = len(prompt)
    slow = logprobs[:, T - 1 : -1].gather(-1, generated[..., None]).squeeze(-1).exp()
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-7)


def test_shared_cache_is_not_mutated(tiny_llama):
    prompt = default_interpretation_prompt(tiny_llama.tokenizer).input_ids
    shared = PromptBaseline.build(tiny_llama, prompt)
    length = shared.cache.entries[0].past_keys.shape[1]
    a = baseline_probs(tiny_llama, prompt, torch.tensor([[1, 2, 3]]), shared)
    b = baseline_probs(tiny_llama, prompt, torch.tensor([[1, 2, 3]]), shared)
    assert shared.cache.entries[0].past_keys.shape[1] == length
    assert torch.equal(a, b)


def test_single_step_baseline(tiny_gpt2):
    prompt = torch.tensor(tiny_gpt2.tokenizer("ab").input_ids)
    got = baseline_probs(tiny_gpt2, prompt, torch.tensor([[7], [9]]))
    probs = tiny_gpt2(prompt[None])[0, -1].softmax(-1)
    torch.testing.assert_close(got[:, 0], probs[[7, 9]])


def test_relevancy_is_zero_when_nothing_is_injected(tiny_llama):
    # overlay_strength 0 keeps the placeholder state: injected == baseline.
    out = generate_interpretations(
        tiny_llama, torch.randn(2, 64), overlay_strength=0.0, k=1, max_new_tokens=6
    )
    for rel in out.relevancy:
        assert max(rel) < 1e-5


def test_relevancy_is_positive_and_bounded_when_injecting(tiny_llama):
    out = generate_interpretations(tiny_llama, 30 * torch.randn(4, 64), k=1, max_new_tokens=6)
    flat = [r for row in out.relevancy for r in row]
    assert all(0.0 <= r <= 1.0 for r in flat)
    assert max(flat) > 1e-3
    for probs, rel in zip(out.probs, out.relevancy):
        assert len(probs) == len(rel)


def test_relevancy_scores():
    got = relevancy_scores(torch.tensor([[0.2, 0.9]]), torch.tensor([[0.5, 0.1]]))
    torch.testing.assert_close(got, torch.tensor([[0.3, 0.8]]))


def test_relevant_spans():
    spans = relevant_spans(["The", " Eiffel", " Tower", " &"], [0.02, 0.5, 0.4, 0.01], threshold=0.1)
    assert [(s.start, s.end, s.text) for s in spans] == [(1, 3, " Eiffel Tower")]
    assert spans[0].max_relevancy == 0.5 and spans[0].mean_relevancy == pytest.approx(0.45)
    # Strictly greater; several spans; a trailing span is closed.
    spans = relevant_spans(list("abcde"), [0.2, 0.1, 0.3, 0.0, 0.9], threshold=0.1)
    assert [s.text for s in spans] == ["a", "c", "e"]
    assert relevant_spans(list("ab"), [0.0, 0.0], threshold=0.1) == []
    with pytest.raises(InvalidArgumentError, match="relevancy=True"):
        relevant_spans(["a"], None)
    with pytest.raises(InvalidArgumentError, match="align"):
        relevant_spans(["a", "b"], [0.5])
    assert viz.relevant_spans is relevant_spans and viz.RelevantSpan is type(spans[0])  # re-exported


def test_spans_of_result_rows():
    df = pd.DataFrame(
        {"generated_tokens": [["The", " Eiffel", " Tower", " &"]], "relevancy": [[0.02, 0.5, 0.4, 0.01]]}
    )
    row_spans = relevant_spans(df.iloc[0], threshold=0.3)
    assert [s.text for s in row_spans] == [" Eiffel Tower"]
    tuple_row = next(df.itertuples())
    assert relevant_spans(tuple_row, threshold=0.3) == row_spans
    assert relevant_spans(df.iloc[0].to_dict(), threshold=0.3) == row_spans
    assert viz.interpretation_html(tuple_row) == viz.interpretation_html(df.iloc[0])
    with pytest.raises(InvalidArgumentError, match="needs 'generated_tokens' and 'relevancy'"):
        relevant_spans({"generated_tokens": ["a"]})
    with pytest.raises(InvalidArgumentError, match="list of token strings"):
        tokens_and_relevancy("ab", [0.1, 0.2])
    assert tokens_and_relevancy({"generated_tokens": ("a",), "relevancy": None}) == (["a"], None)


def test_token_kinds():
    kinds = token_kinds(
        ["Mount", " Everest", "\n", "\n\n", " ", "<|im_end|>", "</s>", "<eos>", "<end_of_turn>"]
    )
    assert kinds == ["content", "content"] + ["whitespace"] * 3 + ["special"] * 4
    # Exact special tokens of a tokenizer, on top of the pattern.
    assert token_kinds(["<extra_id_0>", "x"], special_tokens=["<extra_id_0>"]) == ["special", "content"]
    # Repetition: a token completing a 3-gram seen before, compared without case and spaces;
    # whitespace in between does not hide it.
    kinds = token_kinds(["The", " Alps", " are", "\n", " the", " alps", " are", " high"])
    assert kinds == ["content"] * 3 + ["whitespace", "content", "content", "repeat", "content"]
    assert token_kinds(["a", "a", "a"], ngram=1) == ["content", "repeat", "repeat"]
    with pytest.raises(InvalidArgumentError, match="ngram"):
        token_kinds(["a"], ngram=0)


def test_content_relevancy():
    # Relevancy on newlines and end tokens does not count; neither do repeats.
    tokens = ["\n", " Everest", "\n", "<|im_end|>"]
    assert content_relevancy(tokens, [0.9, 0.2, 0.9, 0.9]) == pytest.approx(0.2)
    assert content_relevancy(
        ["a", " b", " c", " a", " b", " c"], [0.1, 0.1, 0.1, 0.7, 0.7, 0.7]
    ) == pytest.approx((0.3 + 0.7 + 0.7) / 5)
    assert math.isnan(content_relevancy(["\n", " "], [0.5, 0.5]))  # whitespace only
    assert math.isnan(content_relevancy([], []))  # nothing generated
    assert math.isnan(content_relevancy(["x"], None))  # relevancy=False
    assert content_relevancy(["x", "y"], [float("nan"), 0.4]) == pytest.approx(0.4)
    row = {"generated_tokens": ["x", "\n"], "relevancy": [0.3, 0.9]}
    assert content_relevancy(row) == pytest.approx(0.3)
    df = pd.DataFrame(
        {"generated_tokens": [["x", "\n"], None, ["\n"]], "relevancy": [[0.3, 0.9], None, [0.9]]},
        index=[5, 6, 7],
    )
    col = content_relevancy_column(df)
    assert col.name == "content_relevancy" and list(col.index) == [5, 6, 7]
    assert col[5] == pytest.approx(0.3) and math.isnan(col[6]) and math.isnan(col[7])
    with pytest.raises(InvalidArgumentError, match="relevancy"):
        content_relevancy_column(pd.DataFrame({"generated_tokens": [["x"]]}))
