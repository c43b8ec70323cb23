"""The guard that keeps speedrift's writes loadable by wg."""

from __future__ import annotations

import pytest

from speedrift.graph.wgcompat import WgCompatError, check_task
from tests.builders import task


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "exploded"),
        ("failure_class", "scope_violation"),
        ("priority", -1),
        ("after", "not-a-list"),
        ("paused", "yes"),
        ("created_at", "yesterday"),
        ("retry_count", 1.5),
        ("log", [{"timestamp": "x"}]),
        ("speedrift", ["not", "an", "object"]),
    ],
)
def test_values_wg_would_reject_are_refused(field: str, value: object) -> None:
    with pytest.raises(WgCompatError, match=field.split("_")[0]):
        check_task({**task("a"), field: value})


def test_wg_failure_classes_are_accepted() -> None:
    check_task(task("a", "failed", failure_class="agent-exit-nonzero"))


def test_both_edge_keys_on_one_line_are_refused() -> None:
    with pytest.raises(WgCompatError, match="both"):
        check_task(task("a", after=["b"], blocked_by=["c"]))


def test_values_someone_else_wrote_are_not_judged_when_unchanged() -> None:
    before = task("a", status="status-from-a-newer-wg")
    after = {**before, "log": [{"timestamp": "2026-01-01T00:00:00+00:00", "message": "hi"}]}
    check_task(after, before)  # speedrift only answers for what it changed


def test_unknown_fields_are_never_judged() -> None:
    check_task(task("a", future_field={"anything": [1, 2]}))
