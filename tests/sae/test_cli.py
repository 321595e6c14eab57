"""The ``sae`` subcommands, on the tiny model and a tiny SAE."""

from __future__ import annotations

import argparse
import json

import pandas as pd

from selfie_tl.sae.cli import register, run_ablate, run_explain


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["sae", *argv])


def test_explain_writes_csv_html_json(tiny_llama, trained_tiny, tmp_path, capsys):
    sae, _ = trained_tiny
    csv, html, js = tmp_path / "f.csv", tmp_path / "f.html", tmp_path / "s.json"
    args = _args("explain", "--features", "0:6", "--score", "--n-bootstrap", "50", "--max-new-tokens", "3",
                 "--n-context-tokens", "256", "--csv", str(csv), "--html", str(html), "--json", str(js),
                 "--quiet", "--corpus", "pydoc")  # fmt: skip
    out = run_explain(args, model=tiny_llama, sae=sae)
    df = pd.read_csv(csv)
    assert df.feature.tolist() == list(range(6)) and "auroc_selfie" in df
    assert "<table" in html.read_text()
    assert [r["method"] for r in json.loads(js.read_text())["summary"]] == ["selfie", "top_tokens", "logit_lens"]
    assert "AUROC" in capsys.readouterr().out and len(out["explained"]) == 6


def test_ablate(tiny_llama, trained_tiny, capsys):
    sae, _ = trained_tiny
    run_ablate(_args("ablate", "The cat", "--features", "0,1", "--inject-k", "1", "--max-new-tokens", "3"),
               model=tiny_llama, sae=sae)  # fmt: skip
    out = capsys.readouterr().out
    assert "SelfIE before" in out and "answer after" in out
