"""A standalone HTML page of explained features (reuses :mod:`selfie_tl.viz` pieces).

One table row per feature: the SelfIE explanation with each generated token shaded by its
relevancy (:func:`selfie_tl.viz.interpretation_html`), the chosen scale and the automatic
choice's criterion values (a failed check is marked), the top-activating tokens with
their activations, the decoder row's logit lens, and the explanation scores when given.
Inline CSS only; every piece of model text is escaped.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from selfie_tl.files import check_output_path, write_text
from selfie_tl.viz.html import asset, esc, interpretation_html

_CSS = """
table.sae{border-collapse:collapse;font-size:13px;width:100%}
table.sae th,table.sae td{border-bottom:1px solid #e4e4e4;padding:4px 6px;vertical-align:top;text-align:left}
table.sae th{position:sticky;top:0;background:#fafafa;font-weight:600}
table.sae td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
table.sae .flag{color:#b00020;font-weight:600}
table.sae .tok{display:inline-block;background:#eef3fb;border-radius:3px;padding:0 3px;margin:1px;
 font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre}
table.sae .tok small{color:#777}
table.summary{border-collapse:collapse;font-size:13px;margin:6px 0 16px}
table.summary td,table.summary th{border:1px solid #ddd;padding:3px 8px;text-align:right}
table.summary td:first-child,table.summary th:first-child{text-align:left}
"""


def _tokens(tokens: Any, values: Any = None, n: int = 8) -> str:
    if not isinstance(tokens, list | tuple):
        return ""
    toks = list(tokens)[:n]
    vals = list(values)[: len(toks)] if isinstance(values, list | tuple) else []
    parts = []
    for i, t in enumerate(toks):
        small = f" <small>{vals[i]:.2g}</small>" if i < len(vals) else ""
        parts.append(f'<span class="tok">{esc(t)}</span>{small}')
    return " ".join(parts)


def _num(value: Any, fmt: str = "{:.3f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        return fmt.format(float(value))
    except (TypeError, ValueError):
        return esc(value)


def _summary_table(summary: pd.DataFrame) -> str:
    cols = [c for c in summary.columns]
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_num(v) if isinstance(v, float) else esc(v)}</td>" for v in row) + "</tr>"
        for row in summary.itertuples(index=False)
    )
    return f'<table class="summary"><tr>{head}</tr>{body}</table>'


def features_html(
    df: pd.DataFrame,
    *,
    scores: pd.DataFrame | None = None,
    summary: pd.DataFrame | None = None,
    title: str = "SelfIE explanations of SAE features",
    meta: Mapping[str, Any] | None = None,
) -> str:
    """The page as a string (see the module doc).

    Args:
        df: result of :func:`~selfie_tl.sae.explain_features`.
        scores: result of :func:`~selfie_tl.sae.score_explanations` (adds a score column per method).
        summary: result of :func:`~selfie_tl.sae.summarize_scores` (shown above the table).
        title: page title.
        meta: extra header entries (``command``, ...).

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"feature": [3], "explanation": ["<b>water</b>"], "generated_tokens": [["<b>water</b>"]],
        ...                    "relevancy": [[0.2]], "top_tokens": [[" river"]], "top_activations": [[2.5]],
        ...                    "logit_lens": [[" rivers"]], "scale": [2.0], "self_similarity": [0.1],
        ...                    "auto_scale_ok": [False]})
        >>> page = features_html(df)
        >>> "&lt;b&gt;water" in page and "<b>water" not in page and "http" not in page
        True
    """
    info = {**{k: df.attrs.get(k) for k in ("model_name", "hook_name", "d_sae", "interpretation_prompt")}, **(meta or {})}
    info.setdefault("date", datetime.datetime.now().isoformat(timespec="seconds"))
    if "config" in df.attrs:
        c = df.attrs["config"]
        info["settings"] = ", ".join(f"{k}={c[k]}" for k in ("k", "max_new_tokens", "scale", "norm_match", "auto_scales",
                                                          "self_similarity_threshold") if k in c)  # fmt: skip
    header = "".join(
        f"<dt>{esc(k)}</dt><dd><div class='stl-pre'>{esc(v)}</div></dd>" for k, v in info.items() if v is not None
    )
    wide = None
    if scores is not None and len(scores):
        wide = scores.pivot_table(index="feature", columns="method", values="auroc")
    methods = list(wide.columns) if wide is not None else []
    head = ["feature", "SelfIE explanation", "scale", "self-sim.", "entropy", "top-activating tokens", "logit lens",
            "freq."] + [f"AUROC {m}" for m in methods]  # fmt: skip
    rows = []
    for r in df.to_dict(orient="records"):
        tokens = r.get("generated_tokens")
        expl = (
            interpretation_html(list(tokens), r.get("relevancy") if isinstance(r.get("relevancy"), list) else None)
            if isinstance(tokens, list | tuple) and tokens else esc(r.get("explanation", ""))
        )
        ok = r.get("auto_scale_ok")
        flag = ' <span class="flag" title="self-similarity below threshold">⚠</span>' if ok is False else ""
        cells = [
            f'<td class="num">{esc(r.get("feature"))}</td>', f"<td>{expl}</td>",
            f'<td class="num">{_num(r.get("scale"), "{:g}")}</td>',
            f'<td class="num">{_num(r.get("self_similarity"))}{flag}</td>', f'<td class="num">{_num(r.get("entropy"), "{:.2f}")}</td>',
            f"<td>{_tokens(r.get('top_tokens'), r.get('top_activations'))}</td>", f"<td>{_tokens(r.get('logit_lens'))}</td>",
            f'<td class="num">{_num(r.get("frequency"), "{:.2%}")}</td>',
        ]  # fmt: skip
        for m in methods:
            value = wide.loc[r["feature"], m] if r["feature"] in wide.index else None
            cells.append(f'<td class="num">{_num(value, "{:.2f}")}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    summary_html = _summary_table(summary) if summary is not None and len(summary) else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{asset('report.css')}{_CSS}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><dl class="stl-run">{header}</dl></header>{summary_html}'
        f'<table class="sae"><thead><tr>{"".join(f"<th>{esc(h)}</th>" for h in head)}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></body></html>\n"
    )


def write_features_html(df: pd.DataFrame, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write :func:`features_html` to ``path`` atomically."""
    path = check_output_path(path, "HTML page")
    return write_text(path, features_html(df, **kwargs))


__all__ = ["features_html", "write_features_html"]
