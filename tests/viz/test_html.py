"""HTML fragments: the interactive grid and shaded interpretations."""

from __future__ import annotations

import re

import pytest

from selfie_tl import InvalidArgumentError, viz

from .helpers import cells_of, data_blocks, parse, synthetic

TOP = 0.2325 + 0.85 * (0.3 - 0.2325)  # 95th percentile of the synthetic cell scores


def test_grid_html_cells_colours_and_labels():
    frag = viz.grid_html(synthetic())
    cells = cells_of(frag)
    assert set(cells) == {(0, 1), (0, 3), (4, 1), (4, 3)}
    for cell in cells.values():
        score = float(cell["attrs"]["data-score"])
        colour = re.search(r"background:(#[0-9a-f]{6})", cell["attrs"]["style"]).group(1)
        assert colour == viz.relevancy_color(score, TOP)
    assert cells[(0, 3)]["attrs"]["data-score"] == "0.3"
    # The darkest cell (highest relevancy) has white text, the palest black.
    assert "color:#ffffff" in cells[(0, 3)]["attrs"]["style"]
    assert "color:#000000" in cells[(0, 1)]["attrs"]["style"]
    assert cells[(4, 1)]["text"] == "The Eiffel Tower &"
    heads = [
        e["text"]
        for e in parse(frag).elements
        if e["tag"] == "th" and "stl-col" in e["attrs"].get("class", "")
    ]
    assert heads == ['1\n" is"', '3\n"?"']
    rows = [
        e["text"]
        for e in parse(frag).elements
        if e["tag"] == "th" and "stl-row" in e["attrs"].get("class", "")
    ]
    assert rows == ["0", "4"]
    # Fixed layout: the table's width is set, every token column has the same width.
    table = next(e for e in parse(frag).elements if e["tag"] == "table")
    assert "width:22em" in table["attrs"]["style"]  # 4 + 2 x 9


def test_grid_html_escapes_model_output():
    frag = viz.grid_html(synthetic())
    p = parse(frag)
    # One script of ours and one inert JSON block; model text "<script>" is text, not run.
    scripts = [e for e in p.elements if e["tag"] == "script"]
    assert [e["attrs"].get("type") for e in scripts] == ["application/json", None]
    assert "alert(1)" not in "".join(p.scripts)
    assert "<" not in "".join(p.json_blocks) and "\\u003cscript\\u003e" in frag
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in frag  # the cell's excerpt
    assert data_blocks(frag)[0]["cells"][1]["text"] == "<script>alert(1)</script>"
    assert "Tower &amp;" in frag and "Tower & " not in frag


def test_grid_html_data_holds_each_interpretation_once():
    frag = viz.grid_html(synthetic())
    (data,) = data_blocks(frag)
    cells = {(c["l"], c["t"]): c for c in data["cells"]}
    eiffel = cells[(4, 1)]
    assert eiffel["text"] == "The Eiffel Tower &" and eiffel["len"] == [3, 7, 6, 2]
    assert eiffel["rel"] == [0.02, 0.5, 0.4, 0.01]
    assert eiffel["score"] == pytest.approx(0.2325, abs=1e-3) and eiffel["kind"] == "text"
    assert "skip" not in eiffel  # every token is content
    # The script colours tokens from the palette: entry floor(256 * v / top) is relevancy_color.
    assert data["tokenTop"] == pytest.approx(0.4 + 0.45 * 0.1)  # 95th percentile of the 12 token scores
    assert data["palette"][255] == viz.relevancy_color(1.0) and len(data["ink"]) == 256
    assert frag.count("Eiffel Tower &amp;") + frag.count("Eiffel Tower &") == 2  # JSON and the cell
    # The fragment's id ties the script to it.
    ids = re.findall(r'id="(stl-[0-9a-f]+)"', frag)
    assert len(ids) == 1 and f'getElementById("{ids[0]}")' in frag


def test_grid_html_marks_empty_and_blank_replies():
    df = synthetic()
    df.at[0, "generated_tokens"], df.at[0, "relevancy"], df.at[0, "interpretation"] = [], [], ""
    df.at[1, "generated_tokens"], df.at[1, "relevancy"] = ["\n", " ", "<|im_end|>"], [0.9, 0.9, 0.9]
    df.at[1, "interpretation"] = "\n "
    frag = viz.grid_html(df)
    cells = cells_of(frag)
    assert (cells[(0, 1)]["attrs"]["data-kind"], cells[(0, 1)]["text"]) == ("empty", "∅")
    assert (cells[(0, 3)]["attrs"]["data-kind"], cells[(0, 3)]["text"]) == ("blank", "␣")
    for key in [(0, 1), (0, 3)]:
        assert cells[key]["attrs"]["data-score"] == "" and "#eeeeee" in cells[key]["attrs"]["style"]
    legend = next(e for e in parse(frag).elements if e["attrs"].get("class") == "stl-legend")["text"]
    for words in ("no score", "∅", "empty reply", "␣", "whitespace-only", "not interpreted", "pinned"):
        assert words in legend
    (data,) = data_blocks(frag)
    assert data["cells"][1]["skip"] == "wws"


def test_two_fragments_do_not_share_ids():
    a, b = viz.grid_html(synthetic()), viz.grid_html(synthetic())
    assert re.findall(r'id="(stl-[0-9a-f]+)"', a) != re.findall(r'id="(stl-[0-9a-f]+)"', b)


def test_interpretation_html_and_row():
    df = synthetic()
    frag = viz.interpretation_html(df.iloc[2])
    toks = [e for e in parse(frag).elements if e["attrs"].get("class") == "stl-tok"]
    assert [t["text"] for t in toks] == ["The", " Eiffel", " Tower", " &"]
    assert [t["attrs"]["data-relevancy"] for t in toks] == ["0.02", "0.5", "0.4", "0.01"]
    assert viz.relevancy_color(0.5, 0.5) in toks[1]["attrs"]["style"]
    assert viz.relevancy_color(0.02, 0.5) in toks[0]["attrs"]["style"]
    plain = viz.interpretation_html(["a", "b"])
    assert plain.count(viz.relevancy_color(None)) == 2
    with pytest.raises(InvalidArgumentError, match="align"):
        viz.interpretation_html(["a", "b"], [0.1])
    with pytest.raises(InvalidArgumentError, match="list of token strings"):
        viz.interpretation_html("ab", [0.1, 0.2])


def test_newline_tokens_are_visible():
    frag = viz.interpretation_html(["\n", "\n", "Hi"], [0.4, 0.1, 0.2])
    toks = [e for e in parse(frag).elements if e["attrs"].get("class") == "stl-tok"]
    assert [t["text"] for t in toks] == ["↵", "↵", "Hi"]
    assert viz.relevancy_color(0.4, 0.4) in toks[0]["attrs"]["style"]
