import pytest
import torch

from selfie_tl.errors import InvalidArgumentError, LayerOutOfRangeError, PositionOutOfRangeError, VectorError
from selfie_tl.hooks import (
    capture,
    capture_rows,
    check_positions,
    check_vectors,
    hook_count,
    hook_name,
    injection_hook,
    injection_hooks,
    vectors_from_cache,
)


def test_hook_name_indexing(tiny):
    n = tiny.cfg.n_layers
    assert [hook_name(tiny, layer) for layer in range(n)] == [f"blocks.{i}.hook_resid_pre" for i in range(n)]
    assert hook_name(tiny, n) == f"blocks.{n - 1}.hook_resid_post"


@pytest.mark.parametrize("layer", [-1, 4, 100, "2", 1.0, None])
def test_hook_name_rejects_bad_layers(tiny_llama, layer):
    with pytest.raises(LayerOutOfRangeError, match=r"\[0, 3\]"):
        hook_name(tiny_llama, layer)


def test_capture_matches_run_with_cache(tiny):
    ids = torch.tensor(tiny.tokenizer("hello world").input_ids)
    _, cache = tiny.run_with_cache(ids[None])
    got = capture(tiny, "hello world", layers=[0, 2, 3], positions=[0, -1, 4])
    assert got.shape == (3, 3, tiny.cfg.d_model)
    for i, layer in enumerate([0, 2, 3]):
        acts = cache[hook_name(tiny, layer)][0]
        torch.testing.assert_close(got[i], acts[[0, len(ids) - 1, 4]], rtol=0, atol=1e-6)


def test_capture_uses_the_tokenizer_defaults_not_a_bos(tiny_llama):
    # The byte tokenizer adds no BOS, so position 0 is the first character.
    a = capture(tiny_llama, "xy", 0, 0)[0, 0]
    torch.testing.assert_close(a, tiny_llama.embed.W_E[ord("x")])


def test_capture_errors(tiny_llama):
    with pytest.raises(PositionOutOfRangeError, match="out of range for a prompt of 2 tokens"):
        capture(tiny_llama, "ab", 0, 2)
    with pytest.raises(PositionOutOfRangeError, match="-2 to 1"):
        capture(tiny_llama, "ab", 0, -3)
    with pytest.raises(LayerOutOfRangeError):
        capture(tiny_llama, "ab", 9, 0)
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        capture(tiny_llama, "", 0, 0)
    with pytest.raises(LayerOutOfRangeError, match="no layers"):
        capture(tiny_llama, "ab", [], 0)
    assert hook_count(tiny_llama) == 0


PROMPTS = ["hello world", "hi there!!!", "abc", "xyz", "hey", "goodbye all"]  # lengths 11, 11, 3, 3, 3, 11


def test_capture_rows_one_at_a_time_is_capture_bit_for_bit(tiny):
    positions = [-1, 2, 0, 1, -2, 5]
    got = capture_rows(tiny, PROMPTS, [0, 2, 3], positions, batch_size=1)
    assert got.shape == (6, 3, tiny.cfg.d_model)
    for i, (prompt, pos) in enumerate(zip(PROMPTS, positions)):
        assert torch.equal(got[i], capture(tiny, prompt, [0, 2, 3], [pos])[:, 0])


@pytest.mark.parametrize("batch_size", [2, 64])
def test_capture_rows_batched_by_length_matches_capture(tiny, batch_size):
    positions = [-1, 2, 0, 1, -2, 5]
    got = capture_rows(tiny, PROMPTS, [1, 3], positions, batch_size=batch_size)
    for i, (prompt, pos) in enumerate(zip(PROMPTS, positions)):
        # a batch's products may round differently from a lone prompt's
        torch.testing.assert_close(got[i], capture(tiny, prompt, [1, 3], [pos])[:, 0], rtol=1e-5, atol=1e-5)


def test_capture_rows_runs_one_forward_per_length_and_batch(tiny_llama):
    shapes = []
    with tiny_llama.hooks(fwd_hooks=[("hook_embed", lambda t, hook: shapes.append(tuple(t.shape[:2])))]):
        capture_rows(tiny_llama, PROMPTS, [1], [0] * 6, batch_size=2)
    assert sorted(shapes) == [(1, 3), (1, 11), (2, 3), (2, 11)]


def test_capture_rows_errors_leave_no_hook(tiny_llama):
    with pytest.raises(InvalidArgumentError, match="one token position per prompt"):
        capture_rows(tiny_llama, ["ab", "cd"], 0, [0])
    with pytest.raises(InvalidArgumentError, match="non-empty list"):
        capture_rows(tiny_llama, "ab", 0, [0])
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        capture_rows(tiny_llama, ["ab"], 0, [0], batch_size=0)
    with pytest.raises(PositionOutOfRangeError, match="out of range for a prompt of 2 tokens"):
        capture_rows(tiny_llama, ["ab", "abc"], 0, [0, 2][::-1])
    with pytest.raises(LayerOutOfRangeError):
        capture_rows(tiny_llama, ["ab"], 9, [0])
    assert hook_count(tiny_llama) == 0


def test_check_positions():
    assert check_positions(-1, 4) == [3]
    with pytest.raises(PositionOutOfRangeError, match="no token positions"):
        check_positions([], 4)
    with pytest.raises(PositionOutOfRangeError, match="must be an int"):
        check_positions(["1"], 4)


def test_vectors_from_cache(tiny_gpt2):
    _, cache = tiny_gpt2.run_with_cache("abc")
    got = vectors_from_cache(cache, tiny_gpt2, [1, 3], [-1])
    torch.testing.assert_close(got, capture(tiny_gpt2, "abc", [1, 3], [-1]))
    _, partial = tiny_gpt2.run_with_cache("abc", names_filter="blocks.0.hook_resid_pre")
    with pytest.raises(InvalidArgumentError, match="not in the cache"):
        vectors_from_cache(partial, tiny_gpt2, [2], [0])


def test_check_vectors(tiny_llama):
    assert check_vectors(tiny_llama, torch.zeros(64)).shape == (1, 64)
    with pytest.raises(VectorError, match=r"expected \[n, 64\]"):
        check_vectors(tiny_llama, torch.zeros(2, 63))
    with pytest.raises(VectorError, match=r"NaN or inf in rows \[1\]"):
        check_vectors(tiny_llama, torch.tensor([[0.0] * 64, [float("inf")] * 64]))
    with pytest.raises(VectorError, match="floating point"):
        check_vectors(tiny_llama, torch.zeros(1, 64, dtype=torch.long))


def _resid_with(model, ids, hooks):
    store = {}

    def keep(t, hook):
        store[hook.name] = t.detach().clone()

    names = [hook_name(model, layer) for layer in range(model.cfg.n_layers + 1)]
    model.run_with_hooks(ids, fwd_hooks=list(hooks) + [(n, keep) for n in names])
    return [store[n] for n in names]


def test_injection_touches_only_placeholders_at_block_k(tiny):
    ids = torch.tensor([tiny.tokenizer("abcdefgh").input_ids] * 2)
    vec = torch.randn(2, tiny.cfg.d_model)
    k, positions = 2, [2, 3]
    clean = _resid_with(tiny, ids, [])
    hooked = _resid_with(tiny, ids, injection_hooks(tiny, vec, positions, k))
    for layer in range(k):  # earlier layers untouched
        torch.testing.assert_close(hooked[layer], clean[layer], rtol=0, atol=0)
    # At layer k the placeholders hold the vector and nothing else changed.
    torch.testing.assert_close(hooked[k][:, positions], vec[:, None].expand(-1, 2, -1))
    torch.testing.assert_close(hooked[k][:, :2], clean[k][:, :2], rtol=0, atol=0)
    torch.testing.assert_close(hooked[k][:, 4:], clean[k][:, 4:], rtol=0, atol=0)
    # Causality: positions before the first placeholder stay clean at every later layer.
    for layer in range(k, tiny.cfg.n_layers + 1):
        torch.testing.assert_close(hooked[layer][:, :2], clean[layer][:, :2], rtol=0, atol=1e-6)
    assert not torch.allclose(hooked[-1][:, -1], clean[-1][:, -1])
    assert hook_count(tiny) == 0


def test_injection_skips_single_token_decode_steps(tiny_llama):
    hook = injection_hook(torch.ones(1, 64), [3])
    resid = torch.zeros(1, 1, 64)
    assert hook(resid, None) is resid


@pytest.mark.parametrize("mode, strength", [("replace", 0.25), ("replace", 0.0), ("add", 2.0)])
def test_injection_modes(mode, strength):
    resid = torch.randn(2, 5, 8)
    vec = torch.randn(2, 8)
    out = injection_hook(vec, [1, 4], mode=mode, strength=strength)(resid, None)
    for p in (1, 4):
        if mode == "replace":
            expected = strength * vec + (1 - strength) * resid[:, p]
        else:
            expected = resid[:, p] + strength * vec
        torch.testing.assert_close(out[:, p], expected)
    torch.testing.assert_close(out[:, [0, 2, 3]], resid[:, [0, 2, 3]], rtol=0, atol=0)


def test_injection_batch_mismatch_is_reported():
    hook = injection_hook(torch.zeros(3, 8), [0])
    with pytest.raises(InvalidArgumentError, match="3 vectors for a batch of 2"):
        hook(torch.zeros(2, 4, 8), None)


def test_injection_hooks_validates_k(tiny_llama):
    with pytest.raises(LayerOutOfRangeError, match=r"injection layer k must be in \[0, 2\]"):
        injection_hooks(tiny_llama, torch.zeros(1, 64), [0], k=3)
