"""HTML fragments: the interactive grid and shaded interpretations."""

from __future__ import annotations

import re

import pytest

from selfie_tl import InvalidArgumentError, viz

from .helpers import cells_of, parse, synthetic


def test_grid_html_cells_colours_and_labels():
    frag = viz.grid_html(synthetic())
    cells = cells_of(frag)
    assert set(cells) == {(0, 1), (0, 3), (4, 1), (4, 3)}
    for cell in cells.values():
        mean = float(cell["attrs"]["data-mean-relevancy"])
        colour = re.search(r"background-color:(#[0-9a-f]{6})", cell["attrs"]["style"]).group(1)
        assert colour == viz.relevancy_color(mean, 0.3)
    assert cells[(0, 3)]["attrs"]["data-mean-relevancy"] == "0.3"
    # The darkest cell (highest relevancy) has white text, the palest black.
    assert "color:#ffffff" in cells[(0, 3)]["attrs"]["style"]
    assert "color:#000000" in cells[(0, 1)]["attrs"]["style"]
    assert cells[(4, 1)]["attrs"]["title"] == "The Eiffel Tower &"
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


def test_grid_html_escapes_model_output():
    frag = viz.grid_html(synthetic())
    p = parse(frag)
    # The only script is ours; model text "<script>" is shown as text, not run.
    assert len([e for e in p.elements if e["tag"] == "script"]) == 1
    assert "alert(1)" not in "".join(p.scripts)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in frag
    assert "Tower &amp;" in frag and "Tower & " not in frag


def test_grid_html_detail_has_shaded_tokens():
    frag = viz.grid_html(synthetic())
    cell = cells_of(frag)[(4, 1)]
    assert "The Eiffel Tower &" in cell["text"]  # the hidden detail carries the full text
    toks = [e for e in parse(frag).elements if e["tag"] == "span" and e["attrs"].get("class") == "stl-tok"]
    eiffel = next(t for t in toks if t["text"] == " Eiffel")
    assert eiffel["attrs"]["data-relevancy"] == "0.5"
    # Token scale: 0..0.5 (largest token relevancy), so " Eiffel" has the darkest colour.
    assert f"background-color:{viz.relevancy_color(0.5, 0.5)}" in eiffel["attrs"]["style"]
    ids = re.findall(r'id="(stl-[0-9a-f]+)"', frag)
    assert len(ids) == 1 and f'getElementById("{ids[0]}")' in frag


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
