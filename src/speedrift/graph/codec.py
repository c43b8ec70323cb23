"""``graph.jsonl`` bytes <-> an in-memory :class:`Graph`, losing nothing and crashing on nothing.

Every line is kept as its original bytes next to its decoded node. Only lines speedrift changes
are re-encoded, so unchanged lines — and every field or node kind speedrift does not model —
come back byte-identical. Pure: no file access here.

Hostile bytes are data or a listed problem, never an exception: a line that is not valid UTF-8,
holds a lone surrogate escape (``\\ud800``), a raw control character, ``NaN``, or nests deeper
than wg reads (128 levels, see speedrift/safejson.py) is in :attr:`Graph.problems` with its line
number and is left out of the tasks — wg cannot load such a line either, and ``speedrift repair``
sets it aside. A byte-order mark starting a line is dropped and the line read (a rewrite leaves it
out, so wg can read the file); a duplicate task id is warned about with both line numbers, and the
last line wins, as in wg.

Line endings: lines are split on ``\\n``; a trailing ``\\r`` is JSON whitespace, so CRLF reads as it
is. When speedrift rewrites the file it writes ONE line ending — the file's dominant one at load
(CRLF only when most lines had it) — never a mix.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from typing import Any

import orjson

from speedrift.graph.model import AFTER_KEYS, BEFORE_KEYS, Task
from speedrift.graph.wgcompat import WgCompatError
from speedrift.safejson import BOM, MAX_DEPTH, MalformedJson, could_be_deeper, nesting_depth, refused

LF = b"\n"
CRLF = b"\r\n"
BOM_FIX = (
    "a byte-order mark (U+FEFF) starts the line; wg cannot read it, so a rewrite drops it (the line is kept)"
)


def encode_node(node: dict[str, Any]) -> bytes:
    """One compact JSON line, as serde_json writes it (UTF-8, no spaces, no trailing newline)."""
    try:
        return orjson.dumps(node)
    except TypeError:  # integers beyond 64 bits, which orjson refuses
        return json.dumps(node, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _decode_slow(raw: bytes) -> tuple[Any, str | None]:
    """The rare path: blank, comment, or something orjson refused. Returns (node, problem)."""
    stripped = raw.strip()
    if not stripped or stripped.startswith(b"#"):
        try:  # wg reads every line as UTF-8 before it looks at it, comments included
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, f"a comment line that is not valid UTF-8 (byte {exc.start + 1}); wg cannot read it"
        return None, None
    try:
        return refused(raw), None
    except MalformedJson as bad:
        return None, bad.problem


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep (wg's JSON reader stops at {MAX_DEPTH})"


class Graph:
    """The nodes of one graph file in file order, plus an id index over its tasks (last wins, as wg)."""

    __slots__ = (
        "_eol", "changed", "fixes", "has_cr", "nodes", "problems", "raw_lines", "task_line", "tasks",
        "unterminated", "warnings",
    )  # fmt: skip

    def __init__(self) -> None:
        self.raw_lines: list[bytes] = []
        self.nodes: list[dict[str, Any] | None] = []
        self.tasks: dict[str, Task] = {}
        self.task_line: dict[str, int] = {}
        self.problems: list[tuple[int, str]] = []  # (1-based line, what is wrong)
        self.warnings: list[str] = []
        self.fixes: list[tuple[int, str]] = []  # (1-based line, what a rewrite corrects), e.g. a BOM
        self.changed: list[str] = []  # ids of tasks written since load, in order
        self.has_cr = False  # some line ended in \r\n when loaded
        self.unterminated = False  # the file's last line had no line ending
        self._eol: bytes | None = None  # the ending a rewrite uses; decided before the first change

    # --- decoding -------------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes) -> Graph:
        graph = cls()
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        else:
            graph.unterminated = bool(lines)
        graph.raw_lines = lines
        graph.has_cr = b"\r" in data  # memchr: a file without any CR pays nothing more
        # Decoded JSON holds no reference cycles; letting the cyclic GC walk millions of fresh
        # objects while they are created costs more than the parse itself.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            graph._index(graph._decode_all(lines))
        finally:
            if gc_was_enabled:
                gc.enable()
        return graph

    def _decode_all(self, lines: list[bytes]) -> list[Any]:
        loads = orjson.loads
        try:
            decoded = [loads(raw) for raw in lines]  # the common case: every line is a JSON value
        except orjson.JSONDecodeError:
            decoded = [self._decode_one(index, raw) for index, raw in enumerate(lines)]
        # orjson reads up to 1,024 levels; wg stops at 128, and so does speedrift. Only a line with
        # more opening brackets than that can nest so deep: the rest cost two byte counts.
        for index in [i for i, raw in enumerate(lines) if could_be_deeper(raw)]:
            if decoded[index] is not None and nesting_depth(lines[index]) > MAX_DEPTH:
                self.problems.append((index + 1, _too_deep()))
                decoded[index] = None
        return decoded

    def _decode_one(self, index: int, raw: bytes) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        if raw.startswith(BOM):  # an editor's byte-order mark: drop it and read the line
            try:
                node, problem = orjson.loads(raw[len(BOM) :]), None
            except orjson.JSONDecodeError:
                node, problem = _decode_slow(raw[len(BOM) :])
            if problem is None:
                self.raw_lines[index] = raw[len(BOM) :]
                self.fixes.append((index + 1, BOM_FIX))
                return node
        node, problem = _decode_slow(raw)
        if problem is not None:
            self.problems.append((index + 1, problem))
        return node

    def _index(self, decoded: list[Any]) -> None:
        tasks = self.tasks
        task_line = self.task_line
        for index, node in enumerate(decoded):
            if type(node) is not dict:
                if node is not None:
                    self.problems.append((index + 1, "a node line must be a JSON object"))
                    decoded[index] = None
                continue
            if node.get("kind") != "task":
                continue  # resources, legacy actors and unknown kinds are kept as they are
            task_id = node.get("id")
            if type(task_id) is not str or not task_id:
                self.problems.append((index + 1, "task has no string 'id'"))
                decoded[index] = None
                continue
            if task_id in tasks:
                first = task_line[task_id] + 1
                self.warnings.append(
                    f"line {index + 1}: duplicate task id {task_id!r}, also on line {first}; "
                    f"line {index + 1} wins (the last one, as in wg)"
                )
            if "blocked_by" in node and "after" in node:
                self.problems.append(
                    (index + 1, f"task {task_id!r} has both 'after' and 'blocked_by'; wg rejects such a line")
                )
            tasks[task_id] = node
            task_line[task_id] = index
        self.nodes = decoded
        if self.problems:
            self.problems.sort()

    # --- encoding -------------------------------------------------------------------------
    def line_ending(self) -> bytes:
        """The one line ending a rewrite uses: the dominant one among the lines as loaded (CRLF only
        when more lines ended in CRLF than in LF). Decided before the first change, then fixed."""
        if self._eol is None:
            self._eol = LF
            if self.has_cr:
                ended = self.raw_lines[:-1] if self.unterminated else self.raw_lines
                crlf = sum(1 for raw in ended if raw.endswith(b"\r"))
                if crlf > len(ended) - crlf:
                    self._eol = CRLF
        return self._eol

    def ending_fixes(self) -> list[tuple[int, str]]:
        """What a rewrite changes about line endings: one entry when lines end in both CRLF and LF."""
        if not self.has_cr:
            return []
        ended = self.raw_lines[:-1] if self.unterminated else self.raw_lines
        crlf = sum(1 for raw in ended if raw.endswith(b"\r"))
        if crlf in (0, len(ended)):
            return []
        style = "CRLF" if self.line_ending() == CRLF else "LF"
        mixed = f"mixed line endings ({crlf} CRLF, {len(ended) - crlf} LF)"
        return [(0, f"{mixed}; a rewrite uses {style} throughout")]

    def to_bytes(self) -> bytes:
        if not self.raw_lines:
            return b""
        eol = self.line_ending()
        if not self.has_cr:
            return b"\n".join([*self.raw_lines, b""])  # one copy of a possibly large buffer, not two
        bare = [raw[:-1] if raw.endswith(b"\r") else raw for raw in self.raw_lines]
        return eol.join([*bare, b""])  # one ending everywhere, never a mix

    # --- access ---------------------------------------------------------------------------
    def get(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.tasks

    def __len__(self) -> int:
        return len(self.tasks)

    def iter_tasks(self) -> Iterator[Task]:
        return iter(self.tasks.values())

    def put_task(self, task: Task) -> None:
        """Replace the task's line in place (or append a new line); no other line is touched."""
        task_id = task["id"]
        if AFTER_KEYS[0] in task and AFTER_KEYS[1] in task:
            raise WgCompatError(f"task {task_id!r} would carry both 'after' and 'blocked_by'")
        if BEFORE_KEYS[0] in task and BEFORE_KEYS[1] in task:
            raise WgCompatError(f"task {task_id!r} would carry both 'before' and 'blocks'")
        self.line_ending()  # decided from the lines as loaded, before this one changes
        index = self.task_line.get(task_id)
        if index is not None:
            task = self._keep_exact_values(index, task)
        raw = encode_node(task)
        if index is None:
            self.task_line[task_id] = len(self.raw_lines)
            self.raw_lines.append(raw)
            self.nodes.append(task)
        else:
            self.raw_lines[index] = raw
            self.nodes[index] = task
        self.tasks[task_id] = task
        self.changed.append(task_id)

    def _keep_exact_values(self, index: int, task: Task) -> Task:
        """orjson reads integers beyond 64 bits as floats; unchanged fields keep the exact original."""
        old = self.nodes[index]
        exact = json.loads(self.raw_lines[index])
        if old is None or exact == old:
            return task
        return {k: exact[k] if k in exact and old.get(k) == v else v for k, v in task.items()}

    def without_lines(self, line_numbers: set[int]) -> Graph:
        """A copy of this graph minus the given 1-based lines (used by repair), in this graph's
        one line ending; byte-order marks already dropped stay dropped."""
        eol = self.line_ending()
        kept = [
            raw[:-1] if raw.endswith(b"\r") else raw
            for number, raw in enumerate(self.raw_lines, 1)
            if number not in line_numbers
        ]
        return Graph.from_bytes(eol.join([*kept, b""]) if kept else b"")
