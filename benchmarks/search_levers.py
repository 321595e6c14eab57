"""Choose SelfIE's settings on the validation split, greedily, one lever at a time.

Attribute extraction as in ``selfie-tl eval`` (the subject's last-token state; a hit when
the interpretation names the attribute). Only validation facts are read here; the test
split is never touched (``eval_preset.py`` reports it for the winner).

    python benchmarks/search_levers.py --out benchmarks/results/search

Prints a table per stage and writes ``search.json`` (every configuration tried, with its
validation accuracy per layer).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import pandas as pd
import torch

import selfie_tl
from selfie_tl.eval.attributes import subject_vectors
from selfie_tl.eval.facts import attribute_match
from selfie_tl.eval.templates import template_prompt

LAYERS = [9, 12, 15, 18, 21]


def split_of(known_id) -> str:
    bucket = int(hashlib.sha256(f"selfie_tl-split-v1:{known_id}".encode()).hexdigest(), 16) % 10
    return "train" if bucket < 4 else "validation" if bucket < 6 else "test"


def load_split(name: str) -> pd.DataFrame:
    from selfie_tl.eval import load_known_facts

    facts = load_known_facts()
    return facts[[split_of(i) == name for i in facts.known_id]].reset_index(drop=True)


def run(model, facts, vecs, layers, template, options, batch_size=64, max_new_tokens=20):
    groups = {}
    if template == "relation":
        for i, t in enumerate(facts.template):
            groups.setdefault(t, []).append(i)
        prompts = [(template_prompt(model.tokenizer, "relation", t), idx) for t, idx in groups.items()]
    else:
        prompts = [(template_prompt(model.tokenizer, template), list(range(len(facts))))]
    acc, texts = {}, {}
    for li, layer in enumerate(layers):
        hits, outs = [False] * len(facts), [""] * len(facts)
        for prompt, idx in prompts:
            out = selfie_tl.interpret_vectors(
                model, vecs[idx, li], prompt, max_new_tokens=max_new_tokens, batch_size=batch_size, **options
            )
            for i, text in zip(idx, out):
                outs[i] = text
                hits[i] = attribute_match(text, facts.attribute[i])
        acc[layer] = sum(hits) / len(hits)
        texts[layer] = outs
    return acc, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results/search")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--templates", default="summary,facts,where_from,tell_me,repeat,relation")
    parser.add_argument("--adapter", default=None, help="also try this adapter file as a lever")
    parser.add_argument("--template", default=None,
                        help="skip the template stage and search the levers on this template "
                        "(stage-1 results already in search.json are kept)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = selfie_tl.load_model()
    facts = load_split("validation")
    if args.limit:
        facts = facts.head(args.limit)
    vecs, _, _ = subject_vectors(model, facts, LAYERS)
    log = []
    previous = out / "search.json"
    if args.template and previous.exists():
        log = [t for t in json.loads(previous.read_text())["trials"] if t["stage"] == "template"]

    def trial(stage, template, options):
        t0 = time.perf_counter()
        acc, texts = run(model, facts, vecs, LAYERS, template, options)
        mean = sum(acc.values()) / len(acc)
        best = max(acc, key=acc.get)
        row = {"stage": stage, "template": template, "options": options, "acc": acc, "mean": mean,
               "best_layer": best, "best": acc[best], "seconds": time.perf_counter() - t0,
               "examples": {layer: texts[layer][:3] for layer in acc}}
        log.append(row)
        print(f"[{stage}] {template:<10} {json.dumps(options):<60} mean {100*mean:5.1f}%  best L{best} {100*acc[best]:5.1f}%  ({row['seconds']:.0f}s)", flush=True)
        (out / "search.json").write_text(json.dumps({"n_validation": len(facts), "layers": LAYERS, "trials": log}, indent=1))
        return mean

    # stage 1: templates, paper recipe otherwise. The preset must work on any vector, so the
    # lever search continues with the best *fixed* template ("relation" needs a fact's relation).
    if args.template:
        scores = {t["template"]: t["mean"] for t in log}
        template = args.template
    else:
        scores = {t: trial("template", t, {}) for t in args.templates.split(",")}
        template = max((t for t in scores if t != "relation"), key=scores.get)
    best_opts: dict = {}
    best = scores.get(template) if template in scores else trial("template", template, {})
    # stage 2: one lever at a time, kept when the validation mean improves
    levers = [
        ("decoding", [{"no_repeat_ngram_size": 3}, {"repetition_penalty": 1.3}]),
        ("scale", [{"scale": 0.5}, {"scale": 2.0}, {"scale": "auto"}, {"norm_match": True}]),
        ("k", [{"k": 1}, {"k": 4}]),
        ("inject_layers", [{"inject_layers": 2}, {"inject_layers": 3}]),
    ]
    if args.adapter:
        levers.append(("adapter", [{"adapter": args.adapter}]))
    for stage, options_list in levers:
        stage_best, stage_opts = best, None
        for opts in options_list:
            score = trial(stage, template, {**best_opts, **opts})
            if score > stage_best:
                stage_best, stage_opts = score, opts
        if stage_opts is not None:
            best_opts.update(stage_opts)
            best = stage_best
    print("chosen:", template, best_opts, f"validation mean {100*best:.1f}%")
    (out / "chosen.json").write_text(json.dumps({"template": template, "options": best_opts, "validation_mean": best}))


if __name__ == "__main__":
    main()
