"""Readers for the evaluation data shipped inside the package (``selfie_tl/data``).

Three files travel with every install (see ``selfie_tl/data/README.md`` for sources and
licences): ``known_facts.csv``, ``harmful_behaviors.txt`` and ``ethical_override.csv``.
Each reader takes an explicit ``path``; without one it reads ``$SELFIE_TL_DATA/<name>``
when ``SELFIE_TL_DATA`` names a directory, else the packaged copy.

The known facts carry a fixed train / validation / test split (:func:`split_of`): a fact's
split depends only on its ``known_id``, so it never changes when rows are added, removed
or reordered. Choose settings on ``validation``, report numbers on ``test``, train
adapters on ``train``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from selfie_tl.errors import InvalidArgumentError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

DATA_ENV = "SELFIE_TL_DATA"
"""Environment variable naming a directory that replaces the packaged data."""

SPLITS = ("train", "validation", "test")
SPLIT_SALT = "selfie_tl-split-v1"
"""Prefix hashed with each ``known_id``; changing it would define a different split."""

_SPLIT_OF_BUCKET = {0: "train", 1: "train", 2: "train", 3: "train", 4: "validation", 5: "validation"}

FACT_COLUMNS = ("known_id", "subject", "attribute", "prompt")
"""Columns a known-facts CSV must have (``template`` and ``relation_id`` are optional)."""


def data_dir() -> Path | Traversable:
    """Where the readers look without a ``path``: ``$SELFIE_TL_DATA`` if set, else the
    packaged data directory.

    Example:
        >>> sorted(p.name for p in data_dir().iterdir() if p.name.endswith((".csv", ".txt")))
        ['ethical_override.csv', 'harmful_behaviors.txt', 'known_facts.csv']
    """
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return resources.files("selfie_tl.data")


@contextlib.contextmanager
def _open_path(path: str | os.PathLike | None, name: str) -> Iterator[Path]:
    """A real file path for ``path`` or for ``name`` in :func:`data_dir`."""
    if path is not None:
        file = Path(path).expanduser()
        where = f"data file {file}"
    else:
        base = data_dir()
        file = base / name
        where = f"{name} in {DATA_ENV}={base}" if os.environ.get(DATA_ENV) else f"packaged {name}"
    if not file.is_file():
        raise InvalidArgumentError(
            f"{where} not found; pass an existing file, or set {DATA_ENV} to a directory holding {name}"
        )
    if isinstance(file, Path):
        yield file
    else:  # a resource inside a zip or similar: materialise it
        with resources.as_file(file) as real:
            yield real


def _limit(df: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise InvalidArgumentError(f"limit must be None or an int >= 1, got {limit!r}")
    return df.head(limit).reset_index(drop=True) if limit else df.reset_index(drop=True)


def split_of(known_id: object) -> str:
    """The split (``train``, ``validation`` or ``test``) of a fact, from its ``known_id``.

    ``sha256("selfie_tl-split-v1:<known_id>") mod 10``: 0-3 train, 4-5 validation, 6-9
    test (about 40 / 20 / 40%). It depends on nothing but the id.

    Example:
        >>> split_of(0), split_of("0")
        ('test', 'test')
    """
    digest = hashlib.sha256(f"{SPLIT_SALT}:{known_id}".encode()).hexdigest()
    return _SPLIT_OF_BUCKET.get(int(digest, 16) % 10, "test")


def check_split(split: str | None) -> str | None:
    """``split`` itself if it is ``None``, ``"all"`` (returned as ``None``) or one of
    :data:`SPLITS`.

    Raises:
        InvalidArgumentError: anything else.

    Example:
        >>> check_split("all") is None, check_split("test")
        (True, 'test')
    """
    if split is None or split == "all":
        return None
    if split not in SPLITS:
        raise InvalidArgumentError(f"split must be one of {list(SPLITS)}, 'all' or None, got {split!r}")
    return split


def load_known_facts(
    path: str | os.PathLike | None = None, limit: int | None = None, split: str | None = None
) -> pd.DataFrame:
    """Known facts: columns ``known_id, subject, attribute, template, prompt, relation_id, split``.

    Args:
        path: a CSV with at least ``known_id, subject, attribute, prompt`` (default: the
            packaged ``known_facts.csv``, or ``$SELFIE_TL_DATA/known_facts.csv``).
        limit: the first ``limit`` rows (of the split, when one is given).
        split: ``None`` or ``"all"`` (every row), ``"train"``, ``"validation"`` or ``"test"``.

    The ``split`` column is always filled by :func:`split_of`. On the packaged file (590
    facts) the split sizes are train 227, validation 120, test 243.

    Raises:
        InvalidArgumentError: missing file or columns, duplicate or empty ``known_id``,
            unknown split, bad ``limit``.

    Example:
        >>> load_known_facts(limit=2).subject.tolist()
        ['Vinson Massif', 'Audible.com']
        >>> load_known_facts().split.value_counts().to_dict()
        {'test': 243, 'train': 227, 'validation': 120}
        >>> load_known_facts(split="validation", limit=1).split.tolist()
        ['validation']
    """
    split = check_split(split)
    with _open_path(path, "known_facts.csv") as file:
        df = pd.read_csv(file)
    missing = [c for c in FACT_COLUMNS if c not in df.columns]
    if missing:
        raise InvalidArgumentError(f"known-facts file lacks columns {missing}; needs {list(FACT_COLUMNS)}")
    if df["known_id"].isna().any():
        raise InvalidArgumentError("known-facts file has rows without a known_id")
    duplicated = df["known_id"][df["known_id"].duplicated()].unique().tolist()
    if duplicated:
        raise InvalidArgumentError(f"known-facts file repeats known_id {duplicated[:5]}; ids must be unique")
    df["split"] = [split_of(k) for k in df["known_id"]]
    if split is not None:
        df = df[df["split"] == split]
    return _limit(df, limit)


def load_harmful_behaviors(path: str | os.PathLike | None = None, limit: int | None = None) -> list[str]:
    """Harmful requests, one per line (AdvBench split).

    Example:
        >>> len(load_harmful_behaviors(limit=3))
        3
    """
    with _open_path(path, "harmful_behaviors.txt") as file:
        lines = [ln.strip() for ln in file.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return _limit(pd.DataFrame({"request": lines}), limit)["request"].tolist()


def load_ethical_override(path: str | os.PathLike | None = None, limit: int | None = None) -> pd.DataFrame:
    """Ethical-override prompts: columns ``prompt, question, mislead_answer``.

    Example:
        >>> list(load_ethical_override(limit=1).columns)
        ['prompt', 'question', 'mislead_answer']
    """
    with _open_path(path, "ethical_override.csv") as file:
        return _limit(pd.read_csv(file), limit)
