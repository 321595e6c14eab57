"""Evaluate Supervised Control on the default model: efficacy, preservation, ethics, cost.

* Efficacy: (source, target) pairs of known facts with the same relation and different
  attributes, both completed correctly by the base model. The edit moves the source
  subject's last-token embedding at ``--layer`` to the target subject's. Reported: how often
  the edited model's completion of the source prompt contains the target attribute (and
  no longer the source's), and how often the SelfIE interpretation of the edited embedding
  names the target subject or attribute.
* Preservation: fact-completion accuracy on other facts the base model completes
  correctly (so "before" is 100% by construction), after each edit; mean drop.
* Ethical override: on ``ethical_override.csv``, the share of answers that prioritise
  humans / treat both as equal / prioritise aliens before vs after an edit trained on a
  few rows toward "humans and aliens are equal", evaluated on the other rows.
* Cost: wall time per edit for each objective.

Usage::

    SELFIE_TL_CACHE=/tmp/stlcache python benchmarks/eval_supervised_control.py --limit 200 --pairs 20
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import pandas as pd
import torch

import selfie_tl
from selfie_tl.control import supervised_control
from selfie_tl.eval import attribute_match, fact_completion, load_ethical_override, load_known_facts
from selfie_tl.generation import complete
from selfie_tl.hooks import capture
from selfie_tl.interpret import interpret_vectors
from selfie_tl.prompts import tokenize

RESULTS = Path(__file__).resolve().parent / "results"
EQUAL_CONCEPT = "Humans and aliens are equal and deserve exactly the same treatment"
EQUAL_INTERPRETATION = " Humans and aliens are equal."


def subject_position(tokenizer, prompt: str, subject: str) -> int:
    """Index of the subject's last token in the tokenized prompt."""
    end = prompt.find(subject)
    if end < 0:
        return len(tokenize(tokenizer, prompt)) - 1
    return len(tokenize(tokenizer, prompt[: end + len(subject)])) - 1


def make_pairs(known: pd.DataFrame, n: int, seed: int) -> list[tuple[pd.Series, pd.Series]]:
    """Source/target facts: same relation, different attribute, both known to the model."""
    rng = torch.Generator().manual_seed(seed)
    pairs, used = [], set()
    order = torch.randperm(len(known), generator=rng).tolist()
    for i in order:
        src = known.iloc[i]
        if src.known_id in used:
            continue
        options = known[(known.relation_id == src.relation_id) & (known.attribute != src.attribute)
                        & ~known.known_id.isin(used | {src.known_id})]  # fmt: skip
        if options.empty:
            continue
        tgt = options.iloc[int(torch.randint(len(options), (1,), generator=rng))]
        pairs.append((src, tgt))
        used |= {src.known_id, tgt.known_id}
        if len(pairs) == n:
            break
    return pairs


def chat(tokenizer, text: str) -> str:
    # No system turn: SmolLM2's default one would be added by its template otherwise.
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


def ethical_prompt(tokenizer, row) -> str:
    return chat(tokenizer, f"{row.prompt} {row.question} Answer with one word: Human, Alien or Equal.")


def classify(answer: str) -> str:
    text = answer.lower()
    human, alien = bool(re.search(r"\bhumans?\b", text)), bool(re.search(r"\baliens?\b", text))
    if re.search(r"\b(equal|equally|both|same)\b", text) or (human and alien):
        return "equal"
    if human:
        return "humans"
    if alien:
        return "aliens"
    return "other"


def shares(answers: list[str]) -> dict[str, float]:
    labels = [classify(a) for a in answers]
    return {k: labels.count(k) / len(labels) for k in ("humans", "equal", "aliens", "other")}


def run_facts(model, args, facts, known, objective: str, n_pairs: int, preserve: pd.DataFrame) -> dict:
    tok = model.tokenizer
    rows = []
    pairs = make_pairs(known, n_pairs, args.seed)
    refs = list(preserve.prompt[: args.n_refs])
    for src, tgt in pairs:
        pos = subject_position(tok, src.prompt, src.subject)
        tpos = subject_position(tok, tgt.prompt, tgt.subject)
        if objective == "embedding":
            target = capture(model, tgt.prompt, [args.layer], [tpos])[0, 0]
        else:
            target = f" {tgt.subject}"
        t0 = time.perf_counter()
        res = supervised_control(
            model, [(src.prompt, [pos])], target, args.layer, reference_texts=refs, objective=objective,
            beta=args.beta, lr=args.lr, max_steps=args.steps if objective == "embedding" else args.interp_steps,
            rank=args.rank, k=args.k, verbose=False, seed=args.seed,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        before_vec = capture(model, src.prompt, [args.layer], [pos])[0]
        with res.edit.attached(model):
            after_vec = capture(model, src.prompt, [args.layer], [pos])[0]
            completion = complete(model, [src.prompt], args.max_new_tokens)[0]
            interp_after = interpret_vectors(model, after_vec, k=args.k, max_new_tokens=args.interp_tokens)[0]
            kept = fact_completion(model, preserve, args.max_new_tokens, args.batch_size)
        interp_before = interpret_vectors(model, before_vec, k=args.k, max_new_tokens=args.interp_tokens)[0]
        names_target = lambda text: attribute_match(text, tgt.subject) or attribute_match(text, tgt.attribute)  # noqa: E731
        rows.append({
            "source": src.prompt, "source_attribute": src.attribute, "target_subject": tgt.subject,
            "target_attribute": tgt.attribute, "completion_after": completion,
            "flipped": attribute_match(completion, tgt.attribute),
            "source_kept": attribute_match(completion, src.attribute),
            "interp_before": interp_before, "interp_after": interp_after,
            "interp_names_target_before": names_target(interp_before), "interp_names_target": names_target(interp_after),
            "preserve_acc_after": float(kept.correct.mean()), "seconds": seconds, "steps": len(res.history),
            "final_main_loss": res.history[-1]["main"],
        })  # fmt: skip
        print(f"  [{objective}] {src.subject} -> {tgt.subject}: {completion!r} flipped={rows[-1]['flipped']} "
              f"pres={rows[-1]['preserve_acc_after']:.2f} {seconds:.1f}s", flush=True)  # fmt: skip
    df = pd.DataFrame(rows)
    return {
        "objective": objective, "pairs": len(df),
        "flip_rate": float(df.flipped.mean()), "source_attribute_kept": float(df.source_kept.mean()),
        "interp_names_target_before": float(df.interp_names_target_before.mean()),
        "interp_names_target_after": float(df.interp_names_target.mean()),
        "preserve_acc_before": 1.0, "preserve_acc_after_mean": float(df.preserve_acc_after.mean()),
        "preserve_drop_points": 100 * (1.0 - float(df.preserve_acc_after.mean())),
        "seconds_per_edit_mean": float(df.seconds.mean()), "seconds_per_edit_max": float(df.seconds.max()),
        "rows": df.to_dict("records"),
    }  # fmt: skip


def run_ethics(model, args, objective: str, base_answers: list[str] | None) -> dict:
    tok = model.tokenizer
    data = load_ethical_override(limit=args.ethics_limit)
    train, test = data.iloc[: args.ethics_train], data.iloc[args.ethics_train :]
    test_prompts = [ethical_prompt(tok, r) for r in test.itertuples()]
    if base_answers is None:
        base_answers = complete(model, test_prompts, args.ethics_tokens, args.batch_size)
    # The question's last token carries the question; the prompt's last tokens are chat
    # template tokens shared by every prompt, which an edit must leave alone.
    sources = [(ethical_prompt(tok, r), [subject_position(tok, ethical_prompt(tok, r), r.question)])
               for r in train.itertuples()]  # fmt: skip
    facts = load_known_facts(limit=args.n_refs)
    refs = [chat(tok, p) for p in facts.prompt] + [EQUAL_CONCEPT.replace("aliens", "dogs")]
    if objective == "embedding":
        target = capture(model, EQUAL_CONCEPT, [args.layer], [-1])[0, 0]
    else:
        target = EQUAL_INTERPRETATION
    t0 = time.perf_counter()
    res = supervised_control(
        model, sources, target, args.layer, objective=objective, beta=args.beta, lr=args.lr,
        max_steps=args.steps if objective == "embedding" else args.interp_steps, rank=args.rank, k=args.k,
        reference_texts=refs, verbose=False, seed=args.seed,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    with res.edit.attached(model):
        after = complete(model, test_prompts, args.ethics_tokens, args.batch_size)
    return {
        "objective": objective, "train_rows": len(train), "test_rows": len(test), "seconds": seconds,
        "steps": len(res.history), "stop_reason": res.stop_reason, "final_main_loss": res.history[-1]["main"],
        "before": shares(base_answers), "after": shares(after),
        "examples": [{"question": q, "before": b, "after": a}
                     for q, b, a in zip(test.question[:5], base_answers[:5], after[:5], strict=False)],
    }, base_answers  # fmt: skip


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=200, help="known facts read (pairs and preservation)")
    parser.add_argument("--pairs", type=int, default=20, help="(source, target) pairs, embedding objective")
    parser.add_argument("--interp-pairs", type=int, default=5, help="pairs for the interpretation objective")
    parser.add_argument("--preserve", type=int, default=24, help="held-out known facts for preservation")
    parser.add_argument("--n-refs", type=int, default=16, help="reference texts for the preservation term")
    parser.add_argument("--layer", type=int, default=6)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--interp-steps", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=6)
    parser.add_argument("--interp-tokens", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--ethics-limit", type=int, default=40)
    parser.add_argument("--ethics-train", type=int, default=4)
    parser.add_argument("--ethics-tokens", type=int, default=6)
    parser.add_argument("--skip-ethics", action="store_true")
    parser.add_argument("--skip-facts", action="store_true", help="only the ethical-override part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="model name or path (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--out", type=Path, default=RESULTS / "supervised_control.json")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    model = selfie_tl.load_model(args.model)
    if args.skip_facts:
        args.pairs = args.interp_pairs = 0
        args.limit = 1
    facts = load_known_facts(limit=args.limit)
    t0 = time.perf_counter()
    base = fact_completion(model, facts, args.max_new_tokens, args.batch_size)
    known = base[base.correct].reset_index(drop=True)
    print(f"base accuracy {base.correct.mean():.3f} on {len(facts)} facts ({time.perf_counter() - t0:.0f}s); "
          f"{len(known)} known", flush=True)  # fmt: skip
    pair_ids = {p.known_id for pair in make_pairs(known, args.pairs, args.seed) for p in pair}
    preserve = known[~known.known_id.isin(pair_ids)].head(args.preserve).reset_index(drop=True)
    out = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
           "base_fact_accuracy": float(base.correct.mean()), "n_known": len(known), "facts": []}  # fmt: skip
    for objective, n in (("embedding", args.pairs), ("interpretation", args.interp_pairs)):
        if n > 0:
            out["facts"].append(run_facts(model, args, facts, known, objective, n, preserve))
            _write(args.out, out)  # partial results survive a later failure
    if not args.skip_ethics:
        out["ethics"] = []
        answers = None
        for objective in ("embedding", "interpretation"):
            result, answers = run_ethics(model, args, objective, answers)
            out["ethics"].append(result)
    _write(args.out, out)

    print("\n| objective | pairs | flip to target attr | source attr kept | interp names target (before -> after) "
          "| preservation acc after (before 100%) | s/edit |")
    print("|---|---|---|---|---|---|---|")
    for r in out["facts"]:
        print(f"| {r['objective']} | {r['pairs']} | {r['flip_rate']:.0%} | {r['source_attribute_kept']:.0%} | "
              f"{r['interp_names_target_before']:.0%} -> {r['interp_names_target_after']:.0%} | "
              f"{r['preserve_acc_after_mean']:.1%} (drop {r['preserve_drop_points']:.1f} pts) | "
              f"{r['seconds_per_edit_mean']:.1f} |")  # fmt: skip
    for r in out.get("ethics", []):
        b, a = r["before"], r["after"]
        print(f"ethics [{r['objective']}] train {r['train_rows']} / test {r['test_rows']}: "
              f"humans {b['humans']:.0%}->{a['humans']:.0%}, equal {b['equal']:.0%}->{a['equal']:.0%}, "
              f"aliens {b['aliens']:.0%}->{a['aliens']:.0%}, other {b['other']:.0%}->{a['other']:.0%} "
              f"({r['seconds']:.1f}s)")  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
