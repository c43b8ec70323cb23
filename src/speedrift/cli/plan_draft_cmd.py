"""`speedrift plan draft (--from SPEC.md | --task "…") [--wave N] [--template PACK] [--mode M]
[--max-rounds K] [--json]` and `speedrift plan templates [--json]`.

``draft``: the Wave Architect writes a wave, speedrift lints it, the Plan Verifier judges it, in
at most K rounds (plans/draft.py does the work). Exit 0: the verified, lint-clean spec and its
Markdown are written. Exit 1: not verified in K rounds — nothing is written, every finding of the
last round is printed with the record — or a role gave no valid output (the error names its
record). Nothing is dispatched. Progress goes to stderr. ``templates`` lists the shipped packs.
The repository is the plan commands' (cli/plan_cmds.py ``plan_repo``): no graph is needed.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from speedrift.cli.output import emit_json, printable, say, table
from speedrift.cli.plan_cmds import plan_repo
from speedrift.errors import InvalidValue, NotFound, Refused, UsageError
from speedrift.fleet.config import load_config
from speedrift.plans import templates
from speedrift.plans.spec import Mode
from speedrift.procs import make_non_dumpable

if TYPE_CHECKING:
    from speedrift.plans.draft import Drafted

MAX_SPEC_BYTES = 1024 * 1024  # a --from file


def plan_draft(args: Namespace) -> int:
    from speedrift.plans.draft import DEFAULT_MAX_ROUNDS, Request, draft  # the roles: only when drafting

    make_non_dumpable()  # it holds the secrets it hands to the agents: no one else reads them
    text, source = _request_text(args.source, args.task)
    repo = plan_repo(args)
    config = load_config(repo)
    request = Request(
        text,
        source,
        wave=args.wave,
        template=args.template,
        mode=Mode(args.mode) if args.mode else None,
        max_rounds=args.max_rounds or DEFAULT_MAX_ROUNDS,
    )
    done = draft(repo, config, request, progress=_progress)
    if args.as_json:
        emit_json(done.as_dict())
    else:
        _show(done, repo)
    return 0 if done.written else 1


def _request_text(source: str | None, task: str | None) -> tuple[str, str]:
    """The request: ``--task`` as given, or the text of the ``--from`` file."""
    if task is not None:
        if not task.strip():
            raise UsageError("--task is empty", hint='say what the wave must deliver: --task "…"')
        return task, "--task"
    assert source is not None  # argparse: one of the two is required
    try:
        with Path(source).open("rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise NotFound(f"--from {source}: no such file", hint="give the spec's path") from None
    except OSError as error:
        raise Refused(f"--from {source}: cannot read it: {error.strerror or error}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise InvalidValue(
            f"--from {source}: larger than {MAX_SPEC_BYTES} bytes", hint="give the part this wave delivers"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidValue(f"--from {source}: not UTF-8 text (byte {error.start})") from None
    if not text.strip():
        raise InvalidValue(f"--from {source}: the file is empty", hint="write the spec in it first")
    return text, source


def _progress(message: str) -> None:
    sys.stderr.write(f"speedrift: {printable(message)}\n")
    sys.stderr.flush()


def _show(done: Drafted, repo: Path) -> None:
    from speedrift.plans.draft import last_findings

    rounds = f"{len(done.rounds)} round(s)"
    if not done.written:
        say(f"Wave {done.wave} was not verified in {rounds}; nothing was written. The last round's findings:")
        for finding in last_findings(done.rounds[-1]):
            say(f"- {printable(finding)}")
        say(f"record: {printable(str(done.record_dir))}")
        return
    wave = done.rounds[-1].wave
    say(
        f"Drafted wave {done.wave}: {printable(str(wave['title']))} "
        f"({done.mode.value}; verified and lint-clean in {rounds})"
    )
    say(f"  {_relative(done.spec_file, repo)}\n  {_relative(done.markdown_file, repo)}")
    rows = [
        [t["id"], t["role"], ", ".join(t.get("after", [])) or "-", ", ".join(t["owned"])]
        for t in wave["tasks"]
    ]
    table(None, ["task", "role", "after", "owns"], rows)
    say(f"Nothing is dispatched: `speedrift plan compile {done.wave}` writes its tasks to the graph.")
    say(f"record: {printable(str(done.record_dir))}")


def _relative(path: Path, repo: Path) -> str:
    try:
        return printable(str(path.relative_to(repo)))
    except ValueError:
        return printable(str(path))


def plan_templates(args: Namespace) -> int:
    packs = templates.all_packs()
    if args.as_json:
        emit_json([pack.as_dict() for pack in packs])
        return 0
    rows = [[p.name, p.mode.value, " → ".join(t["id"] for t in p.value["tasks"]), p.title] for p in packs]
    table(None, ["pack", "mode", "tasks", "title"], rows)
    say("Use one with `speedrift plan draft --template PACK`; `--json` shows each pack whole.")
    return 0
