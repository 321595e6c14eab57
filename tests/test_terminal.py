"""The terminal table (selfie_tl.terminal): exact text snapshots at 80 and 140 columns."""

import pandas as pd
import pytest

from selfie_tl import terminal


def synthetic() -> pd.DataFrame:
    return pd.DataFrame({
        "layer": [3, 12, 12, 21, 30],
        "token": [4, 4, 11, 0, 9],
        "token_decoded": [" mountain", " mountain", " internationalization", "What", "?"],
        "interpretation": [
            "\n\nMount Everest,\tthe highest mountain on Earth, rises 8,849 metres above the sea in the Himalayas.",
            "Everest",
            "",
            " \n\n ",
            "A question about geography",
        ],
        "content_relevancy": [0.4123, 0.05, None, float("nan"), 0.0],
        "relevant_text": ["Mount Everest … highest mountain", "", None, None, "geography"],
    })  # fmt: skip


AT_80_RELEVANT = """\
                         content
layer  token           relevancy  interpretation
-----  --------------  ---------  ----------------------------------------------
    3  4:' mountain'       0.412  Mount Everest, the highest mountain on Earth,…
                                  relevant: Mount Everest … highest mountain
   12  4:' mountain'       0.050  Everest
   12  11:' internat…          –  ∅ (empty)
   21  0:'What'                –  ␣ (whitespace only)
   30  9:'?'               0.000  A question about geography
                                  relevant: geography"""

AT_140 = """\
                         content
layer  token           relevancy  interpretation
-----  --------------  ---------  ----------------------------------------------------------------------------------------------------------
    3  4:' mountain'       0.412  Mount Everest, the highest mountain on Earth, rises 8,849 metres above the sea in the Himalayas.
   12  4:' mountain'       0.050  Everest
   12  11:' internat…          –  ∅ (empty)
   21  0:'What'                –  ␣ (whitespace only)
   30  9:'?'               0.000  A question about geography"""


def test_table_at_80_columns_with_relevant_spans():
    out = terminal.format_table(synthetic(), width=80, relevant=True)
    assert out == AT_80_RELEVANT
    assert max(len(line) for line in out.splitlines()) == 80


def test_table_at_140_columns():
    out = terminal.format_table(synthetic(), width=140)
    assert out == AT_140
    assert max(len(line) for line in out.splitlines()) <= 140
    assert "nan" not in out and "relevant:" not in out


def test_width_follows_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "90")
    lines = terminal.format_table(synthetic()).splitlines()
    assert max(len(line) for line in lines) == 90


def test_narrow_terminal_keeps_a_readable_interpretation_column():
    lines = terminal.format_table(synthetic(), width=30).splitlines()
    assert lines[3].endswith("  Mount Everest, the …")
    assert len(lines[3]) == 34 + terminal.MIN_TEXT_WIDTH


def test_table_without_optional_columns():
    df = pd.DataFrame({"layer": [0], "token": [1], "interpretation": ["x"]})
    assert terminal.format_table(df, width=60).splitlines()[-1] == "    0  1                       –  x"


@pytest.mark.parametrize(
    "tokens, expected",
    [
        (["a", "a", "a", "a"], True),
        (["The", " max", "Max", " max", "max", "!"], True),  # spelling variants are one token
        (["\n", "\n", "\n", "\n"], True),
        (["a", "a", "a", "b", "a"], False),
        ([], False),
        (None, False),
        ([5, 5, 5, 5], True),  # token ids work too
    ],
)
def test_is_degenerate(tokens, expected):
    assert terminal.is_degenerate(tokens) is expected


def test_is_degenerate_rejects_a_string():
    with pytest.raises(TypeError):
        terminal.is_degenerate("aaaa")


def test_most_relevant_sorts_missing_last():
    df = synthetic()
    assert terminal.most_relevant(df).layer.tolist() == [3, 12, 30, 12, 21]
    assert terminal.most_relevant(df, 2).content_relevancy.tolist() == [0.4123, 0.05]
