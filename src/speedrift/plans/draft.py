"""`speedrift plan draft`: a spec or a request turned into one verified, lint-clean wave.

Job (the edge: it runs the roles): the Wave Architect (fleet/roles ``wave_architect``, planning
tier) writes a wave in a read-only checkout of HEAD, given the request (``--from FILE`` or
``--task``), the wave's number and mode and the waves the repo has, the repo's tracked files, the
project profile (plans/project.py), the chosen template pack (plans/templates.py) and the repo's
guidance. speedrift sets the wave's ``schema``, number and mode, then checks it itself: the wave
schema (plans/spec.py) and `plan lint` (plans/lint.py). Any problem goes straight back to the
Architect as the next round; a clean wave goes to the Plan Verifier, blind to the Architect's
rationale, which judges it against the request. A failed verification goes back too. At most
``max_rounds`` Architect rounds — the shape of `speedrift decompose` (fleet/decompose.py, whose
role runner and record helpers this shares). The loop itself (:func:`architect_rounds`, given a
:class:`Loop`) is shared with `speedrift plan update` (plans/replan.py), which completes each
round's wave with what the Architect cannot write and adds its own check (a done task is kept).

The wave architect's output schema is the wave schema itself, closed: ``architect_schema()``
derives it from plans/data/wave.schema.json (without ``schema`` and ``wave``, which speedrift
sets, and the import-only ``prose`` and task ``extra``); the shipped role file
``fleet/roles/data/wave_architect.schema.json`` holds it, and tests/plans/test_draft.py checks
the two are the same.

Records: ``.speedrift/runs/_plans/wave-<n>/draft/<k>/`` holds each role run
(``wave_architect-<round>``, ``plan_verifier-<round>``) and ``draft.json`` (every round's wave,
findings and verification).

Invariant: the spec (``spec.canonical`` bytes at ``spec.spec_path``) and its Markdown are written
only when the last round is lint-clean and verified; otherwise nothing under ``plans/`` changes.
Nothing is dispatched: no graph write, no task runs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, layout
from speedrift.errors import Refused, SpeedriftError, UsageError
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.decompose import (
    RoleFailed,
    files_text,
    numbered_record_dir,
    role_output,
    verification_lines,
)
from speedrift.fleet.roles.inputs import guidance_text
from speedrift.fleet.roles.names import RoleName
from speedrift.fleet.roles.runner import RoleCall
from speedrift.plans import lint, project, render, spec, templates
from speedrift.repo import git
from speedrift.textclip import clip, cut_middle

SUMMARY_FILE = "draft.json"
PLANS_RUNS = "_plans"  # under .speedrift/runs/, beside the tasks' run dirs (no task id starts with "_")
DEFAULT_MAX_ROUNDS = 3
MAX_ROUNDS = 6
MAX_REQUEST_CHARS = 100_000  # the request, as the roles read it
SET_BY_SPEEDRIFT = ("schema", "wave", "adhoc")  # never the Architect's to write
IMPORT_ONLY = ("prose",)  # a wave's fields only `plan import` fills
IMPORT_ONLY_TASK = ("extra",)


class Outcome(StrEnum):
    WRITTEN = "written"  # verified and lint-clean: the spec and its Markdown are written
    NOT_VERIFIED = "not_verified"  # still failing after the last round: nothing written


@dataclass(frozen=True)
class Request:
    """What to draft: the request's text and where it came from, and the choices made."""

    text: str
    source: str  # "--task", or the file it was read from
    wave: int | None = None  # default: the next number
    template: str | None = None  # a template pack's name
    mode: spec.Mode | None = None  # default: the project's
    max_rounds: int = DEFAULT_MAX_ROUNDS


@dataclass
class Round:
    number: int
    output: dict[str, Any]  # the Architect's whole output (spec, rationale, assumptions)
    wave: dict[str, Any]  # the wave as speedrift checked it (number, schema and mode set)
    findings: list[lint.Finding]  # speedrift's own checks (`plan lint`, the schema among them)
    verification: dict[str, Any] | None  # the Plan Verifier's output; None: not run (findings)
    refusals: list[str] = field(default_factory=list)  # a loop's own further checks (Loop.check)

    @property
    def passed(self) -> bool:
        return (
            not self.findings
            and not self.refusals
            and self.verification is not None
            and self.verification.get("status") == "pass"
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "round": self.number,
            "passed": self.passed,
            "wave": self.wave,
            "rationale": self.output.get("rationale", ""),
            "assumptions": self.output.get("assumptions", []),
            "findings": [f.as_dict() for f in self.findings],
            "verification": self.verification,
        }
        if self.refusals:
            out["refusals"] = list(self.refusals)
        return out


@dataclass(frozen=True)
class Loop:
    """One wave's bounded loop (:func:`architect_rounds`): what the Architect is given beside its
    previous wave and findings, what the Plan Verifier judges the wave against, and how speedrift
    completes and checks each round's wave beyond the schema and lint (`plan update`'s replans)."""

    number: int
    mode: spec.Mode
    given: Mapping[str, str]  # the Architect's inputs; a later round adds previous_spec and findings
    judged_against: str  # the Plan Verifier's ``spec`` input: the source of truth
    commit: str
    facts: lint.RepoFacts
    shown: str  # the spec's file name, as findings name it
    record_dir: Path
    again: str  # the command a failed role's error says to run again
    max_rounds: int = DEFAULT_MAX_ROUNDS
    complete: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # after number, schema, mode
    check: Callable[[dict[str, Any]], list[str]] | None = None  # more reasons to refuse a wave


@dataclass
class Drafted:
    wave: int
    mode: spec.Mode
    template: str | None
    outcome: Outcome
    rounds: list[Round]
    record_dir: Path
    spec_file: Path
    markdown_file: Path

    @property
    def written(self) -> bool:
        return self.outcome is Outcome.WRITTEN

    def as_dict(self) -> dict[str, Any]:
        return {
            "wave": self.wave,
            "mode": self.mode.value,
            "template": self.template,
            "outcome": self.outcome.value,
            "verified": bool(self.rounds) and self.rounds[-1].passed,
            "spec": self.rounds[-1].wave if self.written else None,
            "spec_file": str(self.spec_file) if self.written else None,
            "markdown_file": str(self.markdown_file) if self.written else None,
            "findings": last_findings(self.rounds[-1]) if self.rounds and not self.written else [],
            "rounds": [r.as_dict() for r in self.rounds],
            "record_dir": str(self.record_dir),
        }


# --- the edge: the rounds, the roles, the files ----------------------------------------------------
def draft(
    repo: Path, config: RepoConfig, request: Request, *, progress: Callable[[str], None] | None = None
) -> Drafted:
    """Draft one wave (see the module docstring). Raises SpeedriftError before any role runs when
    the wave exists, the template is unknown or the repo has no commit; RoleFailed (nothing
    written, the record named) when a role gives no valid output. ``progress`` is told each step."""
    tell = progress or (lambda _message: None)
    if not 1 <= request.max_rounds <= MAX_ROUNDS:
        raise Refused(f"--max-rounds {request.max_rounds}: give 1 to {MAX_ROUNDS}")
    number = request.wave if request.wave is not None else next_wave(repo)
    if number < 0:
        raise UsageError(f"--wave {number}: a wave number is 0 or more")
    _refuse_existing(repo, number)
    pack = templates.load(request.template) if request.template else None
    profile = project.load(repo)
    mode = request.mode or chosen_mode(profile, pack)
    commit = git.rev_parse(repo, "HEAD")
    if commit is None:
        raise Refused(f"{repo} has no commit to plan on", hint="make a first commit, then draft the wave")
    facts = lint.repo_facts(repo)
    if mode is spec.Mode.DARK_FACTORY and not facts.tests_gate_blocks:  # no Architect could fix that
        raise Refused(
            "a dark-factory wave needs a tests gate that can block, and this repo's cannot: "
            + facts.tests_gate_why,
            hint="give the repo tests, or set [gates.tests] command in speedrift.toml (docs/gates.md); "
            "or draft the wave with --mode oversight",
        )
    record_dir = numbered_record_dir(layout.runs_dir(repo) / PLANS_RUNS / f"wave-{number}" / "draft")
    tell(f"drafting wave {number} ({mode.value}); record: {record_dir}")
    text = request_text(request)
    given = {
        "request": text,
        "wave": wave_text(repo, number, mode),
        "files": files_text(repo, commit),
        "project": project_text(profile),
        "template": pack.prompt_text() if pack else "",
        "guidance": guidance_text(repo, commit),
    }
    target = spec.spec_path(repo, number)
    given_as = "--task '…'" if request.source == "--task" else f"--from {request.source}"
    loop = Loop(
        number,
        mode,
        given,
        judged_against=text,
        commit=commit,
        facts=facts,
        shown=lint.display_name(repo, target),
        record_dir=record_dir,
        again=f"speedrift plan draft {given_as} --wave {number}",
        max_rounds=request.max_rounds,
    )
    rounds = architect_rounds(repo, config, loop, tell)
    result = Drafted(
        number,
        mode,
        pack.name if pack else None,
        Outcome.NOT_VERIFIED,
        rounds,
        record_dir,
        target,
        spec.markdown_path(repo, number),
    )
    if rounds[-1].passed:
        _refuse_existing(repo, number)  # written meanwhile: never overwritten
        render.write(repo, rounds[-1].wave)  # the canonical spec, then its Markdown
        result.outcome = Outcome.WRITTEN
    _write_summary(record_dir, rounds, result)
    return result


def architect_rounds(
    repo: Path, config: RepoConfig, loop: Loop, tell: Callable[[str], None] | None = None
) -> list[Round]:
    """At most ``loop.max_rounds`` rounds of the Wave Architect, speedrift's checks (the schema,
    lint, ``loop.check``) and the Plan Verifier, until one passes; every round, the last one first
    to read. Each round is recorded in ``loop.record_dir`` as it ends; nothing under ``plans/`` is
    written. RoleFailed (the rounds so far recorded) when a role gives no valid output."""
    say = tell or (lambda _message: None)
    rounds: list[Round] = []
    for n in range(1, loop.max_rounds + 1):
        later = (
            {"previous_spec": _json(rounds[-1].output["spec"]), "findings": findings_text(rounds[-1])}
            if rounds
            else {}
        )
        call = RoleCall(
            RoleName.WAVE_ARCHITECT,
            {**loop.given, **later},
            loop.record_dir / f"wave_architect-{n}",
            loop.commit,
        )
        say(f"round {n}: the Wave Architect writes the wave")
        output = _output(repo, config, call, loop.again, rounds, loop.record_dir)
        wave = {**output["spec"], "schema": spec.SCHEMA_ID, "wave": loop.number, "mode": loop.mode.value}
        if loop.complete is not None:
            wave = loop.complete(wave)
        findings = lint.lint(wave, file=loop.shown, facts=loop.facts)
        refusals = loop.check(wave) if loop.check is not None else []
        verification = None
        if findings or refusals:  # a wave speedrift refuses cannot pass: no verifier run is spent on it
            say(f"round {n}: speedrift's checks found {len(findings) + len(refusals)} problem(s)")
        else:
            checked = {"spec": loop.judged_against, "plan": _json(wave)}
            call = RoleCall(
                RoleName.PLAN_VERIFIER, checked, loop.record_dir / f"plan_verifier-{n}", loop.commit
            )
            say(f"round {n}: lint-clean; the Plan Verifier judges it")
            verification = _output(repo, config, call, loop.again, rounds, loop.record_dir)
            say(f"round {n}: the Plan Verifier says {verification.get('status')}")
        rounds.append(Round(n, output, wave, findings, verification, refusals))
        _write_summary(loop.record_dir, rounds)
        if rounds[-1].passed:
            break
    return rounds


def _output(
    repo: Path, config: RepoConfig, call: RoleCall, again: str, rounds: list[Round], record_dir: Path
) -> dict[str, Any]:
    try:
        return role_output(repo, config, call, subject="plan draft", again=again)
    except RoleFailed:
        _write_summary(record_dir, rounds)
        raise


def next_wave(repo: Path) -> int:
    """The number after every wave the repo has (a spec, or a Markdown wave not yet imported)."""
    return max([*spec.wave_numbers(repo), *_markdown_numbers(repo)], default=0) + 1


def _markdown_numbers(repo: Path) -> list[int]:
    folder = repo / spec.WAVES_DIR
    if not folder.is_dir():
        return []
    found = (spec.MARKDOWN_NAME.match(entry.name) for entry in folder.iterdir())
    return [int(match.group(1)) for match in found if match]


def _refuse_existing(repo: Path, number: int) -> None:
    if spec.spec_path(repo, number).exists():
        raise Refused(
            f"wave {number} exists: {spec.spec_path(repo, number).relative_to(repo)}",
            hint=f"draft another wave (default: the next one, {next_wave(repo)}), or edit that spec",
        )
    if spec.markdown_path(repo, number).exists():
        raise Refused(
            f"wave {number} exists as Markdown: {spec.markdown_path(repo, number).relative_to(repo)}",
            hint="import it with `speedrift plan import`, or draft another wave number",
        )


def _write_summary(record_dir: Path, rounds: list[Round], result: Drafted | None = None) -> None:
    summary = result.as_dict() if result is not None else {"rounds": [r.as_dict() for r in rounds]}
    fsutil.write_atomic(record_dir / SUMMARY_FILE, orjson.dumps(summary, option=orjson.OPT_INDENT_2))


# --- what the roles are given ----------------------------------------------------------------------
def request_text(request: Request) -> str:
    where = "" if request.source == "--task" else f"From {request.source}:\n"
    return where + cut_middle(request.text.strip(), MAX_REQUEST_CHARS)


def wave_text(repo: Path, number: int, mode: spec.Mode) -> str:
    """The wave's number and mode, and the waves the repo has (number and title)."""
    lines = [f"You are writing wave {number}, in `{mode.value}` mode.", ""]
    numbers = spec.wave_numbers(repo)
    if not numbers:
        return "\n".join([*lines, "The repository has no waves yet."])
    lines.append("The repository's waves:")
    for n in numbers:
        try:
            title = str(spec.read(spec.spec_path(repo, n)).get("title", "(no title)"))
        except (OSError, SpeedriftError) as error:
            title = f"(unreadable: {clip(str(error), 200)})"
        lines.append(f"- wave {n}: {clip(title, 200)}")
    return "\n".join(lines)


def chosen_mode(profile: project.Profile, pack: templates.Pack | None) -> spec.Mode:
    """The wave's mode without ``--mode``: the one plans/project.toml sets, else the template
    pack's, else the default."""
    if pack is not None and profile.origin("default_mode") is not project.Origin.FILE:
        return pack.mode
    return profile.default_mode


def project_text(profile: project.Profile) -> str:
    """The profile in words, each value with where it came from (the file, detected, a default)."""
    runtimes = ", ".join(profile.runtimes) or "(none named)"
    tests = (
        "\n".join(f"  - `{t}`" for t in profile.tests) or "  (none known: say in the wave how to check it)"
    )
    lines = [
        f"- name: {profile.name} ({profile.origin('name').value})",
        f"- new project: {'yes' if profile.new_project else 'no'} ({profile.origin('new_project').value})",
        f"- default mode: {profile.default_mode.value} ({profile.origin('default_mode').value})",
        f"- runtimes, preferred first: {runtimes} ({profile.origin('runtimes').value})",
        f"- test commands ({profile.origin('tests').value}):",
        tests,
    ]
    return "\n".join(lines)


def findings_text(last: Round) -> str:
    """Why a round's wave was not accepted, for the Architect's next round."""
    lines: list[str] = []
    if last.findings:
        lines += ["speedrift's own checks (the wave schema and `speedrift plan lint`):"]
        lines += [f"- {f}" for f in last.findings]
    if last.refusals:
        lines += ["speedrift refused the wave:"]
        lines += [f"- {r}" for r in last.refusals]
    if last.verification is not None:
        lines += verification_lines(last.verification)
    return "\n".join(lines)


def last_findings(last: Round) -> list[str]:
    """Every finding of a round, one line each: speedrift's, then the Plan Verifier's."""
    found = [str(f) for f in last.findings] + list(last.refusals)
    if last.verification is not None and last.verification.get("status") != "pass":
        found += [line.removeprefix("- ") for line in verification_lines(last.verification)[1:]]
    return found


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


# --- the Wave Architect's output schema ------------------------------------------------------------
def architect_schema(examples: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The wave_architect role's output schema, derived from the wave schema: ``spec`` is a wave
    without the fields speedrift sets or only an import fills, every object closed, at least one
    task; beside it the Architect's ``rationale`` and ``assumptions``."""
    wave = copy.deepcopy(spec.schema())
    defs = wave.pop("$defs")
    for key in ("$schema", "$id", "examples", "description"):
        wave.pop(key, None)
    for key in (*SET_BY_SPEEDRIFT, *IMPORT_ONLY):
        wave["properties"].pop(key, None)
    wave["required"] = [r for r in wave["required"] if r not in SET_BY_SPEEDRIFT]
    wave["properties"]["tasks"]["minItems"] = 1
    wave["title"] = f"a wave ({spec.SCHEMA_ID}) without schema and wave, which speedrift sets"
    for key in IMPORT_ONLY_TASK:
        defs["task"]["properties"].pop(key, None)
    text = {"type": "string", "minLength": 1, "maxLength": 1000}
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Wave draft",
        "type": "object",
        "additionalProperties": False,
        "required": ["spec", "rationale"],
        "properties": {
            "spec": {"$ref": "#/$defs/wave_spec"},
            "rationale": {**text, "maxLength": 4000},
            "assumptions": {"type": "array", "maxItems": 20, "items": text},
        },
        "$defs": {"wave_spec": wave, **defs},
    }
    if examples:
        schema["examples"] = list(examples)
    return schema
