"""Shortening a reason to fit one line without losing what to do about it.

A reason speedrift writes has the shape ``<what happened>: <tool output> (<what to do>)``: the
actionable hint comes last, in parentheses (``ruff not installed (pip install ruff)``,
``timed out … (raise [gates.timeouts] tests in speedrift.toml …)``). :func:`clip` keeps that
trailing hint whole and cuts the middle of what comes before it, so the start (what failed) and the
end of the tool output (usually its conclusion) stay too. A hint is never cut: when it alone is
longer than the limit, the result is longer than the limit.
"""

from __future__ import annotations

ELLIPSIS = "…"
MAX_HINT = 200  # a longer trailing parenthesis is tool output, not a hint
MIN_BODY = 40  # what is kept of the text before the hint, at least


def one_line(text: str) -> str:
    return " ".join(text.split())


def split_hint(text: str) -> tuple[str, str]:
    """(body, hint): the hint is a final, balanced ``(…)`` group (nested groups allowed), or ""."""
    if not text.endswith(")"):
        return text, ""
    depth = 0
    for index in range(len(text) - 1, -1, -1):
        char = text[index]
        if char == ")":
            depth += 1
        elif char == "(":
            depth -= 1
            if depth == 0:
                hint = text[index:]
                if index == 0 or len(hint) > MAX_HINT:
                    return text, ""
                return text[:index].rstrip(), hint
    return text, ""


def cut_middle(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters, the middle replaced by an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS
    head = (limit - 1) * 2 // 3
    tail = limit - 1 - head
    return text[:head].rstrip() + ELLIPSIS + (text[len(text) - tail :].lstrip() if tail else "")


def clip(text: str, limit: int, *, flatten: bool = True) -> str:
    """``text`` in about ``limit`` characters — on one line unless ``flatten`` is False — with its
    trailing hint always kept whole."""
    flat = one_line(text) if flatten else text
    if len(flat) <= limit:
        return flat
    body, hint = split_hint(flat)
    if not hint:
        return cut_middle(flat, limit)
    room = max(MIN_BODY, limit - len(hint) - 1)
    return cut_middle(body, room) + " " + hint
