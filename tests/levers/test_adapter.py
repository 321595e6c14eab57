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
