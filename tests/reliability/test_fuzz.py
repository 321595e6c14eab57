"""Every fuzz case (``cases.py``) does exactly what it asks for and leaves the models clean.

Clean means: no hook on any hook point, no instance ``forward`` on any module, every weight
bit-identical to before, and no stray (temporary) file in the case folder.
"""

from __future__ import annotations

import pytest
import torch

from selfie_tl.hooks import hook_count, model_lock
from tests.reliability.cases import CASES, make_env, run_case


@pytest.fixture(scope="module")
def env(tiny_llama, tiny_gpt2, tmp_path_factory):
    return make_env(tiny_llama, tiny_gpt2, tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def weights(env):
    return {name: _state(model) for name, model in (("llama", env.llama), ("gpt2", env.gpt2))}


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_clean(env, weights, files_before):
    for name, model in (("llama", env.llama), ("gpt2", env.gpt2)):
        assert hook_count(model) == 0, f"{name}: hooks left behind"
        overrides = [m for m, module in model.named_modules() if "forward" in vars(module)]
        assert not overrides, f"{name}: instance forward left on {overrides}"
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, weights[name][k])]
        assert not changed, f"{name}: weights changed: {changed[:5]}"
        assert model_lock(model).acquire(blocking=False), f"{name}: model lock still held"
        model_lock(model).release()
        assert all(p.requires_grad for p in model.parameters()), f"{name}: requires_grad flags changed"
    assert sorted(env.tmp.iterdir()) == files_before, "files created or left behind"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case, env, weights):
    files_before = sorted(env.tmp.iterdir())
    outcome = run_case(case, env)
    assert outcome.expected, f"{outcome.kind}: {outcome.detail}"
    assert_clean(env, weights, files_before)


def test_every_group_has_cases():
    groups = {c.group for c in CASES}
    assert {"settings", "generate", "hooks", "interrupt", "concurrency", "edits", "adapters"} <= groups
    assert len(CASES) >= 186
