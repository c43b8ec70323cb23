"""Path globs as scope declarations, schema mappings and excludes use them.

Matched against the whole repo-relative path: ``*`` and ``?`` stay inside one path segment,
``**`` spans any number of segments (``src/**`` is everything under src/, ``**/*.py`` every
Python file), ``[...]`` is a character class, and a pattern ending in ``/`` names a directory and
everything under it. A leading ``./`` or ``/`` is ignored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable


@functools.lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    text = pattern.strip()
    text = text.removeprefix("./").lstrip("/")
    if text.endswith("/"):
        text += "**"
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if text.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif text.startswith("**", index):
            out.append(".*")
            index += 2
        elif char == "*":
            out.append("[^/]*")
            index += 1
        elif char == "?":
            out.append("[^/]")
            index += 1
        elif char == "[":
            end = text.find("]", index + 2)
            if end == -1:
                out.append(re.escape(char))
                index += 1
            else:
                body = text[index + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                index = end + 1
        else:
            out.append(re.escape(char))
            index += 1
    return re.compile("".join(out) + r"\Z", re.S)


def matches(path: str, pattern: str) -> bool:
    try:
        return compile_glob(pattern).match(path) is not None
    except re.error:
        return path == pattern  # a malformed class: treat the pattern as a literal path


def matches_any(path: str, patterns: Iterable[str]) -> bool:
    return any(matches(path, p) for p in patterns)


def first_match(path: str, patterns: Iterable[str]) -> str | None:
    for pattern in patterns:
        if matches(path, pattern):
            return pattern
    return None
