"""The repo's lane policy: ``.workgraph/drift-policy.toml`` (or ``.wg/``), validated.

Keys (every one optional; the defaults are the original driftdriver's)::

    schema = 1
    mode = "redirect"        # observe | advise | redirect | heal | breaker
    order = ["coredrift", "specdrift", …]   # which lanes run, in this order

    [lanes]
    blocking = ["depsdrift"] # lanes that hold a landing when they find something actionable
    on = ["target_change", "landed"]        # when the hub runs the lanes (plus each lane's cron)

    [guard]
    min_severity = "error"   # the least severe finding that gets a follow-up (warning: every actionable one)
    max_active_per_lane = 3  # open follow-ups one lane may have
    max_creates_per_hour = 10  # follow-ups one lane may create in an hour
    global_ceiling = 50      # open drift follow-ups in the repo, every lane together

    [<lane>]                 # one table per lane: its settings (typed by the lane's defaults) and
    mode = "advise"          #   mode (overrides the top-level one for this lane)
    cron = "0 3 * * *"       #   a schedule for the hub, besides the triggers in [lanes] on
    command = ["./lint-lane", "--json"]  # an external lane (an executable printing the SDK's JSON)
    timeout_s = 120          #   external lanes: wall-clock limit
    max_output_bytes = 1048576  # external lanes: stdout cap

An executable ``.workgraph/<name>`` (the original wrapper convention) is an external lane too,
run when ``order`` names it. Every error names the file, the line, the key and the fix
(:class:`PolicyError`); nothing is silently ignored — an unknown key is an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from speedrift import safetoml
from speedrift.errors import InvalidValue, SpeedriftError
from speedrift.graph.cron import validate
from speedrift.graph.store import repo_graph_dir
from speedrift.lanes.model import ACTIONABLE, Severity
from speedrift.lanes.spec import Lane, SettingsError, check_settings

POLICY_FILE = "drift-policy.toml"


class LaneMode(StrEnum):
    """What findings lead to (the original's modes): ``observe`` records only; ``advise`` also logs
    them to the task; ``redirect`` also creates follow-ups (the default); ``heal`` lets only
    therapydrift create them; ``breaker`` logs, and creates ``drift-breaker-<task>`` when the same
    findings persist on a second run."""

    OBSERVE = "observe"
    ADVISE = "advise"
    REDIRECT = "redirect"
    HEAL = "heal"
    BREAKER = "breaker"


class Trigger(StrEnum):
    TARGET_CHANGE = "target_change"  # the target branch's tip moved since the last run
    LANDED = "landed"  # an attempt landed (the lanes judge the landed range)
    CRON = "cron"  # a lane's own `cron` schedule is due


DEFAULT_ORDER = (
    "coredrift",
    "specdrift",
    "datadrift",
    "archdrift",
    "depsdrift",
    "uxdrift",
    "therapydrift",
    "yagnidrift",
    "redrift",
    "secdrift",
    "qadrift",
    "plandrift",
)
RUNNER_KEYS = {"mode", "cron", "command", "timeout_s", "max_output_bytes"}
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_MAX_OUTPUT = 1 << 20


class PolicyError(SpeedriftError):
    exit_code = 2

    def __init__(self, path: Path | None, line: int, key: str, problem: str, fix: str) -> None:
        where = f"{path}:{line}" if path and line else str(path or "drift policy")
        super().__init__(f"{where}: {key}: {problem}", hint=fix)
        self.path = path
        self.line = line
        self.key = key


@dataclass(frozen=True, slots=True)
class LanePolicy:
    name: str
    mode: LaneMode
    settings: Mapping[str, Any]
    cron: str | None = None
    command: tuple[str, ...] | None = None  # external lanes
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_output_bytes: int = DEFAULT_MAX_OUTPUT


@dataclass(frozen=True, slots=True)
class Guard:
    max_active_per_lane: int = 3
    max_creates_per_hour: int = 10
    global_ceiling: int = 50
    # the least severe finding that gets a follow-up task; less severe actionable ones are advice
    # on the task they are about (a repo opts in to warnings: min_severity = "warning")
    min_severity: Severity = Severity.ERROR


@dataclass(frozen=True, slots=True)
class DriftPolicy:
    path: Path | None  # None: no policy file (every default)
    mode: LaneMode = LaneMode.REDIRECT
    order: tuple[str, ...] = DEFAULT_ORDER
    blocking: tuple[str, ...] = ()
    triggers: tuple[Trigger, ...] = (Trigger.TARGET_CHANGE, Trigger.LANDED)
    guard: Guard = field(default_factory=Guard)
    lanes: Mapping[str, LanePolicy] = field(default_factory=dict)  # every lane in ``order``

    def lane(self, name: str) -> LanePolicy:
        return self.lanes[name]


def policy_path(repo: Path) -> Path | None:
    graph_dir = repo_graph_dir(repo)
    return graph_dir / POLICY_FILE if graph_dir is not None else None


def wrapper_path(repo: Path, name: str) -> Path | None:
    """An executable ``.workgraph/<name>`` (the original's lane wrapper), or None."""
    graph_dir = repo_graph_dir(repo)
    if graph_dir is None or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        return None
    candidate = graph_dir / name
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def load(repo: Path, builtin: Mapping[str, Lane]) -> DriftPolicy:
    """The repo's policy (defaults without a file); :class:`PolicyError` on anything invalid."""
    path = policy_path(repo)
    if path is None or not path.is_file():
        return _defaults(builtin, repo)
    data = path.read_bytes()
    try:
        text = safetoml.decode(data)
        table = safetoml.loads(text)
    except safetoml.MalformedToml as exc:
        raise PolicyError(
            path, exc.line, "(syntax)", exc.problem, "fix the TOML syntax at that line"
        ) from None
    return parse(table, path, text, builtin, repo)


_DEFAULTS: dict[int, tuple[Mapping[str, Lane], DriftPolicy]] = {}


def _defaults(builtin: Mapping[str, Lane], repo: Path) -> DriftPolicy:
    """The policy of a repo without a file: the same for every repo (the default order names only
    built-in lanes), so it is built once per set of built-in lanes — the hub observes hundreds."""
    known = _DEFAULTS.get(id(builtin))
    if known is None or known[0] is not builtin:
        known = (builtin, parse({}, None, "", builtin, repo))
        _DEFAULTS[id(builtin)] = known
    return known[1]


def parse(
    table: Mapping[str, Any], path: Path | None, text: str, builtin: Mapping[str, Lane], repo: Path
) -> DriftPolicy:
    def fail(key: str, problem: str, fix: str) -> PolicyError:
        return PolicyError(path, line_of(text, key), key, problem, fix)

    known_top = {"schema", "mode", "order", "lanes", "guard"}
    schema = table.get("schema", 1)
    if type(schema) is not int or schema != 1:
        raise fail("schema", f"is {schema!r}; this speedrift reads schema 1", "set schema = 1")
    mode = _mode(table.get("mode", "redirect"), "mode", fail)
    order_raw = table.get("order", list(DEFAULT_ORDER))
    if not isinstance(order_raw, list) or not all(isinstance(n, str) for n in order_raw):
        raise fail("order", "must be a list of lane names", 'e.g. order = ["coredrift", "depsdrift"]')
    if len(set(order_raw)) != len(order_raw):
        raise fail("order", "names a lane twice", "name each lane once")
    lanes_table = _table(table.get("lanes", {}), "lanes", fail)
    for key in lanes_table:
        if key not in {"blocking", "on"}:
            raise fail(f"lanes.{key}", "is not a setting", "[lanes] takes blocking and on")
    blocking = lanes_table.get("blocking", [])
    if not isinstance(blocking, list) or not all(isinstance(n, str) for n in blocking):
        raise fail("lanes.blocking", "must be a list of lane names", 'e.g. blocking = ["depsdrift"]')
    for name in blocking:
        if name not in order_raw:
            raise fail(
                "lanes.blocking", f"names {name!r}, which `order` does not run", f"add {name!r} to order"
            )
    triggers_raw = lanes_table.get("on", [t.value for t in (Trigger.TARGET_CHANGE, Trigger.LANDED)])
    if not isinstance(triggers_raw, list):
        raise fail("lanes.on", "must be a list", 'e.g. on = ["target_change", "landed"]')
    try:
        triggers = tuple(Trigger(t) for t in triggers_raw)
    except ValueError:
        raise fail(
            "lanes.on", f"{triggers_raw!r} holds an unknown trigger", "use target_change, landed and cron"
        ) from None
    guard_table = _table(table.get("guard", {}), "guard", fail)
    guard_values: dict[str, Any] = {}
    for key, value in guard_table.items():
        if key not in Guard.__dataclass_fields__:
            raise fail(
                f"guard.{key}",
                "is not a setting",
                "[guard] takes max_active_per_lane, max_creates_per_hour, global_ceiling, min_severity",
            )
        if key == "min_severity":
            if value not in {str(s) for s in ACTIONABLE}:
                raise fail("guard.min_severity", f"is {value!r}", "use warning, error or critical")
            guard_values[key] = Severity(value)
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise fail(f"guard.{key}", f"is {value!r}", "use a whole number >= 0")
        guard_values[key] = value
    lane_tables = {k: v for k, v in table.items() if k not in known_top}
    for name in lane_tables:
        if name not in order_raw and name not in builtin:
            raise fail(name, "is not a setting nor a lane", f"remove [{name}] or add it to order")
    for name in lane_tables:
        if name in builtin and name not in order_raw:  # configured but not run: still checked
            unused = {k: v for k, v in _table(lane_tables[name], name, fail).items() if k not in RUNNER_KEYS}
            try:
                check_settings(builtin[name], unused, prefix=f"{name}.")
            except SettingsError as exc:
                raise fail(
                    exc.key, exc.problem, "see `speedrift lanes list --json` for each lane's settings"
                ) from None
    lanes: dict[str, LanePolicy] = {}
    for name in order_raw:
        given = dict(_table(lane_tables.get(name, {}), name, fail))
        runner = {k: given.pop(k) for k in list(given) if k in RUNNER_KEYS}
        lane_mode = _mode(runner.get("mode", mode.value), f"{name}.mode", fail)
        cron = runner.get("cron")
        if cron is not None:
            if not isinstance(cron, str):
                raise fail(f"{name}.cron", "must be a string", 'e.g. cron = "0 3 * * *"')
            try:
                validate(cron)
            except InvalidValue as exc:
                raise fail(f"{name}.cron", exc.message, exc.hint or 'e.g. "0 3 * * *"') from None
        command = runner.get("command")
        timeout_s = runner.get("timeout_s", DEFAULT_TIMEOUT_S)
        max_output = runner.get("max_output_bytes", DEFAULT_MAX_OUTPUT)
        if not isinstance(timeout_s, int | float) or isinstance(timeout_s, bool) or timeout_s <= 0:
            raise fail(f"{name}.timeout_s", f"is {timeout_s!r}", "use a number of seconds > 0")
        if not isinstance(max_output, int) or isinstance(max_output, bool) or max_output <= 0:
            raise fail(f"{name}.max_output_bytes", f"is {max_output!r}", "use a whole number of bytes > 0")
        if name in builtin:
            if command is not None:
                raise fail(
                    f"{name}.command", f"{name} is a built-in lane", "give an external lane another name"
                )
            try:
                settings = check_settings(builtin[name], given, prefix=f"{name}.")
            except SettingsError as exc:
                raise fail(
                    exc.key, exc.problem, "see `speedrift lanes list --json` for each lane's settings"
                ) from None
            lanes[name] = LanePolicy(name, lane_mode, settings, cron, None, float(timeout_s), max_output)
            continue
        if command is None:
            wrapper = wrapper_path(repo, name)
            if wrapper is None:
                raise fail(
                    "order",
                    f"names {name!r}: not a built-in lane, no [{name}] command"
                    f" and no executable .workgraph/{name}",
                    "add a [<lane>] command, make the wrapper executable, or remove the name",
                )
            argv: tuple[str, ...] = (str(wrapper),)
        elif isinstance(command, str):
            argv = (command,)
        elif isinstance(command, list) and command and all(isinstance(c, str) and c for c in command):
            argv = tuple(command)
        else:
            raise fail(
                f"{name}.command",
                "must be a command line (a list of strings)",
                'e.g. command = ["./lane", "--json"]',
            )
        lanes[name] = LanePolicy(name, lane_mode, given, cron, argv, float(timeout_s), max_output)
    return DriftPolicy(path, mode, tuple(order_raw), tuple(blocking), triggers, Guard(**guard_values), lanes)


def _mode(value: Any, key: str, fail: Any) -> LaneMode:
    try:
        return LaneMode(value)
    except ValueError:
        raise fail(key, f"is {value!r}", "use observe, advise, redirect, heal or breaker") from None


def _table(value: Any, key: str, fail: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise fail(key, f"is {type(value).__name__}, not a table", f"write it as a [{key}] table")
    return value


def line_of(text: str, dotted: str) -> int:
    """The line a dotted key is set on (its table header, then the key inside it); 0 when unknown."""
    if not text:
        return 0
    lines = text.splitlines()
    parts = dotted.split(".")
    table, key = (".".join(parts[:-1]), parts[-1]) if len(parts) > 1 else ("", parts[0])
    current = ""
    header_line = 0
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]\s*(?:#.*)?", stripped)
        if header:
            current = header.group(1)
            if current == dotted:
                return number
            if current == table:
                header_line = number
            continue
        if current == table and re.match(rf"{re.escape(key)}\s*=", stripped):
            return number
        if current == "" and table and re.match(rf"{re.escape(dotted)}\s*=", stripped):
            return number  # a dotted key at the top level: lanes.blocking = […]
    return header_line
