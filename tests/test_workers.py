"""Worker processes for interpretation: the same texts as this process, in order; started
only where asked or where they pay; bad settings refused before anything starts."""

import pandas as pd
import pytest
import torch

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.eval import load_known_facts
from selfie_tl.eval.attributes import evaluate_attributes
from selfie_tl.interpret import interpret_vectors
from selfie_tl.prompts import InterpretationPrompt
from selfie_tl.testing import tiny_model
from selfie_tl.workers import AUTO_MIN_INTERPRETATIONS, InterpretPool, resolve_workers, start_pool


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def pool(model):
    with InterpretPool(model, workers=2, threads=1) as p:
        yield p


def test_auto_starts_processes_only_where_they_pay(model, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert resolve_workers(model, "auto", AUTO_MIN_INTERPRETATIONS - 1) == (1, 4)
    assert resolve_workers(model, "auto", AUTO_MIN_INTERPRETATIONS) == (2, 2)
    assert resolve_workers(model, 3, 10) == (3, 1)
    assert resolve_workers(model, 1, 10**6) == (1, 4)
    with model.hooks(fwd_hooks=[("hook_embed", lambda t, hook: t)]):
        assert resolve_workers(model, "auto", 10**6)[0] == 1  # workers would not carry the hook
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert resolve_workers(model, "auto", 10**6) == (1, 1)
    assert start_pool(model, "auto", 10**6) is None


@pytest.mark.parametrize("bad", ["two", 0, -1, 1.5, True])
def test_bad_worker_counts_are_refused(model, bad):
    with pytest.raises(InvalidArgumentError, match="workers"):
        resolve_workers(model, bad, 10)


def test_a_hooked_model_is_refused(model):
    with (
        model.hooks(fwd_hooks=[("hook_embed", lambda t, hook: t)]),
        pytest.raises(InvalidArgumentError, match="hook"),
    ):
        InterpretPool(model, workers=2)


def test_same_texts_in_order_as_this_process(model, pool):
    vectors = torch.randn(7, 64, generator=torch.Generator().manual_seed(0))
    prompt = InterpretationPrompt.from_format(model.tokenizer, "Say {}{} again:")
    seen = []
    texts = pool.interpret_vectors(vectors, prompt, batch_size=3, k=1, max_new_tokens=5, progress=seen.append)
    assert texts == interpret_vectors(model, vectors, prompt, k=1, max_new_tokens=5, batch_size=3)
    assert sorted(seen) == [1, 3, 3]  # one call per finished batch
    default = pool.interpret_vectors(vectors[:2], batch_size=2, k=1, max_new_tokens=3)  # the default prompt
    assert default == interpret_vectors(model, vectors[:2], k=1, max_new_tokens=3, batch_size=2)


def test_a_prompt_that_is_not_an_interpretation_prompt_is_refused(pool):
    with pytest.raises(InvalidArgumentError, match="InterpretationPrompt"):
        pool.interpret_vectors(torch.randn(2, 64), ("Say ", 0), batch_size=2)


def test_worker_errors_reach_the_caller(pool):
    with pytest.raises(InvalidArgumentError, match="max_new_tokens"):
        pool.interpret_vectors(torch.randn(2, 64), batch_size=2, max_new_tokens=0)


def test_evaluation_rows_are_the_same_with_workers(model):
    facts = load_known_facts(limit=4)
    common = {"layers": [0, 2], "k": 1, "max_new_tokens": 3, "patchscope_max_new_tokens": 2, "verbose": False}
    alone = evaluate_attributes(model, facts, workers=1, **common)
    shared = evaluate_attributes(model, facts, workers=2, **common)
    pd.testing.assert_frame_equal(alone, shared)


@pytest.mark.parametrize("bad", ["two", 0])
def test_the_evaluation_refuses_bad_worker_counts_before_starting(model, bad):
    with pytest.raises(InvalidArgumentError, match="workers"):
        evaluate_attributes(model, load_known_facts(limit=2), layers=[0], workers=bad, verbose=False)
