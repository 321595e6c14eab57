"""Index specs: how a user writes a set of layers or token positions as text.

``"3"``, ``"0,5,9"``, ``"0:31:3"`` or ``"-6:"``: the one parser behind every ``--layers``
and ``--tokens`` option (``selfie-tl interpret``, ``selfie-tl eval``, control evaluations).
"""

from __future__ import annotations

from selfie_tl.errors import InvalidArgumentError


def parse_index_spec(spec: str, length: int | None = None, what: str = "index") -> list[int]:
    """Parse an int, a comma list or a Python slice into a list of ints.

    Args:
        spec: ``"3"``, ``"0,5,9"``, ``"0:30:3"`` or ``"-6:"``.
        length: the number of valid indices. With it, slices follow Python exactly
            (negative and open ends allowed). Without it, a slice needs a stop and
            non-negative bounds (its start defaults to 0).
        what: how to name the indices in errors (``"layer"``, ``"token"``).

    Raises:
        InvalidArgumentError: unparsable, or selecting nothing.

    Example:
        >>> parse_index_spec("0:31:10", 31), parse_index_spec("-3:", 10), parse_index_spec("1,4")
        ([0, 10, 20, 30], [7, 8, 9], [1, 4])
        >>> parse_index_spec(":3")
        [0, 1, 2]
    """
    if not isinstance(spec, str):
        raise InvalidArgumentError(f"{what} spec must be a string such as '0:31:3' or '4,8', got {spec!r}")
    text = spec.strip()
    try:
        if ":" in text:
            fields = [int(f) if f.strip() else None for f in text.split(":")]
            if len(fields) > 3:
                raise ValueError
            if length is None:
                start, stop, step = (fields + [None, None])[:3]
                if stop is None or (start or 0) < 0 or stop < 0:
                    raise InvalidArgumentError(
                        f"{what} range {spec!r} needs an explicit non-negative stop here, e.g. 0:31:3"
                    )
                values = list(range(start or 0, stop, step or 1))
            else:
                values = list(range(length))[slice(*fields)]
        else:
            values = [int(f) for f in text.split(",") if f.strip()]
    except ValueError:
        raise InvalidArgumentError(
            f"bad {what} spec {spec!r}: use an int, a comma list (1,4,7) or a slice (0:30:3, -6:)"
        ) from None
    if not values:
        raise InvalidArgumentError(f"{what} spec {spec!r} selects no {what}")
    return values


__all__ = ["parse_index_spec"]
