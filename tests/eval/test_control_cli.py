"""``selfie-tl control-eval supervised|reinforcement``: flags and tiny end-to-end runs."""

import json

import pytest

from selfie_tl import cli
from selfie_tl.control import load_edit
from selfie_tl.eval.control_cli import config_from_args, field_help, run_control_eval
from selfie_tl.eval.control_reinforcement import ReinforcementEvalConfig
from selfie_tl.eval.control_supervised import SupervisedEvalConfig


def _parse(argv):
    return cli.build_parser().parse_args(["control-eval", *argv])


def test_flags_cover_every_config_field_with_the_same_defaults():
    assert config_from_args(_parse(["supervised"])) == SupervisedEvalConfig()
    assert config_from_args(_parse(["reinforcement"])) == ReinforcementEvalConfig()
    for cls in (SupervisedEvalConfig, ReinforcementEvalConfig):
        assert all(field_help(cls).values())
    args = _parse(["reinforcement", "--limit", "7", "--train", "2", "--reward", "judge", "--lr", "0.1",
                   "--split", "test", "--n-facts", "5"])  # fmt: skip
    assert args.func is run_control_eval
    cfg = config_from_args(args)
    assert (cfg.limit, cfg.train, cfg.reward, cfg.lr, cfg.split, cfg.n_facts) == (7, 2, "judge", 0.1, "test", 5)
    cfg = config_from_args(_parse(["supervised", "--skip-ethics", "--interp-pairs", "0"]))
    assert cfg.skip_ethics and not cfg.skip_facts and cfg.interp_pairs == 0
    for bad in (["supervised", "--split", "dev"], ["reinforcement", "--reward", "magic"], ["magic"], []):
        with pytest.raises(SystemExit):
            _parse(bad)


def test_bad_settings_fail_before_any_model_is_loaded(capsys):
    assert cli.main(["control-eval", "reinforcement", "--train", "50", "--limit", "40"]) == 2
    assert "train (50) must be below limit" in capsys.readouterr().err


def test_reinforcement_command_tiny(tiny_llama, tmp_path, capsys):
    out = tmp_path / "rl.json"
    args = _parse(["reinforcement", "--limit", "2", "--train", "1", "--n-facts", "1", "--n-refs", "1",
                   "--layer", "2", "--k", "1", "--steps", "1", "--embeddings-per-step", "2", "--interp-tokens", "2",
                   "--response-tokens", "2", "--quiet", "--out", str(out)])  # fmt: skip
    result = run_control_eval(args, model=tiny_llama)
    saved = json.loads(out.read_text())
    assert saved["n_test"] == 1 and saved["config"]["steps"] == 1 and saved["edit_file"] == str(out.with_suffix(".safetensors"))
    assert load_edit(out.with_suffix(".safetensors"), tiny_llama).layer == 2
    assert "| plain |" in capsys.readouterr().out and result["n_facts"] == 1


def test_supervised_command_tiny(tiny_llama, tmp_path, capsys):
    out = tmp_path / "sc.json"
    args = _parse(["supervised", "--limit", "3", "--pairs", "1", "--interp-pairs", "0", "--layer", "2", "--k", "1",
                   "--steps", "1", "--max-new-tokens", "2", "--interp-tokens", "2", "--ethics-limit", "2",
                   "--ethics-train", "1", "--ethics-tokens", "2", "--n-refs", "1", "--quiet",
                   "--out", str(out)])  # fmt: skip
    run_control_eval(args, model=tiny_llama)
    saved = json.loads(out.read_text())
    assert [e["objective"] for e in saved["ethics"]] == ["embedding", "interpretation"]
    assert saved["config"]["limit"] == 3 and len(saved["facts"]) == 1
    assert "ethics [embedding] train 1 / test 1" in capsys.readouterr().out
