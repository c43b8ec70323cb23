"""Text bound for a terminal, made harmless: the one escaping function for everything speedrift
prints that came from a graph, an agent or a file (titles, ids, log messages, reasons).

A task title is data anyone with write access to a graph chose. Printed raw, an escape sequence
could retitle the terminal or clear it, a carriage return or newline could forge a line of
output, and a bidirectional override (U+202E) could make text read differently from what it is.

Invariant: :func:`printable` returns text holding no C0 or C1 control character (``\\n`` kept
only with ``newlines=True``, ``\\t`` always kept), no DEL, no bidirectional mark, embedding,
override or isolate, no invisible line/paragraph separator or byte-order mark and no lone
surrogate (which would also make a UTF-8 stream refuse the write) — each shown as a visible
``\\xNN`` / ``\\uNNNN`` escape. It is idempotent, and text without such characters comes back
unchanged.
"""

from __future__ import annotations

import re

# U+061C arabic letter mark; U+200B zero-width space; U+200E/U+200F LRM/RLM; U+2028/U+2029 line and
# paragraph separators; U+202A-U+202E embeddings and overrides; U+2060-U+2064 invisible operators;
# U+2066-U+2069 isolates; U+FEFF byte-order mark; U+FFF9-U+FFFB interlinear annotation. Zero-width
# (non-)joiners (U+200C/U+200D) stay: emoji sequences and several scripts need them.
_INVISIBLE = "\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ufff9-\ufffb"
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f"
_SURROGATES = "\ud800-\udfff"
_MULTI_LINE = re.compile(f"[{_CONTROLS}{_INVISIBLE}{_SURROGATES}]")
_ONE_LINE = re.compile(f"[\n{_CONTROLS}{_INVISIBLE}{_SURROGATES}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` safe to print: every control, bidi and invisible character escaped. A value from
    the outside world (a title, an id, a reason) is one line: ``newlines=False`` escapes its
    ``\\n`` too. ``newlines=True`` is for a whole message whose line breaks speedrift wrote."""
    return (_MULTI_LINE if newlines else _ONE_LINE).sub(_escape, text)
