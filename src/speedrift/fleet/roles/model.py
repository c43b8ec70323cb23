"""Roles as data: what each typed agent of the resilience fleet is given and must give back.

Every role runs through the worker plane (fleet/roles/runner.py) in a throwaway read-only checkout
of the commit it judges. A role ships in the package as three files under ``fleet/roles/data/``:
``<role>.toml`` (title, default model tier, declared inputs, what speedrift does with a valid or an invalid
output), ``<role>.md`` (the prompt template) and ``<role>.schema.json`` (a JSON Schema, draft
2020-12, for the output, whose ``examples`` hold at least one documented example). A repository
overrides a template without forking code: ``.speedrift/roles/<role>.md``, or ``[roles.<role>]
template = "path"`` in ``speedrift.toml`` (a committed file, relative to the repo); the schema,
inputs and actions stay the package's, since speedrift acts on the output.

Templates name inputs as ``{{name}}``; every placeholder must be a declared input (an unknown one
is an error naming the file, line and the inputs there are) and every required input must be
given when the prompt is rendered. An optional input that is not given renders as ``(none)``.

Invariant: a role that loads has a valid schema whose examples it accepts and a template that
renders with every input it declares (tests/fleet/test_roles_data.py checks every shipped role).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speedrift import jsonvalid, layout
from speedrift.errors import InvalidValue, NotFound
from speedrift.fleet.roles.names import RoleName, Tier
from speedrift.textclip import cut_middle

if TYPE_CHECKING:
    from speedrift.jsonvalid import Checked

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
MAX_INPUT_CHARS = 200_000  # one input, clipped in the middle past this (a huge diff)


@dataclass(frozen=True)
class RoleInput:
    name: str
    description: str
    required: bool = True


@dataclass(frozen=True)
class Role:
    name: RoleName
    title: str
    summary: str
    tier: Tier
    inputs: tuple[RoleInput, ...]
    on_valid: str  # what speedrift does with a valid output (said in `roles show`)
    on_invalid: str
    template: str
    template_source: str  # where the template came from (the package, or the repo's file)
    schema: Mapping[str, Any]

    @property
    def examples(self) -> list[Any]:
        found = self.schema.get("examples")
        return list(found) if isinstance(found, list) else []

    def validator(self) -> Checked:
        return _validator(self.name)

    def problems(self, output: object) -> list[str]:
        """Every way ``output`` fails the role's schema ([] when it is valid)."""
        return jsonvalid.problems(self.validator(), output)

    def render(self, inputs: Mapping[str, str]) -> str:
        """The template with ``inputs`` filled in; InvalidValue for an undeclared or missing input."""
        declared = {i.name: i for i in self.inputs}
        unknown = sorted(set(inputs) - set(declared))
        if unknown:
            raise InvalidValue(
                f"role {self.name}: no input named {', '.join(unknown)}",
                hint=f"its inputs: {', '.join(declared)}",
            )
        missing = [i.name for i in self.inputs if i.required and not str(inputs.get(i.name, "")).strip()]
        if missing:
            raise InvalidValue(f"role {self.name}: required input(s) {', '.join(missing)} not given")

        def fill(match: re.Match[str]) -> str:
            value = str(inputs.get(match.group(1), "")).strip()
            return cut_middle(value, MAX_INPUT_CHARS) if value else "(none)"

        return PLACEHOLDER.sub(fill, self.template).strip() + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name.value,
            "title": self.title,
            "summary": self.summary,
            "tier": self.tier.value,
            "inputs": [
                {"name": i.name, "description": i.description, "required": i.required} for i in self.inputs
            ],
            "on_valid": self.on_valid,
            "on_invalid": self.on_invalid,
            "template_source": self.template_source,
            "template": self.template,
            "schema": dict(self.schema),
        }


def parse_role_name(value: str) -> RoleName:
    try:
        return RoleName(value.replace("-", "_"))
    except ValueError:
        raise NotFound(
            f"no role named {value!r}", hint="roles: " + ", ".join(r.value for r in RoleName)
        ) from None


def shipped(name: RoleName) -> Role:
    """The role as the package ships it."""
    return _shipped(name)


def load_role(repo: Path | None, name: RoleName, template_path: str | None = None) -> Role:
    """The role for ``repo``: the shipped one with the repo's template when it has one
    (``template_path`` from ``[roles.<role>] template``, else ``.speedrift/roles/<role>.md``)."""
    role = _shipped(name)
    if repo is None:
        return role
    path: Path | None = None
    if template_path:
        path = repo / template_path
        if not path.is_file():
            raise NotFound(
                f"{repo / 'speedrift.toml'}: [roles.{name.value}] template = {template_path!r} "
                "does not exist",
                hint="give a path relative to the repository, or remove the key to use the shipped template",
            )
    elif (layout.roles_dir(repo) / f"{name.value}.md").is_file():
        path = layout.roles_dir(repo) / f"{name.value}.md"
    if path is None:
        return role
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidValue(f"{path}: cannot read the role template: {error}") from None
    _check_placeholders(text, role.inputs, str(path))
    return Role(**{**role.__dict__, "template": text, "template_source": str(path)})


def all_roles(repo: Path | None = None) -> list[Role]:
    return [load_role(repo, name) for name in RoleName]


# --- the shipped data ----------------------------------------------------------------------------
def _data(filename: str) -> str:
    return resources.files("speedrift.fleet.roles").joinpath("data", filename).read_text(encoding="utf-8")


@cache
def _shipped(name: RoleName) -> Role:
    where = f"speedrift/fleet/roles/data/{name.value}"
    try:
        meta = tomllib.loads(_data(f"{name.value}.toml"))
        template = _data(f"{name.value}.md")
        schema = json.loads(_data(f"{name.value}.schema.json"))
    except (OSError, tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise InvalidValue(f"{where}: the shipped role is broken: {error}") from None
    jsonvalid.checked_schema(schema, f"{where}.schema.json")
    inputs = tuple(
        RoleInput(str(i["name"]), str(i.get("description", "")), bool(i.get("required", True)))
        for i in meta.get("inputs", [])
    )
    _check_placeholders(template, inputs, f"{where}.md")
    return Role(
        name=name,
        title=str(meta["title"]),
        summary=str(meta.get("summary", "")),
        tier=Tier(meta.get("tier", "support")),
        inputs=inputs,
        on_valid=str(meta.get("on_valid", "")),
        on_invalid=str(meta.get("on_invalid", "")),
        template=template,
        template_source=f"{where}.md",
        schema=schema,
    )


@cache
def _validator(name: RoleName) -> Checked:
    return jsonvalid.checked_schema(_shipped(name).schema, f"role {name.value}")


def _check_placeholders(text: str, inputs: tuple[RoleInput, ...], where: str) -> None:
    declared = {i.name for i in inputs}
    for lineno, line in enumerate(text.splitlines(), 1):
        for match in PLACEHOLDER.finditer(line):
            if match.group(1) not in declared:
                raise InvalidValue(
                    f"{where}:{lineno}: the template names {{{{{match.group(1)}}}}}, which is not an input "
                    "of this role",
                    hint=f"its inputs: {', '.join(sorted(declared))}",
                )
