"""The graph store on real files: discovery, atomic writes under flock, the operations log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from speedrift.errors import GraphFormatError, NotFound, Refused
from speedrift.graph import oplog, ops
from speedrift.graph.repair import repair
from speedrift.graph.store import GraphStore, find_graph_dir, init_graph_dir
from speedrift.graph.wgcompat import WgCompatError
from tests.conftest import NOW


def add(store: GraphStore, title: str, **kw: object) -> None:
    spec = ops.NewTask(title, **kw)  # type: ignore[arg-type]
    store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="t"), actor="t", now=NOW)


# --- discovery ------------------------------------------------------------------------------------
def test_find_prefers_explicit_dir_then_wg_dir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = init_graph_dir(tmp_path / "a")
    b = init_graph_dir(tmp_path / "b")
    monkeypatch.setenv("WG_DIR", str(b))
    assert find_graph_dir(a) == a
    assert find_graph_dir(None, cwd=tmp_path) == b


def test_find_walks_up_and_prefers_dot_wg_over_dot_workgraph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WG_DIR", raising=False)
    (tmp_path / ".wg").mkdir()
    (tmp_path / ".wg" / "graph.jsonl").touch()
    nested = tmp_path / "src" / "deep"
    nested.mkdir(parents=True)
    assert find_graph_dir(None, cwd=nested) == tmp_path / ".wg"


def test_find_without_a_graph_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WG_DIR", raising=False)
    with pytest.raises(NotFound, match="speedrift init"):
        find_graph_dir(None, cwd=tmp_path)


def test_init_refuses_when_dot_wg_already_exists(tmp_path: Path) -> None:
    (tmp_path / ".wg").mkdir()
    with pytest.raises(Refused, match=r"\.wg"):
        init_graph_dir(tmp_path)


def test_init_creates_wg_layout(tmp_path: Path) -> None:
    graph_dir = init_graph_dir(tmp_path)
    assert (graph_dir / "graph.jsonl").read_bytes() == b""
    assert (graph_dir / "graph.lock").exists()
    assert "service/" in (graph_dir / ".gitignore").read_text()


# --- writing --------------------------------------------------------------------------------------
def test_mutation_writes_the_graph_and_one_oplog_record_per_change(graph_store: GraphStore) -> None:
    add(graph_store, "First task", task_id="a")
    graph_store.mutate(lambda g, now: ops.claim(g, "a", now=now, actor="alice"), actor="alice", now=NOW)
    records = oplog.read_all(graph_store.directory)
    assert [r["op"] for r in records] == ["add_task", "claim"]
    assert set(records[1]) == {"timestamp", "op", "task_id", "actor", "user", "detail"}
    assert records[1]["actor"] == "alice" and records[1]["task_id"] == "a"
    assert graph_store.load().tasks["a"]["status"] == "in-progress"


def test_mutation_refuses_to_rewrite_a_graph_with_malformed_lines(graph_store: GraphStore) -> None:
    add(graph_store, "ok", task_id="a")
    with open(graph_store.graph_path, "ab") as handle:
        handle.write(b'{"kind":"task","id":\n')
    before = graph_store.graph_path.read_bytes()
    with pytest.raises(GraphFormatError) as error:
        add(graph_store, "another")
    assert f"{graph_store.graph_path}:2" in str(error.value)
    assert "speedrift repair" in str(error.value)
    assert graph_store.graph_path.read_bytes() == before


def test_repair_sets_bad_lines_aside_byte_for_byte_then_writes_work(graph_store: GraphStore) -> None:
    add(graph_store, "ok", task_id="a")
    bad = b'{"kind":"task","id":"b","title":"\xff broken'
    with open(graph_store.graph_path, "ab") as handle:
        handle.write(bad + b"\n")
    report = repair(graph_store)
    assert report.side_file is not None and report.report_file is not None
    assert report.side_file.read_bytes() == bad + b"\n"
    assert json.loads(report.report_file.read_text())["lines"][0]["line"] == 2
    assert graph_store.load().problems == []
    add(graph_store, "after repair", task_id="c")
    assert list(graph_store.load().tasks) == ["a", "c"]


def test_speedrift_never_writes_a_value_wg_cannot_load(graph_store: GraphStore) -> None:
    add(graph_store, "ok", task_id="a")

    def corrupt(g: object, now: object) -> ops.Mutation:
        mutation = ops.Mutation()
        mutation.put(
            {"kind": "task", "id": "a", "title": "ok", "status": "exploded", "failure_class": "x"}, "edit"
        )
        return mutation

    before = graph_store.graph_path.read_bytes()
    with pytest.raises(WgCompatError, match="status 'exploded'"):
        graph_store.mutate(corrupt)
    assert graph_store.graph_path.read_bytes() == before


def test_oplog_rotates_to_zstd_that_reads_back_in_order(graph_store: GraphStore) -> None:
    for i in range(30):
        oplog.append(
            graph_store.directory, {"timestamp": str(i), "op": "edit", "task_id": f"t{i}"}, threshold=300
        )
    rotated = list((graph_store.directory / "log").glob("*.jsonl.zst"))
    assert rotated, "expected at least one rotated archive"
    assert all(p.read_bytes()[:4] == b"\x28\xb5\x2f\xfd" for p in rotated)  # zstd magic, as wg writes
    assert [r["task_id"] for r in oplog.read_all(graph_store.directory)] == [f"t{i}" for i in range(30)]


# --- crashes and concurrency ----------------------------------------------------------------------
_CRASHING_WRITER = """
import fcntl, os, sys, time
d = sys.argv[1]
fd = os.open(os.path.join(d, "graph.lock"), os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
with open(os.path.join(d, f".graph.tmp.{os.getpid()}"), "wb") as f:
    f.write(b'{"kind":"task","id":"half')
    f.flush()
print("ready", flush=True)
time.sleep(60)
"""


def test_a_writer_killed_mid_write_leaves_the_old_graph_and_no_debris(graph_store: GraphStore) -> None:
    add(graph_store, "keep me", task_id="a")
    before = graph_store.graph_path.read_bytes()
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_WRITER, str(graph_store.directory)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert graph_store.graph_path.read_bytes() == before  # readers still see the whole old graph
    add(graph_store, "next", task_id="b")  # the kernel released the dead writer's lock
    assert list(graph_store.load().tasks) == ["a", "b"]
    assert not list(graph_store.directory.glob(".graph.tmp.*"))


_WORKER = """
import json, sys
from speedrift.errors import Refused
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
store = GraphStore(__import__("pathlib").Path(sys.argv[1]))
name, shared = sys.argv[2], int(sys.argv[3])
claimed = []
for i in range(shared):
    spec = ops.NewTask(f"{name} task {i}", task_id=f"{name}-{i}")
    store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor=name), actor=name)
    try:
        store.mutate(lambda g, now: ops.claim(g, f"shared-{i}", now=now, actor=name), actor=name)
        claimed.append(f"shared-{i}")
    except Refused:
        pass
print(json.dumps(claimed))
"""

_READER = """
import sys
from speedrift.graph.store import GraphStore
store = GraphStore(__import__("pathlib").Path(sys.argv[1]))
torn = 0
for _ in range(300):
    g = store.load()
    torn += len(g.problems)
print(torn)
"""


@pytest.mark.slow
def test_concurrent_writers_lose_no_update_and_never_double_claim(graph_store: GraphStore) -> None:
    shared = 15
    for i in range(shared):
        add(graph_store, f"shared {i}", task_id=f"shared-{i}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    names = [f"w{n}" for n in range(5)]
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(graph_store.directory), n, str(shared)],
                         stdout=subprocess.PIPE, text=True, env=env)
        for n in names
    ]  # fmt: skip
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(graph_store.directory)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    claims: list[str] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        claims += json.loads(out)
    reader_out, _ = reader.communicate(timeout=120)
    graph = graph_store.load()
    assert int(reader_out) == 0, "a reader saw a torn graph"
    assert sorted(claims) == sorted(f"shared-{i}" for i in range(shared))  # each claimed exactly once
    for name in names:
        for i in range(shared):
            assert f"{name}-{i}" in graph.tasks
    for i in range(shared):
        task = graph.tasks[f"shared-{i}"]
        assert task["status"] == "in-progress"
        assert sum(1 for e in task["log"] if "claimed" in e["message"]) == 1
    ops_logged = oplog.read_all(graph_store.directory)
    assert len(ops_logged) == shared + len(names) * shared + shared
    assert graph.problems == [] and len(graph.raw_lines) == shared + len(names) * shared


def test_lock_holder_blocks_writers_until_it_releases(graph_store: GraphStore) -> None:
    add(graph_store, "a", task_id="a")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl,os,sys,time; fd=os.open(sys.argv[1],os.O_RDWR); fcntl.flock(fd,fcntl.LOCK_EX);"
         "print('locked',flush=True); time.sleep(1.0)", str(graph_store.lock_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    add(graph_store, "b", task_id="b")  # waits for the holder (like wg) instead of failing or racing
    assert holder.poll() is not None, "the write did not wait for the lock holder"
    assert orjson.loads(graph_store.graph_path.read_bytes().splitlines()[-1])["id"] == "b"
