"""Injection strength: scale arithmetic, norm matching, several layers, the automatic scale."""

import pytest
import torch

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.generation import generate
from selfie_tl.hooks import injection_hook
from selfie_tl.interpret import generate_interpretations
from selfie_tl.prompts import default_interpretation_prompt
from selfie_tl.scaling import choose_scales, placeholder_norm, scale_criteria


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_replace_scale_multiplies_the_vector(tiny_llama, scale):
    v = torch.randn(2, 64)
    prompt = default_interpretation_prompt(tiny_llama.tokenizer)
    out_scaled = generate_interpretations(tiny_llama, v, prompt, k=1, max_new_tokens=6, relevancy=False, scale=scale)
    out_manual = generate_interpretations(tiny_llama, v * scale, prompt, k=1, max_new_tokens=6, relevancy=False)
    assert out_scaled.token_ids == out_manual.token_ids
    assert out_scaled.scales == [scale, scale]


def _add_at_placeholders(v, positions):
    """An independent add-mode injection: h + v at the placeholders, prefill only."""
    def hook(resid, hook):
        if resid.shape[1] == 1:
            return resid
        out = resid.clone()
        out[:, positions] += v[:, None, :]
        return out

    return hook


def test_add_mode_adds_scaled_vector(tiny_llama):
    v = torch.randn(1, 64)
    prompt = default_interpretation_prompt(tiny_llama.tokenizer)
    out = generate_interpretations(tiny_llama, v, prompt, k=1, max_new_tokens=4, relevancy=False, mode="add", scale=2.0)
    ids = prompt.input_ids[None]
    hook = _add_at_placeholders(2.0 * v, prompt.placeholder_positions)
    manual = generate(tiny_llama, ids, 4, prefill_hooks=[("blocks.1.hook_resid_pre", hook)])
    assert out.token_ids[0] == manual.tokens[0, : manual.lengths[0]].tolist()


def test_norm_match_injects_the_placeholder_norm(tiny_llama):
    prompt = default_interpretation_prompt(tiny_llama.tokenizer)
    target = placeholder_norm(tiny_llama, prompt, 1)
    v = torch.randn(3, 64) * torch.tensor([[0.1], [1.0], [50.0]])
    matched = v * (target / v.norm(dim=-1, keepdim=True))
    a = generate_interpretations(tiny_llama, v, prompt, k=1, max_new_tokens=5, relevancy=False, norm_match=True)
    b = generate_interpretations(tiny_llama, matched, prompt, k=1, max_new_tokens=5, relevancy=False)
    assert a.token_ids == b.token_ids


def test_inject_layers_writes_every_layer(tiny_llama):
    prompt = default_interpretation_prompt(tiny_llama.tokenizer)
    v = torch.randn(1, 64)
    hook = injection_hook(v, prompt.placeholder_positions)
    manual = generate(
        tiny_llama, prompt.input_ids[None], 4,
        prefill_hooks=[("blocks.0.hook_resid_pre", hook), ("blocks.1.hook_resid_pre", hook)],
    )  # fmt: skip
    out = generate_interpretations(tiny_llama, v, prompt, k=0, max_new_tokens=4, relevancy=False, inject_layers=2)
    assert out.token_ids[0] == manual.tokens[0, : manual.lengths[0]].tolist()
    with pytest.raises(InvalidArgumentError, match="inject_layers"):
        generate_interpretations(tiny_llama, v, prompt, k=2, max_new_tokens=3, inject_layers=2)


def test_choose_scales_rule():
    sim = torch.tensor([[0.9, 0.6, 0.2], [0.1, 0.05, 0.2]])
    ent = torch.tensor([[2.0, 1.0, 0.1], [0.5, 0.4, 0.3]])
    idx, ok = choose_scales(sim, ent, threshold=0.5)
    assert idx.tolist() == [1, 2] and ok.tolist() == [True, False]


def test_auto_scale_picks_from_the_grid_by_the_rule(tiny_llama):
    prompt = default_interpretation_prompt(tiny_llama.tokenizer)
    v = torch.randn(4, 64)
    grid = [0.5, 2.0, 8.0]
    out = generate_interpretations(
        tiny_llama, v, prompt, k=1, max_new_tokens=3, relevancy=False, scale="auto", auto_scales=grid,
        self_similarity_threshold=0.1,
    )  # fmt: skip
    sim, ent = scale_criteria(tiny_llama, v, prompt, 1, grid)
    idx, ok = choose_scales(sim, ent, 0.1)
    assert out.scales == [grid[i] for i in idx.tolist()]
    assert out.auto_scale_ok == ok.tolist()
    torch.testing.assert_close(torch.tensor(out.self_similarity), sim[torch.arange(4), idx])
    manual = generate_interpretations(
        tiny_llama, v * torch.tensor(out.scales)[:, None], prompt, k=1, max_new_tokens=3, relevancy=False
    )
    assert manual.token_ids == out.token_ids


@pytest.mark.parametrize(
    "options, match",
    [({"scale": "big"}, "scale"), ({"scale": float("inf")}, "scale"), ({"auto_scales": [0, 1]}, "auto_scales"),
     ({"repetition_penalty": 0}, "repetition_penalty"), ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size"),
     ({"norm_match": "yes"}, "norm_match"), ({"relevancy": "no"}, "relevancy")],
)  # fmt: skip
def test_bad_lever_values(tiny_llama, options, match):
    with pytest.raises(InvalidArgumentError, match=match):
        generate_interpretations(tiny_llama, torch.randn(1, 64), k=1, max_new_tokens=2, **options)
