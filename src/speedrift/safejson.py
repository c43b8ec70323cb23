"""Hostile JSON text (a graph line, an agent's event line, a request body) turned into data or a
:class:`MalformedJson` that says, in words, what is wrong with it.

orjson refuses a lone UTF-16 surrogate escape (``"\\ud800"``), invalid UTF-8, a raw control
character inside a string, ``NaN``/``Infinity``, a byte-order mark and nesting past 1,024 levels
with terse messages; this module names each of those plainly, and also refuses nesting deeper than
:data:`MAX_DEPTH` (128) levels, which is where wg's JSON reader (serde_json) stops, well below the
255 levels orjson can write back out and the interpreter's recursion limit.

Invariant: nothing here recurses over its input (nesting is measured with a loop, never with the
parser's or the interpreter's stack), nothing raises anything but :class:`MalformedJson` for bad
input, and a value :func:`loads` returns holds no lone surrogate, no non-finite number and no
nesting deeper than :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from speedrift.errors import SpeedriftError

MAX_DEPTH = 128  # wg's serde_json refuses deeper nesting; orjson writes at most 254 levels
BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark

# A JSON string (possibly cut off at the end of the text): its brackets never count. The unrolled
# form stays linear on long strings.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_ONE_KIND = bytes.maketrans(b"{}", b"[]")  # for depth, an object nests like an array
_SURROGATE = re.compile("[\ud800-\udfff]")


class MalformedJson(SpeedriftError, ValueError):
    """A JSON text speedrift will not take as data; ``problem`` says why, in a few words."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def could_be_deeper(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """A cheap filter: only a text holding more than ``limit`` opening brackets can nest past it."""
    return raw.count(b"[") + raw.count(b"{") > limit


def nesting_depth(raw: bytes, stop: int = MAX_DEPTH) -> int:
    """How deep the brackets of a JSON text nest (string contents skipped); past ``stop`` it stops
    counting exactly (the answer is then only known to exceed ``stop``); cut-off text counts its
    unclosed brackets. No recursion and no per-byte Python
    loop: strings are cut out and everything but brackets dropped in C, then each pass removes the
    innermost ``[]`` pairs — one pass per level, at most ``stop`` + 1 passes."""
    brackets = _STRING.sub(b"", raw).translate(_ONE_KIND, _NOT_BRACKETS)
    depth = 0
    while brackets and depth <= stop:
        inner = brackets.replace(b"[]", b"")
        if len(inner) == len(brackets):
            break  # no pair left: what remains is unmatched
        brackets = inner
        depth += 1
    return depth + brackets.count(b"[")  # unclosed openers of cut-off text nest further


def _strange(value: Any, surrogates: bool = True) -> str | None:
    """A decoded value's first lone surrogate (unless ``surrogates`` is False) or non-finite
    number, described; None when clean. A loop over an explicit stack, as for everything here."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item) if surrogates else None
            if found:
                return (
                    f"a lone UTF-16 surrogate escape (\\u{ord(found.group()):04x}) in a string, which is "
                    "not valid Unicode"
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "a number that is not finite (NaN, Infinity, or too large for a double, like 1e400)"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _scrubbed(value: Any) -> Any:
    """A copy of a decoded value with every lone surrogate replaced by U+FFFD, keys included;
    built with a loop (containers are created empty and filled from a stack)."""
    if isinstance(value, str):
        return scrub_surrogates(value)
    if not isinstance(value, dict | list):
        return value
    out: dict[str, Any] | list[Any] = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, out)]
    while stack:
        source, target = stack.pop()
        pairs = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in pairs:
            copy: Any = item
            if isinstance(item, str):
                copy = scrub_surrogates(item)
            elif isinstance(item, dict | list):
                copy = {} if isinstance(item, dict) else []
                stack.append((item, copy))
            if isinstance(target, dict):
                target[scrub_surrogates(str(key))] = copy  # a JSON object's keys are strings
            else:
                target.append(copy)
    return out


def _refuse_constant(name: str) -> Any:
    raise MalformedJson(f"{name} is not a JSON number")


def _syntax_problem(error: json.JSONDecodeError) -> str:
    """A stdlib decoding error in words; a raw control character gets its byte and the fix."""
    if error.msg.startswith("Invalid control character"):
        char = error.doc[error.pos] if error.pos < len(error.doc) else "?"
        return (
            f"a raw control character (0x{ord(char):02x}) inside a string at column {error.colno}; "
            "JSON needs it escaped (e.g. \\u0000)"
        )
    return f"invalid JSON: {error.msg} at column {error.colno}"


def refused(raw: bytes, max_depth: int = MAX_DEPTH, *, replace_surrogates: bool = False) -> Any:
    """What to make of a text orjson refused: the value when it is acceptable after all (integers
    beyond 64 bits on an orjson that will not read them; with ``replace_surrogates``, lone
    surrogates replaced by U+FFFD), else :class:`MalformedJson` with the problem in words."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"not valid UTF-8 (byte {exc.start + 1} of the line)") from None
    if text.startswith("\ufeff"):
        raise MalformedJson("starts with a byte-order mark (U+FEFF), which JSON does not allow")
    if nesting_depth(raw, max_depth) > max_depth:
        raise MalformedJson(
            f"nested more than {max_depth} levels deep (wg's JSON reader stops at {MAX_DEPTH})"
        )
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except MalformedJson:
        raise
    except RecursionError:  # the stack was already deep when we got here: still a clean answer
        raise MalformedJson(f"nested too deeply to read (more than {max_depth} levels)") from None
    except json.JSONDecodeError as exc:
        raise MalformedJson(_syntax_problem(exc)) from None
    strange = _strange(value, surrogates=not replace_surrogates)
    if strange is not None:
        raise MalformedJson(strange)
    return _scrubbed(value) if replace_surrogates else value


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH, *, replace_surrogates: bool = False) -> Any:
    """One JSON text as data, or :class:`MalformedJson`. orjson does the work; only a refused or a
    bracket-heavy text costs more. ``replace_surrogates``: a lone surrogate escape becomes U+FFFD
    instead of refusing the text (for streams where losing a line costs more than a character)."""
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return refused(data, max_depth, replace_surrogates=replace_surrogates)
    if could_be_deeper(data, max_depth) and nesting_depth(data, max_depth) > max_depth:
        raise MalformedJson(
            f"nested more than {max_depth} levels deep (wg's JSON reader stops at {MAX_DEPTH})"
        )
    return value


def scrub_surrogates(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (a pair stays the character it encodes)."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
