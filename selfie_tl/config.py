"""Shared plumbing of the config dataclasses: JSON round trips and keyword overrides."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from selfie_tl.errors import InvalidArgumentError

C = TypeVar("C")


class ConfigMixin:
    """``to_dict`` / ``from_dict`` for a config dataclass; unknown keys raise.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Cfg(ConfigMixin):
        ...     steps: int = 3
        >>> Cfg.from_dict(Cfg(steps=5).to_dict())
        Cfg(steps=5)
    """

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict of the settings."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Inverse of :meth:`to_dict`.

        Raises:
            InvalidArgumentError: ``data`` has keys that are not fields.
        """
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidArgumentError(f"unknown {cls.__name__} keys {unknown}; allowed: {sorted(names)}")
        return cls(**data)


def resolve_config(cls: type[C], config: C | None, overrides: dict[str, Any]) -> C:
    """A copy of ``config`` (or of the defaults) with keyword ``overrides`` applied.

    Raises:
        TypeError: an override names no field (as for an unexpected keyword argument).
    """
    base = dataclasses.replace(config) if config is not None else cls()  # type: ignore[type-var]
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unexpected keyword arguments {unknown}; options are {sorted(names)}")
    return dataclasses.replace(base, **overrides)  # type: ignore[type-var]
