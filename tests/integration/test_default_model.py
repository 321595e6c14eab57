"""End-to-end checks on the embedded default model (SmolLM2-135M-Instruct)."""

import json
import subprocess
import sys

import pytest
import torch

import selfie_tl
from selfie_tl.hf_reference import hf_interpret_ids
from selfie_tl.hooks import hook_count
from selfie_tl.models import load_default_hf_model

pytestmark = pytest.mark.integration

DEMO = "What is the highest mountain in the world?"


@pytest.fixture(scope="module")
def hf_model():
    model, _ = load_default_hf_model()
    return model


def test_default_model_shape(default_model):
    cfg = default_model.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_key_value_heads, cfg.d_vocab) == (30, 576, 9, 3, 49152)
    assert default_model.tokenizer(DEMO).input_ids[0] != default_model.tokenizer.bos_token_id


def test_residual_stream_matches_hugging_face_hidden_states(default_model, hf_model):
    ids = torch.tensor([default_model.tokenizer(DEMO).input_ids])
    with torch.no_grad():
        hidden = hf_model(ids, output_hidden_states=True).hidden_states
    layers = [0, 7, 15, 29, 30]
    ours = selfie_tl.capture(default_model, DEMO, layers, list(range(ids.shape[1])))
    for i, layer in enumerate(layers):
        if layer == 30:  # HF applies the final norm to its last hidden state; we do not
            continue
        torch.testing.assert_close(ours[i], hidden[layer][0], rtol=1e-4, atol=2e-4)


@pytest.mark.parametrize("token_probs", [True, False])
@pytest.mark.parametrize(
    "layers, positions, k, batch_size",
    [([3, 12], [-1, 2], 2, 1), ([20, 30], [-1, -3], 2, 3), ([1, 8, 16, 24], [-2], 5, 4),
     (list(range(0, 31, 2)), [-1, 2], 2, 32)],
)  # fmt: skip
def test_greedy_interpretation_equals_plain_hugging_face(
    default_model, hf_model, layers, positions, k, batch_size, token_probs, monkeypatch
):
    # token_probs=False is interpret_vectors' path: the screened argmax chooses every token
    # (forced on CPUs without bfloat16 instructions too, where torch emulates the product).
    from selfie_tl.fast import screened_argmax

    monkeypatch.setattr(screened_argmax, "has_bf16_instructions", lambda: True)
    taken = []
    real = screened_argmax.screened_argmax
    monkeypatch.setattr("selfie_tl.generation._screened_argmax", lambda *a, **kw: taken.append(1) or real(*a, **kw))
    prompt = selfie_tl.default_interpretation_prompt(default_model.tokenizer)
    vectors = selfie_tl.capture(default_model, DEMO, layers, positions).reshape(-1, default_model.cfg.d_model)
    ours = selfie_tl.generate_interpretations(
        default_model, vectors, prompt, k=k, max_new_tokens=12, batch_size=batch_size, relevancy=False,
        token_probs=token_probs,
    ).token_ids  # fmt: skip
    ref = hf_interpret_ids(hf_model, prompt.input_ids, prompt.placeholder_positions, vectors, k, 12, batch_size)
    assert ours == ref
    assert bool(taken) == (not token_probs)


@pytest.mark.parametrize(
    "controls", [{"repetition_penalty": 1.3}, {"no_repeat_ngram_size": 3}, {"repetition_penalty": 1.2, "no_repeat_ngram_size": 2}]
)
def test_decoding_controls_equal_hugging_face_generate(default_model, hf_model, controls):
    prompt = selfie_tl.default_interpretation_prompt(default_model.tokenizer)
    vectors = selfie_tl.capture(default_model, DEMO, [6, 15], [-1, 4]).reshape(-1, default_model.cfg.d_model)
    ours = selfie_tl.generate_interpretations(
        default_model, vectors, prompt, k=2, max_new_tokens=16, batch_size=4, relevancy=False, **controls
    ).token_ids
    ref = hf_interpret_ids(hf_model, prompt.input_ids, prompt.placeholder_positions, vectors, 2, 16, 4, **controls)
    assert ours == ref


def test_relevancy_shape_and_range(default_model):
    df = selfie_tl.interpret(default_model, DEMO, [(6, -1), (18, -1), (24, 2)], max_new_tokens=10)
    for rel, tokens in zip(df.relevancy, df.generated_tokens):
        assert len(rel) == len(tokens) >= 1
        assert all(0.0 <= r <= 1.0 for r in rel)
    assert max(max(r) for r in df.relevancy) > 0.05  # injected states do move some tokens


def test_hooks_are_cleaned_after_an_exception(default_model):
    def fail_in_decode(t, hook):
        if t.shape[1] == 1:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        selfie_tl.interpret(
            default_model, DEMO, [(10, -1)], max_new_tokens=4,
            fwd_hooks=[("blocks.20.hook_resid_post", fail_in_decode)],
        )  # fmt: skip
    assert hook_count(default_model) == 0
    with pytest.raises(selfie_tl.LayerOutOfRangeError):
        selfie_tl.interpret(default_model, DEMO, [(31, -1)])
    assert hook_count(default_model) == 0


def test_cli_interpret_end_to_end(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, "-m", "selfie_tl.cli", "interpret", DEMO, "--layers", "10,20", "--tokens", "-2:",
         "--max-new-tokens", "6", "--json", str(out), "-q"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "interpretation" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [(r["layer"], r["token"]) for r in rows] == [(10, 7), (10, 8), (20, 7), (20, 8)]
    assert all(isinstance(r["interpretation"], str) and len(r["relevancy"]) >= 1 for r in rows)
