"""The base of every typed params section: a frozen dataclass built from a mapping and turned back into one.

``Section.from_dict`` recurses into nested sections and tuples and names unknown or missing keys; ranges and
types are the schema's business (:func:`bratseg.config.validate`), not this module's.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from bratseg.errors import ConfigError

T = TypeVar("T", bound="Section")


class Section:
    """Mixin: build a frozen dataclass from a mapping, recursing into nested sections and tuples."""

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        extra = sorted(set(data) - names)
        missing = sorted(names - set(data))
        if extra or missing:
            raise ConfigError(f"{cls.__name__}: unknown keys {extra}, missing keys {missing}")
        return cls(**{k: convert(hints[k], data[k]) for k in names})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping (tuples become lists), the inverse of :meth:`from_dict`."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]


def convert(hint: Any, value: Any) -> Any:
    """``value`` as the type ``hint`` says: nested sections built, lists made tuples, ints made floats."""
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and issubclass(hint, Section):
        return hint.from_dict(value)
    if origin is tuple:
        args = typing.get_args(hint)
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if item is not None:
            return tuple(convert(item, v) for v in value)
        return tuple(convert(a, v) for a, v in zip(args, value, strict=True))
    if origin in (typing.Union, types.UnionType):
        if isinstance(value, list | tuple):  # e.g. "auto" | [x, y, z]: the sequence member of the union
            for arg in typing.get_args(hint):
                if typing.get_origin(arg) is tuple:
                    return convert(arg, value)
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
