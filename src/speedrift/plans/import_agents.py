"""One ``## Agent <ID>: <title>`` block of an imported wave → a spec task, or closure guidance.

A block is speedrift's own rendering when it has ``### Role``: its owned files, validation and
extra are explicit sections and its prompt is never scraped. Otherwise it is wave-orchestration's
authored form (reference §A.3): owned paths are the bullets after "File ownership" in the prompt
(as wave-orchestration reads them; ``dir/`` becomes ``dir/**``), validation commands the bullets
after "Validation:", the role comes from the role prompts, and a closure agent (integration,
documentation, cont-QA, cont-EVAL) is no task at all: compile adds the closure tasks, so its prompt
becomes that stage's guidance. What speedrift does not model (executor keys beyond runtime, model,
fallbacks and budgets; Context7; skills; role prompts; proof artifacts; unknown subsections) is
kept in the task's ``extra`` and reported with its line.

Invariant: nothing here raises on any text; every value set is recorded with its line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from speedrift import safejson
from speedrift.plans import mdparse
from speedrift.plans.import_grammar import (
    CLOSURE_PROMPTS,
    DEFAULT_CLOSURE_IDS,
    EXECUTOR_KEY,
    EXIT_LEVELS,
    KEPT_EXECUTOR,
    MAX_TITLE,
    MODELLED_EXECUTOR,
    ROLE_PROMPTS,
    RUNTIME_KEY,
    SLUG,
    Log,
    clean_value,
    key_values,
    list_items,
    number,
    proof_artifact,
    scrape_prompt,
    slug,
)
from speedrift.plans.mdparse import Line, Section
from speedrift.plans.spec import ClosureStage, TaskRole
from speedrift.textclip import clip


@dataclass
class Agent:
    """What an agent block gives: a task, or closure guidance (stage, text, line)."""

    task: dict[str, Any] | None = None
    closure: tuple[ClosureStage, str, int] | None = None


@dataclass
class _Block:
    heading: Section
    agent_id: str
    title: str
    subs: dict[str, Section]
    lead: list[Line]
    own: bool  # speedrift's own rendering (has ### Role)


def read_agent(section: Section, match: re.Match[str], index: int, log: Log) -> Agent:
    """The agent of ``## Agent <ID>: <title>`` (``match`` of :data:`AGENT_HEADING`); a task is
    given ``$.tasks[index]`` for its lines."""
    parts = mdparse.sections(section.body, 3, start=section.line)
    subs: dict[str, Section] = {}
    for sub in parts[1:]:
        key = sub.heading.casefold()
        if not key:
            log.flaw(sub.line, "###", "a heading with no text")
        elif key in subs:
            log.flaw(
                sub.line, f"### {sub.heading}", f"given twice in this agent (first at line {subs[key].line})"
            )
        else:
            subs[key] = sub
    block = _Block(
        section, match.group(1).strip(" \t"), match.group(2).strip(" \t"), subs, parts[0].body, "role" in subs
    )
    prompt = _prompt(block, log)
    if not block.own:
        stage = _closure_stage(block, log)
        if stage is not None:
            why = (
                f"a closure agent ({stage.value}): speedrift's compile adds the closure tasks itself; "
                f"its prompt is kept as closure.{stage.value}, its other sections are dropped"
            )
            log.note(section.line, f"## Agent {block.agent_id}: {block.title}", why)
            if prompt is None:
                return Agent()
            return Agent(closure=(stage, prompt[0], prompt[1]))
    return Agent(task=_Task(block, f"$.tasks[{index}]", log).read(prompt))


def _prompt(block: _Block, log: Log) -> tuple[str, int] | None:
    where = f"## Agent {block.agent_id}"
    sub = block.subs.get("prompt")
    if sub is None:
        log.flaw(block.heading.line, where, "no `### Prompt` section (a fenced block with the task's prompt)")
        return None
    blocks, outside = mdparse.fenced_blocks(sub.body)
    if not blocks:
        log.flaw(sub.line, "### Prompt", "no fenced block (```text … ```) holding the prompt")
        return None
    if len(blocks) > 1 or outside:
        stray = outside[0].no if outside else blocks[1].open_line
        log.flaw(stray, "### Prompt", "text beside the prompt's fenced block: move it into the block")
    content = blocks[0].content
    return blocks[0].text(), content[0].no if content else blocks[0].open_line


def _closure_stage(block: _Block, log: Log) -> ClosureStage | None:
    prompts = list_items(block.subs.get("role prompts"), Log(), paths=True)  # a task reports its flaws
    stages = {
        CLOSURE_PROMPTS[name]
        for _line, path in prompts
        if (name := path.rsplit("/", 1)[-1]) in CLOSURE_PROMPTS
    }
    if len(stages) > 1:
        names = ", ".join(sorted(s.value for s in stages))
        log.flaw(
            block.heading.line, f"## Agent {block.agent_id}", f"one agent in several closure roles ({names})"
        )
        return None
    if stages:
        return stages.pop()
    if not prompts and block.agent_id in DEFAULT_CLOSURE_IDS:
        stage = DEFAULT_CLOSURE_IDS[block.agent_id]
        log.note(
            block.heading.line,
            f"## Agent {block.agent_id}",
            f"no role prompt: taken as the {stage.value} closure agent by wave-orchestration's default id",
        )
        return stage
    return None


class _Task:
    def __init__(self, block: _Block, path: str, log: Log) -> None:
        self.block, self.path, self.log = block, path, log
        self.task: dict[str, Any] = {}
        self.agent = f"Agent {block.agent_id}"
        self.extra: dict[str, Any] = {}
        self.extra_lines: dict[str, int] = {}

    def _note(self, line: int, what: str, why: str) -> None:
        self.log.note(line, f"{self.agent}: {what}", why)

    def set(self, key: str, value: Any, line: int) -> None:
        self.task[key] = value
        self.log.at(f"{self.path}.{key}", line)

    def read(self, prompt: tuple[str, int] | None) -> dict[str, Any]:
        block, log = self.block, self.log
        line = block.heading.line
        log.at(self.path, line)
        self._id()
        if not block.title:
            log.flaw(line, f"## Agent {block.agent_id}:", "the agent has no title")
        elif len(block.title) > MAX_TITLE:
            log.flaw(line, block.title, f"a title longer than {MAX_TITLE} characters")
        self.set("title", block.title, line)
        self.set("prompt", prompt[0] if prompt else "", prompt[1] if prompt else line)
        self._role()
        handlers: dict[str, Callable[[Section], None]] = {
            "depends on": self._after,
            "executor": self._executor,
            "owned files": lambda s: self._list(s, "owned", paths=True),
            "components": lambda s: self._list(s, "components", slugs=True),
            "capabilities": lambda s: self._list(s, "capabilities", slugs=True),
            "deliverables": lambda s: self._list(s, "deliverables", paths=True),
            "exit contract": self._exit_contract,
            "validation": lambda s: self._list(s, "validation"),
            "deploy": self._deploy,
            "extra": self._extra_json,
            "role prompts": lambda s: self._kept_list(
                s, "role_prompts", "role prompts are wave-orchestration's"
            ),
            "context7": self._context7,
            "skills": lambda s: self._kept_list(s, "skills", "speedrift has no skill bundles"),
            "proof artifacts": self._proof_artifacts,
        }
        for key, sub in block.subs.items():
            if key in handlers:
                handlers[key](sub)
            elif key not in ("role", "prompt"):
                self._keep("sections", {sub.heading: sub.text()}, sub.line, merge=True)
                self._note(
                    sub.line, f"### {sub.heading}", "not a section speedrift models; kept in extra.sections"
                )
        lead = mdparse.strip_blank(block.lead)
        if lead:
            self._keep("notes", "\n".join(x.text for x in lead), lead[0].no)
            self._note(lead[0].no, lead[0].text, "text before the agent's first section; kept in extra.notes")
        if not block.own and prompt is not None:
            self._scrape(prompt[0], prompt[1])
        if "owned" not in self.task:
            self.set("owned", [], line)
        if self.extra:
            self.task["extra"] = self.extra
            log.at(f"{self.path}.extra", min(self.extra_lines.values()))
        return self.task

    def _id(self) -> None:
        block, log = self.block, self.log
        task_id = slug(block.agent_id)
        if not task_id:
            log.flaw(block.heading.line, block.agent_id, "an agent id with no letter or digit")
        elif task_id != block.agent_id.lower():
            why = f"task ids are lowercase letters, digits and -: {task_id}"
            log.note(block.heading.line, f"## Agent {block.agent_id}", why)
        self.set("id", task_id, block.heading.line)

    def _role(self) -> None:
        block = self.block
        sub = block.subs.get("role")
        if sub is not None:
            items = list_items(sub, self.log)
            if len(items) != 1:
                self.log.flaw(sub.line, "### Role", "give exactly one role: `- implementation` (or qa, …)")
            if items:
                self.set("role", items[0][1], items[0][0])
            return
        role, line = TaskRole.IMPLEMENTATION, block.heading.line
        for item_line, path in list_items(block.subs.get("role prompts"), Log(), paths=True):
            found = ROLE_PROMPTS.get(path.rsplit("/", 1)[-1])
            if found is not None:
                role, line = found, item_line
                break
        self.set("role", role.value, line)

    def _list(self, sub: Section, key: str, *, paths: bool = False, slugs: bool = False) -> None:
        items = list_items(sub, self.log, paths=paths)
        for offset, (line, item) in enumerate(items):
            if slugs and not SLUG.match(item):
                self.log.flaw(line, item, "not an id of lowercase letters, digits, '.', '_' and '-'")
            self.log.at(f"{self.path}.{key}[{offset}]", line)
        self.set(key, [item for _line, item in items], sub.line)

    def _after(self, sub: Section) -> None:
        self._list(sub, "after")

    def _exit_contract(self, sub: Section) -> None:
        contract: dict[str, str] = {}
        for line, key, value in key_values(sub, self.log):
            name = key.lower().replace("-", "_")
            levels = EXIT_LEVELS.get(name)
            if levels is None:
                self.log.flaw(
                    line, key, "not an exit-contract key: completion, durability, proof, doc-impact"
                )
            elif value not in levels:
                self.log.flaw(line, value, f"not a {key} level: {', '.join(levels)}")
            else:
                contract[name] = value
                self.log.at(f"{self.path}.exit_contract.{name}", line)
        missing = [name.replace("_", "-") for name in EXIT_LEVELS if name not in contract]
        if missing:
            self.log.flaw(sub.line, "### Exit contract", f"missing {', '.join(missing)}")
        self.set("exit_contract", contract, sub.line)

    def _deploy(self, sub: Section) -> None:
        deploy: dict[str, str] = {}
        for line, key, value in key_values(sub, self.log):
            if key not in ("environment", "rollback"):
                self.log.flaw(line, key, "not a deploy key: environment, rollback")
                continue
            deploy[key] = clean_value(value) if key == "environment" else value
            self.log.at(f"{self.path}.deploy.{key}", line)
        if deploy:
            self.set("deploy", deploy, sub.line)

    def _executor(self, sub: Section) -> None:
        runtime: dict[str, Any] = {}
        kept: dict[str, str] = {}
        seen: dict[str, int] = {}
        for line, key, raw in key_values(sub, self.log):
            value = clean_value(raw)
            if key in seen:
                self.log.flaw(line, key, f"given twice (first at line {seen[key]})")
                continue
            seen[key] = line
            if key not in MODELLED_EXECUTOR and key not in KEPT_EXECUTOR:
                self.log.flaw(line, key, "not an executor key wave-orchestration or speedrift knows")
            elif not value:
                self.log.flaw(line, key, "an empty value")
            elif key in MODELLED_EXECUTOR:
                self._runtime_key(line, key, value, runtime, kept)
            else:
                kept[key] = value
                self._note(
                    line, f"### Executor: {key}", f"speedrift does not model {key}; kept in extra.executor"
                )
        if runtime:
            self.set("runtime", runtime, sub.line)
            for key in runtime:
                self.log.at(f"{self.path}.runtime.{key}", seen[EXECUTOR_KEY[key]])
        if kept:
            self._keep("executor", kept, sub.line)

    def _runtime_key(
        self, line: int, key: str, value: str, runtime: dict[str, Any], kept: dict[str, str]
    ) -> None:
        if key == "id":
            if value.lower() == "local":
                kept[key] = value
                self._note(
                    line, "### Executor: id: local", "speedrift has no local executor; kept in extra.executor"
                )
            else:
                runtime["runtime"] = value
        elif key == "model":
            runtime["model"] = value
        elif key == "fallbacks":
            names = [clean_value(part) for part in value.split(",") if clean_value(part)]
            usable = [name for name in names if name.lower() != "local"]
            if usable != names:
                kept[key] = value
                self._note(
                    line,
                    "### Executor: fallbacks",
                    "speedrift has no local executor; dropped from the fallbacks",
                )
            if usable:
                runtime["fallbacks"] = usable
        else:
            amount = number(value)
            whole = key != "budget.cost-usd"
            if amount is None or (whole and not isinstance(amount, int)):
                kind = "a positive whole number" if whole else "a positive number"
                self.log.flaw(line, f"{key}: {value}", f"{key} is {kind}")
            else:
                runtime[RUNTIME_KEY[key]] = amount

    def _context7(self, sub: Section) -> None:
        settings = {key: clean_value(value) for _line, key, value in key_values(sub, self.log)}
        if settings:
            self._keep("context7", settings, sub.line)
            self._note(sub.line, "### Context7", "speedrift has no Context7 bundles; kept in extra.context7")

    def _kept_list(self, sub: Section, key: str, why: str) -> None:
        items = [item for _line, item in list_items(sub, self.log, paths=True)]
        if items:
            self._keep(key, items, sub.line)
            self._note(sub.line, f"### {sub.heading}", f"{why}; kept in extra.{key}")

    def _proof_artifacts(self, sub: Section) -> None:
        artifacts: list[dict[str, Any]] = []
        for line, item in list_items(sub, self.log):
            artifact = proof_artifact(item, line, self.log)
            if artifact is not None:
                artifacts.append(artifact)
        if artifacts:
            self._keep("proof_artifacts", artifacts, sub.line)
            self._note(
                sub.line,
                "### Proof artifacts",
                "speedrift's gates keep their own evidence; kept in extra.proof_artifacts",
            )

    def _extra_json(self, sub: Section) -> None:
        blocks, outside = mdparse.fenced_blocks(sub.body)
        if len(blocks) != 1 or outside:
            self.log.flaw(sub.line, "### Extra", "one fenced block holding a JSON object, and nothing else")
            return
        try:
            value = safejson.loads(blocks[0].text())
        except ValueError as error:
            self.log.flaw(blocks[0].open_line, "### Extra", f"not JSON: {clip(str(error), 200)}")
            return
        if not isinstance(value, dict):
            self.log.flaw(blocks[0].open_line, "### Extra", "not a JSON object")
            return
        for key, item in value.items():
            self._keep(key, item, sub.line)

    def _keep(self, key: str, value: Any, line: int, *, merge: bool = False) -> None:
        if key in self.extra and not (
            merge and isinstance(self.extra[key], dict) and isinstance(value, dict)
        ):
            self.log.flaw(line, f"extra.{key}", f"given twice (also at line {self.extra_lines[key]})")
            return
        if merge and key in self.extra:
            self.extra[key].update(value)
        else:
            self.extra[key] = value
            self.extra_lines[key] = line
        self.log.at(f"{self.path}.extra.{key}", self.extra_lines[key])

    def _scrape(self, prompt: str, first: int) -> None:
        """Owned paths and validation commands from the prompt's bullets, unless the block gave
        them explicitly."""
        owned, commands = scrape_prompt(prompt, first)
        for key, found in (("owned", owned), ("validation", commands)):
            if key in self.task or not found:
                continue
            self.set(key, [item for _line, item in found], found[0][0])
            for index, (line, _item) in enumerate(found):
                self.log.at(f"{self.path}.{key}[{index}]", line)
