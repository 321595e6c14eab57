"""grid_data and the frame checks shared by every picture."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from selfie_tl import InvalidArgumentError, viz
from selfie_tl.viz.grid import GridCell, cell_text

from .helpers import synthetic


def test_grid_data_layout():
    g = viz.grid_data(synthetic())
    assert g.layers == [0, 4] and g.tokens == [1, 3] and g.token_labels == [" is", "?"]
    assert g.cells[(4, 1)].interpretation == "The Eiffel Tower &"
    assert g.value(4, 1) == pytest.approx(0.2325)


@pytest.mark.parametrize(
    "bad, match",
    [
        (pd.DataFrame({"layer": [1], "token": [0]}), "interpretation"),
        (pd.DataFrame({"layer": [], "token": [], "interpretation": []}), "no rows"),
        ([{"layer": 1}], "DataFrame"),
    ],
)
def test_bad_frames_raise(bad, match):
    for fn in (viz.grid_data, viz.plot_grid, viz.grid_html, viz.report_html, viz.show):
        with pytest.raises(InvalidArgumentError, match=match):
            fn(bad)


def test_several_prompts_need_a_choice():
    df = pd.concat([synthetic("one"), synthetic("two")], ignore_index=True)
    with pytest.raises(InvalidArgumentError, match="2 prompts"):
        viz.grid_html(df)
    assert "two" in viz.grid_html(df, prompt="two") and ">one<" not in viz.grid_html(df, prompt="two")
    with pytest.raises(InvalidArgumentError, match="not in the DataFrame"):
        viz.plot_grid(df, prompt="three")


def test_cell_score_is_content_relevancy_and_kinds():
    df = synthetic()
    # (0, 1): relevancy concentrated on newlines and an end token; (0, 3): a phrase on repeat.
    df.at[0, "generated_tokens"] = ["\n", " Paris", "\n", "<|im_end|>"]
    df.at[0, "relevancy"] = [0.9, 0.1, 0.9, 0.9]
    df.at[1, "generated_tokens"] = ["a", " b", " c", " a", " b", " c", " a", " b"]
    df.at[1, "relevancy"] = [0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9]
    g = viz.grid_data(df)
    assert g.value(0, 1) == pytest.approx(0.1)  # mean relevancy would be 0.7
    assert g.cells[(0, 1)].mean_relevancy == pytest.approx(0.05)  # the column, as given
    assert g.cells[(0, 1)].token_kinds == ["whitespace", "content", "whitespace", "special"]
    # "a b c a b" repeats from the second " c": a, b, c, a, b count; the rest are repeats.
    assert g.cells[(0, 3)].token_kinds.count("repeat") == 3
    assert g.value(0, 3) == pytest.approx((0.1 * 3 + 0.9 * 2) / 5)
    assert {c.kind for c in g.cells.values()} == {"text"}


def test_cell_score_sources():
    base = {"layer": [0], "token": [0], "interpretation": ["x y"]}
    # No token lists: the mean_relevancy column; a content_relevancy column wins over both.
    assert viz.grid_data(pd.DataFrame({**base, "mean_relevancy": [0.3]})).value(0, 0) == 0.3
    both = pd.DataFrame({**base, "mean_relevancy": [0.3], "content_relevancy": [0.2]})
    assert viz.grid_data(both).value(0, 0) == 0.2
    rows = pd.DataFrame(
        {**base, "generated_tokens": [["x", " y"]], "relevancy": [None], "mean_relevancy": [0.3]}
    )
    assert np.isnan(viz.grid_data(rows).value(0, 0))  # tokens but relevancy=False: no score
    with pytest.raises(InvalidArgumentError, match="must align"):
        viz.grid_data(pd.DataFrame({**base, "generated_tokens": [["x"]], "relevancy": [[0.1, 0.2]]}))


@pytest.mark.parametrize(
    "tokens, text, kind, kind_from_text",
    [
        ([], "", "empty", "empty"),
        (["\n", " "], "\n ", "blank", "blank"),
        (["<|im_end|>"], "", "blank", "empty"),  # the decoded text drops special tokens
        (["\n", "x"], "\nx", "text", "text"),
    ],
)
def test_reply_kinds(tokens, text, kind, kind_from_text):
    df = pd.DataFrame(
        {"layer": [0], "token": [0], "interpretation": [text], "generated_tokens": [tokens],
         "relevancy": [[0.5] * len(tokens)]}
    )  # fmt: skip
    cell = viz.grid_data(df).cells[(0, 0)]
    assert cell.kind == kind
    assert cell_text(cell, 48) == {"empty": "∅", "blank": "␣", "text": "x"}[kind]
    no_tokens = viz.grid_data(df.drop(columns=["generated_tokens", "relevancy"])).cells[(0, 0)]
    assert no_tokens.kind == kind_from_text


def test_cell_text_is_the_most_relevant_excerpt():
    words = [
        "Well",
        ",",
        " let",
        " me",
        " think",
        ".",
        " The",
        " tallest",
        " peak",
        " is",
        " Mount",
        " Everest",
        ".",
    ]
    rel = [0.0] * 10 + [0.6, 0.8, 0.1]
    cell = GridCell(0, 0, "".join(words), 0.1, words, rel, token_kinds=None)
    assert cell_text(cell, 20) == "…is Mount Everest."  # " peak" would make it 23 characters
    assert cell_text(cell, 23) == "…peak is Mount Everest."
    assert cell_text(cell, 0) == "Well, let me think. The tallest peak is Mount Everest."
    # Without scores: the start of the text.
    assert cell_text(GridCell(0, 0, "".join(words), 0.1, words, None), 12) == "Well, let m…"
