"""Template packs: the shipped shapes of common waves, given to the Architect by `plan draft`.

A pack is ``plans/data/templates/<name>.json``: a partial wave for one kind of work
(implementation, QA, infra, release, migration) — its typical mode, the typical tasks with their
roles, order (``after``), exit contracts, what each owns and does, how such a wave is validated,
guidance for its closure roles, and a short ``shape`` text. It is a starting point the Architect
adapts to the request, never a wave by itself: no owned paths, prompts or commands are in it,
since those are the repository's.

The pack's format is derived from the wave schema (plans/data/wave.schema.json): mode, exit
contract, deploy and closure are the wave's own definitions, task roles are :class:`TaskRole`.

Invariant: :func:`load` returns only a pack its format accepts, named like its file; an unknown
name is NotFound naming the known ones.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from speedrift.errors import InvalidValue, NotFound
from speedrift.plans import spec

if TYPE_CHECKING:
    from speedrift.jsonvalid import Checked

PACKS = "data/templates"  # inside the speedrift.plans package
SUFFIX = ".json"


@dataclass(frozen=True)
class Pack:
    name: str
    title: str
    shape: str
    mode: spec.Mode
    value: Mapping[str, Any]  # the whole pack, as shipped

    def prompt_text(self) -> str:
        """What the Architect is shown: the shape in words, then the pack itself."""
        body = json.dumps(self.value, indent=2, ensure_ascii=False)
        return (
            f"{self.title} (template pack `{self.name}`; typical mode: {self.mode.value})\n\n"
            f"{self.shape}\n\n```json\n{body}\n```"
        )

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "mode": self.mode.value, "pack": dict(self.value)}


def names() -> list[str]:
    """The shipped packs, by name."""
    folder = resources.files("speedrift.plans").joinpath(PACKS)
    return sorted(e.name.removesuffix(SUFFIX) for e in folder.iterdir() if e.name.endswith(SUFFIX))


def load(name: str) -> Pack:
    """The shipped pack ``name``; NotFound naming it and the known ones."""
    known = names()
    if name not in known:
        raise NotFound(
            f"no template pack named {name!r}",
            hint=f"template packs: {', '.join(known)} (`speedrift plan templates`)",
        )
    return _load(name)


def all_packs() -> list[Pack]:
    return [_load(name) for name in names()]


@cache
def _load(name: str) -> Pack:
    where = f"speedrift/plans/{PACKS}/{name}{SUFFIX}"
    try:
        text = (
            resources.files("speedrift.plans").joinpath(PACKS, f"{name}{SUFFIX}").read_text(encoding="utf-8")
        )
        value = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidValue(f"{where}: the shipped template pack is broken: {error}") from None
    found = problems(value)
    if not found:
        found = _cross_problems(name, value)
    if found:
        raise InvalidValue(f"{where}: the shipped template pack is broken: {'; '.join(found[:5])}")
    return Pack(name, value["title"], value["shape"], spec.Mode(value["mode"]), value)


def _cross_problems(name: str, value: Mapping[str, Any]) -> list[str]:
    """What the format cannot say: the name is the file's, ``after`` names tasks of the pack."""
    found = [] if value["name"] == name else [f"$.name: {value['name']!r} is not the file's name {name!r}"]
    ids = [task["id"] for task in value["tasks"]]
    for n, task in enumerate(value["tasks"]):
        found += [
            f"$.tasks[{n}].after: no task {a!r} in the pack" for a in task.get("after", []) if a not in ids
        ]
    if len(set(ids)) != len(ids):
        found.append("$.tasks: two tasks have the same id")
    return found


def problems(value: Any) -> list[str]:
    """Every way ``value`` fails the pack format, as ``"$.path: message"`` lines."""
    from speedrift.jsonvalid import problems as schema_problems

    return schema_problems(_validator(), value)


@cache
def _validator() -> Checked:
    from speedrift.jsonvalid import checked_schema

    return checked_schema(pack_schema(), "plans template pack format")


def pack_schema() -> dict[str, Any]:
    """The format of a pack, built from the wave schema's own definitions."""
    wave = spec.schema()
    task = wave["$defs"]["task"]["properties"]
    text = {"type": "string", "minLength": 1, "maxLength": 2000}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "speedrift wave template pack",
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "title", "shape", "mode", "tasks", "validation", "closure"],
        "properties": {
            "name": {"$ref": "#/$defs/slug"},
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "shape": text,
            "mode": copy.deepcopy(wave["properties"]["mode"]),
            "validation": {
                **text,
                "description": "how such a wave is validated (the commands are the project's)",
            },
            "deploy_environments": {**text, "description": "the environments such a wave usually needs"},
            "closure": copy.deepcopy(wave["properties"]["closure"]),
            "tasks": {
                "type": "array",
                "minItems": 1,
                "maxItems": 20,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["id", "role", "title", "owns", "does", "exit_contract"],
                    "properties": {
                        "id": copy.deepcopy(task["id"]),
                        "role": {"enum": [role.value for role in spec.TaskRole]},
                        "title": copy.deepcopy(task["title"]),
                        "after": copy.deepcopy(task["after"]),
                        "owns": {**text, "description": "what such a task typically owns"},
                        "does": {**text, "description": "what it does, and how it is proved"},
                        "exit_contract": {"$ref": "#/$defs/exit_contract"},
                        "deploy": copy.deepcopy(task["deploy"]),
                    },
                },
            },
        },
        "$defs": copy.deepcopy(wave["$defs"]),
    }
