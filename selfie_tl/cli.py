"""``selfie-tl`` command line: a thin layer over the library.

Subcommands: ``interpret`` (a prompt's hidden states across layers and tokens), ``demo``
(the canonical example) and, when their modules are present, ``eval`` and ``control-eval``.

One set of defaults: the CLI and :func:`selfie_tl.interpret` share them. An interpretation
option left out (``--k``, ``--max-new-tokens``, ``--batch-size``, ``--scale``, ...) is not
passed on, so it takes :class:`~selfie_tl.interpret.InterpretationConfig`'s default (``k=2``,
30 new tokens, batch 8, relevancy on, greedy, no decoding controls), or the preset's value
when ``--preset`` is given; an option given explicitly overrides the preset. Without
``--preset``, ``selfie-tl interpret`` runs the paper recipe, exactly what
``selfie_tl.interpret(model, prompt, pairs)`` does. ``selfie-tl demo`` starts from
``--preset best``, reads every token of its prompt at layers ``3:28:3`` with 16 new tokens,
and prints the 15 most relevant cells.

Output files (``--csv``, ``--json``, ``--html``) are checked before the model is loaded and
written atomically; each carries the run's metadata (model, package version, date, command
line, settings): a ``meta`` object beside ``rows`` in the JSON, a ``PATH.meta.json`` file
beside the CSV, the header of the HTML report.

Example:
    >>> args = build_parser().parse_args(["interpret", "Hi", "--k", "3"])
    >>> args.k, args.max_new_tokens, args.preset
    (3, None, None)
    >>> args = build_parser().parse_args(["demo"])
    >>> args.preset, args.layers, args.tokens, args.max_new_tokens, args.top
    ('best', '3:28:3', ':', 16, 15)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfie_tl.indices import parse_index_spec
from selfie_tl.runtime import keep_freed_memory

DEMO_PROMPT = "What is the highest mountain in the world?"
DEMO_DEFAULTS = {"layers": "3:28:3", "tokens": ":", "max_new_tokens": 16, "top": 15, "preset": "best"}
"""What ``selfie-tl demo`` uses unless told otherwise."""
INTERPRET_DEFAULTS = {
    "layers": "0:31:3",
    "tokens": "-6:",
    "max_new_tokens": None,
    "top": None,
    "preset": None,
}

# Options whose value is an InterpretationConfig field, passed to interpret() only when given.
CONFIG_OPTIONS = (
    "k", "max_new_tokens", "batch_size", "relevancy", "scale", "norm_match",
    "no_repeat_ngram_size", "repetition_penalty", "inject_layers",
)  # fmt: skip


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _scale(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _add_interpret_args(p: argparse.ArgumentParser, demo: bool = False) -> None:
    from selfie_tl.interpret import InterpretationConfig
    from selfie_tl.presets import get_preset, preset_names

    d = DEMO_DEFAULTS if demo else INTERPRET_DEFAULTS
    # The defaults shown are those that apply: the preset's settings when there is a default
    # preset (demo), else InterpretationConfig's, the defaults of selfie_tl.interpret.
    cfg = get_preset(d["preset"]).config() if d["preset"] else InterpretationConfig()
    via = f" with preset {d['preset']}" if d["preset"] else ""
    preset_default = (
        f"default: {d['preset']}"
        if d["preset"]
        else "default: none, i.e. the paper recipe, InterpretationConfig's defaults"
    )
    p.add_argument("--model", default=None, help="model: TransformerLens name, HF directory or .gguf path "
                   "(default: the embedded SmolLM2-135M-Instruct)")  # fmt: skip
    p.add_argument("--layers", default=d["layers"],
                   help="residual layers as a slice or list; layer L < n_layers is the input of block L, "
                   f"n_layers is the last block's output (default: {d['layers']})")  # fmt: skip
    p.add_argument("--tokens", default=d["tokens"],
                   help="token positions of the prompt, slice or list; negatives count from the end, "
                   "positions follow the tokenizer's own tokenization, no BOS added "
                   f"(default: {d['tokens']}{', every token' if d['tokens'] == ':' else ''})")  # fmt: skip

    g = p.add_argument_group(
        "interpretation settings",
        "Left out, a setting takes the preset's value, else InterpretationConfig's default "
        "(the same defaults as selfie_tl.interpret); given, it overrides the preset.",
    )
    g.add_argument("--preset", choices=preset_names(), default=d["preset"],
                   help=f"named settings to start from (selfie_tl.presets; {preset_default})")  # fmt: skip
    g.add_argument("--adapter", metavar="PATH", default=None,
                   help="self-interpretation adapter file applied to each state before injection "
                   "(default: the preset's, else none)")  # fmt: skip
    g.add_argument(
        "--k", type=int, metavar="K", default=None, help=f"injection layer (default: {cfg.k}{via})"
    )
    max_new = d["max_new_tokens"] if d["max_new_tokens"] is not None else cfg.max_new_tokens
    g.add_argument("--max-new-tokens", type=_positive_int, default=d["max_new_tokens"],
                   metavar="N", help=f"tokens generated per interpretation (default: {max_new})")  # fmt: skip
    g.add_argument("--batch-size", type=_positive_int, default=None,
                   metavar="N", help=f"interpretations generated together (default: {cfg.batch_size}{via})")  # fmt: skip
    g.add_argument("--scale", type=_scale, default=None, metavar="X|auto",
                   help=f"multiplier on the injected state, or 'auto' to choose one per state "
                   f"(default: {cfg.scale}{via})")  # fmt: skip
    g.add_argument("--norm-match", action=argparse.BooleanOptionalAction, default=None,
                   help="rescale each state to the typical norm of the prompt's placeholder states first "
                   f"(default: {'on' if cfg.norm_match else 'off'}{via})")  # fmt: skip
    g.add_argument("--no-repeat-ngram-size", type=int, default=None, metavar="N",
                   help=f"never repeat an N-gram in a reply, 0 = off (default: {cfg.no_repeat_ngram_size}{via})")  # fmt: skip
    g.add_argument("--repetition-penalty", type=float, default=None, metavar="P",
                   help=f"Hugging Face repetition penalty, 1 = off (default: {cfg.repetition_penalty:g}{via})")  # fmt: skip
    g.add_argument("--inject-layers", type=_positive_int, default=None, metavar="N",
                   help=f"inject at layers k .. k+N-1 (default: {cfg.inject_layers}{via})")  # fmt: skip
    g.add_argument("--chat", action="store_true",
                   help="wrap the prompt as a user turn of the model's chat format, no system message (default: off)")  # fmt: skip
    g.add_argument("--interpretation-prompt", default=None, metavar="TEXT",
                   help="custom interpretation prompt; each '{}' marks one placeholder slot, e.g. "
                   "'Message: {}{}{}{}{}\\nSummary:' (default: the preset's, else the paper's summary prompt)")  # fmt: skip
    g.add_argument("--no-relevancy", dest="relevancy", action="store_const", const=False, default=None,
                   help="skip the relevancy score, faster (default: computed)")  # fmt: skip

    o = p.add_argument_group("output")
    top = f"default: {d['top']}" if d["top"] else "default: every cell, in layer and token order"
    o.add_argument("--top", type=_positive_int, default=d["top"], metavar="N",
                   help=f"print only the N cells with the highest content relevancy, best first ({top})")  # fmt: skip
    o.add_argument("--relevant", action="store_true",
                   help="print the relevant spans of each reply under it (default: off)")  # fmt: skip
    o.add_argument("--width", type=_positive_int, default=None, metavar="COLUMNS",
                   help="table width (default: the terminal's, 100 when not a terminal)")  # fmt: skip
    o.add_argument("--csv", metavar="PATH", help="also write the results as CSV, with the run's metadata in PATH.meta.json (default: none)")  # fmt: skip
    o.add_argument("--json", metavar="PATH", help="also write the results as JSON: {'meta': ..., 'rows': [...]} (default: none)")  # fmt: skip
    o.add_argument("--html", metavar="PATH", help="also write a standalone HTML report with the full grid (default: none)")  # fmt: skip
    o.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar, no timing line (default: off)"
    )


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
        help=f"interpret every token of {DEMO_PROMPT!r} on the default model",
        description=f"The canonical example: every token of {DEMO_PROMPT!r} at every 3rd layer from 3 "
        "to 27, with the 'best' preset; prints the most relevant cells first. Add --html report.html "
        "for the full grid.",
    )
    _add_interpret_args(p_demo, demo=True)
    for register in _optional_subcommands():
        register(sub)
    return parser


def _optional_subcommands():
    """Subcommands defined beside the code they drive (each module has ``register``)."""
    from selfie_tl.eval.cli import register
    from selfie_tl.eval.control_cli import register as register_control_eval
    from selfie_tl.sae.cli import register as register_sae
    from selfie_tl.sweep.cli import register as register_sweep

    return [register, register_control_eval, register_sae, register_sweep]


def _interpretation_prompt(model, args):
    from selfie_tl.prompts import as_prompt

    if args.interpretation_prompt is None:
        return None
    return as_prompt(model.tokenizer, args.interpretation_prompt.replace("\\n", "\n"))


def sidecar_path(csv_path: str | os.PathLike) -> Path:
    """Where the metadata of a CSV result goes: ``PATH.meta.json``.

    Example:
        >>> sidecar_path("out/r.csv").as_posix()
        'out/r.csv.meta.json'
    """
    return Path(f"{os.fspath(csv_path)}.meta.json")


def check_outputs(args: argparse.Namespace) -> None:
    """Check every output path (and the adapter file) before any work is done.

    Raises:
        InvalidArgumentError: a destination cannot be written, or ``--adapter`` is not a file.
    """
    from selfie_tl.errors import InvalidArgumentError
    from selfie_tl.files import check_output_path

    for flag in ("csv", "json", "html"):
        path = getattr(args, flag, None)
        if path is not None:
            check_output_path(path, f"--{flag}")
    if getattr(args, "csv", None) is not None:
        check_output_path(sidecar_path(args.csv), "--csv metadata")
    adapter = getattr(args, "adapter", None)
    if adapter is not None and not Path(adapter).expanduser().is_file():
        raise InvalidArgumentError(f"--adapter {adapter}: no such file")


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The interpretation settings the user gave on the command line (``None`` ones left
    out, so they never mask a preset).

    Example:
        >>> args = build_parser().parse_args(["interpret", "Hi", "--scale", "auto", "--k", "4"])
        >>> config_overrides(args)
        {'k': 4, 'scale': 'auto'}
    """
    return {name: getattr(args, name) for name in CONFIG_OPTIONS if getattr(args, name, None) is not None}


def _jsonable(value: Any) -> Any:
    """Plain JSON values: NaN -> None, numpy scalars and arrays -> Python ones."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_meta(df, args: argparse.Namespace, prompt: str, command: str, date: str) -> dict[str, Any]:
    """The metadata written beside the results: model, package version, date, command line,
    prompt, preset and the full settings."""
    from selfie_tl import __version__

    attrs = dict(df.attrs)
    return _jsonable({
        "model_name": attrs.get("model_name"),
        "version": __version__,
        "date": date,
        "command": command,
        "prompt": prompt,
        "preset": attrs.get("preset", args.preset),
        "adapter": args.adapter,
        "settings": attrs.get("config"),
        "interpretation_prompt": attrs.get("interpretation_prompt"),
    })  # fmt: skip


def write_outputs(df, args: argparse.Namespace, meta: dict[str, Any]) -> list[str]:
    """Write ``--csv`` (plus its ``.meta.json``), ``--json`` and ``--html``; return what was written."""
    from selfie_tl.files import write_text

    written = []
    if args.csv:
        write_text(args.csv, df.to_csv(index=False))
        write_text(sidecar_path(args.csv), json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
        written += [str(args.csv), str(sidecar_path(args.csv))]
    if args.json:
        rows = _jsonable(df.to_dict(orient="records"))
        write_text(args.json, json.dumps({"meta": meta, "rows": rows}, indent=1, ensure_ascii=False) + "\n")
        written.append(str(args.json))
    if args.html:
        from selfie_tl.viz import write_report

        extra = {k: meta[k] for k in ("command", "date", "preset", "adapter") if meta.get(k) is not None}
        write_report(df, args.html, meta=extra)
        written.append(str(args.html))
    return written


def run_interpret(
    args: argparse.Namespace, prompt: str, *, demo: bool = False, command: str | None = None
) -> int:
    """Run ``interpret`` (or ``demo``) with parsed ``args``; print the table, write the files."""
    from selfie_tl.hooks import prompt_tokens
    from selfie_tl.interpret import interpret, layer_token_pairs
    from selfie_tl.models import load_model
    from selfie_tl.terminal import cut, degenerate_count, format_table, most_relevant, terminal_width

    check_outputs(args)  # before the (slow) model load: a bad path fails in a second
    command = command or "selfie-tl " + shlex.join([args.command])
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
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
        preset=args.preset, adapter=args.adapter, verbose=not args.quiet, **config_overrides(args),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    cfg = df.attrs.get("config") or {}
    width = terminal_width(args.width)
    about = [f"{n_tokens} tokens", f"model {df.attrs.get('model_name', model.cfg.model_name)}",
             f"preset {args.preset}" if args.preset else "paper recipe", f"k={cfg.get('k')}"]  # fmt: skip
    print(cut(f"prompt: {prompt!r}", width))
    print(cut("  " + ", ".join(about), width))
    shown = most_relevant(df, args.top) if args.top is not None else df
    if args.top is not None and len(shown) < len(df):
        print(f"the {len(shown)} most relevant of {len(df)} interpretations (by content relevancy):")
    print(format_table(shown, width, relevant=args.relevant))
    meta = run_meta(df, args, prompt, command, date)
    written = write_outputs(df, args, meta)
    if written:
        print("wrote " + ", ".join(written))
    if demo and not args.html:
        print("for the full layer x token grid: selfie-tl demo --html report.html")
    if not args.quiet:
        stuck = degenerate_count(df)
        print(f"{len(df)} interpretations in {seconds:.1f} s ({stuck} degenerate: one token 4+ times in a row)",
              file=sys.stderr)  # fmt: skip
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

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(_glue_negative_specs(argv))
    keep_freed_memory()  # this process is ours: reuse freed activations (see selfie_tl.runtime)
    command = "selfie-tl " + shlex.join(argv)
    try:
        if args.command == "interpret":
            return run_interpret(args, args.prompt, command=command)
        if args.command == "demo":
            return run_interpret(args, DEMO_PROMPT, demo=True, command=command)
        if args.command == "eval":
            from selfie_tl.eval.cli import run_eval

            run_eval(args)  # returns the summary dict, not an exit status
            return 0
        if args.command == "control-eval":
            from selfie_tl.eval.control_cli import run_control_eval

            run_control_eval(args)  # returns the result dict, not an exit status
            return 0
        if args.command == "sae":
            from selfie_tl.sae.cli import run_sae

            return run_sae(args)
        if args.command == "sweep":
            from selfie_tl.sweep.cli import run_sweep

            return run_sweep(args)
        parser.error(f"unknown command {args.command!r}")
    except SelfieError as exc:
        print(f"selfie-tl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
