"""Pictures: grid figure, HTML grid, shading, spans, report, Jupyter wrapper."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from selfie_tl import InvalidArgumentError, interpret, viz


def synthetic(prompt: str = "Where is Paris?") -> pd.DataFrame:
    """Two layers x two tokens with known texts and relevancy; one cell full of HTML."""
    rows = []
    spec = {
        (0, 1): (["a", " city"], [0.0, 0.1]),
        (0, 3): (["<script>", "alert(1)", "</script>"], [0.3, 0.3, 0.3]),
        (4, 1): (["The", " Eiffel", " Tower", " &"], [0.02, 0.5, 0.4, 0.01]),
        (4, 3): (["cost", " $5", " & $6"], [0.2, 0.2, 0.2]),
    }
    decoded = {1: " is", 3: "?"}
    for (layer, tok), (toks, rel) in spec.items():
        rows.append(
            {
                "prompt": prompt, "layer": layer, "token": tok, "token_decoded": decoded[tok],
                "interpretation": "".join(toks), "relevancy": rel, "mean_relevancy": sum(rel) / len(rel),
                "generated_tokens": toks,
            }
        )  # fmt: skip
    df = pd.DataFrame(rows)
    df.attrs["config"] = {"k": 2, "max_new_tokens": 4}
    df.attrs["interpretation_prompt"] = "<|im_start|>user\n_ _ <|im_end|>"
    return df


class Collect(HTMLParser):
    """Minimal DOM walk: element tags with attributes and the text directly inside."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict] = []
        self.stack: list[dict] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(el)
        self._in_script = tag == "script"
        if tag not in ("br", "meta"):
            self.stack.append(el)

    def handle_endtag(self, tag):
        self._in_script = False
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)
        for el in self.stack:
            el["text"] += data


def parse(text: str) -> Collect:
    p = Collect()
    p.feed(text)
    return p


def cells_of(html_text: str) -> dict[tuple[int, int], dict]:
    return {
        (int(e["attrs"]["data-layer"]), int(e["attrs"]["data-token"])): e
        for e in parse(html_text).elements
        if e["tag"] == "td" and "stl-cell" in e["attrs"].get("class", "")
    }


# ------------------------------------------------------------------ grid data / checks


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


# ------------------------------------------------------------------ matplotlib


def test_plot_grid_content(tmp_path):
    df = synthetic()
    fig = viz.plot_grid(df, tmp_path / "grid.png", max_chars=12)
    ax = fig.axes[0]
    image = ax.images[0]
    expected = np.array([[0.05, 0.3], [0.2325, 0.2]])
    np.testing.assert_allclose(np.ma.filled(image.get_array(), np.nan), expected)
    # The colour drawn for each cell is the colormap at its mean relevancy (scale 0..max).
    assert image.norm.vmin == 0 and image.norm.vmax == pytest.approx(0.3)
    assert to_hex(image.to_rgba(0.3)) == viz.relevancy_color(0.3, 0.3)
    assert to_hex(image.to_rgba(0.05)) == viz.relevancy_color(0.05, 0.3) != viz.relevancy_color(0.3, 0.3)
    texts = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in ax.texts}
    assert texts[(0, 1)] == "The Eiffel…"  # column 0 = token 1, row 1 = layer 4, truncated to 12
    assert texts[(1, 0)].replace("\n", " ").startswith("<script>")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "4"]
    xlabels = [t.get_text() for t in ax.get_xticklabels()]
    assert xlabels == ['1\n" is"', '3\n"?"']
    assert ax.get_title() == "Where is Paris?"
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_grid_svg_keeps_dollars_literal(tmp_path):
    df = synthetic()
    fig = viz.plot_grid(df, tmp_path / "grid.svg")
    svg = (tmp_path / "grid.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    cost = next(t for t in fig.axes[0].texts if t.get_text().startswith("cost"))
    assert "$5" in cost.get_text() and cost.get_parse_math() is False


def test_plot_grid_missing_cells_and_no_relevancy():
    df = synthetic().drop(index=[1]).assign(mean_relevancy=None, relevancy=None)
    ax = viz.plot_grid(df).axes[0]
    values = np.ma.filled(ax.images[0].get_array(), np.nan)
    assert np.isnan(values).all()
    assert len(ax.texts) == 3  # the dropped (0, 3) cell stays empty


def test_plot_grid_on_given_axes():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert viz.plot_grid(synthetic(), ax=ax) is fig and len(ax.texts) == 4


# ------------------------------------------------------------------ HTML


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


def test_relevancy_color_clips_and_orders():
    assert viz.relevancy_color(2.0, 1.0) == viz.relevancy_color(1.0, 1.0)
    assert viz.relevancy_color(-1.0, 1.0) == viz.relevancy_color(0.0, 1.0)
    assert viz.relevancy_color(float("nan")) == "#eeeeee"
    # Higher relevancy -> darker colour.
    from matplotlib.colors import to_rgb

    lum = [sum(to_rgb(viz.relevancy_color(v, 1.0))) for v in (0.0, 0.5, 1.0)]
    assert lum[0] > lum[1] > lum[2]


# ------------------------------------------------------------------ spans


def test_relevant_spans():
    spans = viz.relevant_spans(["The", " Eiffel", " Tower", " &"], [0.02, 0.5, 0.4, 0.01], threshold=0.1)
    assert [(s.start, s.end, s.text) for s in spans] == [(1, 3, " Eiffel Tower")]
    assert spans[0].max_relevancy == 0.5 and spans[0].mean_relevancy == pytest.approx(0.45)
    # Strictly greater; several spans; a trailing span is closed.
    spans = viz.relevant_spans(list("abcde"), [0.2, 0.1, 0.3, 0.0, 0.9], threshold=0.1)
    assert [s.text for s in spans] == ["a", "c", "e"]
    assert viz.relevant_spans(list("ab"), [0.0, 0.0], threshold=0.1) == []
    row_spans = viz.relevant_spans(synthetic().iloc[2], threshold=0.3)
    assert [s.text for s in row_spans] == [" Eiffel Tower"]
    tuple_row = list(synthetic().itertuples())[2]
    assert viz.relevant_spans(tuple_row, threshold=0.3) == row_spans
    assert viz.interpretation_html(tuple_row) == viz.interpretation_html(synthetic().iloc[2])
    with pytest.raises(InvalidArgumentError, match="relevancy=True"):
        viz.relevant_spans(["a"], None)
    with pytest.raises(InvalidArgumentError, match="align"):
        viz.relevant_spans(["a", "b"], [0.5])


# ------------------------------------------------------------------ report / Jupyter


def test_write_report_standalone_and_atomic(tmp_path):
    df = pd.concat([synthetic("one"), synthetic("two")], ignore_index=True)
    df.attrs = synthetic().attrs
    out = viz.write_report(df, tmp_path / "report.html", title="T <1>")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>T &lt;1&gt;</title>" in page
    # No network: nothing to fetch (no src/href to anything, no @import, no url()).
    assert not re.search(r"(src|href)\s*=|@import|url\(|https?:", page)
    assert page.count('class="stl-grid"') == 2  # one grid per prompt
    assert "max_new_tokens=4" in page and "&lt;|im_start|&gt;user" in page
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind
    # Replacing keeps one file; a bad frame leaves the old report untouched.
    with pytest.raises(InvalidArgumentError):
        viz.write_report(pd.DataFrame({"x": [1]}), out)
    assert out.read_text(encoding="utf-8") == page
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        viz.write_report(df, tmp_path / "nope" / "r.html")
    assert viz.add_html_report is viz.write_report


def test_report_uses_one_scale_for_all_prompts():
    a, b = synthetic("one"), synthetic("two")
    b["mean_relevancy"] = b["mean_relevancy"] / 3
    page = viz.report_html(pd.concat([a, b], ignore_index=True))
    colours = re.findall(r'data-mean-relevancy="([0-9.e-]+)" style="background-color:(#[0-9a-f]{6})', page)
    assert len(colours) == 8
    for value, colour in colours:
        assert colour == viz.relevancy_color(float(value), 0.3)


def test_show_repr_html():
    view = viz.show(synthetic())
    frag = view._repr_html_()
    assert len(cells_of(frag)) == 4
    assert "4 interpretations" in repr(view)
    spans = view.spans(threshold=0.25)
    assert [s.text for s in spans.iloc[1]] == ["<script>alert(1)</script>"]
    assert [s.text for s in spans.iloc[2]] == [" Eiffel Tower"]
    assert isinstance(view.df, pd.DataFrame) and type(view.df) is pd.DataFrame


def test_on_real_interpret_result(tiny_llama, tmp_path):
    df = interpret(tiny_llama, "The cat sat", [(0, 1), (3, 1), (0, -1), (3, -1)], k=1, max_new_tokens=5)
    frag = viz.grid_html(df)
    cells = cells_of(frag)
    assert set(cells) == {(0, 1), (3, 1), (0, 10), (3, 10)}
    for (layer, tok), cell in cells.items():
        row = df[(df.layer == layer) & (df.token == tok)].iloc[0]
        assert float(cell["attrs"]["data-mean-relevancy"]) == pytest.approx(row.mean_relevancy, rel=1e-5)
        assert cell["attrs"]["title"] == row.interpretation
    ax = viz.plot_grid(df, tmp_path / "g.svg").axes[0]
    np.testing.assert_allclose(
        np.ma.filled(ax.images[0].get_array(), np.nan),
        df.pivot(index="layer", columns="token", values="mean_relevancy").to_numpy(),
        rtol=1e-6,
    )
    assert Path(tmp_path / "g.svg").stat().st_size > 0


def test_newline_tokens_are_visible_and_report_mode(tmp_path):
    frag = viz.interpretation_html(["\n", "\n", "Hi"], [0.4, 0.1, 0.2])
    toks = [e for e in parse(frag).elements if e["attrs"].get("class") == "stl-tok"]
    assert [t["text"] for t in toks] == ["↵", "↵", "Hi"]
    assert viz.relevancy_color(0.4, 0.4) in toks[0]["attrs"]["style"]
    out = viz.write_report(synthetic(), tmp_path / "r.html")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's private 0600
