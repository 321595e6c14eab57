"""The slow fuzz cases, on the embedded default model (SmolLM2-135M-Instruct, n_ctx 8192)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

import selfie_tl
from selfie_tl.control import MLPEdit, load_edit
from selfie_tl.errors import ContextLengthError, HookError, InvalidArgumentError, NumericalError
from selfie_tl.hooks import hook_count, model_lock

pytestmark = pytest.mark.integration

DEMO = "What is the highest mountain in the world?"


@pytest.fixture(scope="module")
def checksum(default_model):
    def total():
        return torch.stack([p.detach().double().sum() for p in default_model.parameters()])

    before = total()
    yield
    assert torch.equal(total(), before), "weights changed"


@pytest.fixture(autouse=True)
def clean(default_model, checksum):
    yield
    assert hook_count(default_model) == 0
    assert not [m for m, module in default_model.named_modules() if "forward" in vars(module)]


def _counter():
    calls = []
    return calls, [("blocks.0.hook_resid_pre", lambda t, hook: calls.append(t.shape[1]))]


def test_prompt_longer_than_context_fails_before_any_forward(default_model):
    assert default_model.cfg.n_ctx == 8192
    prompt = " word" * 9000
    calls, hooks = _counter()
    start = time.perf_counter()
    with pytest.raises(ContextLengthError, match=r"9000 tokens.*8192"):
        selfie_tl.interpret(default_model, prompt, [(3, -1)], fwd_hooks=hooks)
    assert calls == [] and time.perf_counter() - start < 5
    with pytest.raises(ContextLengthError, match="8192"):
        selfie_tl.capture(default_model, prompt, 3, -1)
    with pytest.raises(ContextLengthError, match="8192"):
        selfie_tl.complete(default_model, ["hi", prompt], max_new_tokens=2)


def test_absurd_max_new_tokens_fails_before_any_forward(default_model):
    calls, hooks = _counter()
    with pytest.raises(ContextLengthError, match="max_new_tokens \\(1000000\\)"):
        selfie_tl.interpret(default_model, DEMO, [(3, -1)], max_new_tokens=10**6, fwd_hooks=hooks)
    with pytest.raises(ContextLengthError):
        selfie_tl.generate(default_model, torch.tensor([[1, 2, 3]]), 8190)
    assert calls == []


def test_four_threads_get_their_own_interpretations(default_model):
    vectors = selfie_tl.capture(default_model, DEMO, [4, 10, 16, 22], [-1])[:, 0]
    sequential = [selfie_tl.interpret_vectors(default_model, v, max_new_tokens=8) for v in vectors]
    assert len(set(map(tuple, sequential))) > 1
    results = [None] * 4
    barrier = threading.Barrier(4)

    def run(i):
        barrier.wait()
        results[i] = selfie_tl.interpret_vectors(default_model, vectors[i], max_new_tokens=8)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert results == sequential


@pytest.mark.parametrize("phase", ["prefill", "decode", "relevancy"])
def test_keyboard_interrupt_leaves_the_model_clean(default_model, phase):
    seen = {"decode": False}

    def hook(t, hook):
        if phase == "prefill" and t.shape[1] > 1:
            raise KeyboardInterrupt
        if phase == "decode" and t.shape[1] == 1:
            raise KeyboardInterrupt
        if phase == "relevancy" and seen["decode"] and t.shape[1] > 1:
            raise KeyboardInterrupt
        seen["decode"] |= t.shape[1] == 1

    reference = selfie_tl.interpret(default_model, DEMO, [(8, -1)], max_new_tokens=6)
    with pytest.raises(KeyboardInterrupt):
        selfie_tl.interpret(default_model, DEMO, [(8, -1)], max_new_tokens=6,
                            fwd_hooks=[("blocks.20.hook_resid_pre", hook)])
    assert model_lock(default_model).acquire(blocking=False)
    model_lock(default_model).release()
    again = selfie_tl.interpret(default_model, DEMO, [(8, -1)], max_new_tokens=6)
    assert list(again.interpretation) == list(reference.interpretation)


def test_huge_scale_is_a_numerical_error_not_empty_text(default_model):
    vec = selfie_tl.capture(default_model, DEMO, 10, -1)[0]
    with pytest.raises(NumericalError, match="scale"):
        selfie_tl.interpret(default_model, DEMO, [(10, -1)], mode="add", scale=1e38, max_new_tokens=4)
    with pytest.raises(NumericalError):
        selfie_tl.interpret_vectors(default_model, vec * 1e25, max_new_tokens=4)


def test_unknown_hook_name_and_bad_settings(default_model):
    with pytest.raises(HookError, match="did you mean 'blocks.9.hook_resid_pre'"):
        selfie_tl.interpret(default_model, DEMO, [(3, -1)], fwd_hooks=[("blocks.9.hook_resid_prex", print)])
    with pytest.raises(InvalidArgumentError, match="temperature"):
        selfie_tl.interpret(default_model, DEMO, [(3, -1)], do_sample=True, temperature=float("inf"))
    with pytest.raises(InvalidArgumentError, match="relevancy"):
        selfie_tl.interpret(default_model, DEMO, [(3, -1)], relevancy="no")


def test_same_edit_file_attached_twice_is_refused(default_model, tmp_path):
    edit = MLPEdit.for_model(default_model, layer=6, rank=2, bias=True)
    with torch.no_grad():
        edit.b.fill_(0.5)
    path = edit.save(tmp_path / "e.safetensors", default_model)
    first, second = load_edit(path, default_model), load_edit(path, default_model)
    with first.attached(default_model), pytest.raises(InvalidArgumentError, match="identical edit"):
        second.attach(default_model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.safetensors"]
