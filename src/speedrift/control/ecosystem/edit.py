"""Add and remove ``[repos.<name>]`` tables in ecosystem.toml, keeping the user's comments and layout.

Edits go through tomlkit (round-trips comments, order and formatting), are checked by the same
loader the hub uses *before* anything is written, and replace the file atomically under an
exclusive lock, so a concurrent edit or a crash never leaves a half-written or invalid file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Table

from speedrift import fsutil
from speedrift.control.ecosystem.load import (
    NAME_RE,
    REPO_KEYS,
    SCHEMA,
    parse_ecosystem,
    resolve_path,
)
from speedrift.errors import NotFound, Refused, UsageError

NEW_FILE_HEADER = """\
# speedrift ecosystem: the repos the hub watches. `speedrift repos add|remove` edit this file
# and keep your comments. docs/control-plane.md describes every key.

"""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive flock on the file itself, re-taken if a concurrent writer replaced it meanwhile.

    Not ``fsutil.flocked``: locking the file itself needs no lock file beside the user's
    ecosystem.toml, no write permission on it, and never creates it."""
    while True:
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield
                return
        finally:
            os.close(fd)


def _parse(path: Path, text: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except TOMLKitError as error:
        raise UsageError(f"{path}: {error}", hint="fix the TOML first; the file was not changed") from None


def _stored_path(ecosystem: Path, repo_path: Path) -> str:
    """Paths under the ecosystem's directory are stored relative (the file stays portable)."""
    if not repo_path.is_absolute():
        return repo_path.as_posix()
    with contextlib.suppress(ValueError):
        return repo_path.relative_to(ecosystem.resolve().parent).as_posix() or "."
    return str(repo_path)


def _repo_table(stored_path: str | None, fields: dict[str, Any]) -> Table:
    unknown = sorted(set(fields) - set(REPO_KEYS))
    if unknown:
        raise UsageError(
            f"unknown repo field(s): {', '.join(unknown)}", hint=f"known fields: {', '.join(REPO_KEYS)}"
        )
    table = tomlkit.table()
    if stored_path is not None:
        table["path"] = stored_path
    for key in REPO_KEYS:
        value = fields.get(key)
        if value is None or key == "path":
            continue
        table[key] = list(value) if isinstance(value, (tuple, list)) else value
    table.add(tomlkit.nl())
    return table


def _with_repo(path: Path, text: str, name: str, stored: str | None, fields: dict[str, Any]) -> str:
    """``text`` with the new table added; every check runs here, before anything is written."""
    current = parse_ecosystem(text, path)  # the file must be valid before we touch it
    if any(entry.name == name for entry in current.repos):
        raise Refused(
            f"{name!r} is already registered in {path}",
            hint=f"pick another name, or `speedrift repos remove {name}` first",
        )
    new_path = resolve_path(current.root, stored) if stored is not None else current.workspace_root / name
    for entry in current.repos:
        if entry.path == new_path:
            raise Refused(
                f"{new_path} is already registered as {entry.name!r}",
                hint="a repository is registered once; use the existing entry",
            )
    doc = _parse(path, text)
    repos = doc.get("repos")
    if repos is None:
        repos = tomlkit.table(is_super_table=True)
        doc["repos"] = repos
    if not isinstance(repos, Table):
        raise UsageError(f"{path}: 'repos' is not a table", hint="write one [repos.<name>] section per repo")
    repos[name] = _repo_table(stored, fields)
    new_text = tomlkit.dumps(doc)
    parse_ecosystem(new_text, path)  # bad values, unknown depends_on: refused before writing
    return new_text


def add_repo(path: Path, name: str, repo_path: Path | None, *, create: bool = True, **fields: Any) -> None:
    """Register ``name`` at ``repo_path`` (or ``url=`` only). Creates the file when missing and ``create``."""
    if not NAME_RE.match(name):
        raise UsageError(
            f"repo name {name!r} has characters speedrift does not allow",
            hint="use letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    if repo_path is None and not fields.get("url"):
        raise UsageError(f"repo {name!r} needs a path or a url", hint="pass the repository's path")
    path = path.expanduser().absolute()
    stored = _stored_path(path, repo_path) if repo_path is not None else None
    _repo_table(stored, fields)  # unknown fields fail before any file exists
    if not path.exists():
        if not create:
            raise NotFound(f"{path} does not exist", hint="create it, or let `speedrift repos add` do it")
        template = NEW_FILE_HEADER + f"schema = {SCHEMA}\n\n[policy]\nplan_only = true\n"
        if _create_exclusive(path, _with_repo(path, template, name, stored, fields)):
            return
    with _locked(path):
        text = path.read_text(encoding="utf-8")
        fsutil.write_atomic(path, _with_repo(path, text, name, stored, fields).encode("utf-8"))


def _create_exclusive(path: Path, text: str) -> bool:
    """Write a brand-new file; False if another writer created it first (then edit that one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return fsutil.create_new(path, text.encode("utf-8"))


def remove_repo(path: Path, name: str, *, force: bool = False) -> None:
    """Drop ``[repos.<name>]``. Refuses while other repos declare ``depends_on`` it, unless ``force``."""
    if not path.exists():
        raise NotFound(f"{path} does not exist", hint="check --ecosystem")
    with _locked(path):
        text = path.read_text(encoding="utf-8")
        current = parse_ecosystem(text, path)
        if not any(entry.name == name for entry in current.repos):
            known = ", ".join(entry.name for entry in current.repos) or "none"
            raise NotFound(f"no repo named {name!r} in {path} (registered: {known})", hint="check the name")
        dependents = [entry.name for entry in current.repos if name in entry.depends_on]
        doc = _parse(path, text)
        repos = doc["repos"]
        assert isinstance(repos, Table)
        if dependents:
            if not force:
                raise Refused(
                    f"{', '.join(dependents)} {'declares' if len(dependents) == 1 else 'declare'} "
                    f"depends_on {name!r}",
                    hint="remove it from their depends_on first, or pass --force to drop those references",
                )
            for dependent in dependents:
                entry_table = repos[dependent]
                assert isinstance(entry_table, Table)
                remaining = [d for d in entry_table["depends_on"] if d != name]
                if remaining:
                    entry_table["depends_on"] = remaining
                else:
                    del entry_table["depends_on"]
        del repos[name]
        new_text = tomlkit.dumps(doc)
        parse_ecosystem(new_text, path)
        fsutil.write_atomic(path, new_text.encode("utf-8"))
