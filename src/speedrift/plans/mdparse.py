"""The Markdown structure of a wave file: fenced blocks, ``#``/``##``/``###`` sections, bullets and
code spans — with the 1-based line of everything, for plans/importer.py.

Fence-aware where wave-orchestration's parser is not (reference §A.6): a line inside a fenced block
is body, never a heading. A fence is 3+ backticks or tildes indented at most 3 spaces (a backtick
fence's info string holds no backtick) and is closed by a line of the same character, at least as
long, and nothing else (CommonMark). Headings are ``#``, ``##``, ``###`` at column 0 followed by a
space or tab. :func:`code_span` and :func:`fence_for` are the inverse of :func:`unspan` and
:func:`fenced_blocks`, for the renderer: text they wrap reads back unchanged.

Invariant: nothing here raises on any text; what cannot be read is a :class:`Flaw` with its line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from speedrift.textclip import clip

_FENCE_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_HEADING = re.compile(r"^(#{1,3})[ \t]+(.*?)[ \t]*$")
_BULLET = re.compile(r"^-[ \t]+(.*?)[ \t]*$")
_BACKTICKS = re.compile(r"`+")


@dataclass(frozen=True)
class Line:
    no: int  # 1-based
    text: str
    fenced: bool = False  # inside a fenced block, or one of its fence lines


@dataclass(frozen=True)
class Flaw:
    """Something in the text that could not be read: its line, the text, and why."""

    line: int
    what: str
    why: str


@dataclass
class Section:
    """A heading and the lines up to the next heading of the same or a higher level. The
    preamble (before the first heading of that level) has ``level`` 0 and an empty heading."""

    level: int
    heading: str
    line: int
    body: list[Line] = field(default_factory=list)

    def text(self) -> str:
        """The body verbatim, without its leading and trailing blank lines."""
        return "\n".join(line.text for line in strip_blank(self.body))

    def first_line(self) -> int:
        kept = strip_blank(self.body)
        return kept[0].no if kept else self.line


@dataclass(frozen=True)
class Fenced:
    open_line: int
    info: str
    content: tuple[Line, ...]
    closed: bool

    def text(self) -> str:
        return "\n".join(line.text for line in self.content)


def split_text(text: str) -> list[str]:
    """The lines of ``text``, split at ``\\n`` only. A file whose every line ends with ``\\r\\n``
    is read as ``\\n`` lines; a lone ``\\r`` elsewhere stays part of its line."""
    if "\r\n" in text and text.count("\r\n") == text.count("\n"):
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _closes(line: str, char: str, size: int) -> bool:
    stripped = line.rstrip(" \t")
    indent = len(stripped) - len(stripped.lstrip(" "))
    run = stripped.lstrip(" ")
    return indent <= 3 and len(run) >= size and run == char * len(run)


def _opens(line: str) -> tuple[int, str, int, str] | None:
    """(indent, char, size, info) of a fence opening line, or None."""
    match = _FENCE_OPEN.match(line)
    if not match:
        return None
    indent, fence, info = match.groups()
    if fence[0] == "`" and "`" in info:
        return None
    return len(indent), fence[0], len(fence), info.strip()


def mark_fences(texts: Sequence[str], first: int = 1) -> tuple[list[Line], list[Flaw]]:
    """Every line, numbered from ``first``, marked when it belongs to a fenced block."""
    out: list[Line] = []
    flaws: list[Flaw] = []
    open_at: tuple[int, str, int] | None = None  # (line, char, size)
    for offset, text in enumerate(texts):
        no = first + offset
        if open_at is not None:
            out.append(Line(no, text, True))
            if _closes(text, open_at[1], open_at[2]):
                open_at = None
            continue
        opened = _opens(text)
        if opened is not None:
            open_at = (no, opened[1], opened[2])
        out.append(Line(no, text, opened is not None))
    if open_at is not None:
        opening = texts[open_at[0] - first]
        flaws.append(Flaw(open_at[0], clip(opening, 120), "a fenced block that is never closed"))
    return out, flaws


def heading(line: Line) -> tuple[int, str] | None:
    """(level, text) when ``line`` is a ``#``..``###`` heading outside any fence."""
    if line.fenced:
        return None
    match = _HEADING.match(line.text)
    if not match:
        return None
    return len(match.group(1)), match.group(2)


def sections(lines: Sequence[Line], level: int, *, start: int = 1) -> list[Section]:
    """``lines`` cut at each heading of exactly ``level``; other headings stay body (callers cut
    the document at ``##``, then an agent's body at ``###``). The first item is always the
    preamble (level 0: the lines before the first such heading)."""
    out = [Section(0, "", lines[0].no if lines else start)]
    for line in lines:
        found = heading(line)
        if found is not None and found[0] == level:
            out.append(Section(level, found[1], line.no))
        else:
            out[-1].body.append(line)
    return out


def strip_blank(lines: Sequence[Line]) -> list[Line]:
    begin, end = 0, len(lines)
    while begin < end and not lines[begin].text.strip():
        begin += 1
    while end > begin and not lines[end - 1].text.strip():
        end -= 1
    return list(lines[begin:end])


def fenced_blocks(lines: Sequence[Line]) -> tuple[list[Fenced], list[Line]]:
    """The fenced blocks in ``lines`` (content with up to the opening indent removed, as
    CommonMark) and the non-blank lines outside any of them."""
    blocks: list[Fenced] = []
    outside: list[Line] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        opened = _opens(line.text)
        if opened is None:
            if line.text.strip():
                outside.append(line)
            index += 1
            continue
        indent, char, size, info = opened
        content: list[Line] = []
        index += 1
        closed = False
        while index < len(lines):
            inner = lines[index]
            index += 1
            if _closes(inner.text, char, size):
                closed = True
                break
            text = inner.text
            cut = min(indent, len(text) - len(text.lstrip(" ")))
            content.append(Line(inner.no, text[cut:], True))
        blocks.append(Fenced(line.no, info, tuple(content), closed))
    return blocks, outside


def fence_for(text: str, info: str = "") -> tuple[str, str]:
    """(opening, closing) fence lines that keep ``text`` whole: backticks, one more than the
    longest run of backticks that could close a fence inside it (at least three)."""
    longest = 0
    for line in text.split("\n"):
        run = line.rstrip(" \t").lstrip(" ")
        if len(line) - len(line.lstrip(" ")) <= 3 and run and run == "`" * len(run):
            longest = max(longest, len(run))
    fence = "`" * max(3, longest + 1)
    return fence + info, fence


def bullet(line: Line) -> str | None:
    """The text of a ``- item`` line (trailing blanks removed), or None."""
    match = _BULLET.match(line.text)
    return match.group(1) if match else None


def unspan(text: str) -> str:
    """The content of ``text`` when it is one code span (`` `x` ``, ``` `` a`b `` ```), else
    ``text``. One space each side is removed when both are there and the content is not all
    spaces (CommonMark)."""
    match = re.match(r"^(`+)", text)
    if not match:
        return text
    size = len(match.group(1))
    inner = text[size:]
    if len(inner) <= size or not inner.endswith("`" * size) or inner[-size - 1] == "`":
        return text
    inner = inner[:-size]
    if any(len(run) == size for run in _BACKTICKS.findall(inner)):
        return text  # the span closes earlier: not one span
    if len(inner) >= 2 and inner[0] == " " and inner[-1] == " " and inner.strip(" "):
        inner = inner[1:-1]
    return inner


def code_span(text: str) -> str:
    """``text`` as one code span that :func:`unspan` reads back unchanged."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    ticks = "`" * (longest + 1)
    pad = (
        text.startswith("`")
        or text.endswith("`")
        or (len(text) >= 2 and text[0] == " " and text[-1] == " " and bool(text.strip(" ")))
    )
    space = " " if pad else ""
    return f"{ticks}{space}{text}{space}{ticks}"


def spans(text: str) -> list[str] | None:
    """A comma-separated list of code spans (`` `a`, `b` ``) as its items; None when ``text`` is
    not one. Plain items (no backticks) are split at commas."""
    items: list[str] = []
    rest = text.strip(" \t")
    if not rest:
        return []
    if not rest.startswith("`"):
        return [part.strip(" \t") for part in rest.split(",") if part.strip(" \t")]
    while rest:
        match = re.match(r"^(`+)", rest)
        if not match:
            return None
        size = len(match.group(1))
        close = re.search(rf"(?<!`)`{{{size}}}(?!`)", rest[size:])
        if close is None:
            return None
        end = size + close.end()
        items.append(unspan(rest[:end]))
        rest = rest[end:].lstrip(" \t")
        if rest:
            if not rest.startswith(","):
                return None
            rest = rest[1:].lstrip(" \t")
            if not rest:
                return None
    return items
