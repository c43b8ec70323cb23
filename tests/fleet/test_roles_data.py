"""Every shipped role is sound data, and a repository's template override is taken or refused
with the file, the line and the fix.

Parametrized over every ``RoleName``: a role added to the enum without its three files, or with a
schema its own examples fail, fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema.validators import Draft202012Validator

from speedrift.errors import InvalidValue, NotFound
from speedrift.fleet.config import load_config
from speedrift.fleet.roles.model import PLACEHOLDER, Role, load_role, shipped
from speedrift.fleet.roles.names import RoleName, Tier
from tests.gitrepo import make_repo

ROLES = list(RoleName)


def objects(schema: Any, where: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every sub-schema that declares an object type, with where it is in the schema."""
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            yield where, schema
        for key, value in schema.items():
            if key != "examples":
                yield from objects(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for n, value in enumerate(schema):
            yield from objects(value, f"{where}/{n}")


def marked(role: Role, names: list[str]) -> dict[str, str]:
    return {name: f"<<value of {name}>>" for name in names}


@pytest.mark.parametrize("name", ROLES, ids=str)
def test_the_schema_is_valid_2020_12_and_closed(name: RoleName) -> None:
    role = shipped(name)
    assert role.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(role.schema)
    open_objects = [where for where, s in objects(role.schema) if s.get("additionalProperties") is not False]
    assert open_objects == [], f"objects without additionalProperties: false: {open_objects}"
    assert role.schema.get("additionalProperties") is False


@pytest.mark.parametrize("name", ROLES, ids=str)
def test_the_schema_has_an_example_and_accepts_every_one(name: RoleName) -> None:
    role = shipped(name)
    assert role.examples, f"{name}.schema.json has no examples"
    for n, example in enumerate(role.examples):
        assert role.problems(example) == [], f"example {n} of {name}"
    assert role.problems({}) != []  # and it is not a schema that accepts anything


@pytest.mark.parametrize("name", ROLES, ids=str)
def test_the_role_says_what_it_is_and_what_speedrift_does_with_its_output(name: RoleName) -> None:
    role = shipped(name)
    assert role.title.strip() and role.summary.strip()
    assert role.tier in set(Tier)
    assert role.on_valid.strip() and role.on_invalid.strip()
    assert role.inputs and len({i.name for i in role.inputs}) == len(role.inputs)
    assert all(i.description.strip() for i in role.inputs)


@pytest.mark.parametrize("name", ROLES, ids=str)
def test_the_template_renders_with_every_declared_input(name: RoleName) -> None:
    role = shipped(name)
    values = marked(role, [i.name for i in role.inputs])
    text = role.render(values)
    for input_name, value in values.items():
        assert value in text, f"{name}.md never uses {{{{{input_name}}}}}"
    assert PLACEHOLDER.search(text) is None  # nothing left unfilled


@pytest.mark.parametrize("name", ROLES, ids=str)
def test_the_template_renders_with_only_the_required_inputs(name: RoleName) -> None:
    role = shipped(name)
    required = [i.name for i in role.inputs if i.required]
    text = role.render(marked(role, required))
    assert all(f"<<value of {n}>>" in text for n in required)
    if len(required) < len(role.inputs):
        assert "(none)" in text  # an optional input not given says so
    assert PLACEHOLDER.search(text) is None


@pytest.mark.parametrize("name", ROLES, ids=str)
def test_the_template_names_no_placeholder_outside_its_inputs(name: RoleName) -> None:
    role = shipped(name)
    declared = {i.name for i in role.inputs}
    named = {m.group(1) for m in PLACEHOLDER.finditer(role.template)}
    assert named <= declared, f"undeclared: {sorted(named - declared)}"


@pytest.mark.parametrize("name", ROLES, ids=str)
def test_a_missing_required_input_is_refused(name: RoleName) -> None:
    role = shipped(name)
    required = [i.name for i in role.inputs if i.required]
    assert required, f"{name} requires no input: what would it judge?"
    for left_out in required:
        given = marked(role, [n for n in required if n != left_out])
        with pytest.raises(InvalidValue, match=rf"required input\(s\) {left_out} not given"):
            role.render(given)
    with pytest.raises(InvalidValue, match="no input named nonsense"):
        role.render({**marked(role, required), "nonsense": "x"})


# --- a repository's own template ------------------------------------------------------------------
@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", graph=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_template_in_dot_speedrift_roles_replaces_the_shipped_one(repo: Path) -> None:
    own = write(repo / ".speedrift" / "roles" / "reviewer.md", "House rules first.\n\n{{task}}\n{{diff}}\n")
    role = load_role(repo, RoleName.REVIEWER)
    assert role.template_source == str(own)
    text = role.render({"task": "t1", "diff": "+x"})
    assert text.startswith("House rules first.") and "t1" in text
    assert role.schema == shipped(RoleName.REVIEWER).schema  # the output stays the package's


def test_a_template_named_in_speedrift_toml_replaces_the_shipped_one(repo: Path) -> None:
    write(repo / "docs" / "review-template.md", "Review {{task}} strictly.\n{{diff}}\n")
    write(repo / ".speedrift" / "roles" / "reviewer.md", "not this one {{task}}\n")
    write(repo / "speedrift.toml", '[roles.reviewer]\ntemplate = "docs/review-template.md"\n')
    config = load_config(repo)
    role = load_role(repo, RoleName.REVIEWER, config.role("reviewer").template)
    assert role.template_source == str(repo / "docs" / "review-template.md")
    assert role.render({"task": "t1", "diff": "+x"}).startswith("Review t1 strictly.")


def test_an_override_naming_an_unknown_input_fails_with_its_file_and_line(repo: Path) -> None:
    own = write(repo / ".speedrift" / "roles" / "reviewer.md", "{{task}}\n\nAlso see {{ticket}}.\n")
    with pytest.raises(InvalidValue) as raised:
        load_role(repo, RoleName.REVIEWER)
    assert f"{own}:3: the template names {{{{ticket}}}}" in raised.value.message
    assert raised.value.hint is not None and "task" in raised.value.hint and "diff" in raised.value.hint


def test_a_template_path_that_does_not_exist_fails_with_the_fix(repo: Path) -> None:
    write(repo / "speedrift.toml", '[roles.reviewer]\ntemplate = "docs/missing.md"\n')
    with pytest.raises(NotFound) as raised:
        load_role(repo, RoleName.REVIEWER, load_config(repo).role("reviewer").template)
    assert "[roles.reviewer] template = 'docs/missing.md' does not exist" in raised.value.message
    assert raised.value.hint is not None and "relative to the repository" in raised.value.hint
