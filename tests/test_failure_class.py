"""The failure-class vocabulary: one enum, the docs in its order, and wg's own field kept apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from speedrift.agents.protocol import FailureKind
from speedrift.failure_class import FailureClass, parse_failure_class
from speedrift.fleet.classify import KIND_CLASSES, RULES
from speedrift.fleet.failures import wg_failure_class
from speedrift.graph.model import (
    WG_FAILURE_CLASSES,
    Task,
    WgFailureClass,
    set_wg_failure_class,
    speedrift_failure_class,
)
from speedrift.graph.model import wg_failure_class as read_wg_failure_class
from speedrift.graph.wgcompat import WgCompatError, check_task

DOC = Path(__file__).resolve().parents[1] / "docs" / "failure-classes.md"


def _section(title: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    body = text.split(f"\n## {title}", 1)[1]
    return re.split(r"\n## ", body, maxsplit=1)[0].splitlines()


def _column(lines: list[str], index: int) -> list[str]:
    """One column of the first table in ``lines``, header and separator left out."""
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return [row.split("|")[index + 1].strip() for row in rows[2:]]


def test_the_precedence_table_names_the_classes_in_the_enums_order() -> None:
    in_rule_order = list(dict.fromkeys(_column(_section("Precedence"), 2)))
    assert in_rule_order == [str(c) for c in FailureClass]


def test_the_recovery_table_lists_every_class_once_in_the_enums_order() -> None:
    assert _column(_section("Recovery"), 0) == [str(c) for c in FailureClass]


def test_the_classifier_rules_use_the_enums_order() -> None:
    assert list(dict.fromkeys(cls for _name, cls, _rule in RULES)) == list(FailureClass)


def test_a_value_read_from_disk_is_a_class_or_nothing() -> None:
    assert parse_failure_class("secret_leak") is FailureClass.SECRET_LEAK
    assert parse_failure_class("transient") is None  # a runtime verdict, not a class
    assert parse_failure_class(None) is None and parse_failure_class(3) is None


def test_the_runtime_verdicts_table_maps_only_to_classes() -> None:
    assert set(KIND_CLASSES) <= set(FailureKind)
    assert set(KIND_CLASSES.values()) <= set(FailureClass)


# --- wg's field: a different vocabulary, reached through one mapping ---------------------------------------
def failed_task(**fields: object) -> Task:
    return {"kind": "task", "id": "t", "title": "T", "status": "failed", **fields}


def test_the_two_vocabularies_do_not_overlap() -> None:
    assert not {str(c) for c in FailureClass} & {str(w) for w in WgFailureClass}
    assert frozenset(WgFailureClass) == WG_FAILURE_CLASSES


@pytest.mark.parametrize("cls", list(FailureClass), ids=str)
def test_every_failure_class_leaves_wgs_field_unset_or_with_a_value_wg_loads(cls: FailureClass) -> None:
    """Whatever runtime verdict led to the class (or speedrift's own failure), wg's field gets a value
    from wg's enum or nothing; the class itself would make wg refuse the whole graph."""
    verdicts: list[FailureKind | None] = [k for k, c in KIND_CLASSES.items() if c is cls] or [None]
    for kind in verdicts:
        for internal in (False, True):
            task = failed_task()
            value = wg_failure_class(kind, internal=internal)
            if value is not None:
                set_wg_failure_class(task, value)
            check_task(task)
            assert read_wg_failure_class(task) == value
    with pytest.raises(WgCompatError):
        check_task(failed_task(failure_class=str(cls)))


@pytest.mark.parametrize("kind", list(FailureKind), ids=str)
def test_every_runtime_verdict_maps_to_a_value_wg_accepts_or_to_none(kind: FailureKind) -> None:
    value = wg_failure_class(kind)
    task = failed_task()
    if value is not None:
        set_wg_failure_class(task, value)
    check_task(task)


def test_speedrifts_own_failure_is_wrapper_internal_and_no_verdict_is_nothing() -> None:
    assert wg_failure_class(None, internal=True) is WgFailureClass.WRAPPER_INTERNAL
    assert wg_failure_class(None) is None


def test_each_field_is_read_through_its_own_accessor() -> None:
    task = failed_task(failure_class="agent-exit-nonzero", speedrift={"failure_class": "transient_infra"})
    assert read_wg_failure_class(task) is WgFailureClass.AGENT_EXIT_NONZERO
    assert speedrift_failure_class(task) is FailureClass.TRANSIENT_INFRA
    assert read_wg_failure_class(failed_task(failure_class="transient_infra")) is None
    assert speedrift_failure_class(failed_task(speedrift={"failure_class": "agent-exit-nonzero"})) is None
