"""Who may change which files: repo-relative path checks and ownership overlaps between tasks.

One home for two rules a split (fleet/decompose_plan.py) and a wave plan (plans/lint.py) share:

* :func:`path_problem` — a declared path (or glob) must be relative to the repository root, stay
  inside it and never name git's or speedrift's own directories;
* :func:`parallel_overlaps` — two tasks that may run at the same time (neither depends on the
  other, directly or through others: :func:`reachable`) must not both own a file; two globs
  overlap when they are equal or one matches the other (:func:`may_overlap`).

Pure: strings and dependency maps in, findings' raw facts out. Cycles in the dependencies are
tolerated here (callers report them).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from speedrift import layout
from speedrift.gates.globs import matches
from speedrift.graph.store import GRAPH_DIR_NAMES


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a task's declared file or glob (None: it can)."""
    text = path.strip()
    if not text or text.startswith(("/", "~")) or (len(text) > 1 and text[1] == ":"):
        return "give a path relative to the repository root"
    if ".." in text.split("/"):
        return "a path may not leave the repository ('..')"
    if text.split("/", 1)[0] in (".git", layout.STATE_DIR, *GRAPH_DIR_NAMES):
        return "that directory is speedrift's or git's, never a task's"
    return None


def reachable(deps: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    """Every task's transitive dependencies (cycles tolerated: they are reported elsewhere)."""
    reach: dict[str, set[str]] = {}
    for start in deps:
        seen: set[str] = set()
        stack = list(deps[start])
        while stack:
            node = stack.pop()
            if node in seen or node not in deps:
                continue
            seen.add(node)
            stack += deps[node]
        reach[start] = seen
    return reach


def may_overlap(one: str, other: str) -> bool:
    """Whether two declared paths or globs may name the same file."""
    a, b = one.strip().removeprefix("./"), other.strip().removeprefix("./")
    return a == b or matches(a, b) or matches(b, a)


@dataclass(frozen=True)
class Overlap:
    """Task ``first`` (an index into the tasks given) and a later task ``second`` may run at the
    same time and own overlapping paths: ``first_path`` (index into its paths) and ``second_path``."""

    first: int
    second: int
    first_path: int
    second_path: int


def parallel_overlaps(
    owned: Sequence[tuple[str, Sequence[str]]], deps: Mapping[str, Sequence[str]]
) -> list[Overlap]:
    """Every pair of overlapping paths owned by two tasks that may run at the same time, in the
    order of ``owned``. ``owned``: (task id, its paths); ``deps``: each task id's direct
    dependencies. Only pairs whose literal prefixes allow a match are compared (a glob matches a
    path only when the path starts with the glob's text before its first wildcard), so a large
    wave of disjoint globs is not compared pair by pair."""
    items = [
        (task, place, _normal(path))
        for task, (_id, paths) in enumerate(owned)
        for place, path in enumerate(paths)
    ]
    by_prefix: dict[str, list[int]] = {}
    for item, (_task, _place, text) in enumerate(items):
        by_prefix.setdefault(_literal_prefix(text), []).append(item)
    ordered = sorted(range(len(items)), key=lambda item: items[item][2])
    texts = [items[item][2] for item in ordered]
    pairs: set[tuple[int, int]] = set()
    for item, (_task, _place, text) in enumerate(items):
        prefix = _literal_prefix(text)
        start = bisect.bisect_left(texts, prefix)
        for position in range(start, len(texts)):  # paths this one's glob may match
            if not texts[position].startswith(prefix):
                break
            pairs.add((min(item, ordered[position]), max(item, ordered[position])))
        for length in range(len(text) + 1):  # globs that may match this path
            for other in by_prefix.get(text[:length], ()):
                pairs.add((min(item, other), max(item, other)))
    reach = reachable(deps)
    found: list[Overlap] = []
    for one, two in pairs:
        (first, a, one_text), (second, b, two_text) = items[one], items[two]
        if first == second:
            continue
        first_id, second_id = owned[first][0], owned[second][0]
        if (
            first_id == second_id
            or first_id in reach.get(second_id, set())
            or second_id in reach.get(first_id, set())
        ):
            continue
        if may_overlap(one_text, two_text):
            found.append(Overlap(first, second, a, b) if first < second else Overlap(second, first, b, a))
    return sorted(found, key=lambda o: (o.first, o.second, o.first_path, o.second_path))


_WILDCARDS = re.compile(r"[*?\[]")


def _normal(path: str) -> str:
    return path.strip().removeprefix("./")


def _literal_prefix(text: str) -> str:
    """The part of a glob before its first wildcard (what every path it matches starts with)."""
    text = text.lstrip("/")
    found = _WILDCARDS.search(text)
    return text[: found.start()] if found else text
