"""Activation patching of components."""

from __future__ import annotations

import pytest
import torch

from selfie_tl.circuits import component_writes, list_components, logit_diff, patching_effects, patching_hooks
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.hooks import hook_count

CLEAN, CORRUPT = "The cat sat", "The dog sat"


@torch.no_grad()
def logits_of(model, prompt, hooks=()):
    ids = torch.tensor(model.tokenizer(prompt).input_ids)[None]
    with model.hooks(fwd_hooks=list(hooks)):
        return model(ids)


def test_patching_a_head_copies_its_write_only(tiny):
    hooks = patching_hooks(tiny, CLEAN, ["L1H2"])
    with tiny.hooks(fwd_hooks=hooks):
        patched = component_writes(tiny, CORRUPT, 1, "head", -1)
    clean = component_writes(tiny, CLEAN, 1, "head", -1)
    corrupt = component_writes(tiny, CORRUPT, 1, "head", -1)
    torch.testing.assert_close(patched.vectors[2], clean.vectors[2])
    torch.testing.assert_close(patched.vectors[[0, 1, 3]], corrupt.vectors[[0, 1, 3]])
    assert hook_count(tiny) == 0


def test_patching_every_head_equals_patching_the_attention_output(tiny):
    metric = logit_diff(tiny, "a", "b")
    heads = [c.label for c in list_components(tiny, 1, "head")]
    by_heads = metric(logits_of(tiny, CORRUPT, patching_hooks(tiny, CLEAN, heads)))
    by_attn = metric(logits_of(tiny, CORRUPT, patching_hooks(tiny, CLEAN, ["L1 attn"])))
    torch.testing.assert_close(by_heads, by_attn, atol=1e-4, rtol=0)


@pytest.mark.parametrize("direction", ["denoise", "noise"])
def test_patching_effects_batched_equals_one_at_a_time(tiny, direction):
    metric = logit_diff(tiny, "a", "b")
    comps = ["embed", *[c.label for c in list_components(tiny, [0, 2], ["head", "mlp"])], "L1N5"]
    df = patching_effects(tiny, CLEAN, CORRUPT, metric, comps, direction=direction, batch_size=3)
    assert df["component"].tolist() == comps
    base, source = (CORRUPT, CLEAN) if direction == "denoise" else (CLEAN, CORRUPT)
    for row in df.itertuples():
        one = float(metric(logits_of(tiny, base, patching_hooks(tiny, source, [row.component])))[0])
        assert row.metric == pytest.approx(one, abs=1e-4)
    m_clean, m_corrupt = df.attrs["clean_metric"], df.attrs["corrupted_metric"]
    assert m_clean == pytest.approx(float(metric(logits_of(tiny, CLEAN))[0]), abs=1e-5)
    # patching the whole embedding turns one run into the other
    assert df.loc[0, "effect"] == pytest.approx(1.0, abs=1e-4)
    assert df.loc[0, "metric"] == pytest.approx(m_clean if direction == "denoise" else m_corrupt, abs=1e-4)
    assert hook_count(tiny) == 0


def test_patching_at_chosen_positions(tiny_llama):
    metric = logit_diff(tiny_llama, "a", "b")
    # only the last position: the embedding there changes nothing before it
    df = patching_effects(tiny_llama, "The cat", "The dog!!", metric, ["embed"], positions=[3])
    assert df.loc[0, "effect"] == pytest.approx(0.0, abs=1e-6)  # position 3 is " " in both
    with pytest.raises(InvalidArgumentError, match="same length"):
        patching_effects(tiny_llama, "The cat", "The dog!!", metric, ["embed"])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: logit_diff(m, "ab", "c"), "2 tokens"),
        (lambda m: patching_hooks(m, CLEAN, ["L1H2 src0"]), "cannot be patched"),
        (lambda m: patching_hooks(m, CLEAN, ["L7H0"]), "block index 7"),
        (lambda m: patching_hooks(m, CLEAN, []), "no components"),
        (lambda m: patching_effects(m, CLEAN, CORRUPT, lambda x: x[:, -1, 0], "L0 MLP", direction="up"),
         "direction"),
    ],
)  # fmt: skip
def test_errors(tiny_llama, call, match):
    with pytest.raises(InvalidArgumentError, match=match):
        call(tiny_llama)
