"""tokenizer.py: attaching a tokenizer keeps its own BOS behaviour."""

from __future__ import annotations

from types import SimpleNamespace

from selfie_tl.models import attach_tokenizer
from selfie_tl.models.tokenizer import tokenizer_adds_bos
from selfie_tl.testing import tiny_model, tiny_tokenizer


def test_attach_tokenizer_keeps_the_tokenizers_own_defaults():
    model = attach_tokenizer(tiny_model(), tiny_tokenizer())
    assert model.cfg.tokenizer_prepends_bos is False
    assert model.to_tokens("ab").tolist() == [[97, 98]]
    assert model.to_tokens("ab", prepend_bos=True).tolist() == [[257, 97, 98]]


def test_bos_detection():
    class AddsBos:
        bos_token_id = 7

        def __call__(self, text):
            return SimpleNamespace(input_ids=[7, 1])

    assert tokenizer_adds_bos(AddsBos()) is True
    assert tokenizer_adds_bos(tiny_tokenizer()) is False
