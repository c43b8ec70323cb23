"""The project profile: ``plans/project.toml``, committed, read by the planner and by import.

It says what kind of project this is (its name, whether it is new), the default wave mode
(oversight or dark-factory), the default runtimes in order of preference and the test commands.
Every value has a default when the file does not set it, and :func:`load` says where each value
came from: the ``file``, a ``default``, or ``detected`` from the repo (its directory name, its
speedrift.toml, the test suite the tests gate would run — gates/testdetect.py).

Invariant: :func:`load` returns a valid profile or raises InvalidValue naming the file, the key
and (when known) the line; :func:`save` writes only a valid profile, atomically, keeping the
comments of an existing file.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from speedrift import fsutil, safetoml
from speedrift.errors import InvalidValue
from speedrift.plans.spec import PROJECT_FILE, Mode

FIELDS = ("name", "new_project", "default_mode", "runtimes", "tests")
MAX_TEXT = 500
HEADER = (
    "speedrift project profile (docs/plans.md): what the planner assumes of this project.\n"
    "Written by `speedrift project setup`; edit freely; `speedrift project show` checks it."
)


class Origin(StrEnum):
    FILE = "file"
    DEFAULT = "default"
    DETECTED = "detected"


@dataclass(frozen=True)
class Profile:
    name: str
    new_project: bool = False
    default_mode: Mode = Mode.OVERSIGHT
    runtimes: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    origins: Mapping[str, Origin] = field(default_factory=dict)  # field name -> where it came from

    def origin(self, name: str) -> Origin:
        return self.origins.get(name, Origin.DEFAULT)

    def values(self) -> dict[str, Any]:
        """The profile as its TOML keys hold it."""
        return {
            "name": self.name,
            "new_project": self.new_project,
            "default_mode": self.default_mode.value,
            "runtimes": list(self.runtimes),
            "tests": list(self.tests),
        }

    def as_dict(self) -> dict[str, Any]:
        return {**self.values(), "origins": {name: self.origin(name).value for name in FIELDS}}


def path(repo: Path) -> Path:
    return repo / PROJECT_FILE


def load(repo: Path) -> Profile:
    """The profile of ``repo``: the file's values, the others detected or defaulted."""
    file = path(repo)
    if not file.exists():
        return _detected(repo, set())
    raw, text = _read(file)
    values = check(raw, where=str(file), text=text)
    detected = _detected(repo, set(values))
    origins = {name: Origin.FILE if name in values else detected.origin(name) for name in FIELDS}
    return replace(detected, **values, origins=origins)


def save(repo: Path, profile: Profile) -> Path:
    """Write ``profile`` to ``plans/project.toml`` (every value), keeping an existing file's
    comments; atomic. Returns the file written."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    values = check(profile.values(), where="the profile")
    target = path(repo)
    document = None
    if target.exists():
        try:
            document = tomlkit.parse(safetoml.decode(target.read_bytes()))
        except (TOMLKitError, safetoml.MalformedToml):
            document = None  # a broken file is replaced whole
    if document is None:
        document = tomlkit.document()
        for line in HEADER.splitlines():
            document.add(tomlkit.comment(line))
    for name in FIELDS:
        document[name] = values[name].value if isinstance(values[name], Mode) else _plain(values[name])
    target.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_atomic(target, tomlkit.dumps(document).encode("utf-8"))
    return target


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _read(file: Path) -> tuple[dict[str, Any], str]:
    try:
        text = safetoml.decode(file.read_bytes())
        return safetoml.loads(text), text
    except safetoml.MalformedToml as bad:
        raise InvalidValue(
            f"{file}{bad.where()}: {bad.problem}",
            hint="fix the TOML at that line, or write the file again with `speedrift project setup`",
        ) from None
    except OSError as error:
        raise InvalidValue(
            f"cannot read {file}: {error.strerror or error}", hint="make it a readable file"
        ) from None


def check(raw: Mapping[str, Any], *, where: str, text: str = "") -> dict[str, Any]:
    """The typed values of a profile table (only the keys it sets); InvalidValue naming ``where``,
    the key and, given the file's ``text``, its line."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        at = f"{where}{_line(text, key)}: {key}"
        if key not in FIELDS:
            raise InvalidValue(f"{at}: not a profile key", hint=f"the keys are: {', '.join(FIELDS)}")
        values[key] = _value(key, value, at)
    return values


def _value(key: str, value: Any, at: str) -> Any:
    from speedrift.agents.choose import RUNTIME_NAMES

    if key == "name":
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT or "\n" in value:
            raise InvalidValue(f"{at}: the project's name, one line of text", hint='e.g. name = "Acme API"')
        return value.strip()
    if key == "new_project":
        if not isinstance(value, bool):
            raise InvalidValue(
                f"{at}: true or false", hint="new_project = true for a project started from scratch"
            )
        return value
    if key == "default_mode":
        if value not in tuple(Mode):
            raise InvalidValue(f"{at}: {value!r} is not a mode", hint=f"use one of: {', '.join(Mode)}")
        return Mode(value)
    texts = _texts(value, at)
    if key == "runtimes":
        unknown = [name for name in texts if name not in RUNTIME_NAMES]
        if unknown:
            raise InvalidValue(
                f"{at}: unknown runtime {unknown[0]!r}", hint=f"use some of: {', '.join(RUNTIME_NAMES)}"
            )
        if len(set(texts)) != len(texts):
            raise InvalidValue(
                f"{at}: a runtime is listed twice", hint="list each runtime once, preferred first"
            )
    return texts


def _texts(value: Any, at: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(item, str) and item.strip() and len(item) <= MAX_TEXT and "\n" not in item
        for item in value
    ):
        raise InvalidValue(f"{at}: a list of one-line texts", hint='e.g. ["python -m pytest -q"]')
    return tuple(item.strip() for item in value)


def _line(text: str, key: str) -> str:
    found = re.search(rf"^[ \t]*{re.escape(key)}[ \t]*=", text, re.MULTILINE) if text else None
    return f":{text.count(chr(10), 0, found.start()) + 1}" if found else ""


def _detected(repo: Path, given: set[str]) -> Profile:
    """The profile of a repo without the file: what its layout and speedrift.toml say, else the
    defaults. What is ``given`` (by the file) is not looked for."""
    from speedrift.fleet.config import CONFIG_FILE, load_config
    from speedrift.gates import testdetect

    origins = {name: Origin.DEFAULT for name in FIELDS}
    origins["name"] = Origin.DETECTED
    config = load_config(repo)
    runtimes: tuple[str, ...] = (config.default_runtime,)
    if (repo / CONFIG_FILE).is_file():
        origins["runtimes"] = Origin.DETECTED
    tests: Sequence[str] = ()
    if "tests" in given:
        pass
    elif config.gates.tests.command:
        tests = (shlex.join(config.gates.tests.command),)
    else:
        found = testdetect.detect(repo)
        tests = (found[0].label,) if found else ()
    if tests:
        origins["tests"] = Origin.DETECTED
    return Profile(
        name=repo.resolve().name or "project",
        runtimes=runtimes,
        tests=tuple(tests),
        origins=origins,
    )
