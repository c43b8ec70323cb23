"""jsonvalid's two engines agree: jsonschema-rs (the fast validity check) and jsonschema (the
messages) give the same verdict on every shipped schema's examples and on random mutations of
them — so the fast path never lets through a value the worded check would refuse."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speedrift import jsonvalid
from speedrift.fleet.roles.model import shipped
from speedrift.fleet.roles.names import RoleName
from speedrift.plans import spec

SCHEMAS: list[tuple[str, Mapping[str, Any]]] = [
    *((f"role {name.value}", shipped(name).schema) for name in RoleName),
    ("wave", spec.schema()),
]
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*here, index))
    return found


def _mutate(value: Any, path: tuple[Any, ...], how: str, new: Any) -> Any:
    mutated = copy.deepcopy(value)
    if not path:
        return new
    parent = mutated
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif how == "extra" and isinstance(parent, dict):
        parent["unexpected_key"] = new
    else:
        parent[last] = new
    return mutated


def _agree(checked: jsonvalid.Checked, value: Any) -> None:
    worded = list(checked.full.iter_errors(value))
    assert checked.is_valid(value) == (not worded), [e.message for e in worded[:3]]


@pytest.mark.parametrize(("name", "schema"), SCHEMAS, ids=[name for name, _ in SCHEMAS])
def test_both_engines_pass_every_shipped_example(name: str, schema: Mapping[str, Any]) -> None:
    checked = jsonvalid.checked_schema(schema, name)
    assert schema.get("examples"), f"{name} documents an example"
    for example in schema["examples"]:
        assert checked.is_valid(example)
        assert jsonvalid.problems(checked, example) == []


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_both_engines_give_the_same_verdict_on_a_mutated_example(data: st.DataObject) -> None:
    name, schema = data.draw(st.sampled_from(SCHEMAS))
    checked = jsonvalid.checked_schema(schema, name)
    example = data.draw(st.sampled_from(schema["examples"]))
    path = data.draw(st.sampled_from(_paths(example)))
    how = data.draw(st.sampled_from(["replace", "delete", "extra"]))
    _agree(checked, _mutate(example, path, how, data.draw(JSON)))


def test_an_invalid_value_is_worded_by_jsonschema_with_its_place() -> None:
    checked = jsonvalid.checked_schema(spec.schema(), "wave")
    bad = copy.deepcopy(spec.schema()["examples"][0])
    bad["tasks"][0]["owned"] = 5
    assert jsonvalid.problems(checked, bad) == ["$.tasks[0].owned: 5 is not of type 'array'"]


def test_a_value_the_fast_engine_cannot_take_is_judged_by_jsonschema() -> None:
    checked = jsonvalid.checked_schema(spec.schema(), "wave")
    huge = copy.deepcopy(spec.schema()["examples"][0])
    huge["wave"] = 2**80  # past 64 bits: valid by the schema, which sets no maximum
    assert jsonvalid.problems(checked, huge) == []
