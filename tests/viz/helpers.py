"""Shared by the viz tests: a synthetic result with known values and a tiny HTML walker."""

from __future__ import annotations

import math
from html.parser import HTMLParser

import pandas as pd


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
        self.scripts: list[str] = []  # text of executable scripts
        self.json_blocks: list[str] = []  # text of <script type="application/json">
        self._in_script = False
        self._in_json = False

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(el)
        self._in_json = tag == "script" and el["attrs"].get("type") == "application/json"
        self._in_script = tag == "script" and not self._in_json
        if tag not in ("br", "meta"):
            self.stack.append(el)

    def handle_endtag(self, tag):
        self._in_script = self._in_json = False
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)
        if self._in_json:
            self.json_blocks.append(data)
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


WORDS = ["Paris", " the", " capital", " of", " France", "\n", " city", " Eiffel", " Tower", ".", " is", " a"]


def synthetic_grid(n_layers: int, n_tokens: int, n_generated: int = 30, prompt: str = "Where is Paris?"):
    """An ``n_layers x n_tokens`` result with deterministic, varied interpretations."""
    rows = []
    for layer in range(n_layers):
        for tok in range(n_tokens):
            toks = [WORDS[(layer * 7 + tok * 3 + i * 5) % len(WORDS)] for i in range(n_generated - 1)]
            toks.insert(0, f"[{layer}:{tok}]")  # every interpretation differs
            # Scores rise and fall over the layers, as they tend to.
            weight = 0.1 + 0.9 * math.sin(math.pi * (layer + 0.5) / n_layers) ** 2
            rel = [weight * ((layer + 1) * (tok + 2) * (i + 3) % 17) / 40 for i in range(n_generated)]
            rows.append(
                {
                    "prompt": prompt, "layer": layer, "token": tok, "token_decoded": f" w{tok}",
                    "interpretation": "".join(toks), "relevancy": rel,
                    "mean_relevancy": sum(rel) / len(rel), "generated_tokens": toks,
                }
            )  # fmt: skip
    df = pd.DataFrame(rows)
    df.attrs["config"] = {"k": 2, "max_new_tokens": n_generated, "verbose": False}
    df.attrs["interpretation_prompt"] = "<|im_start|>user\n_ _ _ _ _\nSummarize.<|im_end|>\n"
    return df


def data_blocks(html_text: str) -> list[dict]:
    """The JSON data block of each grid fragment, decoded."""
    import json

    p = parse(html_text)
    return [json.loads(text) for text in p.json_blocks]
