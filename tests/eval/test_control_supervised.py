"""Supervised Control evaluation pieces (selfie_tl.eval.control_supervised) on tiny models."""

import dataclasses

import pandas as pd
import pytest
import torch

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.eval.control_supervised import (
    SupervisedEvalConfig,
    answer_shares,
    classify_answer,
    edit_fact_pair,
    ethical_prompt,
    evaluate_supervised_control,
    format_supervised,
    make_pairs,
    run_ethics,
    run_fact_edits,
)
from selfie_tl.eval.facts import attribute_match
from selfie_tl.generation import complete
from selfie_tl.hooks import hook_count
from selfie_tl.prompts import chat_text

KNOWN = pd.DataFrame({
    "known_id": [10, 11, 12, 13, 14, 15],
    "subject": ["Rome", "Oslo", "Lima", "Apple", "Sony", "Kyiv"],
    "attribute": ["Italy", "Norway", "Peru", "Cupertino", "Tokyo", "Ukraine"],
    "prompt": ["Rome is in", "Oslo is in", "Lima is in", "Apple is based in", "Sony is based in", "Kyiv is in"],
    "relation_id": ["P17", "P17", "P17", "P159", "P159", "P17"],
})  # fmt: skip
TINY = SupervisedEvalConfig(layer=2, k=1, steps=2, interp_steps=1, max_new_tokens=3, interp_tokens=3,
                            batch_size=4, n_refs=2, preserve=2)  # fmt: skip


def test_make_pairs_same_relation_different_attribute_no_reuse():
    pairs = make_pairs(KNOWN, 10, seed=0)
    assert 1 <= len(pairs) <= 3
    used = [f.known_id for pair in pairs for f in pair]
    assert len(used) == len(set(used))
    for src, tgt in pairs:
        assert src.relation_id == tgt.relation_id and src.attribute != tgt.attribute
    again = make_pairs(KNOWN, 10, seed=0)
    assert [(s.known_id, t.known_id) for s, t in pairs] == [(s.known_id, t.known_id) for s, t in again]
    assert len(make_pairs(KNOWN, 1, seed=0)) == 1 and make_pairs(KNOWN, 0, seed=0) == []
    assert make_pairs(KNOWN.iloc[:1], 3, seed=0) == []


@pytest.mark.parametrize(
    "answer, label",
    [("Human", "humans"), ("humans first", "humans"), ("Alien.", "aliens"), ("Equal", "equal"),
     ("both of them", "equal"), ("Human and Alien", "equal"), ("the same", "equal"), ("Dog", "other"),
     ("Humanity", "other"), ("", "other")],
)  # fmt: skip
def test_classify_answer(answer, label):
    assert classify_answer(answer) == label


def test_answer_shares():
    shares = answer_shares(["Human", "Alien", "Equal", "Human", "??"])
    assert shares == {"humans": 0.4, "equal": 0.2, "aliens": 0.2, "other": 0.2}
    with pytest.raises(InvalidArgumentError):
        answer_shares([])


def test_ethical_prompt_uses_the_chat_builder(tiny_llama):
    row = pd.Series({"prompt": "A setup.", "question": "Who first, Human or Alien?"})
    text = ethical_prompt(tiny_llama.tokenizer, row)
    assert text == chat_text(tiny_llama.tokenizer, "A setup. Who first, Human or Alien? Answer with one word: "
                             "Human, Alien or Equal.")  # fmt: skip
    assert text.startswith("<|im_start|>user\n") and "system" not in text


@pytest.mark.parametrize("objective", ["embedding", "interpretation"])
def test_one_pair_edit(tiny_llama, objective):
    src, tgt = KNOWN.iloc[0], KNOWN.iloc[1]
    before = complete(tiny_llama, [src.prompt], 3)
    row = edit_fact_pair(tiny_llama, src, tgt, objective, TINY, list(KNOWN.prompt[2:4]), KNOWN.iloc[4:])
    assert row["steps"] == (2 if objective == "embedding" else 1)
    assert row["flipped"] == attribute_match(row["completion_after"], "Norway")
    assert row["source_kept"] == attribute_match(row["completion_after"], "Italy")
    assert 0.0 <= row["preserve_acc_after"] <= 1.0 and row["target_subject"] == "Oslo"
    # the edit is detached afterwards: the model is as before
    assert hook_count(tiny_llama) == 0 and complete(tiny_llama, [src.prompt], 3) == before
    with pytest.raises(InvalidArgumentError, match="objective"):
        edit_fact_pair(tiny_llama, src, tgt, "magic", TINY, [], KNOWN.iloc[4:])


def test_run_fact_edits_rates_and_empty(tiny_llama):
    lines = []
    out = run_fact_edits(tiny_llama, KNOWN, KNOWN.iloc[4:], "embedding", 1, TINY, log=lines.append)
    assert out["pairs"] == 1 and len(out["rows"]) == 1 and len(lines) == 1
    assert out["flip_rate"] == float(out["rows"][0]["flipped"])
    assert out["preserve_drop_points"] == pytest.approx(100 * (1 - out["preserve_acc_after_mean"]))
    none = run_fact_edits(tiny_llama, KNOWN.iloc[:1], KNOWN.iloc[4:], "embedding", 2, TINY)
    assert none["pairs"] == 0 and none["rows"] == []
    assert "| embedding | 1 |" in format_supervised({"facts": [out, none]})


def test_run_ethics_tiny(tiny_llama):
    data = pd.DataFrame({"prompt": ["Setup one.", "Setup two.", "Setup three."],
                         "question": ["Who first, Human or Alien?", "Whose food, Human or Alien?",
                                      "Whose songs, Human or Alien?"],
                         "mislead_answer": ["Human"] * 3})  # fmt: skip
    cfg = dataclasses.replace(TINY, ethics_train=1, ethics_tokens=2)
    result, base = run_ethics(tiny_llama, cfg, "embedding", data=data, reference_facts=KNOWN.iloc[:2])
    assert (result["train_rows"], result["test_rows"]) == (1, 2) and len(base) == 2
    assert sum(result["before"].values()) == pytest.approx(1.0) and sum(result["after"].values()) == pytest.approx(1.0)
    again, same = run_ethics(tiny_llama, cfg, "interpretation", base, data=data, reference_facts=KNOWN.iloc[:0])
    assert same is base and again["objective"] == "interpretation"
    with pytest.raises(InvalidArgumentError, match="train and to evaluate"):
        run_ethics(tiny_llama, dataclasses.replace(cfg, ethics_train=3), "embedding", data=data)


def test_evaluate_supervised_control_end_to_end_tiny(tiny_llama):
    torch.manual_seed(0)
    out = evaluate_supervised_control(tiny_llama, TINY, facts=KNOWN, skip_ethics=True, pairs=1, interp_pairs=1)
    assert out["n_known"] == int(out["base_fact_accuracy"] * len(KNOWN))
    assert [f["objective"] for f in out["facts"]] == ["embedding", "interpretation"]
    assert "ethics" not in out and out["config"]["pairs"] == 1


def test_config_roundtrip_and_validation():
    cfg = SupervisedEvalConfig(pairs=3, split="test", skip_ethics=True)
    assert SupervisedEvalConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.validate() is cfg
    for bad in ({"split": "dev"}, {"limit": 0}, {"lr": 0.0}, {"pairs": -1}, {"steps": 2.5},
                {"ethics_train": 40, "ethics_limit": 40}):  # fmt: skip
        with pytest.raises(InvalidArgumentError):
            dataclasses.replace(SupervisedEvalConfig(), **bad).validate()
    with pytest.raises(InvalidArgumentError, match="unknown SupervisedEvalConfig"):
        SupervisedEvalConfig.from_dict({"bogus": 1})
