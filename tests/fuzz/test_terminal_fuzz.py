"""Whatever text reaches :func:`printable`, what comes out holds nothing a terminal would act on
(no control, bidi, invisible-separator or lone-surrogate character), can be written to a UTF-8
stream, and stays the same when escaped again."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from speedrift.termtext import printable
from tests.fuzz.support import FUZZ, tried

_HOSTILE = st.sampled_from(
    ["\x1b]0;pwned\x07", "\x1b[2J", "\r", "\n", "\u202e", "\u2066", "\u2069", "\u200e", "\u200f", "\u2028",
     "\ufeff", "\x85", "\x9b", "\ud800", "\udfff", "\x00", "\t", "\u200d", "👨\u200d👩\u200d👧"]
)  # fmt: skip
texts = st.lists(st.text(max_size=20) | _HOSTILE | st.characters(codec=None).map(str), max_size=8).map(
    "".join
)


def _acted_on(char: str, newlines: bool) -> bool:
    code = ord(char)
    if char == "\t" or (newlines and char == "\n"):
        return False
    return (
        code < 0x20
        or 0x7F <= code <= 0x9F
        or 0xD800 <= code <= 0xDFFF
        or char in "\u061c\u200b\u200e\u200f\u2028\u2029\ufeff"
        or 0x202A <= code <= 0x202E
        or 0x2066 <= code <= 0x2069
    )


@FUZZ
@given(texts, st.booleans())
def test_printable_leaves_nothing_a_terminal_acts_on(text: str, newlines: bool) -> None:
    tried("terminal: printable")
    shown = printable(text, newlines=newlines)
    assert not [c for c in shown if _acted_on(c, newlines)], repr(shown)
    shown.encode("utf-8")  # a UTF-8 terminal stream takes it
    assert printable(shown, newlines=newlines) == shown
    if not any(_acted_on(c, newlines) or unicodedata.category(c) == "Cf" for c in text):
        assert shown == text  # ordinary text is left alone
