"""The graph codec under arbitrary bytes: every line is data or a listed problem, nothing raises,
nothing valid is lost, and a rewrite keeps every untouched line and uses one line ending."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from speedrift.graph.codec import CRLF, LF, Graph, encode_node
from speedrift.graph.model import Task
from speedrift.safejson import MAX_DEPTH, MalformedJson, loads
from tests.fuzz.support import (
    BOM,
    FUZZ,
    deep_values,
    field_values,
    nasty_fragments,
    refused_fragments,
    tried,
)

_IDS = st.text(alphabet="abcdefghijklmnop-0123456789", min_size=1, max_size=10)
DEEP_LINE = b'{"kind":"task","id":"deep","x":' + b"[" * 1100 + b"]" * 1100 + b"}"
SURROGATE_LINE = b'{"kind":"task","id":"lone","title":"\\ud800"}'


def _task_line(task_id: str, extra: dict[str, Any]) -> bytes:
    return encode_node({"kind": "task", "id": task_id, "title": task_id, **extra})  # >64-bit ints too


@st.composite
def nasty_line(draw: st.DrawFn) -> bytes:
    """A line wg could not read: a task line with one nasty value spliced in, or raw garbage."""
    task_id = draw(_IDS)
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return b'{"kind":"task","id":"' + task_id.encode() + b'","title":' + draw(refused_fragments) + b"}"
    if choice == 1:
        deep = draw(deep_values())
        depth_ok = deep.count(b"[") + deep.count(b"{") <= MAX_DEPTH - 1
        if depth_ok:  # shallow enough to be fine: make it broken another way
            deep = deep[:-1]
        return b'{"kind":"task","id":"' + task_id.encode() + b'","x":' + deep + b"}"
    if choice == 2:
        return draw(st.binary(min_size=1, max_size=60)).replace(b"\n", b" ") + b"\xff"
    return b'{"kind":"task","id":"' + task_id.encode() + b'","t":"\\ud83d"}'  # half an emoji


@st.composite
def graph_file(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, bytes, bool]]]:
    """A graph file mixing good task lines, nasty lines, blanks and comments, some lines starting
    with a BOM, some ending in CRLF. Returns the bytes and, per line, (id, the line, is good)."""
    rows: list[tuple[str, bytes, bool]] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["good", "good", "good", "nasty", "blank", "comment"]))
        if kind == "good":
            task_id = draw(_IDS)
            extra = draw(
                st.dictionaries(st.sampled_from(["note", "x", "tags", "speedrift"]), field_values, max_size=3)
            )
            if "speedrift" in extra and not isinstance(extra["speedrift"], dict):
                extra.pop("speedrift")
            rows.append((task_id, _task_line(task_id, extra), True))
        elif kind == "nasty":
            rows.append(("", draw(nasty_line()), False))
        elif kind == "blank":
            rows.append(("", draw(st.sampled_from([b"", b"   ", b"\t"])), True))
        else:
            comment = draw(st.text(max_size=20)).replace("\n", " ").replace("\r", " ")
            rows.append(("", b"# " + comment.encode(), True))
    crlf = draw(st.sampled_from(["none", "all", "some"]))
    out: list[bytes] = []
    for index, (_, line, _good) in enumerate(rows):
        if index == 0 and draw(st.booleans()):
            line = BOM + line
        ending = CRLF if crlf == "all" or (crlf == "some" and draw(st.booleans())) else LF
        out.append(line + ending)
    return b"".join(out), rows


@FUZZ
@given(
    st.binary(max_size=400) | st.lists(st.binary(max_size=80) | nasty_fragments, max_size=8).map(b"\n".join)
)
def test_any_bytes_load_as_tasks_and_listed_problems_never_an_exception(data: bytes) -> None:
    tried("graph: arbitrary bytes")
    graph = Graph.from_bytes(data)
    lines = len(graph.raw_lines)
    assert all(1 <= n <= lines for n, _ in graph.problems)
    bad = {n for n, _ in graph.problems}
    for task_id, index in graph.task_line.items():
        assert index + 1 not in bad
        assert graph.tasks[task_id]["id"] == task_id
    rewritten = graph.to_bytes()
    assert not (CRLF in rewritten and b"\n" in rewritten.replace(CRLF, b""))  # never mixed
    again = Graph.from_bytes(rewritten)
    assert again.tasks == graph.tasks
    assert [n for n, _ in again.problems] == [n for n, _ in graph.problems]
    orjson.dumps(list(graph.tasks.values()))  # every task serializes (no surrogate, depth < 255)


@FUZZ
@given(graph_file())
def test_hostile_lines_are_problems_and_every_good_line_survives_repair(
    case: tuple[bytes, list[tuple[str, bytes, bool]]],
) -> None:
    tried("graph: mixed good and hostile lines")
    data, rows = case
    graph = Graph.from_bytes(data)
    bad = {n for n, _ in graph.problems}
    assert bad == {index + 1 for index, (_, _, good) in enumerate(rows) if not good}
    last_good = {task_id: index for index, (task_id, _, good) in enumerate(rows) if good and task_id}
    assert {t: i for t, i in graph.task_line.items()} == last_good  # the last of duplicates wins
    assert len(graph.warnings) == sum(1 for t, _, g in rows if g and t) - len(last_good)
    for index, (task_id, line, good) in enumerate(rows):
        if good and task_id:  # kept byte for byte (a BOM dropped, the line ending aside)
            assert graph.raw_lines[index].removesuffix(b"\r") == line
    repaired = graph.without_lines(bad)
    assert repaired.problems == []
    assert repaired.tasks == graph.tasks  # nothing valid lost
    out = repaired.to_bytes()
    assert not out.startswith(BOM)
    crlf_lines = out.count(CRLF)
    assert crlf_lines in (0, out.count(LF))  # one line ending


@FUZZ
@given(graph_file(), st.data())
def test_a_mutation_rewrites_only_its_line_in_the_files_dominant_line_ending(
    case: tuple[bytes, list[tuple[str, bytes, bool]]], data: st.DataObject
) -> None:
    tried("graph: mutation after hostile load")
    raw, _rows = case
    graph = Graph.from_bytes(raw)
    if graph.problems or not graph.tasks:
        return
    crlf = sum(1 for line in graph.raw_lines if line.endswith(b"\r"))
    expected = CRLF if crlf > len(graph.raw_lines) - crlf else LF
    victim = data.draw(st.sampled_from(sorted(graph.tasks)))
    before = list(graph.raw_lines)
    changed: Task = dict(graph.tasks[victim])
    changed["status"] = "done"
    graph.put_task(changed)
    out = graph.to_bytes()
    lines = out.split(expected)
    assert lines[-1] == b""
    assert out.count(LF) == len(lines) - 1  # no line ends otherwise
    for index, line in enumerate(before):
        if index != graph.task_line[victim]:
            assert lines[index] == line.removesuffix(b"\r")
    assert Graph.from_bytes(out).tasks[victim]["status"] == "done"


@FUZZ
@given(st.binary(max_size=300) | deep_values() | nasty_fragments)
def test_safejson_gives_data_or_a_malformed_json_error(raw: bytes) -> None:
    tried("safejson: arbitrary bytes")
    try:
        value = loads(raw)
    except MalformedJson as error:
        assert error.problem
        return
    orjson.dumps(value)  # whatever it returns, speedrift can write back out


# --- what reads a loaded graph ------------------------------------------------------------------
_FIELDS = [
    "status", "title", "after", "blocked_by", "before", "priority", "created_at", "started_at",
    "not_before", "ready_after", "paused", "log", "tags", "assigned", "estimate", "cycle_config",
    "cron_enabled", "cron_schedule", "speedrift", "description", "model", "exec", "retry_count",
]  # fmt: skip
_WEIRD = st.one_of(
    field_values,
    st.sampled_from(
        [
            "done", "open", "in-progress", "failed", "blocked", "abandoned", "bogus", "high", "1e999",
            "2026-11-20T12:00:00Z", "not a time", "9999-12-31T23:59:59Z", ["a", "b", 3], [{"message": 1}],
            {"hours": -1}, {"hours": "x"}, {"max_iterations": 2**70}, {"worker": {"pid": "x", "host": 1}},
            2**64, -1, 0, 10**30,
        ]
    ),
)  # fmt: skip


@st.composite
def odd_graphs(draw: st.DrawFn) -> Graph:
    """Loadable graphs whose task fields hold any type: consumers must read them, not trust them."""
    ids = draw(st.lists(_IDS, min_size=1, max_size=8, unique=True))
    lines = []
    for task_id in ids:
        fields = draw(st.dictionaries(st.sampled_from(_FIELDS), _WEIRD, max_size=6))
        if draw(st.booleans()):
            fields["after"] = draw(st.lists(st.sampled_from([*ids, "other:task", "gone"]), max_size=3))
        fields.pop("blocked_by", None) if "after" in fields else None
        lines.append(encode_node({"kind": "task", "id": task_id, **fields}))
    return Graph.from_bytes(b"\n".join(lines) + b"\n")


@FUZZ
@given(odd_graphs())
def test_every_reader_of_a_loaded_graph_takes_any_field_values(graph: Graph) -> None:
    from datetime import UTC, datetime

    from speedrift.control.observe.graph import analyze
    from speedrift.graph import query, viz
    from speedrift.web.views import task_nodes

    tried("graph: readers of odd field values")
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    query.ready(graph, now)
    query.blocked(graph, now)
    query.critical_path(graph)
    query.bottlenecks(graph)
    query.aging(graph, now)
    query.cycle_analysis(graph)
    for task_id in graph.tasks:
        viz.render_block_tree(query.why_blocked(graph, task_id, now))
    for render in (viz.tree, viz.dot, viz.mermaid):
        render(graph, include_done=True)
    orjson.dumps(task_nodes(graph, now), option=orjson.OPT_NON_STR_KEYS)
    analyze(graph, ".workgraph", now, frozenset({"other"}), "me")


@settings(FUZZ, max_examples=max(10, FUZZ.max_examples // 20))  # whole commands: fewer, each costs more
@given(odd_graphs(), st.sampled_from([b"", DEEP_LINE, SURROGATE_LINE, BOM]))
def test_read_commands_print_any_loaded_graph(graph: Graph, extra: bytes) -> None:
    import tempfile
    from pathlib import Path

    from tests.cli.support import base_env, run_in_process

    tried("graph: read commands on odd graphs")
    with tempfile.TemporaryDirectory() as folder:
        graph_dir = Path(folder) / ".workgraph"
        graph_dir.mkdir()
        data = graph.to_bytes() + extra + (b"\n" if extra else b"")
        (graph_dir / "graph.jsonl").write_bytes(BOM + data if extra == BOM else data)
        first = next(iter(graph.tasks))
        for argv in (["list"], ["ready", "--json"], ["show", "--", first]):
            result = run_in_process(["--dir", str(graph_dir), *argv], cwd=Path(folder), env=base_env())
            assert result.returncode == 0, (argv, result.stderr[-2000:])
            assert "Traceback" not in result.stderr
