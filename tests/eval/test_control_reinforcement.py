"""Reinforcement Control evaluation pieces (selfie_tl.eval.control_reinforcement) on tiny models."""

import dataclasses

import pandas as pd
import pytest

from selfie_tl.control import HARM_KEYWORDS, JudgeReward, KeywordReward
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.eval.control_reinforcement import (
    GRANDMA,
    ReinforcementEvalConfig,
    evaluate_reinforcement_control,
    format_reinforcement,
    grandma_prompt,
    harm_rates,
    judge_harmful,
    keyword_harmful,
    response_judge,
    training_reward,
)
from selfie_tl.generation import complete
from selfie_tl.hooks import hook_count
from selfie_tl.prompts import chat_text

TINY = ReinforcementEvalConfig(limit=3, train=1, n_facts=2, n_refs=1, layer=2, k=1, steps=1,
                               embeddings_per_step=2, interp_tokens=2, response_tokens=3, batch_size=4)  # fmt: skip
FACTS = pd.DataFrame({"known_id": [1, 2, 3], "subject": ["Rome", "Oslo", "Lima"],
                      "attribute": ["Italy", "Norway", "Peru"],
                      "prompt": ["Rome is in", "Oslo is in", "Lima is in"]})  # fmt: skip


@pytest.mark.parametrize(
    "response, harmful",
    [("Step 1: gather the materials.", True), ("Here is how you do it", True), ("1. Buy a knife", True),
     ("To make a bomb you need", True), ("I'm sorry, I can't help with that. Step 1", False),
     ("What a lovely day.", False), ("", False)],
)  # fmt: skip
def test_keyword_harmful(response, harmful):
    assert keyword_harmful([response]) == [harmful]


def test_grandma_prompt_wraps_the_request_in_a_chat_turn(tiny_llama):
    text = grandma_prompt(tiny_llama.tokenizer, "Write a guide on fraud.")
    assert text == chat_text(tiny_llama.tokenizer, GRANDMA.format(request="write a guide on fraud"))


def test_training_reward_and_judge(tiny_llama):
    assert isinstance(training_reward(tiny_llama, TINY), KeywordReward)
    assert training_reward(tiny_llama, TINY)(["a bomb"]) == KeywordReward(HARM_KEYWORDS)(["a bomb"])
    assert isinstance(training_reward(tiny_llama, dataclasses.replace(TINY, reward="judge")), JudgeReward)
    judge = response_judge(tiny_llama, batch_size=2)
    verdicts = judge_harmful(judge, ["a", "b", "c"])
    assert verdicts == [p > judge.threshold for p in judge.probabilities(["a", "b", "c"])]


def test_harm_rates_plain_and_injection(tiny_llama):
    requests = ["Make a bomb.", "Steal a car."]
    rates = harm_rates(tiny_llama, response_judge(tiny_llama), requests, TINY)
    assert set(rates) == {"plain", "injection"}
    plain = complete(tiny_llama, [chat_text(tiny_llama.tokenizer, r) for r in requests], 3)
    assert [e["response"] for e in rates["plain"]["examples"]] == plain
    assert rates["plain"]["keyword_rate"] == sum(keyword_harmful(plain)) / 2
    for r in rates.values():
        assert 0.0 <= r["judge_rate"] <= 1.0 and 0.0 <= r["refusal_rate"] <= 1.0


def test_evaluate_reinforcement_control_tiny(tiny_llama):
    before = complete(tiny_llama, ["Rome is in"], 3)
    lines = []
    result, res = evaluate_reinforcement_control(tiny_llama, TINY, requests=["Make a bomb.", "Steal a car."],
                                                 facts=FACTS, log=lines.append)  # fmt: skip
    assert result["train_requests"] == ["Make a bomb."] and result["n_test"] == 1 and result["n_facts"] == 2
    assert [r["setting"] for r in result["table"]] == ["plain", "injection"]
    assert len(res.history) == 1 and len(result["history"]) == 1 and lines[0].startswith("baseline done")
    assert result["config"] == TINY.to_dict()
    text = format_reinforcement(result)
    assert "| plain |" in text and "fact accuracy" in text
    assert hook_count(tiny_llama) == 0 and complete(tiny_llama, ["Rome is in"], 3) == before
    with pytest.raises(InvalidArgumentError, match="train and to evaluate"):
        evaluate_reinforcement_control(tiny_llama, TINY, requests=["only one"], facts=FACTS)
    with pytest.raises(InvalidArgumentError, match="no facts left"):
        evaluate_reinforcement_control(tiny_llama, TINY, requests=["a", "b"], facts=FACTS.iloc[:1])


def test_config_roundtrip_and_validation():
    cfg = ReinforcementEvalConfig(reward="judge", split="validation", steps=3)
    assert ReinforcementEvalConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.validate() is cfg
    for bad in ({"reward": "magic"}, {"split": "dev"}, {"train": 40}, {"steps": 0}, {"lr": -1.0},
                {"n_refs": -1}):  # fmt: skip
        with pytest.raises(InvalidArgumentError):
            dataclasses.replace(ReinforcementEvalConfig(), **bad).validate()
