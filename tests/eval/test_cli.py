"""Argument parsing of ``selfie-tl eval`` and a tiny end-to-end run."""

import argparse
import json

import pandas as pd
import pytest

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.eval.cli import config_from_args, parse_layers, register, run_eval
from selfie_tl.eval.data import load_known_facts


def _parse(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register(sub)
    return parser.parse_args(["eval", *argv])


@pytest.mark.parametrize(
    "spec, expected",
    [("0:31:3", list(range(0, 31, 3))), ("3,6,12", [3, 6, 12]), ("12", [12]), (":4", [0, 1, 2, 3]),
     ("", None), (None, None)],
)  # fmt: skip
def test_parse_layers(spec, expected):
    assert parse_layers(spec) == expected


@pytest.mark.parametrize("spec", ["a:b", "5:1", "1:2:3:4", "3:", "x"])
def test_parse_layers_rejects(spec):
    with pytest.raises(InvalidArgumentError):
        parse_layers(spec)


def test_flags_to_config():
    args = _parse(["--limit", "7", "--layers", "0:10:5", "--batch-size", "4", "--max-new-tokens", "9",
                   "--prompts", "summary,where_from", "--methods", "selfie,logit_lens", "--quiet", "--k", "3"])  # fmt: skip
    assert args.func is run_eval and args.limit == 7
    cfg = config_from_args(args)
    assert cfg.layers == [0, 5] and cfg.batch_size == 4 and cfg.max_new_tokens == 9 and cfg.k == 3
    assert cfg.templates == ["summary", "where_from"] and cfg.methods == ["selfie", "logit_lens"]
    assert cfg.verbose is False
    assert config_from_args(_parse(["--prompts", "all"])).templates[-1] == "relation"
    with pytest.raises(InvalidArgumentError, match="prompts"):
        config_from_args(_parse(["--prompts", "summary,bogus"]))
    with pytest.raises(InvalidArgumentError, match="methods"):
        config_from_args(_parse(["--methods", "magic"]))
    with pytest.raises(SystemExit):
        _parse(["--limit", "many"])


def test_run_eval_writes_outputs(tiny_llama, tmp_path, packaged_data, capsys):
    args = _parse(["--limit", "3", "--layers", "1,3", "--k", "1", "--max-new-tokens", "3", "--quiet",
                   "--n-bootstrap", "50", "--data", str(packaged_data / "known_facts.csv"),
                   "--out", str(tmp_path)])  # fmt: skip
    result = run_eval(args, model=tiny_llama)
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert len(rows) == 3 * 2 * 3 + 3  # (selfie, logit lens, patchscope) x layers x facts + control
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["n_facts"] == 3 and saved["layers"] == [1, 3]
    assert 0.0 <= saved["fact_completion_accuracy"] <= 1.0
    assert (tmp_path / "accuracy.png").stat().st_size > 1000
    assert "Attribute extraction on 3 facts" in capsys.readouterr().out
    assert result["_summary"].n.sum() == len(rows)


def test_split_flag(tiny_llama, tmp_path, capsys):
    assert _parse([]).split == "all"
    with pytest.raises(SystemExit):
        _parse(["--split", "dev"])
    args = _parse(["--split", "validation", "--limit", "3", "--layers", "2", "--methods", "logit_lens",
                   "--no-fact-completion", "--quiet", "--n-bootstrap", "10", "--out", str(tmp_path)])  # fmt: skip
    result = run_eval(args, model=tiny_llama)
    validation = load_known_facts(split="validation", limit=3)
    assert result["_rows"].known_id.tolist() == validation.known_id.tolist()
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["split"] == "validation" and saved["data"] == "packaged known_facts.csv" and saved["n_facts"] == 3
    assert "(split validation)" in capsys.readouterr().out


def test_data_flag_reads_any_csv_with_the_fact_columns(tiny_llama, tmp_path):
    csv = tmp_path / "mine.csv"
    pd.DataFrame({"known_id": ["a", "b"], "subject": ["Rome", "Oslo"], "attribute": ["Italy", "Norway"],
                  "prompt": ["Rome is in", "Oslo is in"]}).to_csv(csv, index=False)  # fmt: skip
    args = _parse(["--data", str(csv), "--layers", "1", "--methods", "selfie,control", "--k", "1",
                   "--max-new-tokens", "2", "--no-fact-completion", "--quiet", "--n-bootstrap", "10"])  # fmt: skip
    rows = run_eval(args, model=tiny_llama)["_rows"]
    assert rows.known_id.tolist() == ["a", "b", "a", "b"] and rows.subject.tolist()[:2] == ["Rome", "Oslo"]
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"subject": ["Rome"]}).to_csv(bad, index=False)
    with pytest.raises(InvalidArgumentError, match="lacks columns"):
        run_eval(_parse(["--data", str(bad), "--quiet"]), model=tiny_llama)
