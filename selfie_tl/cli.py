"""``selfie-tl`` command line: a thin layer over the library.

Subcommands: ``interpret`` (a prompt's hidden states across layers and tokens), ``demo``
(the canonical example) and, when their modules are present, ``eval`` and ``control-eval``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from selfie_tl.indices import parse_index_spec

DEMO_PROMPT = "What is the highest mountain in the world?"


def _add_interpret_args(p: argparse.ArgumentParser, demo: bool = False) -> None:
    p.add_argument("--model", default=None, help="model: TransformerLens name, HF directory or .gguf path "
                   "(default: the embedded SmolLM2-135M-Instruct)")  # fmt: skip
    p.add_argument("--layers", default="0:31:3",
                   help="residual layers as a slice or list; layer L < n_layers is the input of block L, "
                   "n_layers is the last block's output (default: 0:31:3)")  # fmt: skip
    p.add_argument("--tokens", default="-6:" if not demo else "-1",
                   help="token positions of the prompt, slice or list; negatives count from the end "
                   "(positions follow the tokenizer's own tokenization, no BOS added)")  # fmt: skip
    p.add_argument("--k", type=int, default=2, help="injection layer (default 2)")
    p.add_argument("--max-new-tokens", type=int, default=25, help="tokens per interpretation (default 25)")
    p.add_argument("--batch-size", type=int, default=16, help="interpretations generated together (default 16)")
    p.add_argument("--chat", action="store_true", help="wrap the prompt as a user turn of the model's chat format (no system message)")
    p.add_argument("--interpretation-prompt", default=None, metavar="TEXT",
                   help="custom interpretation prompt; each '{}' marks one placeholder slot, e.g. "
                   "'Message: {}{}{}{}{}\\nSummary:' (default: the paper's summary prompt)")  # fmt: skip
    p.add_argument("--no-relevancy", action="store_true", help="skip the relevancy score (faster)")
    p.add_argument("--csv", metavar="PATH", help="also write the results as CSV")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON (records)")
    p.add_argument("--html", metavar="PATH", help="also write a standalone HTML report")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The ``selfie-tl`` argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="selfie-tl",
        description="SelfIE for TransformerLens: let a language model describe its own hidden states.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_int = sub.add_parser(
        "interpret",
        help="interpret a prompt's residual stream across layers and tokens",
        description="Capture the residual stream of PROMPT at each (layer, token), inject it into the "
        "interpretation prompt at layer k and print what the model says about it.",
    )
    p_int.add_argument("prompt", help="the prompt whose hidden states are interpreted")
    _add_interpret_args(p_int)
    p_demo = sub.add_parser(
        "demo",
        help=f"interpret {DEMO_PROMPT!r} across layers on the default model",
        description=f"The canonical example: {DEMO_PROMPT!r}, its last token interpreted at every 3rd layer.",
    )
    _add_interpret_args(p_demo, demo=True)
    for register in _optional_subcommands():
        register(sub)
    return parser


def _optional_subcommands():
    try:
        from selfie_tl.eval.cli import register
        from selfie_tl.eval.control_cli import register as register_control_eval
    except ImportError:
        return []
    return [register, register_control_eval]


def _interpretation_prompt(model, args):
    from selfie_tl.prompts import as_prompt

    if args.interpretation_prompt is None:
        return None
    return as_prompt(model.tokenizer, args.interpretation_prompt.replace("\\n", "\n"))


def _format_table(df) -> str:
    width = 90
    lines = [f"{'layer':>5}  {'token':<16} {'relevancy':>9}  interpretation", "-" * (36 + width)]
    for row in df.itertuples():
        token = f"{row.token}:{row.token_decoded!r}"[:16]
        rel = "" if row.mean_relevancy is None else f"{row.mean_relevancy:9.3f}"
        text = " ".join(row.interpretation.split())
        text = text if len(text) <= width else text[: width - 1] + "…"
        lines.append(f"{row.layer:>5}  {token:<16} {rel:>9}  {text}")
    return "\n".join(lines)


def run_interpret(args: argparse.Namespace, prompt: str) -> int:
    from selfie_tl.hooks import prompt_tokens
    from selfie_tl.interpret import interpret, layer_token_pairs
    from selfie_tl.models import load_model

    start = time.perf_counter()
    model = load_model(args.model, verbose=not args.quiet)
    if args.chat:
        from selfie_tl.prompts import chat_text

        prompt = chat_text(model.tokenizer, prompt)
    n_tokens = len(prompt_tokens(model, prompt))
    layers = parse_index_spec(args.layers, model.cfg.n_layers + 1, "layer")
    tokens = parse_index_spec(args.tokens, n_tokens, "token")
    df = interpret(
        model, prompt, layer_token_pairs(layers, tokens), _interpretation_prompt(model, args),
        k=args.k, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        relevancy=not args.no_relevancy, verbose=not args.quiet,
    )  # fmt: skip
    print(f"prompt: {prompt!r}  ({n_tokens} tokens, model {model.cfg.model_name}, k={args.k})")
    print(_format_table(df))
    if args.csv:
        df.to_csv(args.csv, index=False)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"config": df.attrs.get("config"), "rows": df.to_dict(orient="records")}, fh, indent=1)
    if args.html:
        from selfie_tl.viz import write_report

        write_report(df, args.html)
    if not args.quiet:
        print(f"{len(df)} interpretations in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


_SPEC_OPTIONS = ("--tokens", "--layers")


def _glue_negative_specs(argv: Sequence[str]) -> list[str]:
    # argparse reads "-6:" as an unknown option; "--tokens -6:" is the natural spelling.
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        if items[i] in _SPEC_OPTIONS and i + 1 < len(items) and items[i + 1].startswith("-"):
            out.append(f"{items[i]}={items[i + 1]}")
            i += 2
        else:
            out.append(items[i])
            i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``selfie-tl``."""
    from selfie_tl.errors import SelfieError

    parser = build_parser()
    args = parser.parse_args(_glue_negative_specs(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "interpret":
            return run_interpret(args, args.prompt)
        if args.command == "demo":
            return run_interpret(args, DEMO_PROMPT)
        if args.command == "eval":
            from selfie_tl.eval.cli import run_eval

            run_eval(args)  # returns the summary dict, not an exit status
            return 0
        if args.command == "control-eval":
            from selfie_tl.eval.control_cli import run_control_eval

            run_control_eval(args)  # returns the result dict, not an exit status
            return 0
        parser.error(f"unknown command {args.command!r}")
    except SelfieError as exc:
        print(f"selfie-tl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
