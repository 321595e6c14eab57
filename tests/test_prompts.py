import pytest

from selfie_tl.errors import PromptError
from selfie_tl.prompts import (
    PLACEHOLDER,
    InterpretationPrompt,
    as_prompt,
    chat_parts,
    chat_text,
    default_interpretation_prompt,
    is_chatml,
    prompt_from_spec,
    spec_with_placeholders,
    tokenize,
)
from selfie_tl.testing import SPECIAL_TOKENS, tiny_bpe_tokenizer, tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _reference_rule(tok, parts):
    """The published code's rule, written out independently of selfie_tl."""
    text, expected = "", []
    for part in parts:
        if part == PLACEHOLDER:
            before = len(tok(text).input_ids) if text else 0
            text += "_ "
            expected += list(range(before, len(tok(text).input_ids)))
        else:
            text += part
    return text, expected


def test_reference_rule_is_where_the_tokenized_length_grows(tok):
    parts = ("ab", 0, "cd", 0, 0, "ef")
    prompt = InterpretationPrompt(tok, parts, position_rule="reference")
    text, expected = _reference_rule(tok, parts)
    assert prompt.text == text == "ab_ cd_ _ ef"
    assert prompt.placeholder_positions == expected == [2, 3, 6, 7, 8, 9]
    assert prompt.input_ids.tolist() == tok(text).input_ids
    assert len(prompt) == len(prompt.input_ids)


# Prompts users write: chat and plain; placeholder after a space, before punctuation, at the
# start, single and repeated.
TABLE = [
    ("The word ", 0, "means"),
    ("Message: ", 0, 0, 0, "\nThe message is about"),
    ("Tell me about ", 0, 0, 0, 0, 0),
    (0, 0, " is"),
    ("x(", 0, ")."),
    ("cat -> cat; ", 0, "->"),
    ("Q:", 0, "?"),
    ("a ", 0, " b ", 0, 0, " c"),
    ("<|im_start|>user\nWhat is ", 0, 0, 0, "?<|im_end|>\n<|im_start|>assistant\nIt is"),
    ("<|im_start|>user\n", 0, 0, 0, 0, 0, "<|im_end|>\n<|im_start|>assistant\nSure, I will summarize the message:"),
]


TOKENIZERS = {"bytes": tiny_tokenizer, "bpe": tiny_bpe_tokenizer}


@pytest.fixture(scope="module", params=list(TOKENIZERS))
def any_tok(request):
    return TOKENIZERS[request.param]()


# ChatML text only with the tokenizer that has ChatML tokens
CASES = [(name, parts) for name in TOKENIZERS for parts in TABLE if name == "bytes" or "<|im_start|>" not in str(parts[0])]


@pytest.mark.parametrize("tok_name, parts", CASES, ids=lambda p: repr(p)[:40])
def test_offsets_rule_puts_every_vector_on_placeholder_text(tok_name, parts):
    any_tok = TOKENIZERS[tok_name]()
    prompt = InterpretationPrompt(any_tok, parts)
    decoded = [any_tok.decode([i]) for i in prompt.input_ids.tolist()]
    chosen = [decoded[i] for i in prompt.placeholder_positions]
    n_slots = sum(1 for p in parts if p == PLACEHOLDER)
    # every "_" of the prompt is written over, and nothing that holds none but whitespace
    assert "".join(chosen).count("_") == n_slots
    others = [t for i, t in enumerate(decoded) if i not in prompt.placeholder_positions]
    assert not any("_" in t for t in others if t not in SPECIAL_TOKENS)
    for token in chosen:
        assert token.strip() in {"_", "(_"} or (token.strip() == "" and token == " ")


def test_offsets_rule_on_gpt2_style_merges():
    tok = tiny_bpe_tokenizer()
    # " _" is one token: the published rule lands one token off, the offsets rule does not
    cases = {
        ("The word ", 0, "means"): ([2], [3]),
        ("Message: ", 0, 0, 0, "\nThe"): ([2, 3, 4, 5], [3, 4, 5]),
        ("Tell me about ", 0, 0, 0, 0, 0): ([3, 4, 5, 6, 7, 8], [4, 5, 6, 7, 8]),
        ("x(", 0, ")."): ([1, 2], [2]),
    }
    for parts, (offsets, reference) in cases.items():
        assert InterpretationPrompt(tok, parts).placeholder_positions == offsets, parts
        got = InterpretationPrompt(tok, parts, position_rule="reference").placeholder_positions
        assert got == reference == _reference_rule(tok, parts)[1], parts


def test_rules_agree_on_chat_default_prompts_only(any_tok):
    parts = default_interpretation_prompt(any_tok).parts
    offsets = InterpretationPrompt(any_tok, parts).placeholder_positions
    reference = InterpretationPrompt(any_tok, parts, position_rule="reference").placeholder_positions
    if is_chatml(any_tok):
        assert offsets == reference
    else:  # "Message: _ _ ...": the published rule misses the first " _"
        assert parts[0] == "Message: " and offsets[0] == reference[0] - 1


def test_bad_position_rule(tok):
    with pytest.raises(PromptError, match="position_rule must be one of"):
        InterpretationPrompt(tok, ("a", 0), position_rule="nearest")


def test_tokenizer_without_offsets_falls_back_to_decoding(tok):
    class NoOffsets:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, text, return_offsets_mapping=False):
            if return_offsets_mapping:
                raise NotImplementedError
            return self.inner(text)

        def decode(self, ids):
            return self.inner.decode(ids)

    bpe = tiny_bpe_tokenizer()
    parts = ("Tell me about ", 0, 0, "!")
    assert (
        InterpretationPrompt(NoOffsets(bpe), parts).placeholder_positions
        == InterpretationPrompt(bpe, parts).placeholder_positions
    )


def test_as_prompt_coerces_every_form(tok):
    base = InterpretationPrompt(tok, ("Say ", 0, "!"))
    assert as_prompt(tok, base) is base
    assert as_prompt(tok, ("Say ", 0, "!")) == base
    assert as_prompt(tok, ["Say ", 0, "!"]) == base
    assert as_prompt(tok, "Say {}!") == base
    assert as_prompt(tok, None) == default_interpretation_prompt(tok)
    with pytest.raises(PromptError, match="needs at least one"):
        as_prompt(tok, "no slot")
    with pytest.raises(PromptError, match="got int"):
        as_prompt(tok, 3)


def test_chat_text_and_parts_share_one_shape(tok):
    assert chat_text(tok, "hi", "yo") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo"
    plain = tiny_bpe_tokenizer()
    assert chat_text(plain, "hi", "yo") == "User: hi\nAssistant: yo"
    assert chat_parts(plain, "Who is ", "?", "It is", 2) == ("User: Who is ", 0, 0, "?\nAssistant: It is")
    with pytest.raises(PromptError, match="no chat template"):
        chat_text(plain, "hi", plain_fallback=False)


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
    with pytest.raises(PromptError, match="no chat template"):
        InterpretationPrompt.from_chat(tiny_bpe_tokenizer())
    fallback = InterpretationPrompt.from_chat(tiny_bpe_tokenizer(), "Who is ", "?", "It is", 2, plain_fallback=True)
    assert fallback.text == "User: Who is _ _ ?\nAssistant: It is"


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


def test_filled_spells_the_entity_where_the_placeholders_were():
    from selfie_tl.prompts import InterpretationPrompt
    from selfie_tl.testing import tiny_tokenizer

    tok = tiny_tokenizer()
    assert InterpretationPrompt(tok, ("Tell me about ", 0, 0, 0, "?")).filled("Rome") == "Tell me about Rome?"
    assert InterpretationPrompt(tok, ("A\n\n", 0, 0, "is")).filled("Rome") == "A\n\nRome is"
    assert InterpretationPrompt(tok, (0, "x")).filled("Rome") == "Rome x"
    with pytest.raises(PromptError):
        InterpretationPrompt(tok, (0, "x")).filled(" ")


@pytest.mark.parametrize("spec", [{"chat": 1}, {"parts": "x"}, {"text": "a"}, "a _", {"chat": {}, "parts": []}])
def test_prompt_from_spec_rejects(spec):
    from selfie_tl.prompts import prompt_from_spec
    from selfie_tl.testing import tiny_tokenizer

    with pytest.raises(PromptError, match="prompt spec"):
        prompt_from_spec(tiny_tokenizer(), spec)


def test_spec_with_placeholders_resizes_every_run(tok):
    parts = {"parts": ["About ", 0, 0, "? It is", 0, "is"]}
    resized = spec_with_placeholders(parts, 3)
    assert resized == {"parts": ["About ", 0, 0, 0, "? It is", 0, 0, 0, "is"]}
    assert parts == {"parts": ["About ", 0, 0, "? It is", 0, "is"]}  # the input is left as it was
    prompt = prompt_from_spec(tok, resized)
    assert prompt.text == "About _ _ _ ? It is_ _ _ is" and prompt.parts.count(PLACEHOLDER) == 6
    chat = {"chat": {"user_before": "Say ", "n_placeholders": 5}}
    assert prompt_from_spec(tok, spec_with_placeholders(chat, 2)).parts.count(PLACEHOLDER) == 2
    assert chat["chat"]["n_placeholders"] == 5


@pytest.mark.parametrize("n", [0, -1, True, 2.0, "3", None])
def test_spec_with_placeholders_rejects_bad_counts(n):
    with pytest.raises(PromptError, match=f"n_placeholders must be an int >= 1, got {n!r}"):
        spec_with_placeholders({"parts": [0]}, n)


@pytest.mark.parametrize("spec", [None, {"parts": [0], "chat": {}}, {"text": "x"}, "parts"])
def test_spec_with_placeholders_rejects_other_specs(spec):
    with pytest.raises(PromptError, match="chat.*parts"):
        spec_with_placeholders(spec, 2)
