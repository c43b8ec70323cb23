"""`speedrift plan import WAVE.md [--wave N] [--mode M] [--dry-run] [--force] [--json]`: a wave's
Markdown — wave-orchestration's authored format or speedrift's own — read into the repo's wave
spec (plans/importer.py), written as ``plans/waves/specs/wave-<n>.json`` and its rendered
Markdown (plans/render.py), then linted (plans/lint.py).

Printed: what was written, every part of the file kept but not modelled (with its line), every
problem, and the lint findings. Exit 0: imported and lint found nothing. Exit 1: the file has
problems (nothing written), a spec for that wave exists and ``--force`` was not given (nothing
written), or the import was written (or, with ``--dry-run``, would be) but lint found problems in
the wave — real problems of the wave, to fix before ``plan compile``; ``written`` says which.
Exit 2: a usage error (no such file).

Invariant: nothing is written unless the spec read has no problem (so it is schema-valid), and an
existing spec is replaced only with ``--force``.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from speedrift.cli.output import emit_json, printable, say
from speedrift.cli.plan_cmds import plan_repo
from speedrift.errors import InvalidValue, Refused, UsageError
from speedrift.plans import render, spec
from speedrift.plans.importer import Imported, Unmapped, parse_markdown
from speedrift.plans.lint import Finding, display_name, lint, repo_facts


def plan_import(args: Namespace) -> int:
    repo = plan_repo(args)
    source = Path(args.source)
    if not source.is_file():
        raise UsageError(f"{args.source}: no such file", hint="give the wave's Markdown file")
    name = display_name(repo, source)
    try:
        text = source.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidValue(f"{name}: not UTF-8 text ({error.reason})", hint="save it as UTF-8") from None
    default_mode = args.mode or _project_mode(repo)
    imported = parse_markdown(text, file=name, wave=args.wave, default_mode=default_mode)
    number = int(imported.spec["wave"])
    findings: list[Finding] = []
    written: list[Path] = []
    exists = spec.spec_path(repo, number).exists()
    if not imported.problems:
        target = spec.spec_path(repo, number)
        if exists and not args.force and not args.dry_run:
            raise Refused(
                f"{display_name(repo, target)} exists: wave {number} already has a spec",
                hint=f"pass --force to replace it, or --wave N to import {name} as another wave",
            )
        findings = lint(imported.spec, file=name, facts=repo_facts(repo), lines=imported.lines)
        if not args.dry_run:
            written = render.write(repo, imported.spec)
    if args.as_json:
        emit_json({**_report(repo, name, imported, written, findings), "spec_existed": exists})
    else:
        _show(repo, name, imported, written, findings, dry_run=args.dry_run)
        if args.dry_run and exists and not imported.problems:
            say(f"wave {number} has a spec already: importing it needs --force")
    return 1 if imported.problems or findings else 0


def _project_mode(repo: Path) -> str:
    from speedrift.plans import project

    return project.load(repo).default_mode.value


def _item(name: str, item: Unmapped) -> dict[str, Any]:
    return {"file": name, "line": item.line, "what": item.what, "why": item.why}


def _report(
    repo: Path, name: str, imported: Imported, written: list[Path], findings: list[Finding]
) -> dict[str, Any]:
    return {
        "wave": imported.spec["wave"],
        "written": [display_name(repo, path) for path in written],
        "unmapped": [_item(name, item) for item in imported.unmapped],
        "problems": [_item(name, item) for item in imported.problems],
        "lint": [finding.as_dict() for finding in findings],
        "spec": imported.spec,
    }


def _line(name: str, item: Unmapped) -> str:
    return f"  {printable(name)}:{item.line}: {printable(item.what)} — {printable(item.why)}"


def _show(
    repo: Path, name: str, imported: Imported, written: list[Path], findings: list[Finding], *, dry_run: bool
) -> None:
    value = imported.spec
    if imported.problems:
        say(f"{printable(name)} cannot be imported: {len(imported.problems)} problem(s); nothing written")
        for item in imported.problems:
            say(_line(name, item))
        return
    if dry_run:
        say(spec.canonical(value).decode("utf-8").rstrip("\n"))
    stages = ", ".join(sorted(value.get("closure", {}))) or "none"
    say(
        f"Wave {value['wave']} - {printable(value['title'])} ({value['mode']}): "
        f"{len(value['tasks'])} task(s); closure guidance: {stages}"
    )
    if written:
        say("written: " + ", ".join(printable(display_name(repo, path)) for path in written))
    else:
        say("--dry-run: nothing written")
    if imported.unmapped:
        say(f"Kept but not modelled ({len(imported.unmapped)}):")
        for item in imported.unmapped:
            say(_line(name, item))
    if findings:
        say(f"Lint: {len(findings)} problem(s) in the wave — fix them before `speedrift plan compile`:")
        for finding in findings:
            say("  " + printable(str(finding)))
    else:
        say("Lint: no problems")
