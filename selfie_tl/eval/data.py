"""Readers for the shared evaluation data (``../shared/data`` beside the project root).

The files are not shipped with the package; pass ``path`` explicitly or set
``SELFIE_TL_DATA`` to the directory that holds them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from selfie_tl.errors import InvalidArgumentError


def shared_data_dir() -> Path:
    """Directory of the shared data: ``$SELFIE_TL_DATA``, else ``../shared/data`` beside
    the project root (found from this file or the working directory).

    Example:
        >>> shared_data_dir().name
        'data'
    """
    if os.environ.get("SELFIE_TL_DATA"):
        return Path(os.environ["SELFIE_TL_DATA"]).expanduser()
    candidates = [Path(__file__).resolve().parents[3] / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]


def _resolve(path: str | os.PathLike | None, name: str) -> Path:
    file = Path(path) if path is not None else shared_data_dir() / name
    if not file.is_file():
        raise InvalidArgumentError(
            f"data file {file} not found; pass its path or set SELFIE_TL_DATA to the directory holding {name}"
        )
    return file


def _limit(df: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InvalidArgumentError(f"limit must be None or an int >= 1, got {limit!r}")
    return df.head(limit).reset_index(drop=True) if limit else df


def load_known_facts(path: str | os.PathLike | None = None, limit: int | None = None) -> pd.DataFrame:
    """Known facts: columns ``known_id, subject, attribute, template, prompt, relation_id``.

    Example:
        >>> load_known_facts(limit=2).subject.tolist()
        ['Vinson Massif', 'Audible.com']
    """
    return _limit(pd.read_csv(_resolve(path, "known_facts.csv")), limit)


def load_harmful_behaviors(path: str | os.PathLike | None = None, limit: int | None = None) -> list[str]:
    """Harmful requests, one per line (AdvBench split).

    Example:
        >>> len(load_harmful_behaviors(limit=3))
        3
    """
    lines = [ln.strip() for ln in _resolve(path, "harmful_behaviors.txt").read_text().splitlines() if ln.strip()]
    return _limit(pd.DataFrame({"request": lines}), limit)["request"].tolist()


def load_ethical_override(path: str | os.PathLike | None = None, limit: int | None = None) -> pd.DataFrame:
    """Ethical-override prompts: columns ``prompt, question, mislead_answer``.

    Example:
        >>> list(load_ethical_override(limit=1).columns)
        ['prompt', 'question', 'mislead_answer']
    """
    return _limit(pd.read_csv(_resolve(path, "ethical_override.csv")), limit)
