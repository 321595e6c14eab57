"""``selfie-tl control-eval supervised|reinforcement``: the control evaluations
(:mod:`~selfie_tl.eval.control_supervised`, :mod:`~selfie_tl.eval.control_reinforcement`)
from the command line.

Every field of :class:`~selfie_tl.eval.control_supervised.SupervisedEvalConfig` and
:class:`~selfie_tl.eval.control_reinforcement.ReinforcementEvalConfig` is a flag
(``interp_pairs`` -> ``--interp-pairs``, booleans are switches), plus ``--model``,
``--out FILE`` (JSON; the reinforcement edit is saved beside it as ``.safetensors``),
``--threads`` and ``--quiet``. Wire it into a CLI with :func:`register`; run it standalone
with ``python -m selfie_tl.eval.control_cli supervised --limit 200 --pairs 20``.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["control-eval", "supervised", "--pairs", "3", "--skip-ethics"])
    >>> cfg = config_from_args(args)
    >>> cfg.pairs, cfg.skip_ethics, cfg.layer
    (3, True, 6)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import re
import sys
from pathlib import Path
from typing import Any

from selfie_tl.eval.cli import json_safe
from selfie_tl.eval.control_reinforcement import REWARDS, ReinforcementEvalConfig
from selfie_tl.eval.control_supervised import SupervisedEvalConfig
from selfie_tl.files import check_output_path, write_text

CONFIGS: dict[str, type] = {"supervised": SupervisedEvalConfig, "reinforcement": ReinforcementEvalConfig}
DESCRIPTIONS = {
    "supervised": "Supervised Control: fact edits (efficacy, preservation, cost) and the ethical override.",
    "reinforcement": "Reinforcement Control: harmful responses (plain and prompt injection) and fact accuracy "
    "before and after an edit trained on a few harmful requests.",
}
_CHOICES = {"split": ("train", "validation", "test", "all"), "reward": REWARDS}


def field_help(cls: type) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` section of ``cls``'s docstring.

    Example:
        >>> field_help(SupervisedEvalConfig)["pairs"]
        '(source, target) pairs edited with the embedding objective'
    """
    doc = (cls.__doc__ or "").split("Attributes:", 1)[-1].split("Example:", 1)[0]
    helps: dict[str, str] = {}
    for name, text in re.findall(r"^\s{8}(\w+): (.*?)(?=^\s{8}\w+: |\Z)", doc, flags=re.MULTILINE | re.DOTALL):
        helps[name] = " ".join(text.split()).replace("``", "").rstrip(".")
    return helps


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> argparse.ArgumentParser:
    """One flag per field of the config dataclass ``cls`` (defaults from the dataclass)."""
    helps = field_help(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        text = helps.get(f.name, "")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", help=text)
        elif f.name == "split":
            parser.add_argument(flag, default="all", choices=_CHOICES["split"],
                                help="known-facts split to read (default: all)")  # fmt: skip
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            parser.add_argument(flag, type=kind, default=f.default, choices=_CHOICES.get(f.name),
                                help=f"{text} (default: {f.default})")  # fmt: skip
    parser.add_argument("--model", default=None, help="model name or path (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--out", default=None, metavar="FILE", help="write the result as JSON to FILE")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``control-eval`` (with ``supervised`` and ``reinforcement``) to an argparse
    ``subparsers`` object; the handler is :func:`run_control_eval` (``args.func``)."""
    parser = subparsers.add_parser(
        "control-eval", help="evaluate Supervised or Reinforcement Control on the packaged data",
        description=__doc__.split("\n\n")[0],
    )  # fmt: skip
    which = parser.add_subparsers(dest="control_eval", required=True, metavar="KIND")
    for name, cls in CONFIGS.items():
        sub = which.add_parser(name, help=DESCRIPTIONS[name], description=DESCRIPTIONS[name])
        add_config_flags(sub, cls)
        sub.set_defaults(func=run_control_eval)
    return parser


def config_from_args(args: argparse.Namespace) -> SupervisedEvalConfig | ReinforcementEvalConfig:
    """The validated config the flags describe (``--split all`` -> ``split=None``)."""
    cls = CONFIGS[args.control_eval]
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    if values.get("split") == "all":
        values["split"] = None
    return cls(**values).validate()


def run_control_eval(args: argparse.Namespace, model: Any = None) -> dict[str, Any]:
    """Run the evaluation the flags describe, print its table, write ``--out``.

    Args:
        args: parsed flags (see :func:`register`).
        model: an already loaded model (skips ``--model``); handy in tests.

    Returns:
        The result dict (also written to ``--out`` as JSON).
    """
    from selfie_tl.eval.control_reinforcement import evaluate_reinforcement_control, format_reinforcement
    from selfie_tl.eval.control_supervised import evaluate_supervised_control, format_supervised

    config = config_from_args(args)
    out = check_output_path(args.out, "--out") if args.out else None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if model is None:
        from selfie_tl import load_model

        model = load_model(args.model, verbose=not args.quiet)
    log = None if args.quiet else _log
    if isinstance(config, SupervisedEvalConfig):
        result = evaluate_supervised_control(model, config, log=log, on_partial=functools.partial(_save, out))
        table = format_supervised(result)
    else:
        result, res = evaluate_reinforcement_control(model, config, log=log)
        if out is not None:
            result["edit_file"] = str(res.edit.save(out.with_suffix(".safetensors"), model))
        table = format_reinforcement(result)
    result["model"] = args.model or "default (SmolLM2-135M-Instruct)"
    _save(out, result)
    print("\n" + table)
    if out is not None:
        print(f"wrote {out}")
    return result


def _log(line: str) -> None:
    print(line, flush=True)


def _save(out: Path | None, result: dict[str, Any]) -> None:
    """Write ``result`` as JSON to ``out`` (atomically), if an output file was asked for."""
    if out is not None:
        write_text(out, json.dumps(json_safe(result), indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m selfie_tl.eval.control_cli supervised ...``): the same as ``selfie-tl control-eval ...`` (one parser, one error handler)."""
    from selfie_tl.cli import main as cli_main

    return cli_main(['control-eval', *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
