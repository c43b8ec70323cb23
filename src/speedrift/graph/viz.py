"""Text renderings of a graph: indented tree, Graphviz dot, Mermaid, and why-blocked chains. Pure.

Every id and title is passed through :func:`speedrift.termtext.printable` (one line: a title's
newline or bidi override cannot forge or reorder a line of the rendering), and no rendering
recurses: a chain thousands of tasks deep is drawn with an explicit stack.
"""

from __future__ import annotations

from speedrift.graph.codec import Graph
from speedrift.graph.model import DEP_SATISFIED, after_of, is_system, status_of
from speedrift.graph.query import BlockNode
from speedrift.termtext import printable

SHOWN_KEYS = frozenset(
    {
        "kind",
        "id",
        "title",
        "status",
        "priority",
        "assigned",
        "model",
        "exec",
        "created_at",
        "started_at",
        "completed_at",
        "failure_reason",
        "after",
        "blocked_by",
        "description",
        "log",
    }
)
_MARK = {"done": "✓", "in-progress": "▶", "failed": "✗", "abandoned": "–", "open": "○", "blocked": "■"}
_DOT_COLOR = {
    "done": "palegreen",
    "in-progress": "lightskyblue",
    "failed": "salmon",
    "abandoned": "lightgrey",
    "open": "white",
    "blocked": "khaki",
}


def _visible(graph: Graph, include_done: bool) -> list[str]:
    return [
        tid
        for tid, t in graph.tasks.items()
        if (include_done or status_of(t) not in DEP_SATISFIED) and (include_done or not is_system(tid))
    ]


def tree(graph: Graph, include_done: bool = False) -> str:
    """Roots first; each task under the tasks it runs after. A task seen twice is marked (see above)."""
    visible = set(_visible(graph, include_done))
    children: dict[str, list[str]] = {tid: [] for tid in visible}
    roots: list[str] = []
    for tid in graph.tasks:
        if tid not in visible:
            continue
        parents = [b for b in after_of(graph.tasks[tid]) if b in visible]
        if parents:
            for parent in parents:
                children[parent].append(tid)
        else:
            roots.append(tid)
    lines: list[str] = []
    printed: set[str] = set()

    def walk(start: str) -> None:  # depth-first, children in order, with a stack (no recursion)
        stack = [(start, 0)]
        while stack:
            tid, depth = stack.pop()
            task = graph.tasks[tid]
            mark = _MARK.get(status_of(task), "?")
            again = tid in printed
            label = printable(f"{tid}  {task.get('title', '')}")
            lines.append(f"{'  ' * depth}{mark} {label}" + ("  (see above)" if again else ""))
            if again:
                continue
            printed.add(tid)
            stack.extend((child, depth + 1) for child in reversed(children[tid]))

    for root in roots:
        walk(root)
    for tid in graph.tasks:  # members of loops with no root
        if tid in visible and tid not in printed:
            walk(tid)
    return "\n".join(lines) if lines else "(no tasks)"


def _quote(text: str) -> str:
    text = printable(text)  # one line, nothing invisible; then dot's own quoting
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot(graph: Graph, include_done: bool = False) -> str:
    visible = _visible(graph, include_done)
    shown = set(visible)
    lines = ["digraph workgraph {", "  rankdir=LR;", "  node [shape=box, style=filled];"]
    for tid in visible:
        task = graph.tasks[tid]
        color = _DOT_COLOR.get(status_of(task), "white")
        label = _quote(tid)[:-1] + "\\n" + _quote(str(task.get("title", ""))[:60])[1:]
        lines.append(f"  {_quote(tid)} [label={label}, fillcolor={color}];")
    for tid in visible:
        for blocker in after_of(graph.tasks[tid]):
            if blocker in shown:
                lines.append(f"  {_quote(blocker)} -> {_quote(tid)};")
    lines.append("}")
    return "\n".join(lines)


def mermaid(graph: Graph, include_done: bool = False) -> str:
    visible = _visible(graph, include_done)
    node_ids = {tid: f"n{i}" for i, tid in enumerate(visible)}
    lines = ["flowchart LR"]
    for tid in visible:
        title = printable(str(graph.tasks[tid].get("title", ""))).replace('"', "#quot;")[:60]
        label = printable(tid).replace('"', "#quot;")
        lines.append(
            f'  {node_ids[tid]}["{label}: {title}"]:::{status_of(graph.tasks[tid]).replace("-", "_")}'
        )
    for tid in visible:
        for blocker in after_of(graph.tasks[tid]):
            if blocker in node_ids:
                lines.append(f"  {node_ids[blocker]} --> {node_ids[tid]}")
    lines += [
        "  classDef done fill:#b7e4c7;",
        "  classDef in_progress fill:#a9d6f5;",
        "  classDef failed fill:#f4a6a6;",
        "  classDef open fill:#ffffff;",
    ]
    return "\n".join(lines)


def render_block_tree(node: BlockNode, depth: int = 0) -> str:
    lines = []
    for link, level in node.walk():
        indent = depth + level
        lines.append(
            f"{'  ' * indent}{'└ ' if indent else ''}{printable(f'{link.id} [{link.status}] {link.reason}')}"
        )
    return "\n".join(lines)
