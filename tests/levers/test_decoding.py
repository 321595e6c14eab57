"""Decoding controls equal Hugging Face's logits processors (an independent reference)."""

import pytest
import torch
from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

from selfie_tl.generation import generate, process_logits


@pytest.mark.parametrize("penalty", [0.8, 1.3, 2.0])
def test_repetition_penalty_equals_hf(penalty):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=gen)
    history = torch.randint(0, 50, (4, 12), generator=gen)
    ref = RepetitionPenaltyLogitsProcessor(penalty)(history, logits.clone())
    torch.testing.assert_close(process_logits(logits, history, penalty), ref)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_no_repeat_ngram_equals_hf(n):
    gen = torch.Generator().manual_seed(n)
    logits = torch.randn(3, 6, generator=gen)
    history = torch.randint(0, 6, (3, 15), generator=gen)  # small vocab: many repeats
    ref = NoRepeatNGramLogitsProcessor(n)(history, logits.clone())
    assert torch.equal(process_logits(logits, history, no_repeat_ngram_size=n), ref)


def test_controls_off_change_nothing(tiny):
    ids = tiny.to_tokens("abcabc", prepend_bos=False)
    plain = generate(tiny, ids, 8)
    off = generate(tiny, ids, 8, repetition_penalty=1.0, no_repeat_ngram_size=0)
    assert torch.equal(plain.tokens, off.tokens) and torch.equal(plain.probs, off.probs)


def test_no_repeat_ngram_leaves_no_repeated_ngram(tiny):
    ids = tiny.to_tokens("ab", prepend_bos=False).expand(3, -1)
    out = generate(tiny, ids, 20, no_repeat_ngram_size=2, eos_token_ids=[])
    for row in torch.cat([ids, out.tokens], dim=1).tolist():
        grams = list(zip(row, row[1:]))
        assert len(grams) == len(set(grams))


def test_recorded_probabilities_stay_the_models(tiny):
    # the penalty changes what is chosen, never the probability recorded for relevancy
    ids = tiny.to_tokens("abab", prepend_bos=False)
    out = generate(tiny, ids, 5, repetition_penalty=3.0, eos_token_ids=[])
    logits = tiny(torch.cat([ids, out.tokens[:, :-1]], dim=1))[0, ids.shape[1] - 1 :].softmax(-1)
    expected = logits.gather(-1, out.tokens[0, :, None]).squeeze(-1)
    torch.testing.assert_close(out.probs[0], expected, rtol=1e-4, atol=1e-5)
