"""MLPEdit: zero start, the h + delta(x) identity, attach/detach, files and fingerprints."""

from __future__ import annotations

import json

import pytest
import torch

from selfie_tl.control import MLPEdit, fingerprint, load_edit, read_edit_metadata
from selfie_tl.control._common import block_cache
from selfie_tl.errors import EditMismatchError, InvalidArgumentError, LayerOutOfRangeError
from selfie_tl.hooks import capture, hook_count
from selfie_tl.interpret import interpret_vectors
from selfie_tl.testing import tiny_model

IDS = torch.tensor([[72, 101, 108, 108, 111, 32, 116, 104, 101, 114, 101]])


def _randomize(edit: MLPEdit, seed: int = 1, scale: float = 0.5) -> MLPEdit:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in edit.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return edit


def test_fresh_edit_is_identity(tiny):
    edit = MLPEdit.for_model(tiny, layer=2, rank=4, bias=True)
    base = tiny(IDS)
    with edit.attached(tiny):
        assert torch.equal(tiny(IDS), base)


def test_edited_residual_is_h_plus_delta(tiny):
    edit = _randomize(MLPEdit.for_model(tiny, layer=2, rank=4, bias=True))
    cache = block_cache(tiny, [("Hello there", "all")], 2)
    with edit.attached(tiny):
        edited = capture(tiny, "Hello there", layers=[2], positions=list(range(11)))[0]
    assert torch.allclose(edited, cache.h + edit.delta(cache.x), atol=1e-5)
    assert not torch.allclose(edited, cache.h, atol=1e-3)


def test_detach_restores_logits_exactly_and_hooks(tiny):
    before_hooks = hook_count(tiny)
    base = tiny(IDS)
    edit = _randomize(MLPEdit.for_model(tiny, layer=3, rank=2))
    edit.attach(tiny)
    assert hook_count(tiny) == before_hooks + 2
    changed = tiny(IDS)
    assert not torch.allclose(changed, base)
    tiny.reset_hooks()  # a permanent attach survives the usual TransformerLens cleanup
    assert torch.equal(tiny(IDS), changed)
    edit.detach()
    assert hook_count(tiny) == before_hooks
    assert torch.equal(tiny(IDS), base)


def test_fwd_hooks_match_attach(tiny_llama):
    edit = _randomize(MLPEdit.for_model(tiny_llama, layer=1, rank=3))
    with_hooks = tiny_llama.run_with_hooks(IDS, fwd_hooks=edit.fwd_hooks())
    with edit.attached(tiny_llama):
        attached = tiny_llama(IDS)
    assert torch.equal(with_hooks, attached)
    assert hook_count(tiny_llama) == 0


def test_context_manager_detaches_on_error(tiny_llama):
    edit = MLPEdit.for_model(tiny_llama, layer=1)
    with pytest.raises(RuntimeError, match="boom"):
        with edit.attached(tiny_llama):
            raise RuntimeError("boom")
    assert hook_count(tiny_llama) == 0 and not edit.is_attached
    edit.attach(tiny_llama)
    try:
        with pytest.raises(InvalidArgumentError, match="already attached"):
            edit.attach(tiny_llama)
    finally:
        edit.detach()
    assert hook_count(tiny_llama) == 0


def test_interpretation_sees_the_edit(tiny_llama):
    vec = torch.randn(2, 64, generator=torch.Generator().manual_seed(0))
    base = interpret_vectors(tiny_llama, vec, k=0, max_new_tokens=6)
    edit = _randomize(MLPEdit.for_model(tiny_llama, layer=2, rank=8), scale=3.0)
    with edit.attached(tiny_llama):
        edited = interpret_vectors(tiny_llama, vec, k=0, max_new_tokens=6)
    assert edited != base
    assert interpret_vectors(tiny_llama, vec, k=0, max_new_tokens=6) == base


def test_bias_only_edit_is_constant(tiny_gpt2):
    edit = MLPEdit.for_model(tiny_gpt2, layer=1, rank=0, bias=True)
    with torch.no_grad():
        edit.b.fill_(0.25)
    out = edit.delta(torch.randn(5, 64))
    assert torch.equal(out, torch.full((5, 64), 0.25))


@pytest.mark.parametrize("layer", [0, 4, -1, 1.0, True])
def test_layer_out_of_range(tiny_llama, layer):
    with pytest.raises(LayerOutOfRangeError):
        MLPEdit.for_model(tiny_llama, layer=layer)


def test_rank_zero_without_bias_rejected(tiny_llama):
    with pytest.raises(InvalidArgumentError):
        MLPEdit.for_model(tiny_llama, layer=1, rank=0, bias=False)


def test_attach_to_wrong_model_raises(tiny_llama):
    other = tiny_model("llama", n_layers=2, d_model=32)
    edit = MLPEdit.for_model(tiny_llama, layer=3)
    with pytest.raises(EditMismatchError):
        edit.attach(other)
    assert hook_count(other) == 0 and not edit.is_attached


def test_save_load_round_trip(tiny, tmp_path):
    edit = _randomize(MLPEdit.for_model(tiny, layer=2, rank=4, bias=True))
    edit.info = {"objective": "embedding", "note": "x"}
    path = edit.save(tmp_path / "edit.safetensors", tiny)
    assert [p.name for p in tmp_path.iterdir()] == ["edit.safetensors"]  # temp file renamed away
    loaded = load_edit(path, tiny)
    for (name, a), (_, b) in zip(edit.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    meta = read_edit_metadata(path)
    assert meta["read_hook"] == "blocks.1.ln2.hook_normalized" and meta["write_hook"] == "blocks.1.hook_mlp_out"
    assert meta["model"] == fingerprint(tiny).to_dict() and meta["info"]["objective"] == "embedding"
    with edit.attached(tiny):
        a = tiny(IDS)
    with loaded.attached(tiny):
        b = tiny(IDS)
    assert torch.equal(a, b)


def test_load_onto_different_model_raises(tiny_llama, tmp_path):
    path = MLPEdit.for_model(tiny_llama, layer=2).save(tmp_path / "e.safetensors", tiny_llama)
    same_shape_other_weights = tiny_model("llama", n_layers=3, d_model=64, seed=1)
    with pytest.raises(EditMismatchError, match="embed_sha256"):
        load_edit(path, same_shape_other_weights)
    with pytest.raises(EditMismatchError, match="n_layers"):
        load_edit(path, tiny_model("llama", n_layers=2, d_model=64))


def test_corrupted_files_raise(tiny_llama, tmp_path):
    edit = _randomize(MLPEdit.for_model(tiny_llama, layer=2))
    path = edit.save(tmp_path / "e.safetensors", tiny_llama)
    raw = bytearray(path.read_bytes())
    flipped = tmp_path / "flipped.safetensors"
    raw[-3] ^= 0xFF  # a tensor byte
    flipped.write_bytes(bytes(raw))
    with pytest.raises(EditMismatchError, match="SHA-256"):
        load_edit(flipped, tiny_llama)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:40])
    with pytest.raises(EditMismatchError):
        load_edit(truncated, tiny_llama)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a file at all")
    with pytest.raises(EditMismatchError):
        load_edit(garbage, tiny_llama)
    with pytest.raises(FileNotFoundError):
        load_edit(tmp_path / "missing.safetensors", tiny_llama)


def test_metadata_is_json_and_no_pickle(tiny_llama, tmp_path):
    path = MLPEdit.for_model(tiny_llama, layer=1).save(tmp_path / "e.safetensors", tiny_llama)
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_len])
    assert json.loads(header["__metadata__"]["selfie_tl_edit"])["layer"] == 1
    assert b"\x80\x04" not in path.read_bytes()[:2]  # not a pickle stream


def test_edited_layer_in_metadata_is_caught(tmp_path):
    """Changing the layer in the JSON metadata (not the tensors) is detected on load."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    model = tiny_model(n_layers=3)
    path = MLPEdit.for_model(model, layer=2).save(tmp_path / "e.safetensors", model)
    with safe_open(str(path), framework="pt") as fh:
        doc = json.loads(fh.metadata()["selfie_tl_edit"])
    doc["layer"], doc["block"] = 1, 0
    save_file(load_file(str(path)), str(path), metadata={"selfie_tl_edit": json.dumps(doc)})
    with pytest.raises(EditMismatchError, match="SHA-256"):
        load_edit(path, model)
