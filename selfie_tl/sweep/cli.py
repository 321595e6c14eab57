"""``selfie-tl sweep CONFIG`` and ``selfie-tl sweep merge DIR``.

Wire into ``selfie_tl/cli.py`` with :func:`register` (adds the ``sweep`` sub-command) and
:func:`run_sweep` (runs it; raises :class:`~selfie_tl.errors.SelfieError` subclasses, which
``main`` prints as one line with exit status 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` sub-command to an ``argparse`` sub-parsers object."""
    p = subparsers.add_parser(
        "sweep",
        help="run or resume an interpretation sweep (Parquet shards), locally or on Ray",
        description="Run the sweep job of CONFIG (JSON or YAML; see docs/sweeps.md), writing Parquet shards "
        "and manifest.json to its output directory. Re-running the same command resumes. "
        "'selfie-tl sweep merge DIR' merges a sweep's shards into one table.",
    )
    p.add_argument("config", metavar="CONFIG", help="sweep config file, or 'merge' followed by DIR")
    p.add_argument("dir", nargs="?", metavar="DIR", help="(with merge) the sweep output directory")
    p.add_argument(
        "--engine", choices=["local", "ray"], default="local", help="where to run (default: local)"
    )
    p.add_argument("--workers", type=int, default=None, help="Ray actors (default 1; local takes 1)")
    p.add_argument(
        "--address", default=None, help="existing Ray cluster address ('auto', 'ray://host:10001')"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--out", default=None, help="(with merge) write the table: .parquet or .csv")
    p.add_argument("--allow-partial", action="store_true", help="(with merge) merge an unfinished sweep")
    return p


def run_sweep(args: argparse.Namespace) -> int:
    """Run the parsed ``sweep`` command; returns the exit status (0)."""
    from selfie_tl.errors import InvalidArgumentError
    from selfie_tl.sweep.core import merge, run

    if args.config == "merge":
        if not args.dir:
            raise InvalidArgumentError("usage: selfie-tl sweep merge DIR [-o FILE.parquet|FILE.csv]")
        df = merge(args.dir, out=args.out, allow_partial=args.allow_partial)
        where = f" -> {args.out}" if args.out else ""
        print(f"{len(df)} rows from {args.dir}{where}")
        return 0
    if args.dir is not None:
        raise InvalidArgumentError(f"unexpected argument {args.dir!r} (only 'sweep merge' takes a directory)")
    workers = 1 if args.workers is None else args.workers
    result = run(args.config, engine=args.engine, workers=workers, address=args.address,
                 progress=not args.no_progress)  # fmt: skip
    summary = {
        "output": str(result.output), "items": result.n_items, "shards": result.n_shards,
        "shards_computed": result.shards_computed, "shards_skipped": result.shards_skipped,
        "items_computed": result.items_computed, "seconds": round(result.seconds, 2),
        "items_per_s": round(result.items_per_second, 3), "engine": result.engine, "workers": result.workers,
    }  # fmt: skip
    print(f"sweep: {result.items_computed} items in {result.seconds:.1f} s ({result.items_per_second:.2f} items/s), "
          f"{result.shards_skipped} of {result.n_shards} shards already done; output {result.output}")  # fmt: skip
    print(json.dumps(summary), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m selfie_tl.sweep.cli CONFIG ...``): the same as ``selfie-tl sweep ...`` (one parser, one error handler)."""
    from selfie_tl.cli import main as cli_main

    return cli_main(['sweep', *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
