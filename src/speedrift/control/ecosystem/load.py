"""``ecosystem.toml``: the hub's registry of repos, its policy and where it records — loaded and checked.

Compatible with the original hub's schema (top-level ``schema = 1``, ``suite``, ``orchestrator``,
``workspace_root``; one ``[repos.<name>]`` table per repo with ``path`` or ``url``, ``role``,
``tags``, ``lifecycle``, ``daemon_posture``, ``upstream_remote``, ``upstream_branch``, ``notes``,
``service_port``, ``cli``, ``cli_install``), plus ``upstream`` (the fork's parent project),
``depends_on``, ``[policy]``, ``[register]``, ``[discovery]``, ``[executor]``
(fleet/remote/config.py: where attempts develop) and the fleet-operations tables (opstables.py).
Every problem is reported at once, each as ``file:line: key: problem`` with the fix; unknown keys
are errors, so a typo never silently turns a setting off.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from speedrift import safetoml
from speedrift.control.ecosystem.opstables import OPS_KEYS, parse_ops
from speedrift.control.plan.config import PolicyConfig
from speedrift.errors import NotFound, UsageError
from speedrift.fleet.opsconfig import FleetOps
from speedrift.fleet.remote import config as executor_config
from speedrift.fleet.remote.config import ExecutorConfig
from speedrift.redact import redact_url
from speedrift.register.record import RepoEntry

REGISTER_URL_ENV = "SPEEDRIFT_REGISTER_URL"
SCHEMA = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
ROLES = ("orchestrator", "baseline", "lane", "product", "service", "experiment", "dependency")
LIFECYCLES = ("active", "maintenance", "retired", "experimental")
POSTURES = ("always-on", "on-demand", "never")
TOP_KEYS = (
    "schema",
    "suite",
    "orchestrator",
    "workspace_root",
    "repos",
    "policy",
    "register",
    "discovery",
    "executor",
    *OPS_KEYS,
)
STRING_KEYS = ("path", "url", "upstream_remote", "upstream_branch", "notes", "cli")
# kept from the original schema: accepted, checked for type, carried on Ecosystem.repo_extras;
# ``upstream``: the fork's parent project, "OWNER/REPO" or its URL (fleetops/upstream.py)
EXTRA_KEYS = ("service_port", "cli", "cli_install", "upstream")
UPSTREAM_RE = re.compile(
    r"^([A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+|(https?|ssh)://[^\s]+|[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+:[^\s]+)$"
)
REPO_KEYS = (
    "path",
    "url",
    "role",
    "tags",
    "lifecycle",
    "daemon_posture",
    "upstream_remote",
    "upstream_branch",
    "notes",
    "depends_on",
    *EXTRA_KEYS,
)
DEFAULT_MAX_AGE_DAYS = 30


@dataclass(frozen=True, slots=True)
class DiscoverySettings:
    """``[discovery]``: also watch git repos found under ``root`` (off unless enabled)."""

    enabled: bool = False
    root: Path | None = None  # None: the workspace root
    max_age_days: int = DEFAULT_MAX_AGE_DAYS


@dataclass(frozen=True, slots=True)
class Ecosystem:
    path: Path  # ecosystem.toml, absolute
    root: Path  # its directory
    workspace_root: Path
    repos: tuple[RepoEntry, ...]
    policy: PolicyConfig
    register_url: str | None = None  # $SPEEDRIFT_REGISTER_URL, else [register] url
    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)
    suite: str | None = None
    orchestrator: str | None = None
    repo_extras: dict[str, dict[str, Any]] = field(default_factory=dict)  # service_port, cli, cli_install
    ops: FleetOps = field(default_factory=FleetOps)  # [[agents]], [budgets], [prices], [nightwatch], …
    # [executor], with $SPEEDRIFT_EXECUTOR / $SPEEDRIFT_DASK_SCHEDULER applied (fleet/remote/config.py)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def repo(self, name: str) -> RepoEntry:
        for entry in self.repos:
            if entry.name == name:
                return entry
        known = ", ".join(e.name for e in self.repos) or "none"
        hint = (
            f"register it with `speedrift repos add {name} PATH`"
            if NAME_RE.match(name)
            else "repo names use letters, digits, '.', '_' and '-'; see `speedrift repos list`"
        )
        raise NotFound(f"no repo named {name!r} in {self.path} (registered: {known})", hint=hint)


# --- line numbers for keys -------------------------------------------------------------------------
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _dotted(text: str, start: int, stop: str) -> tuple[tuple[str, ...], int] | None:
    """Parse a dotted TOML key at ``text[start:]`` up to the ``stop`` character; None if it is not one."""
    parts: list[str] = []
    index = start
    while True:
        while index < len(text) and text[index] in " \t":
            index += 1
        if index >= len(text):
            return None
        char = text[index]
        if char in "\"'":
            end = index + 1
            while end < len(text) and text[end] != char:
                end += 2 if char == '"' and text[end] == "\\" else 1
            if end >= len(text):
                return None
            raw = text[index + 1 : end]
            parts.append(raw.encode().decode("unicode_escape") if char == '"' and "\\" in raw else raw)
            index = end + 1
        else:
            match = _BARE.match(text, index)
            if not match:
                return None
            parts.append(match.group())
            index = match.end()
        while index < len(text) and text[index] in " \t":
            index += 1
        if index < len(text) and text[index] == ".":
            index += 1
            continue
        if index < len(text) and text[index] == stop:
            return tuple(parts), index + 1
        return None


def _strip_strings(value: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'', '""', value).split("#", 1)[0]


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The first line each table and key is written on (1-based), by a small line scan.

    Good enough for error messages: it follows tables, dotted keys, quoted keys, and skips the
    inside of multi-line strings and arrays.
    """
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    closing: str | None = None  # the delimiter ending the multi-line string we are in
    depth = 0  # open [ / { of a multi-line value
    arrays: dict[tuple[str, ...], int] = {}  # entries seen of each array of tables
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if closing is not None:
            if line.count(closing) % 2 == 1:
                closing = None
            continue
        if depth > 0:
            clean = _strip_strings(line)
            depth += clean.count("[") + clean.count("{") - clean.count("]") - clean.count("}")
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            array = line.startswith("[[")
            parsed = _dotted(line, 2 if array else 1, "]")
            if parsed:
                table = parsed[0]
                found.setdefault(table, number)
                if array:  # each [[x]] is entry x.<n>, as the validators' key paths name it
                    count = arrays.get(table, 0)
                    arrays[table] = count + 1
                    table = (*table, str(count))
                    found.setdefault(table, number)
            continue
        parsed = _dotted(line, 0, "=")
        if not parsed:
            continue
        keys, after = parsed
        full = table + keys
        for cut in range(len(table) + 1, len(full) + 1):
            found.setdefault(full[:cut], number)
        value = line[after:].strip()
        for quote in ('"""', "'''"):
            if value.startswith(quote) and value.count(quote) == 1:
                closing = quote
        if closing is None:
            clean = _strip_strings(value)
            depth = max(0, clean.count("[") + clean.count("{") - clean.count("]") - clean.count("}"))
    return found


class _Problems:
    """Collects every problem with its line so one run shows them all."""

    def __init__(self, path: Path, lines: dict[tuple[str, ...], int]) -> None:
        self.path = path
        self.lines = lines
        self.items: list[tuple[int, str]] = []

    def line_of(self, key: tuple[str, ...]) -> int:
        for cut in range(len(key), 0, -1):
            if key[:cut] in self.lines:
                return self.lines[key[:cut]]
        return 1

    def add(self, key: tuple[str, ...], problem: str, fix: str) -> None:
        dotted = ".".join(key) if key else "(top level)"
        self.items.append((self.line_of(key), f"{dotted}: {problem}; fix: {fix}"))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        self.items.sort()
        shown = "\n".join(f"  {self.path}:{line}: {text}" for line, text in self.items)
        raise UsageError(
            f"{self.path} has {len(self.items)} problem(s):\n{shown}",
            hint="edit the file as each line says, then run the command again",
        )


# --- loading ----------------------------------------------------------------------------------------
def load_ecosystem(path: Path) -> Ecosystem:
    """Read and check ecosystem.toml. Raises NotFound (no file) or UsageError (every problem listed)."""
    path = path.expanduser().resolve()
    try:
        text = safetoml.decode(path.read_bytes())
    except FileNotFoundError:
        raise NotFound(
            f"{path} does not exist", hint="create it with `speedrift repos add NAME PATH`"
        ) from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory", hint="pass the path of ecosystem.toml itself") from None
    except OSError as exc:
        raise UsageError(
            f"cannot read {path}: {exc.strerror or exc}", hint="make it a readable file"
        ) from None
    except safetoml.MalformedToml as bad:
        raise UsageError(f"{path}{bad.where()}: {bad.problem}", hint="save the file as UTF-8") from None
    return parse_ecosystem(text, path)


def _decode_error(path: Path, bad: safetoml.MalformedToml) -> UsageError:
    return UsageError(f"{path}{bad.where() or ':end'}: {bad.problem}", hint="fix the TOML at that position")


def parse_ecosystem(text: str, path: Path) -> Ecosystem:
    """Check ``text`` as the content of ``path`` (used by the editor to validate before it writes).
    Any text is an :class:`Ecosystem` or a UsageError naming the line (speedrift/safetoml.py)."""
    try:
        data = safetoml.loads(text)
    except safetoml.MalformedToml as bad:
        raise _decode_error(path, bad) from None
    problems = _Problems(path, key_lines(text))
    root = path.parent
    for key in data:
        if key not in TOP_KEYS:
            problems.add((key,), "unknown key", f"remove it (known keys: {', '.join(TOP_KEYS)})")
    schema = data.get("schema", SCHEMA)
    if schema != SCHEMA:
        problems.add(("schema",), f"unsupported schema {schema!r}", f"set schema = {SCHEMA}")
    suite = _opt_str(data, "suite", (), problems)
    orchestrator = _opt_str(data, "orchestrator", (), problems)
    workspace_text = _opt_str(data, "workspace_root", (), problems)
    workspace_root = resolve_path(root, workspace_text) if workspace_text else root
    policy = _policy(data.get("policy", {}), problems)
    register_url = _register(data.get("register", {}), problems)
    discovery = _discovery(data.get("discovery", {}), workspace_root, root, problems)
    repos, extras = _repos(data.get("repos", {}), root, workspace_root, problems)
    ops = parse_ops(data, {entry.name for entry in repos}, problems.add)
    executor = _executor(data.get("executor", {}), problems)
    problems.raise_if_any()
    assert policy is not None
    env_url = os.environ.get(REGISTER_URL_ENV)
    if env_url:
        _check_url(env_url, None, problems)
        if problems.items:
            raise UsageError(
                f"${REGISTER_URL_ENV}={redact_url(env_url)} is not a register URL",
                hint="use postgresql://… or sqlite:///path/to/register.db, or unset it",
            )
        register_url = env_url
    executor = executor_config.resolve(os.environ, executor, where=str(path))  # the environment wins
    return Ecosystem(
        path=path,
        root=root,
        workspace_root=workspace_root,
        repos=repos,
        policy=policy,
        register_url=register_url,
        discovery=discovery,
        suite=suite,
        orchestrator=orchestrator,
        repo_extras=extras,
        ops=ops,
        executor=executor,
    )


def _executor(table: Any, problems: _Problems) -> ExecutorConfig:
    """``[executor]`` (fleet/remote/config.py): every bad value a problem; ``backend = "dask"``
    needs a scheduler, here or in ``$SPEEDRIFT_DASK_SCHEDULER``."""
    config, found = executor_config.parse_table(table)
    for key, problem, fix in found:
        problems.add(("executor", key) if key else ("executor",), problem, fix)
    if config.remote and not config.scheduler and not os.environ.get(executor_config.SCHEDULER_ENV):
        problems.add(
            ("executor", "backend"),
            '"dask" needs a scheduler',
            f'add scheduler = "{executor_config.SCHEDULER_EXAMPLE}" to [executor] '
            f"(or set ${executor_config.SCHEDULER_ENV})",
        )
    return config


def resolve_path(root: Path, text: str) -> Path:
    candidate = Path(text).expanduser()
    return Path(os.path.normpath(candidate if candidate.is_absolute() else root / candidate))


def _opt_str(table: dict[str, Any], key: str, where: tuple[str, ...], problems: _Problems) -> str | None:
    value = table.get(key)
    if value is None or isinstance(value, str):
        return value
    problems.add((*where, key), f"must be a string, not {type(value).__name__}", f'write {key} = "…"')
    return None


def _policy(table: Any, problems: _Problems) -> PolicyConfig | None:
    if not isinstance(table, dict):
        problems.add(("policy",), "must be a table", "write it as a [policy] section")
        return PolicyConfig()
    try:
        return PolicyConfig.model_validate(table, strict=True)  # TOML has real types: "yes" is no bool
    except ValidationError as error:
        for item in error.errors():
            loc = tuple(str(part) for part in item["loc"])
            if item["type"] == "extra_forbidden":
                problem, fix = "unknown key", "remove it (docs/scoring-and-policy.md lists the [policy] keys)"
            else:
                problem = str(item["msg"])
                if "input" in item and item["type"] != "value_error":
                    problem += f" (got {item['input']!r})"
                fix = "see docs/scoring-and-policy.md for this key's type and default"
            problems.add(("policy", *loc), problem, fix)
        return None


REGISTER_SCHEMES = ("sqlite://", "postgresql://", "postgres://")


def _check_url(url: str, where: tuple[str, ...] | None, problems: _Problems) -> None:
    if not url.startswith(REGISTER_SCHEMES):
        problems.add(
            where or ("register", "url"),
            f"unsupported register URL {redact_url(url)!r}",
            "use sqlite:///path/to/register.db or postgresql://user@host/db (or leave it out: the hub "
            "uses its own SQLite file)",
        )


def _register(table: Any, problems: _Problems) -> str | None:
    if not isinstance(table, dict):
        problems.add(("register",), "must be a table", "write it as a [register] section")
        return None
    for key in table:
        if key != "url":
            problems.add(("register", key), "unknown key", "remove it ([register] knows only url)")
    url = _opt_str(table, "url", ("register",), problems)
    if url:
        _check_url(url, ("register", "url"), problems)
    return url or None


def _discovery(table: Any, workspace_root: Path, root: Path, problems: _Problems) -> DiscoverySettings:
    if not isinstance(table, dict):
        problems.add(("discovery",), "must be a table", "write it as a [discovery] section")
        return DiscoverySettings()
    for key in table:
        if key not in ("enabled", "root", "max_age_days"):
            problems.add(("discovery", key), "unknown key", "remove it (known: enabled, root, max_age_days)")
    enabled = table.get("enabled", False)
    if not isinstance(enabled, bool):
        problems.add(("discovery", "enabled"), "must be true or false", "write enabled = true")
        enabled = False
    max_age = table.get("max_age_days", DEFAULT_MAX_AGE_DAYS)
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 1:
        problems.add(("discovery", "max_age_days"), "must be a whole number >= 1", "e.g. max_age_days = 30")
        max_age = DEFAULT_MAX_AGE_DAYS
    root_text = _opt_str(table, "root", ("discovery",), problems)
    return DiscoverySettings(
        enabled=enabled,
        root=resolve_path(root, root_text) if root_text else workspace_root,
        max_age_days=max_age,
    )


def _str_list(value: Any, key: tuple[str, ...], problems: _Problems) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    problems.add(key, "must be a list of strings", f'write {key[-1]} = ["a", "b"]')
    return ()


def _text(table: dict[str, Any], key: str) -> str | None:
    value = table.get(key)
    return value if isinstance(value, str) else None


def _choice(
    table: dict[str, Any],
    key: str,
    allowed: tuple[str, ...],
    default: str,
    where: tuple[str, ...],
    problems: _Problems,
) -> str:
    value = table.get(key, default)
    if isinstance(value, str) and value in allowed:
        return value
    problems.add((*where, key), f"{value!r} is not one of {', '.join(allowed)}", f'e.g. {key} = "{default}"')
    return default


def _repos(
    table: Any, root: Path, workspace_root: Path, problems: _Problems
) -> tuple[tuple[RepoEntry, ...], dict[str, dict[str, Any]]]:
    if not isinstance(table, dict):
        problems.add(("repos",), "must be a table of tables", "write one [repos.<name>] section per repo")
        return (), {}
    entries: list[RepoEntry] = []
    extras: dict[str, dict[str, Any]] = {}
    for name, spec in table.items():
        where = ("repos", name)
        if not NAME_RE.match(name):
            problems.add(
                where,
                f"repo name {name!r} has characters speedrift does not allow",
                "use letters, digits, '.', '_' and '-', starting with a letter or digit (at most 100)",
            )
            continue
        if not isinstance(spec, dict):
            problems.add(where, "must be a table", f"write it as a [repos.{name}] section")
            continue
        for key in spec:
            if key not in REPO_KEYS:
                problems.add((*where, key), "unknown key", f"remove it (known: {', '.join(REPO_KEYS)})")
        for key in STRING_KEYS:
            _opt_str(spec, key, where, problems)
        path_text = _text(spec, "path")
        url = _text(spec, "url")
        path = resolve_path(root, path_text) if path_text else workspace_root / name
        port = spec.get("service_port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            problems.add(
                (*where, "service_port"), "must be a port number 1-65535", "e.g. service_port = 8080"
            )
        declared = spec.get("upstream")
        if declared is not None and not (isinstance(declared, str) and UPSTREAM_RE.match(declared)):
            problems.add(
                (*where, "upstream"),
                'must be the parent project as "OWNER/REPO" or its URL',
                'e.g. upstream = "acme/widgets" or upstream = "https://github.com/acme/widgets"',
            )
        install = spec.get("cli_install")
        if install is not None and not isinstance(install, str):
            _str_list(install, (*where, "cli_install"), problems)
        kept = {key: spec[key] for key in EXTRA_KEYS if key in spec}
        if kept:
            extras[name] = kept
        entries.append(
            RepoEntry(
                name=name,
                path=path,
                url=url,
                role=_choice(spec, "role", ROLES, "product", where, problems),
                tags=_str_list(spec.get("tags", []), (*where, "tags"), problems),
                lifecycle=_choice(spec, "lifecycle", LIFECYCLES, "active", where, problems),
                daemon_posture=_choice(spec, "daemon_posture", POSTURES, "on-demand", where, problems),
                upstream_remote=_text(spec, "upstream_remote"),
                upstream_branch=_text(spec, "upstream_branch"),
                depends_on=_str_list(spec.get("depends_on", []), (*where, "depends_on"), problems),
                source="ecosystem-toml",
                notes=_text(spec, "notes"),
            )
        )
    names = {entry.name for entry in entries}
    by_path: dict[Path, str] = {}
    for entry in entries:
        where = ("repos", entry.name)
        for dependency in entry.depends_on:
            if dependency == entry.name:
                problems.add(
                    (*where, "depends_on"), "a repo cannot depend on itself", f"remove {dependency!r}"
                )
            elif dependency not in names:
                problems.add(
                    (*where, "depends_on"),
                    f"{dependency!r} is not a registered repo",
                    f"register it with `speedrift repos add {dependency} PATH`, or fix the name",
                )
        first = by_path.setdefault(entry.path, entry.name)
        if first != entry.name:
            problems.add(
                where,
                f"same path as [repos.{first}] ({entry.path})",
                "register each repository once: remove one of the two entries, or fix its path",
            )
    return tuple(entries), extras
