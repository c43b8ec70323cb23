"""Decoding and re-encoding graph.jsonl loses nothing: unchanged lines keep their exact bytes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore, init_graph_dir
from tests.conftest import NOW, WG_FIXTURES


def test_there_are_real_wg_fixtures_to_test_against() -> None:
    assert len(WG_FIXTURES) >= 4


@pytest.mark.parametrize("fixture", WG_FIXTURES, ids=lambda p: p.name)
def test_fixture_loads_without_problems(fixture: Path) -> None:
    graph = Graph.from_bytes(fixture.read_bytes())
    assert graph.problems == []
    assert len(graph.tasks) > 0


@pytest.mark.parametrize("fixture", WG_FIXTURES, ids=lambda p: p.name)
def test_fixture_round_trips_through_a_log_mutation(fixture: Path, tmp_path: Path) -> None:
    graph_dir = init_graph_dir(tmp_path)
    shutil.copy(fixture, graph_dir / "graph.jsonl")
    store = GraphStore(graph_dir)
    before_lines = fixture.read_bytes().split(b"\n")
    original = store.load()
    victim = next(iter(original.tasks))
    victim_index = original.task_line[victim]

    store.mutate(lambda g, now: ops.log_message(g, victim, "round-trip note", now=now, actor="t"), now=NOW)

    after_bytes = (graph_dir / "graph.jsonl").read_bytes()
    after_lines = after_bytes.split(b"\n")
    assert len(after_lines) == len(before_lines) + (0 if before_lines[-1] == b"" else 1)
    for index, line in enumerate(before_lines):
        if index != victim_index and line:
            assert after_lines[index] == line, f"line {index + 1} changed"
    reloaded = Graph.from_bytes(after_bytes)
    mutated = reloaded.tasks[victim]
    old = original.tasks[victim]
    assert {k: v for k, v in mutated.items() if k != "log"} == {k: v for k, v in old.items() if k != "log"}
    assert mutated["log"][-1]["message"] == "round-trip note"
    assert list(mutated)[: len(old)] == list(old) or "log" not in old  # field order kept


def test_unknown_node_kinds_and_fields_survive_a_rewrite() -> None:
    raw = (
        b'{"kind":"finalizer","id":"f1","whatever":[1,2,{"x":null}]}\n'
        b'{"kind":"task","id":"a","title":"A","status":"open","future_field":{"deep":[1.5,"s"]}}\n'
        b'{"kind":"resource","id":"gpu","type":"compute","available":2.0}\n'
    )
    graph = Graph.from_bytes(raw)
    task = dict(graph.tasks["a"])
    task["status"] = "in-progress"
    graph.put_task(task)
    out = graph.to_bytes().split(b"\n")
    assert out[0] == raw.split(b"\n")[0]
    assert out[2] == raw.split(b"\n")[2]
    assert orjson.loads(out[1])["future_field"] == {"deep": [1.5, "s"]}


def test_blank_and_comment_lines_are_skipped_and_kept() -> None:
    raw = b'# a comment\n\n{"kind":"task","id":"a","title":"A"}\n   \n'
    graph = Graph.from_bytes(raw)
    assert graph.problems == []
    assert list(graph.tasks) == ["a"]
    assert graph.to_bytes() == raw


def test_duplicate_ids_warn_and_the_last_line_wins() -> None:
    graph = Graph.from_bytes(
        b'{"kind":"task","id":"a","title":"first"}\n{"kind":"task","id":"a","title":"second"}\n'
    )
    assert graph.tasks["a"]["title"] == "second"
    assert "duplicate task id 'a'" in graph.warnings[0]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'{"kind":"task","id":"a"', "invalid JSON"),
        (b"[1,2]", "must be a JSON object"),
        (b'{"kind":"task","title":"no id"}', "no string 'id'"),
        (
            b'{"kind":"task","id":"a","title":"t","after":["x"],"blocked_by":["y"]}',
            "both 'after' and 'blocked_by'",
        ),
        (b'{"kind":"task","id":"a","title":"\xff\xfe"}', "not valid UTF-8"),
    ],
)
def test_malformed_lines_are_reported_with_their_line_number(line: bytes, problem: str) -> None:
    graph = Graph.from_bytes(b'{"kind":"task","id":"ok","title":"fine"}\n' + line + b"\n")
    assert len(graph.problems) == 1
    lineno, text = graph.problems[0]
    assert lineno == 2
    assert problem in text
    assert "ok" in graph.tasks


def test_integers_beyond_64_bits_do_not_make_a_line_malformed() -> None:
    graph = Graph.from_bytes(b'{"kind":"task","id":"a","title":"t","huge":123456789012345678901234567890}\n')
    assert graph.problems == []
    task = dict(graph.tasks["a"])
    task["status"] = "done"
    graph.put_task(task)
    assert b"123456789012345678901234567890" in graph.to_bytes()


def test_a_new_task_is_appended_after_every_existing_line() -> None:
    raw = b'{"kind":"task","id":"a","title":"A"}\n'
    graph = Graph.from_bytes(raw)
    graph.put_task({"kind": "task", "id": "b", "title": "B"})
    assert graph.to_bytes().startswith(raw)
    assert list(graph.tasks) == ["a", "b"]


# --- property-based: any graph of JSON-ish nodes round-trips ------------------------------------
_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
)  # fmt: skip
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
_ids = st.text(alphabet="abcdefghij-0123456789", min_size=1, max_size=12)


@st.composite
def graph_nodes(draw: st.DrawFn) -> list[dict[str, Any]]:
    ids = draw(st.lists(_ids, min_size=1, max_size=12, unique=True))
    nodes: list[dict[str, Any]] = []
    for task_id in ids:
        extra = draw(
            st.dictionaries(
                st.text(min_size=1, max_size=10).filter(
                    lambda k: k not in {"kind", "id", "after", "blocked_by"}
                ),
                _json,
                max_size=4,
            )
        )
        edge_key = draw(st.sampled_from(["after", "blocked_by"]))
        after = draw(st.lists(st.sampled_from(ids), max_size=3))
        kind = draw(st.sampled_from(["task", "task", "task", "resource", "actor"]))
        nodes.append({"kind": kind, "id": task_id, "title": task_id, **extra, edge_key: after})
    return nodes


@settings(max_examples=150, deadline=None)
@given(graph_nodes(), st.data())
def test_any_graph_round_trips_and_a_mutation_touches_only_its_line(
    nodes: list[dict[str, Any]], data: st.DataObject
) -> None:
    raw_lines = [orjson.dumps(n) for n in nodes]
    graph = Graph.from_bytes(b"\n".join(raw_lines) + b"\n")
    assert graph.problems == []
    assert graph.to_bytes() == b"\n".join(raw_lines) + b"\n"
    task_ids = list(graph.tasks)
    if not task_ids:
        return
    victim = data.draw(st.sampled_from(task_ids))
    changed = dict(graph.tasks[victim])
    changed["status"] = "done"
    graph.put_task(changed)
    out = graph.to_bytes().split(b"\n")
    victim_index = graph.task_line[victim]
    for index, line in enumerate(raw_lines):
        if index != victim_index:
            assert out[index] == line
    reloaded = Graph.from_bytes(graph.to_bytes())
    assert reloaded.tasks[victim] == changed
    for task_id in task_ids:
        if task_id != victim:
            assert reloaded.tasks[task_id] == graph.tasks[task_id]
