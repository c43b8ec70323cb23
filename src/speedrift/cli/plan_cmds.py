"""`speedrift plan lint|show|render` and `speedrift project show|setup`.

``plan lint [FILE…]``: every problem of the waves (default: every spec of the repo) with file,
line (Markdown), JSON path, what and the fix; exit 1 when there is any, 2 on a usage error.
``plan show WAVE``: one wave's tasks. ``plan render [WAVE…] [--check]``: each wave's Markdown
written from its spec; ``--check`` writes nothing and exits 1 naming the stale files.
``project show``: the profile and where each value came from. ``project setup``: writes
plans/project.toml from the flags, the answers to its questions (on a terminal) or, with
``--yes``, the values ``project show`` reports for what is not given; never waits on a terminal
that is not there.

The repository is the graph's (``--dir``, ``$WG_DIR``, or found upward); without a graph, the git
repository around the working directory, else the working directory: waves need no graph.
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from speedrift.cli.output import emit_json, printable, say, table
from speedrift.errors import InvalidValue, NotFound, SpeedriftError, UsageError
from speedrift.plans import project, render, spec
from speedrift.plans.lint import display_name, lint_file, read_markdown, repo_facts
from speedrift.plans.project import FIELDS, Origin, Profile
from speedrift.plans.spec import Mode


def plan_repo(args: Namespace) -> Path:
    """The repository the plan commands act on (see the module docstring)."""
    from speedrift.cli.base import store
    from speedrift.repo.git import toplevel

    try:
        return store(args).directory.parent
    except NotFound:
        if getattr(args, "dir", None) or os.environ.get("WG_DIR"):
            raise
    cwd = Path.cwd()
    return toplevel(cwd) or cwd


def _wave_file(repo: Path, text: str) -> Path:
    """A WAVE argument: a spec (or Markdown) file, or a wave number whose spec is read."""
    given = Path(text)
    if given.suffix.lower() in (".json", ".md"):
        if not given.is_file():
            raise UsageError(
                f"{text}: no such file", hint="give a wave's spec or Markdown file, or its number"
            )
        return given
    from speedrift.cli.plan_compile_cmds import wave_number

    return spec.spec_path(repo, wave_number(text))


def _read_wave(repo: Path, path: Path) -> dict[str, Any]:
    """The spec in ``path`` (Markdown read by the importer); InvalidValue when it is not valid."""
    if path.suffix.lower() == ".md":
        imported = read_markdown(repo, path, path.read_text(encoding="utf-8", errors="replace"))
        if imported.problems:
            first = imported.problems[0]
            raise InvalidValue(
                f"{display_name(repo, path)}:{first.line}: {first.what}: {first.why}",
                hint=f"see every problem with `speedrift plan lint {display_name(repo, path)}`",
            )
        value = dict(imported.spec)
    else:
        value = spec.read(path)
    problems = spec.schema_problems(value)
    if problems:
        shown = display_name(repo, path)
        raise InvalidValue(
            f"{shown} is not a valid wave spec ({len(problems)} problem(s), first: {problems[0]})",
            hint=f"see every problem with `speedrift plan lint {shown}`",
        )
    return value


# --- plan lint ---------------------------------------------------------------------------------
def plan_lint(args: Namespace) -> int:
    repo = plan_repo(args)
    files = [Path(name) for name in args.files] or [spec.spec_path(repo, n) for n in spec.wave_numbers(repo)]
    for file in files:
        if file.suffix.lower() not in (".json", ".md"):
            raise UsageError(f"{file}: not a wave file", hint="give a wave's .json spec or its .md")
        if not file.is_file():
            raise UsageError(f"{file}: no such file", hint="give a wave's .json spec or its .md")
    facts = repo_facts(repo) if files else None
    findings = [finding for file in files for finding in lint_file(repo, file, facts=facts)]
    if args.as_json:
        emit_json([finding.as_dict() for finding in findings])
    elif not files:
        say(f"No waves to lint: {spec.SPECS_DIR}/ holds no wave-<n>.json")
    else:
        for finding in findings:
            say(printable(str(finding)))
        failing = len({finding.file for finding in findings})
        if findings:
            say(f"{len(findings)} problem(s) in {failing} of {len(files)} wave file(s)")
        else:
            say(f"{len(files)} wave file(s): no problems")
    return 1 if findings else 0


# --- plan show ---------------------------------------------------------------------------------
def plan_show(args: Namespace) -> int:
    repo = plan_repo(args)
    value = _read_wave(repo, _wave_file(repo, args.wave))
    if args.as_json:
        emit_json(value)
        return 0
    wave = spec.parse(value)
    say(f"Wave {wave.wave} - {printable(wave.title)} ({wave.mode.value}, {len(wave.tasks)} task(s))")
    if wave.after_waves or wave.needs_artifacts:
        after = ", ".join(str(n) for n in wave.after_waves) or "-"
        say(f"after waves: {after}; needs: {printable(', '.join(wave.needs_artifacts)) or '-'}")
    say(f"validation: {printable('; '.join(wave.validation)) or '(none)'}")
    rows = []
    for task in wave.tasks:
        contract = task.exit_contract
        rows.append(
            (
                task.id,
                task.role,
                task.runtime.runtime or "(default)",
                ", ".join(task.owned),
                ", ".join(task.after) or "-",
                "/".join(contract.as_dict().values()) if contract else "(none)",
            )
        )
    table(None, ["task", "role", "runtime", "owned", "after", "exit contract (c/d/p/doc)"], rows)
    return 0


# --- plan render -------------------------------------------------------------------------------
def plan_render(args: Namespace) -> int:
    from speedrift import fsutil
    from speedrift.cli.plan_compile_cmds import wave_number

    repo = plan_repo(args)
    numbers = [wave_number(text) for text in args.waves] or spec.wave_numbers(repo)
    rows: list[dict[str, Any]] = []
    for number in numbers:
        target = spec.markdown_path(repo, number)
        row: dict[str, Any] = {"wave": number, "file": display_name(repo, target)}
        try:
            text = render.render(_read_wave(repo, spec.spec_path(repo, number))).encode("utf-8")
        except SpeedriftError as error:
            rows.append({**row, "status": "invalid", "problem": str(error)})
            continue
        current = target.read_bytes() if target.is_file() else None
        if current == text:
            row["status"] = "unchanged"
        elif args.check:
            row["status"] = "missing" if current is None else "stale"
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            fsutil.write_atomic(target, text)
            row["status"] = "written"
        rows.append(row)
    if args.as_json:
        emit_json(rows)
    else:
        _say_rendered(rows, numbers)
    return 1 if any(row["status"] in ("invalid", "missing", "stale") for row in rows) else 0


def _say_rendered(rows: list[dict[str, Any]], numbers: list[int]) -> None:
    if not numbers:
        say(f"No waves to render: {spec.SPECS_DIR}/ holds no wave-<n>.json")
    words = {
        "unchanged": "is up to date",
        "written": "written",
        "missing": "is missing: run `speedrift plan render {wave}`",
        "stale": "is stale (its spec changed): run `speedrift plan render {wave}`",
    }
    for row in rows:
        if row["status"] == "invalid":
            say(f"wave {row['wave']}: not rendered: {printable(row['problem'], newlines=True)}")
        else:
            say(f"{printable(row['file'])} {words[row['status']].format(wave=row['wave'])}")


# --- project show / setup ----------------------------------------------------------------------
def project_show(args: Namespace) -> int:
    repo = plan_repo(args)
    _show_profile(repo, project.load(repo), args.as_json)
    return 0


def _show_profile(repo: Path, profile: Profile, as_json: bool) -> None:
    exists = project.path(repo).is_file()
    if as_json:
        emit_json({**profile.as_dict(), "file": spec.PROJECT_FILE, "exists": exists})
        return
    values = profile.values()
    rows = [(name, _shown(values[name]), profile.origin(name).value) for name in FIELDS]
    table(f"Project profile: {spec.PROJECT_FILE}", ["key", "value", "from"], rows)
    if not exists:
        say(f"{spec.PROJECT_FILE} is not written yet: `speedrift project setup` writes it")


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value) or "(none)"
    return str(value)


def project_setup(args: Namespace) -> int:
    repo = plan_repo(args)
    current = project.load(repo)
    given = _given(args)
    missing = [name for name in FIELDS if name not in given and current.origin(name) is not Origin.FILE]
    answers: dict[str, Any] = {}
    if missing and not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"no terminal to ask for {', '.join(missing)}",
                hint="pass --yes to take the values `speedrift project show` reports, or give them as flags "
                "(--name, --new-project, --mode, --runtime, --test)",
            )
        answers = ask(current, missing, input)
    profile = replace(current, **{**given, **answers})
    target = project.save(repo, profile)
    saved = project.load(repo)
    if not args.as_json:
        say(f"Wrote {display_name(repo, target)}")
    _show_profile(repo, saved, args.as_json)
    return 0


def _given(args: Namespace) -> dict[str, Any]:
    """The values given as flags, checked as the file's would be."""
    raw: dict[str, Any] = {}
    if args.name is not None:
        raw["name"] = args.name
    if args.new_project is not None:
        raw["new_project"] = args.new_project == "yes"
    if args.mode is not None:
        raw["default_mode"] = args.mode
    if args.runtime is not None:
        raw["runtimes"] = args.runtime
    if args.tests is not None:
        raw["tests"] = args.tests
    try:
        return project.check(raw, where="the flags")
    except InvalidValue as error:
        raise UsageError(error.message, hint=error.hint) from None


def ask(current: Profile, missing: list[str], read: Callable[[str], str]) -> dict[str, Any]:
    """The answers to one question per ``missing`` key; an empty answer keeps the value shown.
    An answer that is not valid is asked again."""
    questions: Mapping[str, str] = {
        "name": "Project name",
        "new_project": "A new project, started from scratch (yes/no)",
        "default_mode": f"Default wave mode ({' / '.join(Mode)})",
        "runtimes": "Runtimes, preferred first (comma-separated)",
        "tests": "Test commands (separated by ' ;; ')",
    }
    values = current.values()
    answers: dict[str, Any] = {}
    for name in missing:
        while True:
            try:
                text = read(f"{questions[name]} [{_shown(values[name])}]: ").strip()
            except EOFError:
                raise UsageError(
                    "no answer: the input ended", hint="give the values as flags, or --yes"
                ) from None
            if not text:
                break
            raw: Any = text
            if name == "new_project":
                raw = {"yes": True, "y": True, "no": False, "n": False}.get(text.lower(), text)
            elif name == "runtimes":
                raw = [part.strip() for part in text.split(",") if part.strip()]
            elif name == "tests":
                raw = [part.strip() for part in text.split(";;") if part.strip()]
            try:
                answers.update(project.check({name: raw}, where="the answer"))
                break
            except InvalidValue as error:
                sys.stderr.write(f"{printable(str(error), newlines=True)}\n")
    return answers
