import json

import pandas as pd
import pytest

from selfie_tl import cli
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.testing import tiny_model


@pytest.mark.parametrize(
    "spec, length, expected",
    [
        ("3", 31, [3]),
        ("0,5, 9", 31, [0, 5, 9]),
        ("0:31:10", 31, [0, 10, 20, 30]),
        ("-3:", 10, [7, 8, 9]),
        (":2", 10, [0, 1]),
        ("2:8:3", None, [2, 5]),
    ],
)
def test_parse_index_spec(spec, length, expected):
    assert cli.parse_index_spec(spec, length) == expected


@pytest.mark.parametrize("spec", ["a", "1:2:3:4", "1;2"])
def test_parse_index_spec_rejects(spec):
    with pytest.raises(InvalidArgumentError, match="bad index spec"):
        cli.parse_index_spec(spec, 10)


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("interpret", "demo"):
        assert command in out


def test_interpret_command_on_a_tiny_model(monkeypatch, tmp_path, capsys):
    model = tiny_model()
    monkeypatch.setattr("selfie_tl.models.load_model", lambda name=None, **kw: model)
    csv, js = tmp_path / "r.csv", tmp_path / "r.json"
    code = cli.main([
        "interpret", "The cat", "--layers", "0:4:3", "--tokens", "-2:", "--k", "1",
        "--max-new-tokens", "3", "--csv", str(csv), "--json", str(js), "-q",
        "--interpretation-prompt", "Q: {}{}\\nA:",
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "layer" in out and "interpretation" in out
    df = pd.read_csv(csv)
    assert list(zip(df.layer, df.token)) == [(0, 5), (0, 6), (3, 5), (3, 6)]
    data = json.loads(js.read_text())
    assert data["config"]["k"] == 1 and len(data["rows"]) == 4


def test_bad_input_exits_with_a_message(monkeypatch, capsys):
    monkeypatch.setattr("selfie_tl.models.load_model", lambda name=None, **kw: tiny_model())
    assert cli.main(["interpret", "ab", "--layers", "0", "--tokens", "0", "--k", "9", "-q"]) == 2
    assert "injection layer k 9 is out of range" in capsys.readouterr().err
