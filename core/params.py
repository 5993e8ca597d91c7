"""Parameters as dataclasses: one reader from a plain dict (JSON, the CLI, a stored run).

An examiner's typo must not be silently ignored (the analysis would run with the default and the
report would say the examiner's value was used), so unknown keys are refused by default. Records
written by another version of Verity (a checkpoint's preprocessing, a stored run's parameters)
are read with `unknown="ignore"`: a newer field there must not make an old record unreadable.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import fields, is_dataclass
from typing import Any, Literal, TypeVar

from core.errors import VerityError

T = TypeVar("T")


class ParameterError(VerityError):
    """Parameters that do not fit their dataclass (unknown name, wrong shape)."""


def param_names(cls: type, exclude: Collection[str] = ()) -> list[str]:
    """The dataclass's field names a caller may set, in declaration order."""
    return [f.name for f in fields(cls) if f.init and f.name not in exclude]


def from_dict(
    cls: type[T],
    d: Mapping[str, Any] | None,
    what: str = "",
    *,
    unknown: Literal["refuse", "ignore"] = "refuse",
    exclude: Collection[str] = (),
) -> T:
    """`cls(**d)` for a dataclass `cls`. `exclude`: fields the caller may not set (they keep their
    defaults; they count as unknown). Raises ParameterError with the known names on a bad key."""
    if not is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if d is None:
        d = {}
    if not isinstance(d, Mapping):
        raise ParameterError(f"{what or cls.__name__}: parameters must be a mapping of names to values, not {type(d).__name__}")
    names = param_names(cls, exclude)
    bad = [k for k in d if k not in names]
    if bad and unknown == "refuse":
        raise ParameterError(
            f"{what or cls.__name__}: unknown parameter{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} "
            f"(known: {', '.join(names) or 'none'})"
        )
    try:
        return cls(**{k: v for k, v in d.items() if k in names})
    except TypeError as exc:  # a dataclass's own checks (e.g. a required field missing)
        raise ParameterError(f"{what or cls.__name__}: {exc}") from None
