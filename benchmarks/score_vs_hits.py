"""Does the cell score point at cells that name the fact? Content vs mean relevancy.

For validation facts, interpret the subject's last-token state at a few layers (with
relevancy) and compare each cell score with whether the interpretation names the fact's
attribute (the evaluation's hit): point-biserial correlation and mean score of hit vs
non-hit cells.

    python benchmarks/score_vs_hits.py --limit 120 --layers 12,18 --preset best
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import selfie_tl
from selfie_tl.eval import load_known_facts
from selfie_tl.eval.attributes import subject_vectors
from selfie_tl.eval.facts import attribute_match
from selfie_tl.indices import parse_index_spec
from selfie_tl.relevancy import content_relevancy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=120)
    parser.add_argument("--layers", default="12,18")
    parser.add_argument("--preset", default="best")
    parser.add_argument("--split", default="validation")
    args = parser.parse_args()
    model = selfie_tl.load_model()
    facts = load_known_facts(split=args.split, limit=args.limit)
    layers = parse_index_spec(args.layers)
    vecs, _, _ = subject_vectors(model, facts, layers)
    specials = list(model.tokenizer.all_special_tokens)
    hits, mean_rel, content = [], [], []
    for li, _layer in enumerate(layers):
        out = selfie_tl.generate_interpretations(
            model, vecs[:, li], preset=args.preset, max_new_tokens=20, batch_size=32, relevancy=True
        )
        for i, (text, toks, rel) in enumerate(zip(out.texts, out.tokens, out.relevancy)):
            hits.append(attribute_match(text, facts.attribute[i]))
            mean_rel.append(float(np.mean(rel)) if rel else np.nan)
            content.append(content_relevancy(toks, rel, special_tokens=specials))
    hits_a = np.asarray(hits, dtype=float)
    result = {"cells": len(hits), "hits": int(hits_a.sum()), "split": args.split, "preset": args.preset,
              "layers": layers}  # fmt: skip
    for name, score in (("mean_relevancy", mean_rel), ("content_relevancy", content)):
        s = np.asarray(score, dtype=float)
        ok = ~np.isnan(s)
        r = float(np.corrcoef(s[ok], hits_a[ok])[0, 1]) if hits_a[ok].std() > 0 else float("nan")
        result[name] = {
            "point_biserial_r": r,
            "mean_hit": float(np.nanmean(s[hits_a == 1])) if hits_a.sum() else float("nan"),
            "mean_miss": float(np.nanmean(s[hits_a == 0])),
            "nan_cells": int((~ok).sum()),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
