"""Train a self-interpretation adapter on the known facts' *train* split (never validation
or test), for one evaluation template.

    python benchmarks/train_adapter.py --template wiki_is --objective describe --layers 12,15,18 \\
        --steps 60 --batch-size 16 --out adapter-wiki_is.safetensors

Objectives (:mod:`selfie_tl.eval.adapter_training`; neither sees an attribute): ``name``,
the interpretation of a training subject's last-token state names the subject;
``describe``, it starts like the model's own answer to the same prompt with the subject
spelled out. Prints the loss; the file is safetensors + JSON with the model's fingerprint
(a few KB). Try it on validation with ``selfie-tl eval --search --search-adapter FILE``.
"""

from __future__ import annotations

import argparse
import time

import selfie_tl
from selfie_tl.eval import load_known_facts
from selfie_tl.eval.adapter_training import OBJECTIVES, train_entity_adapter
from selfie_tl.eval.templates import template_prompt
from selfie_tl.indices import parse_index_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default="wiki_is")
    parser.add_argument("--objective", default="describe", choices=OBJECTIVES)
    parser.add_argument("--target-tokens", type=int, default=12, help="length of the describe targets")
    parser.add_argument("--facts", type=int, default=None, help="use only this many training facts")
    parser.add_argument("--layers", default="12,15,18")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model = selfie_tl.load_model()
    facts = load_known_facts(split="train").sample(frac=1.0, random_state=0).head(args.facts).reset_index(drop=True)
    prompt = template_prompt(model.tokenizer, args.template)
    start = time.perf_counter()
    adapter = train_entity_adapter(
        model, facts, parse_index_spec(args.layers), prompt, objective=args.objective,
        target_tokens=args.target_tokens, k=args.k, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
        verbose=True,
    )  # fmt: skip
    adapter.info["template"] = args.template
    adapter.save(args.out, model)
    losses = adapter.info["losses"]
    head, tail = sum(losses[:5]) / len(losses[:5]), sum(losses[-5:]) / len(losses[-5:])
    print(f"trained on {len(facts)} facts x {args.layers} in {time.perf_counter() - start:.0f} s; "
          f"loss (mean of 5 steps) {head:.3f} -> {tail:.3f}; scale {adapter.scale.item():.3f}, "
          f"|bias| {adapter.bias.detach().norm().item():.2f}; saved {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
