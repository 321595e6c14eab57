"""One end-to-end edit on the embedded default model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import pytest
import torch

from selfie_tl.control import load_edit, supervised_control
from selfie_tl.hooks import capture, hook_count

pytestmark = pytest.mark.integration

SOURCE = "Trento is located in the country of"  # "Trento" is token 2
TARGET = "Fryderyk Chopin University of Music is located in the country of"  # "Music" is token 8
REFS = ["Royal National Theatre, in", "Windows Media Player is developed by"]


def test_supervised_edit_end_to_end(default_model, tmp_path):
    model = default_model
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = model.tokenizer(SOURCE, return_tensors="pt").input_ids
    base_logits = model(ids)
    before = capture(model, SOURCE, [6], [2])[0, 0]
    target = capture(model, TARGET, [6], [8])[0, 0]
    res = supervised_control(model, [(SOURCE, [2])], target, layer=6, reference_texts=REFS, verbose=False)
    assert res.stop_reason == "converged"
    with res.edit.attached(model):
        after = capture(model, SOURCE, [6], [2])[0, 0]
        edited_logits = model(ids)
    assert (after - target).norm() < 0.2 * (before - target).norm()
    assert not torch.allclose(edited_logits, base_logits, atol=1e-3)
    assert torch.equal(model(ids), base_logits) and hook_count(model) == 0
    for name, p in model.named_parameters():
        assert torch.equal(p, params[name]), name
    path = res.edit.save(tmp_path / "trento.safetensors", model)
    with load_edit(path, model).attached(model):
        assert torch.equal(model(ids), edited_logits)
