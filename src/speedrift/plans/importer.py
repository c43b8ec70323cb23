"""Read a wave's Markdown into a speedrift wave spec: wave-orchestration's authored waves (reference
§A.2–A.5) and speedrift's own rendering (plans/render.py) alike, with the line of every value.

The document is cut at ``##`` headings outside fenced blocks (plans/mdparse.py). Before the first:
the ``# Wave <n> - <title>`` line, the ``**Commit message**`` and any other text (kept as the prose
``Introduction``). The sections speedrift models are read by their grammar (Project profile's
``oversight-mode``, Summary, Sequencing note, Deploy environments, Component promotions,
Validation, Closure); ``## Agent <ID>: <title>`` blocks become tasks or closure guidance
(plans/import_agents.py); every other section is kept verbatim as ``prose[heading]``. An order
between waves is never guessed from prose: only a ``- after-waves:`` line sets one.

What is kept but not modelled is reported in ``unmapped`` (for a file speedrift rendered itself —
its Project profile holds only the mode and every agent has ``### Role`` — prose and extra are
modelled fields and are not reported); what cannot be read at all is a ``problem``.

Invariant: :func:`parse_markdown` never raises on any text, and when it reports no problem the
spec passes ``spec.schema_problems`` (a schema complaint left over becomes a problem at the line
of the value, or of its nearest parent).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from speedrift.plans import mdparse
from speedrift.plans.import_agents import read_agent
from speedrift.plans.import_grammar import AGENT_HEADING, SLUG, Log, Unmapped, clean_value
from speedrift.plans.lint import line_of
from speedrift.plans.mdparse import Line, Section
from speedrift.plans.spec import CLOSURE_ORDER, MARKDOWN_NAME, MATURITY, SCHEMA_ID, Mode, schema_problems
from speedrift.textclip import clip

__all__ = ["Imported", "Unmapped", "parse_markdown"]

INTRODUCTION = "Introduction"
PROFILE_KEPT = "Project profile (imported)"
MAX_TITLE = 200
_TITLE = re.compile(r"^Wave[ \t]+(\d+)[ \t]*(?:[-–—:][ \t]*(.*))?$")
_COMMIT = re.compile(r"^\*\*Commit message\*\*:[ \t]*(.*?)[ \t]*$")
_PROFILE = re.compile(r"^([A-Za-z0-9_-]+)[ \t]*:[ \t]*(.*)$")
_ENVIRONMENT = re.compile(
    r"^`?([a-z0-9][a-z0-9._-]*)`?[ \t]*:[ \t]*`?([a-z0-9][a-z0-9._-]*)`?[ \t]*(default)?(?:[ \t]+\((.*)\))?$",
    re.IGNORECASE,
)
_PROMOTION = re.compile(r"^([A-Za-z0-9._-]+)[ \t]*:[ \t]*([A-Za-z0-9._-]+)$")
_NOTE = re.compile(r"^-[ \t]+note:[ ]?(.*)$")
# wave-orchestration sections speedrift keeps as prose, and why
PROSE_WHY = {
    "eval targets": "speedrift has no eval targets (its evaluation stage judges the wave); kept as prose",
    "context7 defaults": "speedrift has no Context7 bundles; kept as prose",
    "reference rule": "guidance for people; kept as prose",
    "sequencing note": (
        "speedrift never guesses an order between waves from prose (only a `- after-waves: N` line "
        "sets one); kept as prose"
    ),
}


@dataclass(frozen=True)
class Imported:
    """A wave read from Markdown: the spec (schema-valid when ``problems`` is empty), the line of
    each value by JSON path (``$.tasks[2].owned[0]``), what was kept but not modelled, and what
    could not be read."""

    spec: dict[str, Any]
    lines: dict[str, int]
    unmapped: list[Unmapped]
    problems: list[Unmapped]


def parse_markdown(
    text: str, *, file: str, wave: int | None = None, default_mode: str | None = None
) -> Imported:
    """The spec in the wave Markdown ``text`` of ``file``. Its wave number: ``wave``, else the
    file name's (``wave-<n>.md``), else the title's (``# Wave <n> - …``). Its mode: the file's
    ``oversight-mode``, else ``default_mode``, else oversight."""
    lines, flaws = mdparse.mark_fences(mdparse.split_text(text))
    reader = _Reader(file, lines)
    for flaw in flaws:
        reader.log.flaw(flaw.line, flaw.what, flaw.why)
    reader.read(wave, default_mode)
    return reader.result()


class _Reader:
    def __init__(self, file: str, lines: list[Line]) -> None:
        self.file = file
        self.lines = lines
        self.log = Log()
        self.spec: dict[str, Any] = {
            "schema": SCHEMA_ID,
            "wave": 0,
            "title": "",
            "mode": Mode.OVERSIGHT.value,
        }
        self.prose: dict[str, tuple[str, int, str, str]] = {}  # heading -> (body, line, what, why)
        self.closure: dict[str, tuple[list[str], int]] = {}
        self.tasks: list[dict[str, Any]] = []
        self.mode: tuple[str, int] | None = None
        self.profile_keys: list[str] = []
        self.heading_wave: tuple[int, int] | None = None

    # -- the whole document ----------------------------------------------------------------------
    def read(self, wave: int | None, default_mode: str | None) -> None:
        parts = mdparse.sections(self.lines, 2)
        self._preamble(parts[0])
        handlers: dict[str, Callable[[Section], None]] = {
            "project profile": self._profile,
            "summary": self._summary,
            "sequencing note": self._sequencing,
            "deploy environments": self._environments,
            "component promotions": self._promotions,
            "validation": self._validation,
            "closure": self._closure,
        }
        seen: dict[str, int] = {}
        own = True
        for section in parts[1:]:
            key = section.heading.casefold()
            agent = AGENT_HEADING.match(section.heading)
            if agent is not None:
                own = own and any(
                    h.heading.casefold() == "role" for h in mdparse.sections(section.body, 3)[1:]
                )
                self._agent(section, agent)
            elif not key:
                self.log.flaw(section.line, "##", "a heading with no text")
            elif key in seen:
                self.log.flaw(
                    section.line, f"## {section.heading}", f"given twice (first at line {seen[key]})"
                )
            else:
                seen[key] = section.line
                handlers.get(key, self._prose)(section)
        self._number(wave)
        self._mode(default_mode)
        own = own and self.profile_keys == ["oversight-mode"]
        for heading, (body, line, what, why) in self.prose.items():
            self.spec.setdefault("prose", {})[heading] = body
            self.log.at(f"$.prose.{heading}", line)
            if not own:
                self.log.note(line, what, why)
        for stage in CLOSURE_ORDER:
            if stage.value in self.closure:
                texts, line = self.closure[stage.value]
                self.spec.setdefault("closure", {})[stage.value] = "\n\n".join(texts)
                self.log.at(f"$.closure.{stage.value}", line)
        self.spec["tasks"] = self.tasks

    def result(self) -> Imported:
        if not self.log.problems:
            for problem in schema_problems(self.spec):
                path, _sep, message = problem.partition(": ")
                self.log.flaw(line_of(path, self.log.lines) or 1, path, message)
        problems = sorted(self.log.problems, key=lambda p: p.line)
        unmapped = sorted(self.log.unmapped, key=lambda p: p.line)
        return Imported(self.spec, dict(self.log.lines), unmapped, problems)

    def _preamble(self, section: Section) -> None:
        rest: list[Line] = []
        titled = False
        for line in section.body:
            found = mdparse.heading(line)
            commit = _COMMIT.match(line.text) if not line.fenced else None
            if found is not None and found[0] == 1 and not titled:
                titled = True
                self._title(found[1], line.no)
            elif commit is not None and "commit_message" not in self.spec:
                self.spec["commit_message"] = mdparse.unspan(commit.group(1))
                self.log.at("$.commit_message", line.no)
            else:
                rest.append(line)
        if not titled:
            self.log.flaw(1, self.file, "no `# Wave <n> - <title>` line")
        kept = mdparse.strip_blank(rest)
        if kept:
            why = "text before the first section; kept as prose"
            self.prose[INTRODUCTION] = ("\n".join(line.text for line in kept), kept[0].no, kept[0].text, why)

    def _title(self, text: str, line: int) -> None:
        found = _TITLE.match(text)
        title = text
        if found is not None:
            self.heading_wave = (int(found.group(1)), line)
            title = (found.group(2) or "").strip(" \t")
        if not title:
            self.log.flaw(line, text, "the title line has no title: `# Wave <n> - <title>`")
        elif len(title) > MAX_TITLE:
            self.log.flaw(line, title, f"a title longer than {MAX_TITLE} characters")
        self.spec["title"] = title
        self.log.at("$.title", line)

    def _number(self, wave: int | None) -> None:
        named = MARKDOWN_NAME.match(PurePath(self.file).name)
        titled = self.heading_wave[0] if self.heading_wave else None
        line = self.heading_wave[1] if self.heading_wave else 1
        number = wave if wave is not None else int(named.group(1)) if named else titled
        if number is None:
            self.log.flaw(
                line, self.file, "no wave number: not in the title, and the file is not named wave-<n>.md"
            )
            number = 0
        elif number < 0:
            self.log.flaw(line, str(number), "a wave number is 0 or more")
        elif titled is not None and titled != number:
            self.log.note(
                line, f"# Wave {titled}", f"the title says wave {titled}; the spec is wave {number}"
            )
        self.spec["wave"] = number
        self.log.at("$.wave", line)

    def _mode(self, default_mode: str | None) -> None:
        mode, line = self.mode if self.mode else (default_mode or Mode.OVERSIGHT.value, 1)
        if mode not in {m.value for m in Mode}:
            self.log.flaw(line, mode, f"not a mode: {', '.join(m.value for m in Mode)}")
        self.spec["mode"] = mode
        if self.mode:
            self.log.at("$.mode", line)

    # -- sections --------------------------------------------------------------------------------
    def _bullets(self, section: Section) -> list[tuple[int, str, Line]]:
        """(line, item, the line) of each ``- item``; other non-blank lines are problems."""
        out: list[tuple[int, str, Line]] = []
        for line in section.body:
            if not line.text.strip():
                continue
            item = mdparse.bullet(line) if not line.fenced else None
            if not item:
                self.log.flaw(line.no, line.text, f"not a `- item` line of `## {section.heading}`")
                continue
            out.append((line.no, item, line))
        return out

    def _free(self, section: Section) -> str:
        """A free-text body: verbatim, or the content of the one ```text block it is."""
        kept = mdparse.strip_blank(section.body)
        blocks, outside = mdparse.fenced_blocks(kept)
        if len(blocks) == 1 and not outside and blocks[0].info == "text" and blocks[0].closed:
            return blocks[0].text()
        return section.text()

    def _profile(self, section: Section) -> None:
        kept: list[Line] = []
        for no, item, line in self._bullets(section):
            found = _PROFILE.match(item)
            key = found.group(1).lower() if found else ""
            self.profile_keys.append(key)
            if found is not None and key == "oversight-mode":
                self.mode = (clean_value(found.group(2)), no)
            else:
                kept.append(line)
        if kept:
            why = f"a project's settings live in plans/project.toml; kept as prose {PROFILE_KEPT!r}"
            text = "\n".join(line.text for line in kept)
            self.prose[PROFILE_KEPT] = (text, kept[0].no, f"## Project profile: {kept[0].text}", why)

    def _summary(self, section: Section) -> None:
        text = self._free(section)
        if text:
            self.spec["summary"] = text
            self.log.at("$.summary", section.first_line())

    def _sequencing(self, section: Section) -> None:
        sequencing: dict[str, Any] = {}
        other: list[Line] = []
        body = section.body
        index = 0
        while index < len(body):
            line = body[index]
            index += 1
            item = mdparse.bullet(line) if not line.fenced else None
            note = _NOTE.match(line.text) if not line.fenced else None
            if item is not None and item.startswith("after-waves:"):
                numbers = [part.strip() for part in item.removeprefix("after-waves:").split(",")]
                if not all(part.isdigit() for part in numbers):
                    self.log.flaw(line.no, item, "after-waves lists wave numbers: `- after-waves: 3, 4`")
                    continue
                sequencing["after_waves"] = [int(part) for part in numbers]
                self._at_each("$.sequencing.after_waves", line.no, len(numbers))
            elif item is not None and item.startswith("needs-artifacts:"):
                paths = mdparse.spans(item.removeprefix("needs-artifacts:"))
                if not paths:
                    self.log.flaw(
                        line.no, item, "needs-artifacts lists paths: ``- needs-artifacts: `a`, `b` ``"
                    )
                    continue
                sequencing["needs_artifacts"] = paths
                self._at_each("$.sequencing.needs_artifacts", line.no, len(paths))
            elif note is not None:
                parts = [note.group(1)]
                index = self._continued(body, index, parts)
                sequencing["note"] = "\n".join(parts)
                self.log.at("$.sequencing.note", line.no)
            elif line.text.strip():
                other.append(line)
        if sequencing and other:
            why = (
                "speedrift's `- after-waves:`/`- needs-artifacts:`/`- note:` lines mixed with other "
                "text: put the text in `- note:`"
            )
            self.log.flaw(other[0].no, other[0].text, why)
        elif other:
            self._prose(section)
        if sequencing:
            self.spec["sequencing"] = sequencing
            self.log.at("$.sequencing", section.line)

    @staticmethod
    def _continued(body: list[Line], index: int, parts: list[str]) -> int:
        """Append the note's continuation lines (each indented two spaces; empty lines between
        them count) to ``parts``; returns the index after them."""
        end = index
        for probe in range(index, len(body)):
            text = body[probe].text
            if text.startswith("  "):
                end = probe + 1
            elif text:
                break
        parts.extend(line.text[2:] for line in body[index:end])
        return end

    def _at_each(self, path: str, line: int, count: int) -> None:
        for offset in range(count):
            self.log.at(f"{path}[{offset}]", line)

    def _environments(self, section: Section) -> None:
        environments: list[dict[str, Any]] = []
        seen: set[str] = set()
        for no, item, _line in self._bullets(section):
            found = _ENVIRONMENT.match(item)
            if found is None:
                self.log.flaw(no, item, "a deploy environment is ``- `id`: `kind` [default] [(notes)]``")
                continue
            env: dict[str, Any] = {"id": found.group(1).lower(), "kind": found.group(2).lower()}
            if env["id"] in seen:
                self.log.flaw(no, env["id"], "a deploy environment given twice")
                continue
            seen.add(env["id"])
            if found.group(3):
                env["default"] = True
            if (found.group(4) or "").strip(" \t"):
                env["notes"] = found.group(4).strip(" \t")
            self.log.at(f"$.deploy_environments[{len(environments)}]", no)
            environments.append(env)
        if environments:
            self.spec["deploy_environments"] = environments
            self.log.at("$.deploy_environments", section.line)

    def _promotions(self, section: Section) -> None:
        promotions: list[dict[str, str]] = []
        seen: set[str] = set()
        for no, item, _line in self._bullets(section):
            found = _PROMOTION.match(item)
            if found is None or not SLUG.match(found.group(1)) or found.group(2) not in MATURITY:
                why = f"a promotion is `- <component id>: <level>`, a level one of {', '.join(MATURITY)}"
                self.log.flaw(no, item, why)
                continue
            if found.group(1) in seen:
                self.log.flaw(no, found.group(1), "a component promoted twice")
                continue
            seen.add(found.group(1))
            self.log.at(f"$.component_promotions[{len(promotions)}]", no)
            promotions.append({"component": found.group(1), "level": found.group(2)})
        if promotions:
            self.spec["component_promotions"] = promotions
            self.log.at("$.component_promotions", section.line)

    def _validation(self, section: Section) -> None:
        commands = [(no, mdparse.unspan(item)) for no, item, _line in self._bullets(section)]
        if commands:
            self.spec["validation"] = [command for _no, command in commands]
            self.log.at("$.validation", section.line)
            for index, (no, _command) in enumerate(commands):
                self.log.at(f"$.validation[{index}]", no)

    def _closure(self, section: Section) -> None:
        parts = mdparse.sections(section.body, 3, start=section.line)
        lead = mdparse.strip_blank(parts[0].body)
        if lead:
            self.log.flaw(
                lead[0].no,
                lead[0].text,
                "## Closure holds only ### Integration, ### Documentation, ### Evaluation",
            )
        stages = {stage.value: stage for stage in CLOSURE_ORDER}
        for sub in parts[1:]:
            stage = stages.get(sub.heading.casefold())
            if stage is None:
                self.log.flaw(
                    sub.line,
                    f"### {sub.heading}",
                    "not a closure stage: Integration, Documentation, Evaluation",
                )
            elif stage.value in self.closure:
                self.log.flaw(sub.line, f"### {sub.heading}", "a closure stage given twice")
            else:
                text = self._free(sub)
                if text:
                    self.closure[stage.value] = ([text], sub.first_line())

    def _prose(self, section: Section) -> None:
        key = section.heading.casefold()
        why = PROSE_WHY.get(key, "not a section speedrift models; kept as prose")
        if key.startswith("agent"):
            why = "not an agent heading (`## Agent <ID>: <title>`); kept as prose"
        if section.heading in self.prose:
            self.log.flaw(
                section.line, f"## {section.heading}", "a heading speedrift gives the text before it"
            )
            return
        self.prose[section.heading] = (self._free(section), section.line, f"## {section.heading}", why)

    def _agent(self, section: Section, match: re.Match[str]) -> None:
        found = read_agent(section, match, len(self.tasks), self.log)
        if found.closure is not None:
            stage, text, line = found.closure
            self.closure.setdefault(stage.value, ([], line))[0].append(text)
        if found.task is not None:
            task_id = found.task.get("id")
            clash = next((t for t in self.tasks if t.get("id") == task_id and task_id), None)
            if clash is not None:
                self.log.flaw(
                    section.line, f"## {clip(section.heading, 80)}", f"a second task with id {task_id!r}"
                )
            self.tasks.append(found.task)
