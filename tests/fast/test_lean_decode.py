"""lean_decode: the unhooked decode step is bit-identical to the stock forward, is taken only
while nothing is attached, and leaves nothing behind."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.fast.attention import fast_decode_attention, init_decode_cache
from selfie_tl.fast.lean_decode import LeanDecoder, supports_lean_decode
from selfie_tl.generation import generate, residual_stream
from selfie_tl.testing import attach_tokenizer, tiny_model, tiny_tokenizer


def _llama(n_key_value_heads=None, biases=False, rotary_dim=16, dtype=torch.float32):
    """A Llama-like model; ``n_key_value_heads=None`` is plain multi-head attention."""
    cfg = HookedTransformerConfig(
        n_layers=3, d_model=64, d_head=16, n_heads=4, n_key_value_heads=n_key_value_heads, d_mlp=96, d_vocab=259,
        n_ctx=64, act_fn="silu", normalization_type="RMS", positional_embedding_type="rotary", rotary_dim=rotary_dim,
        gated_mlp=True, final_rms=True, original_architecture="LlamaForCausalLM", seed=3, default_prepend_bos=False,
        initializer_range=0.2, dtype=dtype,
    )  # fmt: skip
    torch.manual_seed(3)
    model = HookedTransformer(cfg)
    if biases:  # Qwen2-like q/k/v biases, and the zero biases made nonzero everywhere
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.split(".")[-1].startswith(("b_", "_b_")):
                    p.normal_(0, 0.3)
    attach_tokenizer(model, tiny_tokenizer())
    return model.eval()


VARIANTS = {
    "gqa": lambda: tiny_model("llama"),
    "mha": lambda: _llama(),
    "biases": lambda: _llama(n_key_value_heads=2, biases=True),
    "partial_rotary": lambda: _llama(n_key_value_heads=2, rotary_dim=8),
    "bfloat16": lambda: _llama(n_key_value_heads=2, biases=True, dtype=torch.bfloat16),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def model(request):
    return VARIANTS[request.param]()


class _Count:
    def __init__(self, monkeypatch):
        self.steps = 0
        real = LeanDecoder.step

        def spy(decoder, *args):
            self.steps += 1
            return real(decoder, *args)

        monkeypatch.setattr(LeanDecoder, "step", spy)


def _ids(model, rows=3):
    return torch.tensor([model.tokenizer("hello there, world").input_ids] * rows)


def test_supported_architectures(model, tiny_gpt2, tiny_gemma2):
    assert supports_lean_decode(model)
    assert not supports_lean_decode(tiny_gpt2)  # learned positions
    assert not supports_lean_decode(tiny_gemma2)  # local attention, norms after, soft caps
    with pytest.raises(InvalidArgumentError, match="does not support"):
        LeanDecoder(tiny_gpt2)


def test_step_is_bit_identical_to_the_stock_forward(model):
    """Residual, keys, values, rotated-key memo and attention mask: torch.equal, step by step
    (the caches start too small, so both grow on the way)."""
    ids = _ids(model)
    stock_cache, lean_cache = (init_decode_cache(model, 3, ids.shape[1] + 2) for _ in range(2))
    decoder = LeanDecoder(model)
    with torch.no_grad(), fast_decode_attention(model):
        residual_stream(model, ids, stock_cache)
        residual_stream(model, ids, lean_cache)
        for step in range(6):
            token = torch.tensor([[7 + step], [100], [200 - step]])
            assert decoder.ready(lean_cache)
            lean = decoder.step(token, lean_cache)
            stock = residual_stream(model, token, stock_cache)
            assert torch.equal(lean, stock), step
            assert torch.equal(lean_cache.previous_attention_mask, stock_cache.previous_attention_mask)
            for a, b in zip(lean_cache.entries, stock_cache.entries, strict=True):
                assert torch.equal(a.past_keys, b.past_keys) and torch.equal(a.past_values, b.past_values)
                assert a.rotated == b.rotated == a.length
                assert torch.equal(a._rot_keys_t[..., : a.length], b._rot_keys_t[..., : b.length])


@pytest.mark.parametrize("left_pad", [False, True])
def test_generate_equals_the_stock_path(model, left_pad, monkeypatch):
    ids = _ids(model)
    mask = torch.ones_like(ids)
    if left_pad:
        mask[0, :4] = 0
        mask[1, :1] = 0
    count = _Count(monkeypatch)
    lean = generate(model, ids, 30, attention_mask=mask, eos_token_ids=[])
    assert count.steps == 29
    stock = generate(model, ids, 30, attention_mask=mask, eos_token_ids=[], lean_decode=False)
    assert count.steps == 29
    assert torch.equal(lean.tokens, stock.tokens)
    assert torch.equal(lean.probs, stock.probs)


def test_any_hook_sends_every_step_to_the_stock_forward(model, monkeypatch):
    ids = _ids(model)
    count = _Count(monkeypatch)
    plain = generate(model, ids, 6, eos_token_ids=[])
    assert count.steps == 5
    seen = []
    with model.hooks(fwd_hooks=[("blocks.1.attn.hook_pattern", lambda t, hook: seen.append(t.shape))]):
        hooked = generate(model, ids, 6, eos_token_ids=[])
    assert count.steps == 5  # none taken while the hook was on
    assert len(seen) == 6  # prefill + 5 decode steps, all seen
    handle = model.blocks[2].mlp.register_forward_hook(lambda m, i, o: None)  # a torch module hook too
    try:
        generate(model, ids, 4, eos_token_ids=[])
    finally:
        handle.remove()
    assert count.steps == 5
    assert torch.equal(plain.tokens, hooked.tokens)


def test_prefill_only_hooks_leave_the_decode_steps_lean(model, monkeypatch):
    """SelfIE's injection is a prefill hook: gone after the prefill, so every decode step is lean."""
    ids = _ids(model)
    count = _Count(monkeypatch)
    hooks = [("blocks.1.hook_resid_pre", lambda t, hook: t * 1.5)]
    lean = generate(model, ids, 8, prefill_hooks=hooks, eos_token_ids=[])
    assert count.steps == 7
    stock = generate(model, ids, 8, prefill_hooks=hooks, eos_token_ids=[], lean_decode=False)
    assert torch.equal(lean.tokens, stock.tokens) and torch.equal(lean.probs, stock.probs)


def test_a_hook_added_mid_generation_fires(model, monkeypatch):
    """A prefill hook that attaches a hook for the rest of the run: every later step sees it."""
    ids = _ids(model)
    count = _Count(monkeypatch)
    seen = []
    handles = []

    def attach(t, hook):
        handles.append(model.blocks[0].hook_resid_post.add_hook(lambda x, hook: seen.append(1)))
        return t

    try:
        generate(model, ids, 5, prefill_hooks=[("blocks.0.hook_resid_pre", attach)], eos_token_ids=[])
    finally:
        model.blocks[0].hook_resid_post.remove_hooks()
    assert count.steps == 0 and len(seen) == 1 + 4


def test_training_mode_and_switch_off(model, monkeypatch):
    ids = _ids(model)
    count = _Count(monkeypatch)
    model.train()
    try:
        generate(model, ids, 4, eos_token_ids=[])
    finally:
        model.eval()
    generate(model, ids, 4, eos_token_ids=[], lean_decode=False)
    generate(model, ids, 4, eos_token_ids=[], fast_attention=False)  # the lean step needs the fast cache
    assert count.steps == 0
    with pytest.raises(InvalidArgumentError, match="lean_decode must be True or False"):
        generate(model, ids, 4, lean_decode="yes")


def test_nothing_is_left_on_the_model(model):
    before = [dict(vars(m)).keys() for m in model.modules()]
    generate(model, _ids(model), 5, eos_token_ids=[])
    assert [dict(vars(m)).keys() for m in model.modules()] == before
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
