"""Which runtime and model a task's attempt asks for, and why: model routing. Pure.

:func:`route` decides in this order (the first that applies wins):

1. **explicit** — the task's ``exec`` (the shell runtime) or its ``model`` (``claude:sonnet``:
   that CLI; an unprefixed model: the repo's default runtime), as :func:`~speedrift.agents.choose.
   select_runtime` reads them. A model the recovery's ``escalate_model`` wrote (the task then lists
   ``tried_models``) is explicit too, and said so;
2. **routed** — with tiers configured (``[routing] tiers``): the task's ``model`` naming a tier
   (``cheap``/``standard``/``strong``), else the first rule matching its tags or role, else the
   default tier; with ``escalate``, one tier higher per earlier failure a stronger model may fix
   (``attempt_number`` 1 is its own tier, 2 the next, …, capped at the strongest configured);
3. **default** — no tiers configured: today's behaviour (the repo's default runtime and its
   configured model).

A tier's entry is ``runtime[:model]``. A tier that is not configured routes to the nearest
configured one above it (else below), and the why says so. :func:`order` is the pure half of the
runtime fallback: the candidates an attempt tries, in order. Invariant: every :class:`Choice` says
in ``why`` which of the three cases made it and from what.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from speedrift.agents.choose import RUNTIME_NAMES, select_runtime
from speedrift.errors import InvalidValue

TIERS: tuple[str, ...] = ("cheap", "standard", "strong")  # weakest first (fleet/opsconfig.py Tier)


@dataclass(frozen=True)
class Rule:
    """One ``[[routing.rules]]`` entry: tags (any of them) or a role → a tier."""

    tier: str
    tags: tuple[str, ...] = ()
    role: str | None = None

    def matches(self, tags: Sequence[str], role: str | None) -> bool:
        return bool(set(self.tags) & set(tags)) or (self.role is not None and self.role == role)


EXPLICIT, ROUTED, DEFAULT = "explicit", "routed", "default"  # Choice.kind: which case made it


@dataclass(frozen=True)
class Choice:
    """What an attempt asks for: ``model`` without its runtime prefix (None: the runtime's own
    configured model), ``tier`` when routing chose it, ``why`` in words, ``kind`` which case of
    :func:`route` made it (explicit, routed or default)."""

    runtime: str
    model: str | None
    tier: str | None
    why: str
    kind: str = DEFAULT

    @property
    def label(self) -> str:
        return entry_label(self.runtime, self.model)

    def record(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "model": self.model, "tier": self.tier, "why": self.why}


def entry_label(runtime: str, model: str | None) -> str:
    return f"{runtime}:{model}" if model else runtime


def parse_entry(entry: str) -> tuple[str, str | None]:
    """``"claude:sonnet"`` → ``("claude", "sonnet")``; ``"codex"`` → ``("codex", None)``."""
    runtime, _sep, model = entry.strip().partition(":")
    if runtime not in RUNTIME_NAMES:
        raise InvalidValue(
            f"{entry!r} names no runtime; each entry is runtime[:model] with a runtime of "
            f"{', '.join(RUNTIME_NAMES)}"
        )
    return runtime, model.strip() or None


def route(
    task: Mapping[str, Any],
    *,
    default_runtime: str,
    tiers: Mapping[str, str],
    rules: Sequence[Rule],
    default_tier: str,
    escalate: bool,
    attempt_number: int,
    role: str | None = None,
) -> Choice:
    """The runtime and model ``task`` asks for (see the module docstring). ``attempt_number``: 1 for
    the first try; each retry that should climb a tier counts one more (the caller decides which
    earlier failures count). Raises InvalidValue for an unknown runtime or a task naming a tier
    while no tiers are configured."""
    model = task.get("model")
    named = model.strip() if isinstance(model, str) else ""
    command = task.get("exec")
    if not (isinstance(command, str) and command.strip()) and named in TIERS:
        if not tiers:
            raise InvalidValue(
                f"task {task.get('id')!r} asks for the model tier {named!r}, but no [routing] tiers are "
                "configured",
                hint='set them in speedrift.toml, e.g. [routing] tiers = { standard = "claude:sonnet" }',
            )
        choice = _tiered(named, f"the task names the {named} tier", tiers, escalate, attempt_number)
        return replace(choice, kind=EXPLICIT)
    runtime, chosen = select_runtime(task, default_runtime)
    if (isinstance(command, str) and command.strip()) or named:
        return Choice(runtime, chosen, None, _explicit_why(task, runtime, chosen), EXPLICIT)
    if not tiers:
        return Choice(runtime, None, None, f"no [routing] tiers: the repo's default runtime {runtime}")
    tags = [t for t in task.get("tags") or () if isinstance(t, str)]
    for index, rule in enumerate(rules, 1):
        if rule.matches(tags, role):
            hit = sorted(set(rule.tags) & set(tags))
            what = f"tag {', '.join(hit)}" if hit else f"role {role}"
            return _tiered(rule.tier, f"routing rule {index} ({what})", tiers, escalate, attempt_number)
    return _tiered(default_tier, "no routing rule matched: the default tier", tiers, escalate, attempt_number)


def _explicit_why(task: Mapping[str, Any], runtime: str, model: str | None) -> str:
    if runtime == "shell" and task.get("exec"):
        return "explicit: the task's exec command runs on the shell runtime"
    tried = [m for m in task.get("tried_models") or () if isinstance(m, str)]
    label = str(task.get("model") or "").strip().rstrip(":")
    if tried:
        return f"explicit: the task's model {label} (escalated by recovery from {', '.join(tried)})"
    return f"explicit: the task's model {label}"


def _tiered(tier: str, because: str, tiers: Mapping[str, str], escalate: bool, attempt: int) -> Choice:
    """The configured tier for ``tier`` (escalated when asked), as a Choice."""
    configured = [t for t in TIERS if t in tiers]
    base, moved = nearest(tier, configured)
    why = because + f" → {tier}"
    if moved:
        why += f" (not configured: {base})"
    climb = max(0, attempt - 1) if escalate else 0
    index = min(configured.index(base) + climb, len(configured) - 1)
    reached = configured[index]
    if climb:
        capped = " (capped: the strongest configured)" if index - configured.index(base) < climb else ""
        why += f", escalated {climb} tier(s) on retry to {reached}{capped}"
    runtime, model = parse_entry(tiers[reached])
    return Choice(runtime, model, reached, f"{why}: {tiers[reached]}", ROUTED)


def nearest(tier: str, configured: Sequence[str]) -> tuple[str, bool]:
    """``tier`` when configured; else the nearest configured one above it, else below it.
    Returns (tier, whether it moved)."""
    if tier in configured:
        return tier, False
    position = TIERS.index(tier) if tier in TIERS else 1
    above = [t for t in configured if TIERS.index(t) > position]
    below = [t for t in configured if TIERS.index(t) < position]
    if above:
        return above[0], True
    if below:
        return below[-1], True
    raise InvalidValue("no [routing] tiers are configured")


def next_tier(tiers: Mapping[str, str], current: str | None) -> str | None:
    """The configured tier above ``current`` (None: it is the strongest, or not a tier)."""
    configured = [t for t in TIERS if t in tiers]
    if current not in configured:
        return None
    index = configured.index(current)
    return configured[index + 1] if index + 1 < len(configured) else None


def order(first: str, entries: Sequence[str], skip: Sequence[str] = ()) -> list[str]:
    """The candidates an attempt tries, as ``runtime[:model]`` labels: ``first`` (what routing
    chose), then the fallback ``entries`` from the one after ``first`` on (wrapping round to those
    before it), each once. Labels in ``skip`` (recent provider failures, oldest first) go last,
    the oldest skip first, so an order whose every entry failed recently goes round again."""
    ring = list(dict.fromkeys(entries))
    start = _position(first, ring)
    rotated = ring[start + 1 :] + ring[: start + 1] if start is not None else ring
    candidates = list(dict.fromkeys([first, *rotated]))
    skipped = [c for c in dict.fromkeys(skip) if c in candidates]
    return [c for c in candidates if c not in skipped] + skipped


def _position(label: str, ring: Sequence[str]) -> int | None:
    """Where ``label`` stands in the order: the same entry, else the first of its runtime."""
    if label in ring:
        return ring.index(label)
    runtime = label.split(":", 1)[0]
    return next((i for i, entry in enumerate(ring) if entry.split(":", 1)[0] == runtime), None)
