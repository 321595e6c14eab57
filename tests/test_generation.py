import pytest
import torch

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.generation import complete, final_logits, generate, residual_stream
from selfie_tl.hooks import hook_count


def _naive_greedy(model, ids, steps):
    """Greedy decoding without a KV cache: a full forward per step."""
    seq = ids
    for _ in range(steps):
        nxt = model(seq)[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], dim=1)
    return seq[:, ids.shape[1] :]


def test_greedy_matches_uncached_decoding(tiny):
    ids = torch.tensor([tiny.tokenizer("hello there").input_ids] * 2)
    out = generate(tiny, ids, 6, eos_token_ids=[])
    assert torch.equal(out.tokens, _naive_greedy(tiny, ids, 6))
    assert out.lengths == [6, 6]


def test_probs_are_the_models_probabilities_of_the_chosen_tokens(tiny_llama):
    ids = torch.tensor([tiny_llama.tokenizer("abc").input_ids])
    out = generate(tiny_llama, ids, 4, eos_token_ids=[])
    seq = torch.cat([ids, out.tokens], dim=1)
    probs = tiny_llama(seq).softmax(-1)[0, ids.shape[1] - 1 : -1]
    expected = probs.gather(-1, out.tokens[0, :, None]).squeeze(-1)
    torch.testing.assert_close(out.probs[0], expected, rtol=1e-4, atol=1e-6)


def test_final_logits_equal_forward(tiny):
    ids = torch.tensor([tiny.tokenizer("xyz").input_ids])
    torch.testing.assert_close(final_logits(tiny, residual_stream(tiny, ids)), tiny(ids), rtol=0, atol=1e-5)


def test_eos_stops_rows_and_sets_lengths(tiny_llama):
    ids = torch.tensor([tiny_llama.tokenizer("abc").input_ids] * 2)
    first = generate(tiny_llama, ids, 5, eos_token_ids=[]).tokens[0]
    eos = int(first[2])  # make the third greedy token the end of sequence
    out = generate(tiny_llama, ids, 5, eos_token_ids=[eos])
    assert out.lengths == [list(first).index(eos)] * 2
    assert out.tokens.shape[1] == out.lengths[0] + 1  # stopped early once every row ended


def test_sampling_is_reproducible_with_a_seed(tiny_llama):
    ids = torch.tensor([tiny_llama.tokenizer("abc").input_ids] * 3)

    def run(seed):
        return generate(
            tiny_llama, ids, 8, do_sample=True, temperature=1.5, top_k=50, top_p=0.95,
            generator=torch.Generator().manual_seed(seed), eos_token_ids=[],
        ).tokens  # fmt: skip

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_top_k_one_is_greedy(tiny_gpt2):
    ids = torch.tensor([tiny_gpt2.tokenizer("abc").input_ids])
    greedy = generate(tiny_gpt2, ids, 5, eos_token_ids=[]).tokens
    sampled = generate(tiny_gpt2, ids, 5, do_sample=True, top_k=1, eos_token_ids=[]).tokens
    assert torch.equal(greedy, sampled)


def test_prefill_hooks_are_removed_and_user_hooks_fire(tiny_llama):
    calls = []
    tiny_llama.add_hook("blocks.1.hook_resid_post", lambda t, hook: calls.append(t.shape[1]))
    try:
        ids = torch.tensor([tiny_llama.tokenizer("abcd").input_ids])
        generate(tiny_llama, ids, 3, prefill_hooks=[("blocks.0.hook_resid_pre", lambda t, hook: t)], eos_token_ids=[])
        assert calls == [4, 1, 1]  # the user's hook saw the prefill and every decode step
        assert hook_count(tiny_llama) == 1
    finally:
        tiny_llama.reset_hooks()
    assert hook_count(tiny_llama) == 0


def test_complete_left_padding_matches_single_prompts(tiny):
    prompts = ["a", "hello world", "xyz"]
    batched = complete(tiny, prompts, max_new_tokens=5, batch_size=3)
    single = [complete(tiny, [p], max_new_tokens=5, batch_size=1)[0] for p in prompts]
    assert batched == single


def test_complete_rejects_bad_sizes(tiny_llama):
    with pytest.raises(InvalidArgumentError, match="max_new_tokens must be an int >= 1, got 0"):
        complete(tiny_llama, ["a"], max_new_tokens=0)
    with pytest.raises(InvalidArgumentError, match="batch_size must be an int >= 1, got True"):
        complete(tiny_llama, ["a"], batch_size=True)


@pytest.mark.parametrize(
    ("logits", "finite"),
    [
        ([[1.0, -2.0], [0.5, 3.0]], True),
        ([[3e38, 3e38], [3e38, 1.0]], True),  # the sum overflows; every logit is still finite
        ([[float("nan"), 0.0], [1.0, 1.0]], False),
        ([[1.0, float("inf")], [1.0, 1.0]], False),
        ([[1.0, 1.0], [float("-inf"), 1.0]], False),
        ([[float("inf"), float("-inf")], [1.0, 1.0]], False),
    ],
)
def test_finiteness_check_is_exact(logits, finite):
    from selfie_tl.generation import _all_finite, _maybe_nonfinite

    t = torch.tensor(logits)
    assert _all_finite(t) is finite
    assert _all_finite(t, _maybe_nonfinite(t)) is finite
    assert bool(torch.isfinite(t).all()) is finite
