"""Count how the engine handles the fuzz cases: clear error / correct result / opaque / silent.

Run from the repository root (``OMP_NUM_THREADS=1 python -m tests.reliability.census``);
``--verbose`` lists every case that is not exactly what it asks for, ``--json FILE`` writes
the per-case outcomes. Whatever ``selfie_tl`` is importable is measured, so pointing
``PYTHONPATH`` at an older checkout measures that one.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from tests.reliability.cases import CASES, make_env, run_case

KINDS = ("clear", "correct", "opaque", "silent")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    env = make_env()
    rows = []
    for case in CASES:
        outcome = run_case(case, env)
        for model in (env.llama, env.gpt2):  # one leak must not spoil the next case
            model.reset_hooks(including_permanent=True)
            for module in model.modules():
                vars(module).pop("forward", None)
        rows.append({"id": case.id, "group": case.group, "kind": outcome.kind, "expected": outcome.expected,
                     "detail": outcome.detail})
        if args.verbose and not outcome.expected:
            print(f"{outcome.kind:8s} {case.id}: {outcome.detail}")
    total = Counter(r["kind"] for r in rows)
    groups = sorted({r["group"] for r in rows}, key=[c.group for c in CASES].index)
    print(f"{'group':20s} " + " ".join(f"{k:>8s}" for k in KINDS) + "    total")
    for g in groups:
        c = Counter(r["kind"] for r in rows if r["group"] == g)
        print(f"{g:20s} " + " ".join(f"{c[k]:8d}" for k in KINDS) + f" {sum(c.values()):8d}")
    print(f"{'all':20s} " + " ".join(f"{total[k]:8d}" for k in KINDS) + f" {len(rows):8d}")
    print(f"exactly as specified: {sum(r['expected'] for r in rows)} / {len(rows)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
