"""SelfIE on component writes: columns, scaling, patched runs, no hooks left behind."""

from __future__ import annotations

import pytest
import torch

import selfie_tl
from selfie_tl.circuits import (
    COMPONENT_COLUMNS,
    compare_components,
    component_writes,
    interpret_components,
    patching_hooks,
)
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.hooks import hook_count
from selfie_tl.interop import rescale
from selfie_tl.interpret import RESULT_COLUMNS
from selfie_tl.prompts import default_interpretation_prompt
from selfie_tl.scaling import placeholder_norm

PROMPT = "The cat sat"
OPTS = {"k": 1, "max_new_tokens": 4}


def test_columns_and_rows(tiny):
    df = interpret_components(tiny, PROMPT, [0, 2], ["head", "mlp"], -1, **OPTS)
    assert list(df.columns) == RESULT_COLUMNS + COMPONENT_COLUMNS
    assert df["component"].tolist()[:5] == ["L0H0", "L0H1", "L0H2", "L0H3", "L0 MLP"]
    assert df["layer"].tolist() == [0] * 5 + [2] * 5
    assert set(df["token"]) == {10} and set(df["token_decoded"]) == {"t"}
    assert df["kind"].tolist()[3:5] == ["head", "mlp"]
    writes = component_writes(tiny, PROMPT, [0, 2], ["head", "mlp"], -1)
    assert df["write_norm"].tolist() == pytest.approx(writes.norms.tolist())
    assert df.attrs["config"]["norm_match"] is True and df.attrs["scale_mode"] == "norm"
    assert df.attrs["target_norm"] == pytest.approx(
        placeholder_norm(tiny, default_interpretation_prompt(tiny.tokenizer), 1)
    )
    assert all(isinstance(r, list) for r in df["relevancy"])
    assert hook_count(tiny) == 0


def test_norm_scale_injects_each_write_at_the_placeholder_norm(tiny_llama):
    df = interpret_components(tiny_llama, PROMPT, 1, "head", **OPTS)
    writes = component_writes(tiny_llama, PROMPT, 1, "head")
    # the same texts as interpreting the writes rescaled by hand to the target norm
    by_hand = selfie_tl.interpret_vectors(tiny_llama, rescale(writes.vectors, df.attrs["target_norm"]), **OPTS)
    assert df["interpretation"].tolist() == by_hand
    assert df["scale"].tolist() == [1.0] * 4


def test_number_scale_injects_the_raw_write(tiny_llama):
    df = interpret_components(tiny_llama, PROMPT, 1, "mlp", scale=3.0, relevancy=False, **OPTS)
    writes = component_writes(tiny_llama, PROMPT, 1, "mlp")
    assert df.attrs["config"]["norm_match"] is False and df.attrs["target_norm"] is None
    assert df["interpretation"].tolist() == selfie_tl.interpret_vectors(tiny_llama, 3.0 * writes.vectors, **OPTS)
    assert df["relevancy"].isna().all()


def test_auto_scale_adds_its_columns(tiny_llama):
    df = interpret_components(tiny_llama, PROMPT, 1, "head", heads=[0, 1], scale="auto", auto_scales=[0.5, 2.0],
                              **OPTS)  # fmt: skip
    assert {"self_similarity", "entropy", "auto_scale_ok"} <= set(df.columns)
    assert set(df["scale"]) <= {0.5, 2.0} and df.attrs["config"]["norm_match"] is True


def test_cache_is_read_instead_of_running_again(tiny_gpt2):
    ids = torch.tensor(tiny_gpt2.tokenizer(PROMPT).input_ids)
    _, cache = tiny_gpt2.run_with_cache(ids[None])
    from_cache = interpret_components(tiny_gpt2, ids, 1, ["neuron", "embed"], neurons=[4], cache=cache, **OPTS)
    from_text = interpret_components(tiny_gpt2, PROMPT, 1, ["neuron", "embed"], neurons=[4], **OPTS)
    assert from_cache["component"].tolist() == ["embed", "L1N4"]
    assert from_cache["layer"].tolist() == [-1, 1]
    assert from_cache["interpretation"].tolist() == from_text["interpretation"].tolist()
    assert from_cache["prompt"].iloc[0] == PROMPT


def test_no_hook_left_after_an_exception(tiny_llama):
    def boom(x, hook):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        interpret_components(tiny_llama, PROMPT, 1, "head", fwd_hooks=[("blocks.2.hook_resid_pre", boom)], **OPTS)
    assert hook_count(tiny_llama) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": "big"}, "scale must be"),
        ({"scale": True}, "scale must be"),
        ({"scale": "norm", "norm_match": False}, "contradicts"),
        ({"k": 9}, "injection layer"),
    ],
)
def test_bad_settings(tiny_llama, kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        interpret_components(tiny_llama, PROMPT, 1, "head", max_new_tokens=2, **{"k": 1, **kwargs})
    assert hook_count(tiny_llama) == 0


def test_blank_prompt(tiny_llama):
    with pytest.raises(InvalidArgumentError, match="blank"):
        interpret_components(tiny_llama, "  ", 1, "head")


def test_compare_two_prompts(tiny):
    df = compare_components(tiny, PROMPT, "The dog", 2, ["head", "mlp"], **OPTS)
    assert df["component"].tolist() == ["L2H0", "L2H1", "L2H2", "L2H3", "L2 MLP"]
    clean = interpret_components(tiny, PROMPT, 2, ["head", "mlp"], **OPTS)
    other = interpret_components(tiny, "The dog", 2, ["head", "mlp"], **OPTS)
    assert df["clean_interpretation"].tolist() == clean["interpretation"].tolist()
    assert df["corrupted_interpretation"].tolist() == other["interpretation"].tolist()
    assert df["corrupted_write_norm"].tolist() == pytest.approx(other["write_norm"].tolist())
    assert df["clean_token_decoded"].iloc[0] == "t" and df["corrupted_token_decoded"].iloc[0] == "g"
    assert df.attrs["prompts"] == {"clean": PROMPT, "corrupted": "The dog"}
    assert hook_count(tiny) == 0


def test_compare_with_a_patch(tiny_llama):
    # the clean prompt again, with its embedding patched from another prompt: the second
    # run's writes are that prompt's; the interpretation itself is not patched
    patch = patching_hooks(tiny_llama, "The dog sat", ["embed"])
    df = compare_components(tiny_llama, PROMPT, None, 1, "head", patch=patch, names=("a", "b"), **OPTS)
    other = compare_components(tiny_llama, PROMPT, "The dog sat", 1, "head", names=("a", "b"), **OPTS)
    assert df["b_interpretation"].tolist() == other["b_interpretation"].tolist()
    assert df["b_write_norm"].tolist() == pytest.approx(other["b_write_norm"].tolist())
    same = compare_components(tiny_llama, PROMPT, None, 1, "head", **OPTS)
    assert same["cosine"].tolist() == pytest.approx([1.0] * 4)
    assert (same["clean_interpretation"] == same["corrupted_interpretation"]).all()
    assert hook_count(tiny_llama) == 0
    with pytest.raises(InvalidArgumentError, match="names"):
        compare_components(tiny_llama, PROMPT, None, 1, "head", names=("x", "x"))


def test_explicit_components(tiny_llama):
    df = interpret_components(tiny_llama, PROMPT, None, components=["L2H1", "L0 MLP"], **OPTS)
    assert df["component"].tolist() == ["L2H1", "L0 MLP"] and df["layer"].tolist() == [2, 0]
    grid = interpret_components(tiny_llama, PROMPT, [0, 2], ["head", "mlp"], **OPTS)
    expect = grid.set_index("component").loc[["L2H1", "L0 MLP"], "interpretation"].tolist()
    assert df["interpretation"].tolist() == expect
