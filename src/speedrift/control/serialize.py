"""Control-plane data to JSON bytes and back to plain dicts: one encoding for ledger, register and API.

orjson writes the model's frozen dataclasses directly; this module adds what it leaves open:
datetimes always as ISO-8601 UTC with a ``Z`` (a naive datetime is taken as UTC), ``Path`` as
its string, sets as sorted lists, and non-string dict keys as strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

import orjson

from speedrift.control.model import CycleRecord

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def iso_utc(moment: datetime) -> str:
    """``2026-11-20T12:00:00Z`` (microseconds kept when present)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


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


def cycle_to_dict(record: CycleRecord) -> dict[str, Any]:
    """One cycle record as the dict the ledger line, the register and ``hub once --json`` carry."""
    plain = to_plain(record)
    assert isinstance(plain, dict)
    return plain


def parse_iso(value: object) -> datetime | None:
    """The inverse of :func:`iso_utc` for values read back from JSON (None when absent or unparsable)."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
