"""``selfie-tl eval``: attribute extraction with baselines, fact completion and prompt
comparison on the known facts (packaged with selfie_tl, or any CSV with their columns),
in one command.

Wire it into a CLI with :func:`register`; run it standalone with
``python -m selfie_tl.eval.cli --limit 20 --layers 0:31:3 --out benchmarks/results/eval``.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> sub = parser.add_subparsers(dest="command")
    >>> _ = register(sub)
    >>> args = parser.parse_args(["eval", "--limit", "5", "--layers", "0:31:3"])
    >>> args.limit, parse_layers(args.layers)[:3]
    (5, [0, 3, 6])
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.eval.attributes import METHODS, AttributeEvalConfig
from selfie_tl.eval.methods import BATCH_SIZE
from selfie_tl.eval.templates import PRESET_PREFIX, template_names
from selfie_tl.files import write_text
from selfie_tl.hooks import CAPTURE_BATCH
from selfie_tl.indices import parse_index_spec


def parse_layers(spec: str | None) -> list[int] | None:
    """``"0:31:3"`` (Python slice, stop exclusive), ``"3,6,12"`` or ``"12"`` -> list of
    ints; ``None``/``""`` -> ``None`` (every 3rd layer).

    Raises:
        InvalidArgumentError: unparsable or empty.

    Example:
        >>> parse_layers("0:10:3"), parse_layers("4,2")
        ([0, 3, 6, 9], [4, 2])
    """
    if spec is None or spec.strip() == "":
        return None
    return parse_index_spec(spec, None, "layer")


def _csv_list(spec: str, allowed: list[str], what: str) -> list[str]:
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if items == ["all"]:
        return list(allowed)
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise InvalidArgumentError(f"unknown {what} {bad or spec!r}; choose from {allowed} or 'all'")
    return items


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the eval flags to ``parser``."""
    parser.add_argument("--model", default=None, help="model name/path (default: embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--data", default=None, metavar="FILE",
                        help="known-facts CSV with columns known_id, subject, attribute, prompt "
                        "(template, relation_id optional; default: the packaged known_facts.csv)")
    parser.add_argument("--split", default="all", choices=("train", "validation", "test", "all"),
                        help="fixed split of the facts to evaluate (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="first N facts only")
    parser.add_argument("--layers", default="0:31:3", help="layers to read: start:stop:step or a,b,c (default 0:31:3)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma list of {list(METHODS)} or 'all'")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help="interpret with a shipped preset's prompt and settings (e.g. best; see selfie_tl.presets)")
    parser.add_argument("--prompts", default=None,
                        help=f"interpretation templates, comma list of {template_names()} or 'all' "
                        "(default: summary, or the preset's prompt with --preset)")  # fmt: skip
    parser.add_argument("--k", type=int, default=None, help="SelfIE injection layer (default 2, or the preset's)")
    parser.add_argument(
        "--batch-size", type=int, default=BATCH_SIZE, help=f"interpretations generated together (default {BATCH_SIZE})"
    )
    parser.add_argument("--capture-batch-size", type=int, default=CAPTURE_BATCH,
                        help=f"fact prompts of one length read per forward (default {CAPTURE_BATCH}; "
                        "1 reads each alone, bit for bit as before batching)")  # fmt: skip
    parser.add_argument("--max-new-tokens", type=int, default=20, help="tokens per interpretation (default 20)")
    parser.add_argument("--logit-lens-k", type=int, default=20,
                        help="top-k tokens the logit lens may hit with (default 20)")  # fmt: skip
    parser.add_argument("--n-bootstrap", type=int, default=1000,
                        help="bootstrap resamples for the 95%% intervals (default 1000)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--no-fact-completion", action="store_true", help="skip the fact-completion pass")
    parser.add_argument("--out", default=None, help="directory for rows.csv, summary.csv, accuracy.png, summary.json")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 is often fastest on a shared, busy machine)")
    parser.add_argument("--workers", default="auto", type=_workers, metavar="N|auto",
                        help="processes for SelfIE and the patchscope, sharing the threads (default auto: 2 on a "
                        "CPU once there are 2,000+ interpretations; 1 = this process only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    search = parser.add_argument_group(
        "search", "choose settings on the validation split, then report them on the test split (--search)"
    )
    search.add_argument("--search", action="store_true",
                        help="greedy search over templates and levers on the validation facts, then an ablation "
                        "on the test facts (paper recipe, each lever alone, all combined, control, logit lens); "
                        "writes search.csv, ablation.csv and chosen_preset.json to --out")
    search.add_argument("--search-templates", default=None,
                        help="comma list of templates the search tries (default: summary, facts, where_from, tell_me, wiki_is)")
    search.add_argument("--search-space", default=None, metavar="FILE",
                        help="JSON with SearchSpace fields (templates, levers) replacing the default space")
    search.add_argument("--search-adapter", action="append", default=[], metavar="FILE",
                        help="an adapter file the search tries as a lever (repeatable; train one with "
                        "benchmarks/train_adapter.py on the train split)")
    return parser


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``eval`` subcommand to an argparse ``subparsers`` object; its handler is
    :func:`run_eval` (``args.func``)."""
    parser = subparsers.add_parser(
        "eval", help="attribute extraction, baselines and fact completion on known facts",
        description=__doc__.split("\n\n")[0],
    )  # fmt: skip
    add_arguments(parser)
    parser.set_defaults(func=run_eval)
    return parser


def _templates(spec: str) -> list[str]:
    # "all" means every template; presets are named explicitly ("preset:best") or via --preset
    if spec.strip() == "all":
        return [t for t in template_names() if not t.startswith(PRESET_PREFIX)]
    return _csv_list(spec, template_names(), "prompts")


def config_from_args(args: argparse.Namespace) -> AttributeEvalConfig:
    """The :class:`AttributeEvalConfig` the flags describe."""
    return AttributeEvalConfig(
        layers=parse_layers(args.layers), methods=_csv_list(args.methods, list(METHODS), "methods"),
        templates=None if args.prompts is None else _templates(args.prompts),
        k=args.k, preset=args.preset,
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, capture_batch_size=args.capture_batch_size,
        logit_lens_k=args.logit_lens_k, n_bootstrap=args.n_bootstrap, seed=args.seed, verbose=not args.quiet,
        workers=getattr(args, "workers", "auto"),
    )  # fmt: skip


def _workers(text: str) -> int | str:
    from selfie_tl.workers import check_workers

    try:
        return check_workers(int(text) if text.lstrip("-").isdigit() else text)
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(f"--{exc}") from exc


def _set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def _model(args: argparse.Namespace, model: Any) -> Any:
    """``model`` if given, else ``--model`` (or the embedded default) loaded."""
    if model is not None:
        return model
    from selfie_tl import load_model

    return load_model(args.model) if args.model else load_model()


def run_search(args: argparse.Namespace, model: Any = None) -> dict[str, Any]:
    """``selfie-tl eval --search``: search on validation, ablation on test, files to ``--out``.

    Returns:
        The JSON summary (also ``<out>/search.json``) with ``_trials`` and ``_ablation``
        DataFrames.
    """
    from selfie_tl.eval.data import load_known_facts
    from selfie_tl.eval.search import SearchSpace, ablation, preset_document, search_settings

    if getattr(args, "split", "all") != "all":
        raise InvalidArgumentError("--search chooses on the validation split and reports on test; drop --split")
    if args.preset or args.prompts:
        raise InvalidArgumentError("--search chooses the prompt itself; drop --preset/--prompts (use --search-templates)")
    space = SearchSpace()
    if args.search_space:
        try:
            space = SearchSpace.from_dict(json.loads(Path(args.search_space).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidArgumentError(f"--search-space {args.search_space!r}: {exc}") from exc
    if args.search_templates:
        space.templates = [t.strip() for t in args.search_templates.split(",") if t.strip()]
    for path in args.search_adapter:
        if not Path(path).is_file():
            raise InvalidArgumentError(f"--search-adapter {path!r} is not a file")
    if args.search_adapter:
        space.levers["adapter"] = [{"adapter": str(Path(p).resolve())} for p in args.search_adapter]
    space.validate()
    layers = parse_layers(args.layers)
    _set_threads(args)
    validation = load_known_facts(args.data, args.limit, split="validation")
    test = load_known_facts(args.data, args.limit, split="test")
    model = _model(args, model)
    layers = AttributeEvalConfig(layers=layers).resolved_layers(model)
    k = 2 if args.k is None else args.k
    common = {"k": k, "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size, "verbose": not args.quiet}
    t0 = time.perf_counter()
    found = search_settings(model, validation, layers, space, **common)
    t1 = time.perf_counter()
    table = ablation(model, test, layers, found, logit_lens_k=args.logit_lens_k, n_bootstrap=args.n_bootstrap,
                     seed=args.seed, **common)  # fmt: skip
    t2 = time.perf_counter()
    result: dict[str, Any] = {
        "model": args.model or "default (SmolLM2-135M-Instruct)", "data": args.data or "packaged known_facts.csv",
        "n_validation": len(validation), "n_test": len(test), "layers": layers, "k": k,
        "chosen": {"template": found.template, "settings": found.settings},
        "ablation": table.to_dict(orient="records"),
        "timings_s": {"search": round(t1 - t0, 1), "ablation": round(t2 - t1, 1)},
    }  # fmt: skip
    print(f"\nSearch on {len(validation)} validation facts, layers {layers}: chose {found.template} {found.settings}")
    print(f"Test split ({len(test)} facts), best layer per configuration (accuracy %, 95% CI):")
    for row in table.itertuples():
        print(f"  {row.config:<40} L{row.best_layer:<3} {100 * row.accuracy:5.1f} [{100 * row.ci_low:.1f}-{100 * row.ci_high:.1f}]  mean over layers {100 * row.mean:.1f}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "search.csv", found.trials.to_csv(index=False))
        write_text(out / "ablation.csv", table.to_csv(index=False))
        document = preset_document(found, table, layers=layers, n_validation=len(validation), n_test=len(test))
        write_text(out / "chosen_preset.json", json.dumps(json_safe(document), indent=2))
        write_text(out / "search.json", json.dumps(json_safe(result), indent=2))
        print(f"wrote {out}/search.csv, ablation.csv, chosen_preset.json, search.json")
    result["_trials"], result["_ablation"] = found.trials, table
    return result


def run_eval(args: argparse.Namespace, model: Any = None) -> dict[str, Any]:
    """Run the evaluation the flags describe, print the summary, write ``--out`` files.

    Args:
        args: parsed flags (see :func:`add_arguments`).
        model: an already loaded model (skips ``--model``); handy in tests.

    Returns:
        The JSON summary (also written to ``<out>/summary.json``).
    """
    if getattr(args, "search", False):
        return run_search(args, model)
    from selfie_tl.eval.attributes import count_interpretations, evaluate_attributes
    from selfie_tl.eval.data import load_known_facts
    from selfie_tl.eval.facts import fact_completion
    from selfie_tl.eval.report import format_table, plot_accuracy
    from selfie_tl.eval.stats import best_layers, logit_lens_vs_selfie, selfie_vs_control, summarize
    from selfie_tl.workers import start_pool

    config = config_from_args(args)
    _set_threads(args)
    t_start = time.perf_counter()
    facts = load_known_facts(args.data, args.limit, split=getattr(args, "split", "all"))
    model = _model(args, model)
    config.validate(model)
    timings: dict[str, float] = {}
    model_knows = None
    completion_acc = None
    done = None
    # Worker processes (if any) start now, while this process completes the facts.
    pool = start_pool(model, config.workers, count_interpretations(config, len(facts), config.resolved_layers(model)))
    with pool or contextlib.nullcontext():
        if not args.no_fact_completion:
            t0 = time.perf_counter()
            done = fact_completion(model, facts, max_new_tokens=10, batch_size=args.batch_size, verbose=not args.quiet)
            timings["fact_completion"] = time.perf_counter() - t0
            model_knows = done["correct"].tolist()
            completion_acc = float(done["correct"].mean())
        rows = evaluate_attributes(model, facts, config, model_knows=model_knows, pool=pool)
    timings.update(rows.attrs["timings_s"])
    summary = summarize(rows, config.n_bootstrap, config.seed)
    timings["total"] = time.perf_counter() - t_start

    result: dict[str, Any] = {
        "model": args.model or "default (SmolLM2-135M-Instruct)", "data": args.data or "packaged known_facts.csv",
        "split": getattr(args, "split", "all"), "n_facts": len(facts),
        "layers": rows.attrs["layers"], "config": config.to_dict(),
        "matching_rule": "normalised attribute (lower-case, accents stripped, non-alphanumerics -> space) "
        "occurs as whole words in the normalised output; logit lens: in one top-k token",
        "fact_completion_accuracy": completion_acc,
        "best_layers": best_layers(summary).to_dict(orient="records"),
        "selfie_vs_control": selfie_vs_control(summary),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }  # fmt: skip
    first_template = config.resolved_templates()[0]
    if "logit_lens" in config.methods and "selfie" in config.methods:
        result["logit_lens_vs_selfie"] = logit_lens_vs_selfie(summary, first_template).to_dict(orient="records")

    split = "" if result["split"] == "all" else f" (split {result['split']})"
    print(f"\nAttribute extraction on {len(facts)} facts{split}, layers {rows.attrs['layers']} (accuracy %, 95% CI)")
    print(format_table(summary))
    if completion_acc is not None:
        print(f"\nFact completion accuracy: {completion_acc * 100:.1f}% ({sum(model_knows)}/{len(facts)})")
    for entry in result["selfie_vs_control"]:
        if "control_accuracy" in entry:
            print(
                f"selfie:{entry['template']} best layer {entry['best_layer']}: {entry['selfie_accuracy'] * 100:.1f}% "
                f"vs control {entry['control_accuracy'] * 100:.1f}% -> non-overlapping CI: {entry['non_overlapping']}"
            )
    print(f"total time {timings['total']:.0f} s")

    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "rows.csv", rows.to_csv(index=False))
        if done is not None:
            write_text(out / "fact_completion.csv", done.to_csv(index=False))
        write_text(out / "summary.csv", summary.to_csv(index=False))
        plot_accuracy(summary, out / "accuracy.png", title=f"Attribute extraction, {len(facts)} fact{'s' if len(facts) != 1 else ''}")
        write_text(out / "summary.json", json.dumps(json_safe(result), indent=2))
        print(f"wrote {out}/rows.csv, summary.csv, accuracy.png, summary.json")
    result["_rows"] = rows
    result["_summary"] = summary
    return result


def json_safe(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN to None.

    Example:
        >>> import numpy as np
        >>> json_safe({"a": [np.float64(0.5), float("nan")], 1: np.int64(3)})
        {'a': [0.5, None], '1': 3}
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m selfie_tl.eval.cli``): the same as ``selfie-tl eval ...`` (one parser, one error handler)."""
    from selfie_tl.cli import main as cli_main

    return cli_main(['eval', *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
