"""Train the self-interpretation adapter shipped with the ``best`` preset (training split only).

    python benchmarks/train_adapter.py --template facts --facts 24 --layers 9,15,21 --steps 20 \\
        --out selfie_tl/presets/best-adapter.safetensors

Objective: the interpretation of a training subject's last-token state names the subject
(never an attribute). Prints the loss curve; the file is safetensors + JSON with the model's
fingerprint (a few KB).
"""

from __future__ import annotations

import argparse
import time

import selfie_tl
from selfie_tl.eval import load_known_facts
from selfie_tl.eval.adapter_training import train_entity_adapter
from selfie_tl.eval.templates import template_prompt
from selfie_tl.indices import parse_index_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default="facts")
    parser.add_argument("--facts", type=int, default=24, help="training facts used (from the train split)")
    parser.add_argument("--layers", default="9,15,21")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model = selfie_tl.load_model()
    facts = load_known_facts(split="train").sample(frac=1.0, random_state=0).head(args.facts).reset_index(drop=True)
    prompt = template_prompt(model.tokenizer, args.template)
    start = time.perf_counter()
    adapter = train_entity_adapter(
        model, facts, parse_index_spec(args.layers), prompt, k=args.k, steps=args.steps, lr=args.lr,
        batch_size=16, verbose=True,
    )  # fmt: skip
    adapter.info["template"] = args.template
    adapter.save(args.out, model)
    losses = adapter.info["losses"]
    print(f"trained on {len(facts)} facts x {args.layers} in {time.perf_counter() - start:.0f} s; "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; scale {float(adapter.scale):.3f}, "
          f"|bias| {float(adapter.bias.norm()):.2f}; saved {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
