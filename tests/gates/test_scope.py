"""The scope gate: changed files against the task's declared scope and other open tasks' scopes."""

from __future__ import annotations

from typing import Any

import pytest

from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from tests.gates.conftest import GateRepo, NewRepo, gate


def add_task(repo: GateRepo, task_id: str, **fields: Any) -> dict[str, Any]:
    store = GraphStore(repo.path / ".workgraph")
    spec = ops.NewTask(task_id, task_id=task_id, **fields)
    store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))
    return dict(store.load().tasks[task_id])


def scope_of(repo: GateRepo, task: dict[str, Any], **kwargs: Any) -> Any:
    return gate(repo.gates(task=task, only=("scope",), **kwargs), "scope")


def test_changes_inside_the_declared_scope_pass(new_repo: NewRepo) -> None:
    repo = new_repo(graph=True)
    task = add_task(repo, "api", touch=["src/api/**"], deliverables=["docs/api.md"])
    repo.change({"src/api/routes.py": "x = 1\n", "docs/api.md": "# API\n"})
    assert scope_of(repo, task).status == "pass"


def test_the_touch_globs_of_a_wg_contract_block_count_as_declared(new_repo: NewRepo) -> None:
    repo = new_repo(graph=True)
    description = 'Do it.\n\n```wg-contract\ntouch = ["lib/*.py"]\n```\n'
    task = add_task(repo, "lib", description=description)
    repo.change({"lib/a.py": "a = 1\n"})
    assert scope_of(repo, task).status == "pass"


def test_one_or_two_undeclared_files_warn_and_three_fail_as_a_decomposition_error(new_repo: NewRepo) -> None:
    repo = new_repo(graph=True)
    task = add_task(repo, "small", touch=["src/**"])
    repo.change({"src/a.py": "a\n", "extra1.txt": "1\n", "extra2.txt": "2\n"})
    warned = scope_of(repo, task)
    assert warned.status == "warn" and [f.file for f in warned.findings] == ["extra1.txt", "extra2.txt"]
    repo.change({"extra3.txt": "3\n"})
    failed = scope_of(repo, task)
    assert (failed.status, failed.failure_class) == ("fail", "decomposition_error")


def test_strict_mode_fails_any_undeclared_file_and_the_environment_overrides_the_toml(
    new_repo: NewRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo(graph=True)
    task = add_task(repo, "strict", touch=["src/**"])
    repo.change({"src/a.py": "a\n", "stray.txt": "1\n"})
    strict = gate(repo.gates({"scope": "strict"}, task=task, only=("scope",)), "scope")
    assert (strict.status, strict.failure_class) == ("fail", "scope_violation")
    monkeypatch.setenv("SCOPE_STRICT", "disabled")
    disabled = gate(repo.gates({"scope": "strict"}, task=task, only=("scope",)), "scope")
    assert disabled.status == "skipped" and "disabled" in disabled.reason
    monkeypatch.setenv("SCOPE_STRICT", "strict")
    assert scope_of(repo, task).status == "fail"


def test_a_file_in_another_open_tasks_scope_is_a_hard_scope_violation(new_repo: NewRepo) -> None:
    repo = new_repo(graph=True)
    add_task(repo, "billing", touch=["src/billing/**"])
    task = add_task(repo, "auth", touch=["src/auth/**"])
    repo.change({"src/auth/login.py": "a\n", "src/billing/invoice.py": "b\n"})
    bundle = repo.gates(task=task, only=("syntax", "secrets", "scope", "contract"))
    result = gate(bundle, "scope")
    assert (result.status, result.failure_class) == ("fail", "scope_violation")
    assert result.findings[0].message == "src/billing/invoice.py is in the declared scope of billing"
    assert bundle.stopped_early == "scope"  # a hard failure: the gates after it do not run


def test_touching_another_tasks_test_files_only_warns_and_done_tasks_own_nothing(new_repo: NewRepo) -> None:
    repo = new_repo(graph=True)
    add_task(repo, "other", touch=["tests/test_other.py", "src/other.py"])
    finished = add_task(repo, "finished", touch=["src/done.py"])
    store = GraphStore(repo.path / ".workgraph")
    store.mutate(lambda g, now: ops.done(g, finished["id"], now=now, actor="test", force=True))
    task = add_task(repo, "mine", touch=["src/mine.py", "src/done.py"])
    repo.change({"src/mine.py": "a\n", "src/done.py": "b\n", "tests/test_other.py": "c\n"})
    result = scope_of(repo, task)
    assert result.status == "warn" and "test files" in result.reason


def test_a_task_without_a_declared_scope_is_skipped(new_repo: NewRepo) -> None:
    repo = new_repo(graph=True)
    task = add_task(repo, "vague")
    repo.change({"anything.txt": "x\n"})
    result = scope_of(repo, task)
    assert (result.status, result.reason) == ("skipped", "no scope declared")


def test_a_rename_touches_both_its_old_and_its_new_path(new_repo: NewRepo) -> None:
    repo = new_repo({"src/old_name.py": "value = 1\n" * 30}, graph=True)
    task = add_task(repo, "rename", touch=["src/new_name.py"])
    repo.write({"src/old_name.py": None})
    repo.change({"src/new_name.py": "value = 1\n" * 30})
    result = scope_of(repo, task)
    assert result.status == "warn" and [f.file for f in result.findings] == ["src/old_name.py"]
