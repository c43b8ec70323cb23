"""Task ids and free text: what speedrift accepts, and the slug it derives from a title.

An id ends up in branch names, worktree paths and argv, so a new id is a conservative slug:
it can never hold a path separator, ``..``, whitespace, a control character or a leading ``-``.
"""

from __future__ import annotations

import re
from collections.abc import Container

from speedrift.errors import UsageError

MAX_ID_LENGTH = 128
MAX_TITLE_LENGTH = 1_000
MAX_DESCRIPTION_LENGTH = 1_000_000
MAX_LOG_MESSAGE_LENGTH = 100_000

_ID_RE = re.compile(r"\.?[A-Za-z0-9][A-Za-z0-9._-]*")
# Dependencies may name a task in a peer repo (`peer:task-id`), as wg's federation does.
_DEP_RE = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._-]*:)?\.?[A-Za-z0-9][A-Za-z0-9._-]*")
_SLUG_WORDS = 3  # wg slugs the first three words of a title ("Design the API" -> design-the-api)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _check_id_shape(value: str, what: str, pattern: re.Pattern[str]) -> str:
    if not value:
        raise UsageError(f"{what} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise UsageError(f"{what} is {len(value)} characters long; the limit is {MAX_ID_LENGTH}")
    if not pattern.fullmatch(value):
        raise UsageError(
            f"{what} {value!r} is not allowed",
            hint="use letters, digits, '.', '_' and '-' (an optional leading '.' marks a system task); "
            "no '/', spaces, control characters or a leading '-'",
        )
    if ".." in value or value.endswith((".", ".lock")):
        raise UsageError(f"{what} {value!r} may not contain '..' or end in '.' or '.lock'")
    return value


def validate_id(value: str) -> str:
    return _check_id_shape(value, "task id", _ID_RE)


def validate_dep_id(value: str) -> str:
    return _check_id_shape(value, "dependency id", _DEP_RE)


def slugify(title: str) -> str:
    words = re.findall(r"[a-z0-9]+", title.lower())[:_SLUG_WORDS]
    slug = "-".join(words)[:MAX_ID_LENGTH].strip("-")
    return slug or "task"


def unique_slug(title: str, taken: Container[str]) -> str:
    base = slugify(title)
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def clean_text(value: str, what: str, *, limit: int, multiline: bool) -> str:
    """Reject text a graph line cannot hold safely: invalid UTF-8, control characters, huge sizes."""
    if multiline:
        value = value.replace("\r\n", "\n")
    if len(value) > limit:
        raise UsageError(f"{what} is {len(value):,} characters long; the limit is {limit:,}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} is not valid UTF-8") from None
    if not multiline and ("\n" in value or "\r" in value):
        raise UsageError(f"{what} must be one line", hint="put details in --description")
    if _CONTROL.search(value):
        raise UsageError(f"{what} contains control characters")
    return value
