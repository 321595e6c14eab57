"""The self-interpretation adapter: identity at start, training, files, fingerprint."""

import json

import pytest
import torch

from selfie_tl.adapter import (
    AdapterMismatchError,
    SelfInterpretationAdapter,
    load_adapter,
    train_adapter,
)
from selfie_tl.interpret import generate_interpretations
from selfie_tl.testing import tiny_model


def test_fresh_adapter_changes_nothing(tiny_llama):
    v = torch.randn(3, 64)
    plain = generate_interpretations(tiny_llama, v, k=1, max_new_tokens=5, relevancy=False)
    adapted = generate_interpretations(tiny_llama, v, k=1, max_new_tokens=5, relevancy=False,
                                       adapter=SelfInterpretationAdapter(64))  # fmt: skip
    assert plain.token_ids == adapted.token_ids


def test_adapter_is_applied_before_injection(tiny_llama):
    adapter = SelfInterpretationAdapter(64)
    with torch.no_grad():
        adapter.scale.fill_(2.0)
        adapter.bias.normal_()
    v = torch.randn(2, 64)
    out = generate_interpretations(tiny_llama, v, k=1, max_new_tokens=5, relevancy=False, adapter=adapter)
    manual = generate_interpretations(tiny_llama, adapter(v).detach(), k=1, max_new_tokens=5, relevancy=False)
    assert out.token_ids == manual.token_ids


def test_training_lowers_the_loss_and_leaves_the_model(tiny_llama):
    params = {n: p.detach().clone() for n, p in tiny_llama.named_parameters()}
    flags = {n: p.requires_grad for n, p in tiny_llama.named_parameters()}
    adapter = train_adapter(tiny_llama, torch.randn(4, 64), [" ab", " cd", " ef", " gh"], k=1, steps=15,
                            lr=0.1, verbose=False)  # fmt: skip
    losses = adapter.info["losses"]
    assert len(losses) == 15 and losses[-1] < losses[0]
    for name, p in tiny_llama.named_parameters():
        assert torch.equal(p, params[name]) and p.requires_grad == flags[name], name


def test_save_load_round_trip(tiny_llama, tmp_path):
    adapter = train_adapter(tiny_llama, torch.randn(2, 64), [" a", " b"], k=1, steps=2, verbose=False)
    path = adapter.save(tmp_path / "a.safetensors", tiny_llama)
    loaded = load_adapter(path, tiny_llama)
    v = torch.randn(3, 64)
    torch.testing.assert_close(loaded(v), adapter(v))
    assert loaded.info["n_train"] == 2


def test_other_model_is_refused(tiny_llama, tmp_path):
    path = SelfInterpretationAdapter(64).save(tmp_path / "a.safetensors", tiny_llama)
    other = tiny_model(n_layers=3, d_model=64, seed=1)
    with pytest.raises(AdapterMismatchError, match="different model"):
        load_adapter(path, other)
    assert load_adapter(path, other, check_fingerprint=False).d_model == 64


def test_edited_metadata_is_caught(tiny_llama, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = SelfInterpretationAdapter(64).save(tmp_path / "a.safetensors", tiny_llama)

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    doc = json.loads(meta["selfie_tl_edit"])
    doc["rank"] = 0
    doc["seed"] = 7  # a harmless-looking change still breaks the checksum
    save_file(load_file(str(path)), str(path), metadata={"selfie_tl_edit": json.dumps(doc)})
    with pytest.raises(AdapterMismatchError, match="SHA-256"):
        load_adapter(path, tiny_llama)


def test_target_loss_equals_the_full_logits_computation(tiny_llama):
    """The training loss unembeds only the target positions; it equals the plain computation."""
    from selfie_tl.adapter import _target_nll
    from selfie_tl.hooks import injection_hooks
    from selfie_tl.prompts import as_prompt

    prompt = as_prompt(tiny_llama.tokenizer, None)
    n = len(prompt.input_ids)
    targets = torch.tensor([[5, 6, 7], [8, 9, 0]])
    tokens = torch.cat([prompt.input_ids[None].expand(2, -1), targets], dim=1)
    mask = torch.ones_like(tokens)
    mask[1, -1] = 0  # a right-padded target
    v = torch.randn(2, 64)
    got = _target_nll(tiny_llama, v, prompt, tokens, mask, 1)
    logits = tiny_llama.run_with_hooks(tokens, fwd_hooks=injection_hooks(tiny_llama, v, prompt.placeholder_positions, 1),
                                       attention_mask=mask)  # fmt: skip
    logp = logits[:, n - 1 : -1].log_softmax(-1)
    nll = -logp.gather(-1, targets[..., None]).squeeze(-1)
    expected = (nll * mask[:, n:]).sum() / mask[:, n:].sum()
    torch.testing.assert_close(got, expected)


def test_minibatches_cover_every_pair(tiny_llama, monkeypatch):
    import selfie_tl.adapter as adapter_mod

    seen = []
    real = adapter_mod._target_nll

    def spy(model, injected, prompt, tokens, mask, k):
        seen.append(tokens.shape[0])
        return real(model, injected, prompt, tokens, mask, k)

    monkeypatch.setattr(adapter_mod, "_target_nll", spy)
    train_adapter(tiny_llama, torch.randn(5, 64), [" a", " b", " c", " d", " e"], k=1, steps=4, batch_size=2, verbose=False)
    assert seen == [2, 2, 2, 2]  # the queue is refilled with a fresh permutation before it runs short


def test_describe_targets_are_the_models_own_reading(tiny_llama):
    from selfie_tl.eval.adapter_training import entity_targets
    from selfie_tl.generation import complete
    from selfie_tl.prompts import as_prompt

    prompt = as_prompt(tiny_llama.tokenizer, None)
    got = entity_targets(tiny_llama, ["Paris", "Rome"], prompt, "describe", target_tokens=4)
    assert got == [t or " " + s for t, s in zip(complete(tiny_llama, [prompt.filled("Paris"), prompt.filled("Rome")], 4), ["Paris", "Rome"])]
    assert entity_targets(tiny_llama, ["Paris"], prompt, "name") == [" Paris"]
    with pytest.raises(Exception, match="objective"):
        entity_targets(tiny_llama, ["Paris"], prompt, "attribute")
