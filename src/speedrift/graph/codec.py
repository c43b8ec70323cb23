"""``graph.jsonl`` bytes <-> an in-memory :class:`Graph`, losing nothing.

Every line is kept as its original bytes next to its decoded node. Only lines speedrift changes
are re-encoded, so unchanged lines — and every field or node kind speedrift does not model —
come back byte-identical. Pure: no file access here.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from typing import Any

import orjson

from speedrift.graph.model import AFTER_KEYS, BEFORE_KEYS, Task
from speedrift.graph.wgcompat import WgCompatError


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
        return None, None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 (byte {exc.start})"
    try:
        return json.loads(text), None  # accepts what orjson refuses (e.g. >64-bit integers)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} at column {exc.colno}"


class Graph:
    """The nodes of one graph file in file order, plus an id index over its tasks (last wins, as wg)."""

    __slots__ = ("changed", "nodes", "problems", "raw_lines", "task_line", "tasks", "warnings")

    def __init__(self) -> None:
        self.raw_lines: list[bytes] = []
        self.nodes: list[dict[str, Any] | None] = []
        self.tasks: dict[str, Task] = {}
        self.task_line: dict[str, int] = {}
        self.problems: list[tuple[int, str]] = []  # (1-based line, what is wrong)
        self.warnings: list[str] = []
        self.changed: list[str] = []  # ids of tasks written since load, in order

    # --- decoding -------------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes) -> Graph:
        graph = cls()
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        graph.raw_lines = lines
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
            return [loads(raw) for raw in lines]  # the common case: every line is a JSON value
        except orjson.JSONDecodeError:
            pass
        decoded: list[Any] = []
        for index, raw in enumerate(lines):
            try:
                decoded.append(loads(raw))
            except orjson.JSONDecodeError:
                node, problem = _decode_slow(raw)
                if problem is not None:
                    self.problems.append((index + 1, problem))
                decoded.append(node)
        return decoded

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
                self.warnings.append(
                    f"line {index + 1}: duplicate task id {task_id!r} (the last one wins, as in wg)"
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
    def to_bytes(self) -> bytes:
        if not self.raw_lines:
            return b""
        return b"\n".join([*self.raw_lines, b""])  # one copy of a possibly large buffer, not two

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
        """A copy of this graph minus the given 1-based lines (used by repair)."""
        kept = [raw for number, raw in enumerate(self.raw_lines, 1) if number not in line_numbers]
        return Graph.from_bytes(b"\n".join(kept) + b"\n" if kept else b"")
