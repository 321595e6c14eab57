"""Several threads on one model: each gets its own result (the per-model lock)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from selfie_tl import interpret, interpret_vectors
from selfie_tl.control import MLPEdit
from selfie_tl.hooks import hook_count, model_lock
from selfie_tl.testing import tiny_model


def _run_threads(work):
    barrier = threading.Barrier(len(work))
    results, errors = [None] * len(work), []

    def run(i):
        barrier.wait()
        try:
            results[i] = work[i]()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


def _nap(t, hook):
    time.sleep(0.002)  # releases the GIL mid-forward: without the lock, threads interleave every time


def test_four_threads_interpret_distinct_vectors_like_sequential_calls(tiny_llama):
    vectors = [20 * torch.randn(1, 64, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    kw = {"k": 1, "max_new_tokens": 12, "fwd_hooks": [("blocks.0.hook_resid_pre", _nap)]}
    sequential = [interpret_vectors(tiny_llama, v, **kw) for v in vectors]
    assert len({tuple(s) for s in sequential}) == 4  # the vectors do give different texts
    for _ in range(3):
        parallel = _run_threads([lambda v=v: interpret_vectors(tiny_llama, v, **kw) for v in vectors])
        assert parallel == sequential
    assert hook_count(tiny_llama) == 0


def test_threads_interpret_with_relevancy(tiny_gpt2):
    prompts = ["The cat", "A dog barks", "hello world", "xyz"]

    def one(p):
        df = interpret(tiny_gpt2, p, [(1, -1), (3, 0)], k=1, max_new_tokens=6,
                       fwd_hooks=[("blocks.1.hook_resid_pre", _nap)])
        return list(df.interpretation), [list(r) for r in df.relevancy]

    sequential = [one(p) for p in prompts]
    assert _run_threads([lambda p=p: one(p) for p in prompts]) == sequential


def test_lock_is_per_model_and_reentrant():
    a, b = tiny_model(n_layers=1), tiny_model(n_layers=1)
    assert model_lock(a) is model_lock(a)
    assert model_lock(a) is not model_lock(b)
    with model_lock(a), model_lock(a):  # re-entrant: selfie_tl calls inside the user's own block
        interpret_vectors(a, torch.randn(1, 64), k=0, max_new_tokens=2)


def test_a_call_waits_for_the_lock_holder(tiny_llama):
    order = []
    with model_lock(tiny_llama):
        t = threading.Thread(target=lambda: (interpret_vectors(tiny_llama, torch.randn(1, 64), k=1, max_new_tokens=2),
                                             order.append("thread")))
        t.start()
        time.sleep(0.3)
        order.append("holder")
    t.join(timeout=60)
    assert order == ["holder", "thread"]


def test_lock_released_after_keyboard_interrupt(tiny_llama):
    def interrupt(t, hook):
        if t.shape[1] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interpret_vectors(tiny_llama, torch.randn(1, 64), k=1, fwd_hooks=[("blocks.1.hook_resid_pre", interrupt)])
    got = []

    def probe():
        lock = model_lock(tiny_llama)
        got.append(lock.acquire(timeout=5))
        if got[-1]:
            lock.release()

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    assert got == [True]
    assert hook_count(tiny_llama) == 0


def test_attaching_an_edit_waits_for_a_running_interpretation(tiny_llama):
    """An edit attached from another thread never lands in the middle of a generation."""
    edit = MLPEdit.for_model(tiny_llama, layer=2, bias=True, rank=1)
    with torch.no_grad():
        edit.b.fill_(3.0)
    vec = 20 * torch.randn(1, 64, generator=torch.Generator().manual_seed(1))
    plain = interpret_vectors(tiny_llama, vec, k=1, max_new_tokens=12)
    with edit.attached(tiny_llama):
        edited = interpret_vectors(tiny_llama, vec, k=1, max_new_tokens=12)
    assert plain != edited
    for _ in range(3):
        results = _run_threads([
            lambda: interpret_vectors(tiny_llama, vec, k=1, max_new_tokens=12,
                                      fwd_hooks=[("blocks.0.hook_resid_pre", _nap)]),
            lambda: (edit.attach(tiny_llama), edit.detach()),
        ])
        assert results[0] in (plain, edited)
    assert hook_count(tiny_llama) == 0
