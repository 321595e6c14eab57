"""Tiny randomly initialised models for fast tests and examples (no model files needed).

Two shapes cover the code paths that matter:

* ``"gpt2"``: learned positional embeddings, LayerNorm, plain MLP, multi-head attention;
* ``"llama"``: rotary embeddings, RMSNorm, gated MLP, grouped-query attention.

Both use a byte-level tokenizer (one token per byte, so decoding is exact) with ChatML
special tokens and a chat template, so every prompt helper works on them.
"""

from __future__ import annotations

from typing import Literal

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from selfie_tl.models import attach_tokenizer

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer():
    """A byte-level tokenizer: ids 0-255 are bytes, then ``<|endoftext|>``, ``<|im_start|>``,
    ``<|im_end|>`` (ids 256-258). Adds no BOS, like SmolLM2's.

    Example:
        >>> tok = tiny_tokenizer()
        >>> tok.decode(tok("héllo").input_ids)
        'héllo'
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_to_unicode = pre_tokenizers.ByteLevel.alphabet()
    # ByteLevel's alphabet is a set; order it by the byte each symbol stands for.
    symbols = _bytes_to_unicode()
    assert set(symbols) == set(byte_to_unicode)
    vocab = {sym: i for i, sym in enumerate(symbols)}
    for j, tok in enumerate(SPECIAL_TOKENS):
        vocab[tok] = 256 + j
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
        additional_special_tokens=SPECIAL_TOKENS,
    )
    tokenizer.chat_template = _CHAT_TEMPLATE
    return tokenizer


def tiny_bpe_tokenizer():
    """A GPT-2-style byte-level BPE tokenizer with a few merges, for placeholder tests.

    Pre-tokenizes like GPT-2 (words keep their leading space) and merges a space into a
    following ``_`` (``" _"`` is one token) and ``"("`` into ``"_"``, the cases where
    placeholder positions are easy to get wrong. No chat format, no BOS.

    Example:
        >>> tok = tiny_bpe_tokenizer()
        >>> [tok.decode([i]) for i in tok("The word _ means").input_ids]
        ['The', ' word', ' _', ' means']
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    symbols = _bytes_to_unicode()
    vocab = {sym: i for i, sym in enumerate(symbols)}
    space = symbols[ord(" ")]
    words = ["The", "word", "means", "Tell", "me", "about", "Message", "message", "is"]
    merges: list[tuple[str, str]] = [(space, "_"), ("(", "_")]
    for word in words:
        merges += [(word[: end - 1], word[end - 1]) for end in range(2, len(word) + 1)]
        merges.append((space, word))
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    merges = list(dict.fromkeys(merges))
    vocab["<|endoftext|>"] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


def _bytes_to_unicode() -> list[str]:
    # GPT-2's reversible byte -> printable-unicode table, listed in byte order.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    mapping: dict[int, int] = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = 256 + extra
            extra += 1
    return [chr(mapping[b]) for b in range(256)]


def tiny_model(
    arch: Literal["gpt2", "llama"] = "llama",
    *,
    n_layers: int = 3,
    d_model: int = 64,
    seed: int = 0,
) -> HookedTransformer:
    """A randomly initialised HookedTransformer with :func:`tiny_tokenizer`.

    Args:
        arch: ``"llama"`` (rotary, RMSNorm, gated MLP, grouped-query attention) or
            ``"gpt2"`` (learned positions, LayerNorm, plain MLP).
        n_layers: number of blocks.
        d_model: residual width (a multiple of 16).
        seed: initialisation seed; the same seed gives the same weights.

    Example:
        >>> model = tiny_model("gpt2", n_layers=2)
        >>> model.cfg.n_layers, model.cfg.d_vocab
        (2, 259)
    """
    common = dict(
        n_layers=n_layers, d_model=d_model, d_head=16, n_heads=d_model // 16, d_mlp=2 * d_model,
        d_vocab=256 + len(SPECIAL_TOKENS), n_ctx=512, seed=seed, default_prepend_bos=False,
        model_name=f"tiny-{arch}", initializer_range=0.2,
    )  # fmt: skip
    if arch == "llama":
        cfg = HookedTransformerConfig(
            **common, act_fn="silu", normalization_type="RMS", positional_embedding_type="rotary",
            rotary_dim=16, gated_mlp=True, n_key_value_heads=max(1, d_model // 32), final_rms=True,
            original_architecture="LlamaForCausalLM",
        )  # fmt: skip
    elif arch == "gpt2":
        cfg = HookedTransformerConfig(**common, act_fn="gelu_new", normalization_type="LN")
    else:
        raise ValueError(f"arch must be 'gpt2' or 'llama', got {arch!r}")
    torch.manual_seed(seed)
    model = HookedTransformer(cfg)
    attach_tokenizer(model, tiny_tokenizer())
    model.eval()
    return model


def wide_model(
    arch: Literal["llama", "gpt2", "gemma2"] = "llama",
    *,
    d_vocab: int = 2500,
    seed: int = 1,
    dtype: torch.dtype = torch.float32,
) -> HookedTransformer:
    """A 2-block random model with a large vocabulary and no tokenizer, for the unembedding's
    fast paths (which take effect only above some thousand columns).

    ``"gemma2"`` is the Llama-like model with a logit soft cap of 30.

    Example:
        >>> model = wide_model("gemma2", d_vocab=3000)
        >>> model.cfg.d_vocab, model.cfg.output_logits_soft_cap
        (3000, 30.0)
    """
    common = {
        "n_layers": 2, "d_model": 64, "d_head": 16, "n_heads": 4, "d_mlp": 128, "d_vocab": d_vocab, "n_ctx": 64,
        "seed": seed, "default_prepend_bos": False, "initializer_range": 0.2, "dtype": dtype,
    }  # fmt: skip
    if arch == "gpt2":
        cfg = HookedTransformerConfig(**common, act_fn="gelu_new", normalization_type="LN")
    else:
        cfg = HookedTransformerConfig(
            **common, act_fn="silu" if arch == "llama" else "gelu_pytorch_tanh", normalization_type="RMS",
            positional_embedding_type="rotary", rotary_dim=16, gated_mlp=True, final_rms=True, n_key_value_heads=2,
            output_logits_soft_cap=30.0 if arch == "gemma2" else -1.0,
        )  # fmt: skip
    torch.manual_seed(seed)
    return HookedTransformer(cfg).eval()
