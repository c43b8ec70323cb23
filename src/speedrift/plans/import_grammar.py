"""The grammar of an imported wave's parts — wave-orchestration's (reference §A.2–A.4) and
speedrift's own — shared by plans/importer.py and plans/import_agents.py: the record of what an
import found (:class:`Log`), list and ``key: value`` sections, executor keys, proof artifacts, and
the owned paths and validation commands a wave-orchestration prompt lists.

Invariant: nothing here raises on any text; what cannot be read is logged as a problem with its line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from speedrift.plans import mdparse
from speedrift.plans.mdparse import Section
from speedrift.plans.spec import (
    COMPLETION,
    DOC_IMPACT,
    DURABILITY,
    MATURITY,
    PROOF,
    TASK_ID,
    ClosureStage,
    TaskRole,
)
from speedrift.textclip import clip

AGENT_HEADING = re.compile(r"^Agent[ \t]+([^:]+):[ \t]*(.*)$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
MAX_ID = 40
MAX_TITLE = 200
KEY_VALUE = re.compile(r"^([A-Za-z0-9._-]+)[ \t]*:[ \t]*(.+?)[ \t]*$")
_OWNERSHIP = re.compile(r"^\s*File ownership\b", re.IGNORECASE)
_VALIDATION = re.compile(r"^\s*Validation\b[^:]*:\s*$", re.IGNORECASE)
_LABEL = re.compile(r"^\s*[A-Za-z][A-Za-z0-9 _/-]*:\s*$")  # ends a scraped list (wave-orchestration's rule)
_PROMPT_BULLET = re.compile(r"^\s*-\s+(.+?)\s*$")

# wave-orchestration's role prompt docs (docs/agents/<name>), by file name
CLOSURE_PROMPTS = {
    "wave-integration-role.md": ClosureStage.INTEGRATION,
    "wave-documentation-role.md": ClosureStage.DOCUMENTATION,
    "wave-cont-qa-role.md": ClosureStage.EVALUATION,
    "wave-cont-eval-role.md": ClosureStage.EVALUATION,
}
ROLE_PROMPTS = {
    "wave-security-role.md": TaskRole.SECURITY,
    "wave-design-role.md": TaskRole.DESIGN,
    "wave-infra-role.md": TaskRole.INFRA,
    "wave-deploy-verifier-role.md": TaskRole.DEPLOY,
}
# wave-orchestration's default closure agent ids (config.mjs), for agents that name no role prompt
DEFAULT_CLOSURE_IDS = {
    "A0": ClosureStage.EVALUATION,
    "E0": ClosureStage.EVALUATION,
    "A8": ClosureStage.INTEGRATION,
    "A9": ClosureStage.DOCUMENTATION,
}
MODELLED_EXECUTOR = ("id", "model", "fallbacks", "budget.minutes", "budget.turns", "budget.cost-usd")
# wave-orchestration's allow-list (normalizeAgentExecutorConfig), beyond the modelled keys
_COMMON_KEPT = ("profile", "tags", "retry-policy", "allow-fallback-on-retry")
_VENDOR_KEPT = {
    "codex": (
        "command",
        "sandbox",
        "profile_name",
        "config",
        "search",
        "images",
        "add_dirs",
        "json",
        "ephemeral",
    ),
    "claude": (
        "command",
        "agent",
        "permission_mode",
        "permission_prompt_tool",
        "effort",
        "max_turns",
        "mcp_config",
        "settings",
        "settings_json",
        "hooks_json",
        "allowed_http_hook_urls",
        "output_format",
        "allowed_tools",
        "disallowed_tools",
    ),
    "opencode": (
        "command",
        "agent",
        "attach",
        "files",
        "format",
        "steps",
        "instructions",
        "permission",
        "config_json",
    ),
}
KEPT_EXECUTOR = frozenset(
    _COMMON_KEPT + tuple(f"{vendor}.{key}" for vendor, keys in _VENDOR_KEPT.items() for key in keys)
)
EXIT_LEVELS = {"completion": COMPLETION, "durability": DURABILITY, "proof": PROOF, "doc_impact": DOC_IMPACT}
RUNTIME_KEY = {
    "budget.minutes": "wall_clock_minutes",
    "budget.turns": "max_turns",
    "budget.cost-usd": "max_cost_usd",
}
EXECUTOR_KEY = {
    "runtime": "id",
    "model": "model",
    "fallbacks": "fallbacks",
    **{value: key for key, value in RUNTIME_KEY.items()},
}


@dataclass(frozen=True)
class Unmapped:
    """A construct of the file and why it is not (or not wholly) in the spec; as a problem, why it
    could not be read at all."""

    line: int
    what: str
    why: str


@dataclass
class Log:
    """What one import found: the lines of the values set, the unmapped and the problems."""

    lines: dict[str, int] = field(default_factory=dict)
    unmapped: list[Unmapped] = field(default_factory=list)
    problems: list[Unmapped] = field(default_factory=list)

    def at(self, path: str, line: int) -> None:
        self.lines[path] = line

    def note(self, line: int, what: str, why: str) -> None:
        self.unmapped.append(Unmapped(line, clip(what, 120), why))

    def flaw(self, line: int, what: str, why: str) -> None:
        self.problems.append(Unmapped(line, clip(what, 120), why))


def slug(agent_id: str) -> str:
    """A task id for an agent id: itself when it is one, else lowercased with each run of other
    characters made one ``-`` (``A1`` → ``a1``; ``QA 2`` → ``qa-2``)."""
    lowered = agent_id.lower()
    if TASK_ID.match(lowered) and len(lowered) <= MAX_ID:
        return lowered
    return re.sub(r"[^a-z0-9]+", "-", lowered).strip("-")[:MAX_ID].strip("-")


def clean_value(text: str) -> str:
    """A value as wave-orchestration cleans it: one quote or backtick off each end."""
    return re.sub(r"""^["'`]|["'`]$""", "", text.strip(" \t"))


def number(text: str) -> int | float | None:
    """A positive number as written (``3`` an int, ``2.5`` a float), or None."""
    try:
        value: int | float = int(text) if re.fullmatch(r"\d+", text) else float(text)
    except ValueError:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if value > 0 else None


def list_items(sub: Section | None, log: Log, *, paths: bool = False) -> list[tuple[int, str]]:
    """The bullets of a list section as (line, item): code spans unwrapped; plain paths lose
    their quotes (wave-orchestration's rule). Other non-blank lines are problems."""
    if sub is None:
        return []
    out: list[tuple[int, str]] = []
    for line in sub.body:
        if not line.text.strip():
            continue
        item = mdparse.bullet(line) if not line.fenced else None
        if not item:
            log.flaw(line.no, line.text, f"not a `- item` line of `### {sub.heading}`")
            continue
        plain = mdparse.unspan(item)
        if plain == item and paths:
            plain = re.sub(r"""[`"']""", "", item).strip()
        if not plain:
            log.flaw(line.no, line.text, "an empty item")
            continue
        out.append((line.no, plain))
    return out


def key_values(sub: Section | None, log: Log) -> list[tuple[int, str, str]]:
    """``- key: value`` bullets as (line, key, value); other non-blank lines are problems."""
    if sub is None:
        return []
    out: list[tuple[int, str, str]] = []
    for line in sub.body:
        if not line.text.strip():
            continue
        item = mdparse.bullet(line) if not line.fenced else None
        found = KEY_VALUE.match(item) if item else None
        if found is None:
            log.flaw(line.no, line.text, f"not a `- key: value` line of `### {sub.heading}`")
            continue
        out.append((line.no, found.group(1), found.group(2)))
    return out


def scrape_prompt(prompt: str, first: int) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Owned paths and validation commands from the prompt's bullets, unless the block gave
    them explicitly (wave-orchestration's ``extractOwnedPaths``, and the same for validation)."""
    owned: list[tuple[int, str]] = []
    commands: list[tuple[int, str]] = []
    target: list[tuple[int, str]] | None = None
    for offset, text in enumerate(prompt.split("\n")):
        if _OWNERSHIP.match(text):
            target = owned
            continue
        if _VALIDATION.match(text):
            target = commands
            continue
        if target is not None and _LABEL.match(text):
            target = None
        found = _PROMPT_BULLET.match(text) if target is not None else None
        if target is None or found is None:
            continue
        if target is owned:
            path = re.sub(r"""[`"']""", "", found.group(1)).strip()
            path = path[2:] if path.startswith("./") else path
            path = path + "**" if path.endswith("/") else path
            if path and path not in (item for _line, item in owned):
                owned.append((first + offset, path))
        else:
            commands.append((first + offset, mdparse.unspan(found.group(1))))
    return owned, commands


def proof_artifact(item: str, line: int, log: Log) -> dict[str, Any] | None:
    """``path`` or ``path: p | kind: k | required-for: level[,level]`` (wave-orchestration's grammar)."""
    if "|" not in item and not re.match(r"^path\s*:", item, re.IGNORECASE):
        return {"path": re.sub(r"""[`"']""", "", item).strip()}
    fields: dict[str, str] = {}
    for segment in item.split("|"):
        pair = segment.strip()
        if not pair:
            continue
        key, colon, value = pair.partition(":")
        value = re.sub(r"""^["'`]|["'`]$""", "", value.strip())
        if not colon or not key.strip() or not value:
            log.flaw(line, pair, "a proof artifact field is `key: value`")
            return None
        fields[key.strip().lower()] = value
    if not fields.get("path"):
        log.flaw(line, item, "a proof artifact names its path")
        return None
    artifact: dict[str, Any] = {"path": fields["path"]}
    if fields.get("kind"):
        artifact["kind"] = fields["kind"]
    levels = [level.strip() for level in fields.get("required-for", "").split(",") if level.strip()]
    unknown = [level for level in levels if level not in MATURITY]
    if unknown:
        log.flaw(line, ", ".join(unknown), f"not a maturity level: {', '.join(MATURITY)}")
        return None
    if levels:
        artifact["required_for"] = levels
    return artifact
