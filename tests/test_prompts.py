import pytest

from selfie_tl.errors import PromptError
from selfie_tl.prompts import (
    PLACEHOLDER,
    InterpretationPrompt,
    default_interpretation_prompt,
    tokenize,
)
from selfie_tl.testing import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_positions_are_where_the_tokenized_length_grows(tok):
    parts = ("ab", 0, "cd", 0, 0, "ef")
    prompt = InterpretationPrompt(tok, parts)
    # Rebuild by hand: each placeholder appends "_ " and owns the new token indices.
    text, expected = "", []
    for part in parts:
        if part == PLACEHOLDER:
            before = len(tok(text).input_ids)
            text += "_ "
            expected += list(range(before, len(tok(text).input_ids)))
        else:
            text += part
    assert prompt.text == text == "ab_ cd_ _ ef"
    assert prompt.placeholder_positions == expected == [2, 3, 6, 7, 8, 9]
    assert prompt.input_ids.tolist() == tok(text).input_ids
    assert len(prompt) == len(prompt.input_ids)


def test_placeholder_tokens_are_the_placeholder_text(tok):
    prompt = InterpretationPrompt(tok, ("x", 0, 0, "y"))
    decoded = "".join(tok.decode([int(prompt.input_ids[i])]) for i in prompt.placeholder_positions)
    assert decoded == "_ _ "


def test_leading_placeholder(tok):
    assert InterpretationPrompt(tok, (0, "tail")).placeholder_positions == [0, 1]


@pytest.mark.parametrize(
    "parts, match",
    [
        (("no slots here",), "no placeholder"),
        ((), "non-empty"),
        (("a", 1, "b"), "only strings and the placeholder 0"),
        (("a", True, "b"), "only strings and the placeholder 0"),
        (("a", 0.0), "only strings"),
        ("a string", "non-empty tuple"),
    ],
)
def test_bad_parts(tok, parts, match):
    with pytest.raises(PromptError, match=match):
        InterpretationPrompt(tok, parts)


def test_from_chat_uses_the_template(tok):
    prompt = InterpretationPrompt.from_chat(tok, user_before="Say: ", n_placeholders=3, assistant_prefix="It means")
    assert prompt.text == "<|im_start|>user\nSay: _ _ _ <|im_end|>\n<|im_start|>assistant\nIt means"
    assert len(prompt.placeholder_positions) == 6  # byte tokenizer: "_" and " " per slot


def test_from_chat_with_system(tok):
    prompt = InterpretationPrompt.from_chat(tok, system="Be brief.", n_placeholders=1)
    assert prompt.text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n_ ")


def test_from_chat_errors(tok):
    with pytest.raises(PromptError, match="n_placeholders"):
        InterpretationPrompt.from_chat(tok, n_placeholders=0)
    plain = tiny_tokenizer()
    plain.chat_template = None
    with pytest.raises(PromptError, match="no chat template"):
        InterpretationPrompt.from_chat(plain)


def test_default_prompt_is_the_papers_summary_prompt(tok):
    prompt = default_interpretation_prompt(tok)
    assert prompt.parts == (
        "<|im_start|>user\n", 0, 0, 0, 0, 0,
        "<|im_end|>\n<|im_start|>assistant\nSure, I will summarize the message:",
    )  # fmt: skip


def test_tokenize_rejects_empty(tok):
    with pytest.raises(PromptError, match="non-empty"):
        tokenize(tok, "")
    assert tokenize(tok, "hi").tolist() == [104, 105]
