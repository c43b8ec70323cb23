"""Speedrift's values to JSON bytes and back to plain dicts: one encoding for ledger, register and API.

orjson writes the model's frozen dataclasses directly; this module adds what it leaves open:
datetimes always as ISO-8601 UTC with a ``Z`` (a naive datetime is taken as UTC), ``Path`` as
its string, sets as sorted lists, and non-string dict keys as strings.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePath
from typing import Any

import orjson

from speedrift.times import iso_utc

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(obj: Any, *, pretty: bool = False) -> bytes:
    """JSON bytes (no trailing newline) for any control-plane value."""
    option = _OPTIONS | (orjson.OPT_INDENT_2 if pretty else 0)
    return orjson.dumps(obj, default=_default, option=option)


def to_plain(obj: Any) -> Any:
    """The same value as plain JSON types (dicts, lists, str, numbers): what a reader of the bytes sees."""
    return orjson.loads(dumps(obj))


def cycle_to_dict(record: object) -> dict[str, Any]:
    """A cycle record (or any dataclass) as the dict the ledger line, the register and `hub once` carry."""
    plain = to_plain(record)
    assert isinstance(plain, dict)
    return plain
