"""The screened argmax: the stock greedy choice (ties included) from a bfloat16 screen plus
float32 logits of the tokens that could win; taken only where nothing else reads the
logits, switchable off."""

import pytest
import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformer

from selfie_tl.errors import NumericalError
from selfie_tl.fast import screened_argmax as screen_mod
from selfie_tl.fast.screened_argmax import screen_applies, screened_argmax
from selfie_tl.generation import final_logits, generate
from selfie_tl.interpret import generate_interpretations, interpret_vectors
from selfie_tl.prompts import InterpretationPrompt
from selfie_tl.testing import tiny_model, wide_model

VOCAB = 6000  # above MIN_VOCAB


def _wide(arch: str, *, bias: bool = False) -> HookedTransformer:
    model = wide_model(arch, d_vocab=VOCAB, seed=3)
    if bias:
        with torch.no_grad():
            model.unembed.b_U.normal_(0, 1.0)
    return model


@pytest.fixture(autouse=True)
def _bf16_everywhere(monkeypatch):
    # Exercise the screen on any CPU: without bfloat16 instructions torch emulates the
    # product (slower, same arithmetic). The float32-accumulation probe stays real.
    monkeypatch.setattr(screen_mod, "has_bf16_instructions", lambda: True)


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def model(request):
    return _wide(request.param)


def _stock(model, resid):
    with torch.no_grad():
        return final_logits(model, resid).argmax(-1)


@pytest.mark.parametrize("rows", [1, 2, 7, 8, 33, 130])
@pytest.mark.parametrize("scale", [0.1, 1.0, 30.0])
def test_same_choice_as_the_full_unembedding(model, rows, scale):
    resid = scale * torch.randn(rows, 64, generator=torch.Generator().manual_seed(rows))
    with torch.no_grad():
        assert screen_applies(model)
        choice = screened_argmax(model, resid)
    assert choice is not None
    assert torch.equal(choice, _stock(model, resid))


def test_ties_and_near_ties_resolve_as_argmax():
    model = _wide("llama")
    w = model.unembed.W_U
    with torch.no_grad():
        # Column 10 duplicates column 4000 exactly (a tie: argmax takes the lower id);
        # column 20 is column 30 plus one float32 ulp in one entry (a near tie).
        w[:, 10] = w[:, 4000]
        w[:, 20] = w[:, 30]
        w[0, 20] = torch.nextafter(w[0, 30], torch.tensor(float("inf")))
        resid = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
        # Aim half of the rows at the tied pairs, so that they are the argmax.
        h_target = torch.cat([w[:, 4000], w[:, 30]]).view(2, 64).repeat(32, 1)
        resid = resid * 0.05 + 20 * h_target
        stock = _stock(model, resid)
        assert {10, 20, 30} & set(stock.tolist())  # the ties are reached
        assert torch.equal(screened_argmax(model, resid), stock)


def test_keeps_the_tokens_that_bfloat16_misorders(monkeypatch):
    # Columns of norm ~8 nearly orthogonal to the rows' direction: logits are small (< 0.8)
    # while bfloat16's input rounding moves them by ~0.05, so the bfloat16 argmax is often
    # wrong and only the error bound (not the output's own rounding) keeps the winner.
    monkeypatch.setattr(screen_mod, "MAX_KEPT_FRACTION", 1.0)  # most columns are kept
    model = _wide("llama")
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        e = torch.randn(64, generator=gen)
        e /= e.norm()
        v = torch.randn(64, VOCAB, generator=gen)
        v -= e[:, None] * (e @ v)[None]
        model.unembed.W_U.copy_(v + e[:, None] * 0.1 * torch.rand(VOCAB, generator=gen))
        resid = e + 0.002 * torch.randn(100, 64, generator=gen)
        stock = _stock(model, resid)
        h = model.ln_final(resid)
        rough = (h.bfloat16() @ model.unembed.W_U.bfloat16()).float().argmax(-1)
        assert int((rough != stock).sum()) > 20  # bfloat16 alone would choose wrongly
        assert torch.equal(screened_argmax(model, resid), stock)


def test_weight_changed_in_place_rebuilds_the_screen():
    model = _wide("llama")
    resid = torch.randn(16, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(screened_argmax(model, resid), _stock(model, resid))
        model.unembed.W_U.mul_(-1)  # every choice changes
        assert torch.equal(screened_argmax(model, resid), _stock(model, resid))


def test_non_finite_rows_and_wide_screens_fall_back(monkeypatch):
    model = _wide("llama")
    resid = torch.randn(4, 64)
    resid[1, 3] = float("nan")
    with torch.no_grad():
        assert screened_argmax(model, resid) is None
        monkeypatch.setattr(screen_mod, "MAX_KEPT_FRACTION", 0.0)
        assert screened_argmax(model, torch.randn(4, 64)) is None


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_generation_is_token_identical(arch, monkeypatch):
    model = _wide(arch)
    calls = []
    real = screen_mod.screened_argmax

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(out is not None)
        return out

    monkeypatch.setattr("selfie_tl.generation._screened_argmax", spy)
    ids = torch.randint(0, VOCAB, (12, 9), generator=torch.Generator().manual_seed(5))
    stock = generate(model, ids, 12, eos_token_ids=[7])
    fast = generate(model, ids, 12, eos_token_ids=[7], record_probs=False)
    assert calls and all(calls)  # the screen chose every step
    assert torch.equal(fast.tokens, stock.tokens) and fast.lengths == stock.lengths
    assert bool(fast.probs.isnan().all()) and not bool(stock.probs[:, 0].isnan().any())
    off = generate(model, ids, 12, eos_token_ids=[7], record_probs=False, screened_argmax=False)
    assert torch.equal(off.tokens, stock.tokens) and len(calls) == 12  # no call when off


@pytest.mark.parametrize(
    "why",
    [
        "record_probs",
        "sampling",
        "repetition_penalty",
        "no_repeat_ngram",
        "switch",
        "hook",
        "soft_cap",
        "bias",
    ],
)
def test_not_taken_where_something_else_reads_the_logits(why, monkeypatch):
    model = _wide("gemma2" if why == "soft_cap" else "llama", bias=why == "bias")
    taken = []
    real = screen_mod.screened_argmax
    monkeypatch.setattr(
        "selfie_tl.generation._screened_argmax", lambda *a, **k: taken.append(1) or real(*a, **k)
    )
    if why == "switch":
        monkeypatch.setattr(screen_mod, "ENABLED", False)
    kwargs = {
        "record_probs": why == "record_probs",
        "do_sample": why == "sampling",
        "repetition_penalty": 1.3 if why == "repetition_penalty" else 1.0,
        "no_repeat_ngram_size": 2 if why == "no_repeat_ngram" else 0,
    }
    ids = torch.randint(0, VOCAB, (3, 5), generator=torch.Generator().manual_seed(1))
    hooks = [("unembed.hook_in", lambda t, hook: t)] if why == "hook" else []
    with model.hooks(fwd_hooks=hooks):
        generate(model, ids, 4, **kwargs, generator=torch.Generator().manual_seed(0))
    assert taken == []


def test_nan_logits_raise_the_stock_error():
    model = _wide("llama")
    ids = torch.randint(0, VOCAB, (2, 4))

    def poison(t, hook):
        t[1] = float("nan")
        return t

    with pytest.raises(NumericalError, match=r"batch rows \[1\]"):
        generate(
            model,
            ids,
            3,
            record_probs=False,
            prefill=None,
            prefill_hooks=[("blocks.1.hook_resid_post", poison)],
        )


def test_interpretations_are_the_same_without_probabilities(monkeypatch):
    # tiny_model's 259-token vocabulary (decodable by its tokenizer), screened anyway
    monkeypatch.setattr(screen_mod, "MIN_VOCAB", 0)
    monkeypatch.setattr(screen_mod, "MAX_KEPT_FRACTION", 1.0)
    model = tiny_model()
    vectors = torch.randn(6, 64, generator=torch.Generator().manual_seed(4))
    prompt = InterpretationPrompt.from_format(model.tokenizer, "Say {}{} now:")
    full = generate_interpretations(model, vectors, prompt, k=1, max_new_tokens=6, relevancy=False)
    lean = generate_interpretations(
        model, vectors, prompt, k=1, max_new_tokens=6, relevancy=False, token_probs=False
    )
    assert lean.token_ids == full.token_ids and lean.probs is None and full.probs is not None
    assert interpret_vectors(model, vectors, prompt, k=1, max_new_tokens=6) == full.texts
    with_rel = generate_interpretations(model, vectors, prompt, k=1, max_new_tokens=6, token_probs=False)
    assert with_rel.probs is not None and with_rel.relevancy is not None  # relevancy needs them


@pytest.mark.parametrize("rows", [1, 2, 7, 8, 32, 128, 130])
def test_gathered_columns_have_the_full_products_bits(rows):
    # What the choice's exactness rests on: F.linear over a padded set of W_U's rows gives
    # each column the bits of the full (blocked) unembedding, at SmolLM2-135M's shape.
    from selfie_tl.fast.unembed import CHUNK_COLUMNS

    gen = torch.Generator().manual_seed(rows)
    weight = torch.randn(49152, 576, generator=gen) * 0.05
    h = torch.randn(rows, 576, generator=gen) * 2
    step = CHUNK_COLUMNS or weight.shape[0]
    full = torch.cat([F.linear(h, weight[i : i + step]) for i in range(0, weight.shape[0], step)], dim=-1)
    for n in (64, 128, 384, 640):
        columns = torch.randperm(weight.shape[0], generator=gen)[:n]
        assert torch.equal(F.linear(h, weight.index_select(0, columns)), full[:, columns]), n
