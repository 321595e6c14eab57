import pandas as pd
import pytest
import torch

from selfie_tl import (
    InterpretationConfig,
    InterpretationPrompt,
    capture,
    generate_interpretations,
    interpret,
    interpret_vectors,
    layer_token_pairs,
)
from selfie_tl.errors import (
    InvalidArgumentError,
    LayerOutOfRangeError,
    PositionOutOfRangeError,
    PromptError,
    VectorError,
)
from selfie_tl.generation import generate
from selfie_tl.hooks import hook_count, injection_hooks
from selfie_tl.prompts import default_interpretation_prompt


def test_interpret_returns_one_row_per_pair(tiny):
    pairs = layer_token_pairs([0, 3], [0, -1])
    df = interpret(tiny, "The cat", pairs, k=1, max_new_tokens=4)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns[:6]) == ["prompt", "layer", "token", "token_decoded", "interpretation", "relevancy"]
    assert list(zip(df.layer, df.token)) == [(0, 0), (0, 6), (3, 0), (3, 6)]
    assert list(df.token_decoded) == ["T", "t", "T", "t"]
    assert (df.prompt == "The cat").all()
    for rel, toks, mean in zip(df.relevancy, df.generated_tokens, df.mean_relevancy):
        assert len(rel) == len(toks) <= 4
        assert mean == pytest.approx(sum(rel) / len(rel)) if rel else True
    assert df.attrs["config"]["k"] == 1
    assert df.attrs["interpretation_prompt"] == default_interpretation_prompt(tiny.tokenizer).text


def test_interpret_equals_interpret_vectors_on_captured_states(tiny_llama):
    df = interpret(tiny_llama, "hello", [(2, -1), (1, 0)], k=1, max_new_tokens=5, relevancy=False)
    vectors = torch.stack([capture(tiny_llama, "hello", 2, -1)[0, 0], capture(tiny_llama, "hello", 1, 0)[0, 0]])
    assert list(df.interpretation) == interpret_vectors(tiny_llama, vectors, k=1, max_new_tokens=5)
    assert df.relevancy.isna().all()


def test_interpretation_is_the_generation_with_injection(tiny_llama):
    prompt = default_interpretation_prompt(tiny_llama.tokenizer)
    vec = torch.randn(2, 64)
    out = generate_interpretations(tiny_llama, vec, prompt, k=2, max_new_tokens=5, relevancy=False)
    ids = prompt.input_ids[None].expand(2, -1)
    ref = generate(tiny_llama, ids, 5, prefill_hooks=injection_hooks(tiny_llama, vec, prompt.placeholder_positions, 2))
    for row in range(2):
        assert out.token_ids[row] == ref.tokens[row, : ref.lengths[row]].tolist()
        assert out.texts[row] == tiny_llama.tokenizer.decode(out.token_ids[row], skip_special_tokens=True)


def test_batch_size_does_not_change_greedy_results(tiny_gpt2):
    vectors = 5 * torch.randn(5, 64)
    a = interpret_vectors(tiny_gpt2, vectors, k=1, max_new_tokens=6, batch_size=1)
    b = interpret_vectors(tiny_gpt2, vectors, k=1, max_new_tokens=6, batch_size=3)
    assert a == b


def test_injected_vector_changes_the_interpretation(tiny_llama):
    texts = interpret_vectors(tiny_llama, 50 * torch.randn(6, 64), k=0, max_new_tokens=8)
    assert len(set(texts)) > 1


def test_parts_tuple_and_options(tiny_llama):
    texts = interpret_vectors(
        tiny_llama, torch.randn(2, 64), ("[", 0, 0, "] is"), k=1, max_new_tokens=3, mode="add", scale=0.5
    )
    assert len(texts) == 2


def test_config_round_trip_and_unknown_keys():
    cfg = InterpretationConfig(k=4, mode="add", scale=3.0, seed=1)
    assert InterpretationConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InvalidArgumentError, match="unknown InterpretationConfig keys"):
        InterpretationConfig.from_dict({"k": 1, "bogus": 2})


def test_sampling_with_seed_is_reproducible(tiny_llama):
    vec = torch.randn(3, 64)
    a = interpret_vectors(tiny_llama, vec, k=1, max_new_tokens=8, do_sample=True, seed=7, temperature=2.0)
    b = interpret_vectors(tiny_llama, vec, k=1, max_new_tokens=8, do_sample=True, seed=7, temperature=2.0)
    assert a == b


BAD_CALLS = [
    (dict(tokens_to_interpret=[(4, 0)]), LayerOutOfRangeError, r"layer 4 is out of range.*\[0, 3\]"),
    (dict(tokens_to_interpret=[(-1, 0)]), LayerOutOfRangeError, r"layer -1"),
    (dict(tokens_to_interpret=[(0, 7)]), PositionOutOfRangeError, r"position 7 .* 7 tokens"),
    (dict(tokens_to_interpret=[(0, -8)]), PositionOutOfRangeError, r"-7 to 6"),
    (dict(tokens_to_interpret=[]), InvalidArgumentError, "is empty"),
    (dict(tokens_to_interpret=[(0, 1, 2)]), InvalidArgumentError, r"\(layer, token\)"),
    (dict(original_prompt=""), InvalidArgumentError, "non-empty string"),
    (dict(original_prompt="   "), InvalidArgumentError, "blank"),
    (dict(interpretation_prompt=("no slots",)), PromptError, "no placeholder"),
    (dict(k=3), LayerOutOfRangeError, r"injection layer k must be in \[0, 2\]"),
    (dict(k=-1), LayerOutOfRangeError, "injection layer k"),
    (dict(batch_size=0), InvalidArgumentError, "batch_size must be an int >= 1, got 0"),
    (dict(max_new_tokens=0), InvalidArgumentError, "max_new_tokens must be an int >= 1, got 0"),
    (dict(mode="mix"), InvalidArgumentError, "mode must be 'replace' or 'add'"),
    (dict(overlay_strength=1.5), InvalidArgumentError, r"overlay_strength must be a finite number in \[0, 1\]"),
    (dict(do_sample=True, temperature=0), InvalidArgumentError, "temperature must be a finite number > 0"),
]


@pytest.mark.parametrize("override, exc, match", BAD_CALLS)
def test_bad_input_raises_and_leaves_no_hook(tiny_llama, override, exc, match):
    kwargs = dict(original_prompt="The cat", tokens_to_interpret=[(1, 0)], k=1, max_new_tokens=2)
    kwargs.update(override)
    with pytest.raises(exc, match=match):
        interpret(tiny_llama, **kwargs)
    assert hook_count(tiny_llama) == 0


@pytest.mark.parametrize(
    "vectors, match",
    [
        (torch.zeros(2, 32), r"expected \[n, 64\]"),
        (torch.full((1, 64), float("nan")), "NaN or inf"),
        (torch.zeros(0, 64), "n >= 1"),
    ],
)
def test_bad_vectors(tiny_llama, vectors, match):
    with pytest.raises(VectorError, match=match):
        interpret_vectors(tiny_llama, vectors, k=1)
    assert hook_count(tiny_llama) == 0


def test_unknown_option_is_a_type_error(tiny_llama):
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        interpret_vectors(tiny_llama, torch.zeros(1, 64), temprature=1.0)


def test_exception_inside_generation_leaves_original_hooks(tiny_llama):
    def boom(t, hook):
        if t.shape[1] == 1:  # fail in the middle of decoding, after the prefill hook ran
            raise RuntimeError("boom")

    tiny_llama.add_hook("blocks.0.hook_resid_pre", lambda t, hook: None)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            interpret_vectors(tiny_llama, torch.zeros(1, 64), k=1, fwd_hooks=[("blocks.2.hook_resid_pre", boom)])
        assert hook_count(tiny_llama) == 1
    finally:
        tiny_llama.reset_hooks()


def test_user_hooks_fire_during_interpretation(tiny_llama):
    seen = []
    interpret(
        tiny_llama, "ab", [(1, 0)], k=1, max_new_tokens=3,
        fwd_hooks=[("blocks.2.hook_mlp_out", lambda t, hook: seen.append(t.shape[1]))],
    )  # fmt: skip
    prompt_len = len(default_interpretation_prompt(tiny_llama.tokenizer))
    assert 2 in seen  # capture of the 2-token prompt
    assert prompt_len in seen and 1 in seen  # interpretation prefill and decode steps
    assert hook_count(tiny_llama) == 0


def test_custom_prompt_object(tiny_gpt2):
    prompt = InterpretationPrompt(tiny_gpt2.tokenizer, ("Q: ", 0, " A:"))
    df = interpret(tiny_gpt2, "xy", [(2, 1)], prompt, k=0, max_new_tokens=2)
    assert df.attrs["interpretation_prompt"] == "Q: _  A:"
