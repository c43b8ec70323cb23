"""A wave spec rendered to Markdown for people: ``plans/waves/wave-<n>.md``.

The format is wave-orchestration's authored wave Markdown plus speedrift's own sections (the
user guide, docs/plans.md, shows it whole): top-level sections first, then one ``## Agent`` block
per task. Reading it back (plans/importer.py) gives the same spec, byte for byte once canonical,
for every spec whose optional fields are either set or absent (an empty list, object or text is
"not set" and is not rendered).

Bodies that could be misread are fenced: a prompt and a task's extra settings always; a summary,
closure guidance or prose body when it has a line that looks like a heading or a fence, or
leading or trailing white space. A fence is one backtick longer than the longest run of backticks
that could close it (plans/mdparse.py ``fence_for``). Paths and commands are CommonMark code
spans (``code_span``: a delimiter longer than any backtick run inside, padded when needed).

Invariant: :func:`render` is pure and deterministic (same spec, same bytes; key order of the input
does not matter) and ends with exactly one newline; :func:`write` writes only schema-valid specs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from speedrift import fsutil
from speedrift.errors import InvalidValue
from speedrift.plans import spec
from speedrift.plans.mdparse import code_span, fence_for
from speedrift.plans.spec import CLOSURE_ORDER

_UNSAFE_LINE = re.compile(r"^[ \t]*(?:#{1,6}(?:[ \t]|$)|```|~~~)", re.MULTILINE)


def render(value: Mapping[str, Any]) -> str:
    """The Markdown of the schema-valid spec ``value``."""
    out: list[str] = [f"# Wave {value['wave']} - {value['title']}"]
    if value.get("commit_message"):
        out += ["", f"**Commit message**: {code_span(value['commit_message'])}"]
    out += _section("Project profile", [f"- oversight-mode: {value['mode']}"])
    if value.get("summary"):
        out += _section("Summary", [_free(value["summary"])])
    out += _section("Sequencing note", _sequencing(value.get("sequencing") or {}))
    out += _section(
        "Deploy environments", [_environment(env) for env in value.get("deploy_environments", ())]
    )
    out += _section(
        "Component promotions",
        [f"- {item['component']}: {item['level']}" for item in value.get("component_promotions", ())],
    )
    out += _section("Validation", _codes(value.get("validation", ())))
    closure = value.get("closure") or {}
    guidance: list[str] = []
    for stage in CLOSURE_ORDER:
        if closure.get(stage.value):
            guidance += [f"### {stage.value.capitalize()}", "", _free(closure[stage.value]), ""]
    out += _section("Closure", guidance[:-1])
    for heading, body in sorted((value.get("prose") or {}).items()):
        out += ["", f"## {heading}"] + (["", _free(body)] if body else [])
    for task in value.get("tasks", ()):
        out += _task(task)
    return "\n".join(out) + "\n"


def write(repo: Path, value: Mapping[str, Any]) -> list[Path]:
    """Write the spec (canonical bytes) and its Markdown, each atomically; returns both paths."""
    problems = spec.schema_problems(value)
    if problems:
        shown = "\n  ".join(problems[:10])
        raise InvalidValue(
            f"not writing an invalid wave spec:\n  {shown}", hint="run `speedrift plan lint` on it"
        )
    number = int(value["wave"])
    written: list[Path] = []
    for target, data in (
        (spec.spec_path(repo, number), spec.canonical(value)),
        (spec.markdown_path(repo, number), render(value).encode("utf-8")),
    ):
        target.parent.mkdir(parents=True, exist_ok=True)
        fsutil.write_atomic(target, data)
        written.append(target)
    return written


# --- pieces ---------------------------------------------------------------------------------------
def fenced(text: str, info: str) -> str:
    """``text`` in a fenced block that keeps it whole (plans/mdparse.py reads it back)."""
    opening, closing = fence_for(text, info)
    return f"{opening}\n{text}\n{closing}"


def _free(text: str) -> str:
    """A free-text body: verbatim when it reads back the same, else fenced."""
    if text == text.strip() and "\r" not in text and not _UNSAFE_LINE.search(text):
        return text
    return fenced(text, "text")


def _section(heading: str, body: Iterable[str], level: int = 2) -> list[str]:
    lines = list(body)
    return ["", f"{'#' * level} {heading}", "", *lines] if lines else []


def _codes(items: Iterable[str]) -> list[str]:
    return [f"- {code_span(item)}" for item in items]


def _continued(key: str, text: str) -> str:
    """``- key: first line`` and its further lines indented by two spaces."""
    first, *rest = text.split("\n")
    return "\n".join([f"- {key}: {first}", *(f"  {line}" for line in rest)])


def _sequencing(sequencing: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    if sequencing.get("after_waves"):
        lines.append("- after-waves: " + ", ".join(str(n) for n in sequencing["after_waves"]))
    if sequencing.get("needs_artifacts"):
        lines.append("- needs-artifacts: " + ", ".join(code_span(p) for p in sequencing["needs_artifacts"]))
    if sequencing.get("note"):
        lines.append(_continued("note", sequencing["note"]))
    return lines


def _environment(env: Mapping[str, Any]) -> str:
    line = f"- {code_span(env['id'])}: {code_span(env['kind'])}"
    if env.get("default"):
        line += " default"
    if env.get("notes"):
        line += f" ({env['notes']})"
    return line


def _number(value: Any) -> str:
    return json.dumps(value)


def _task(task: Mapping[str, Any]) -> list[str]:
    out = ["", f"## Agent {task['id']}: {task['title']}"]
    out += _section("Role", [f"- {task['role']}"], 3)
    out += _section("Depends on", [f"- {item}" for item in task.get("after", ())], 3)
    out += _section("Executor", _executor(task.get("runtime") or {}), 3)
    out += _section("Owned files", _codes(task.get("owned", ())), 3)
    out += _section("Components", [f"- {item}" for item in task.get("components", ())], 3)
    out += _section("Capabilities", [f"- {item}" for item in task.get("capabilities", ())], 3)
    out += _section("Deliverables", _codes(task.get("deliverables", ())), 3)
    contract = task.get("exit_contract")
    if contract:
        out += _section(
            "Exit contract",
            [
                f"- completion: {contract['completion']}",
                f"- durability: {contract['durability']}",
                f"- proof: {contract['proof']}",
                f"- doc-impact: {contract['doc_impact']}",
            ],
            3,
        )
    out += _section("Validation", _codes(task.get("validation", ())), 3)
    deploy = task.get("deploy") or {}
    lines = [f"- environment: {deploy['environment']}"] if deploy.get("environment") else []
    if deploy.get("rollback"):
        lines.append(f"- rollback: {deploy['rollback']}")
    out += _section("Deploy", lines, 3)
    if task.get("extra"):
        extra = json.dumps(task["extra"], indent=2, sort_keys=True, ensure_ascii=False)
        out += _section("Extra", [fenced(extra, "json")], 3)
    out += _section("Prompt", [fenced(task["prompt"], "text")], 3)
    return out


def _executor(runtime: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    if runtime.get("runtime"):
        lines.append(f"- id: {runtime['runtime']}")
    if runtime.get("model"):
        lines.append(f"- model: {runtime['model']}")
    if runtime.get("fallbacks"):
        lines.append("- fallbacks: " + ", ".join(runtime["fallbacks"]))
    for key, name in (
        ("wall_clock_minutes", "budget.minutes"),
        ("max_turns", "budget.turns"),
        ("max_cost_usd", "budget.cost-usd"),
    ):
        if runtime.get(key) is not None:
            lines.append(f"- {name}: {_number(runtime[key])}")
    return lines
