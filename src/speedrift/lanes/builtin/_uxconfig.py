"""uxdrift's configuration: the policy's ``[uxdrift]`` table overlaid by a task's ```` ```uxdrift ````
fence, validated into the pages to visit and the steps to run on each.

Fence keys are the original's (``url``, ``pages``, ``steps``, ``goals``, ``non_goals``, ``pov``,
``pov_focus``, ``llm``/``critique``, ``llm_model``, ``schema``) plus ``timeout_ms`` and
``viewport``; ``allowed_hosts``, ``serve`` and ``keep_runs`` come from the policy only, so a task's
description can neither widen where the browser goes nor start a command. Invariant: a config
that sends the browser off the allowed hosts is refused as a whole — every problem is an
``invalid_ux_config`` finding naming the key, where it was set, and the fix; nothing is ignored.
"""

from __future__ import annotations

import re
import shlex
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from speedrift.lanes.builtin._uxbrowser import PagePlan, Step, StepAction, host_allowed
from speedrift.lanes.context import LaneContext
from speedrift.lanes.model import LaneFinding, Severity

NAME = "uxdrift"
DEFAULTS: dict[str, Any] = {
    "url": "",  # the app's base URL, e.g. http://127.0.0.1:8000
    "pages": [],  # paths (or URLs on an allowed host) to visit
    "steps": [],  # [{action, selector, value, page}]
    "goals": [],  # what the UX should achieve (recorded for a critique)
    "non_goals": [],
    "pov": "",  # a named design point of view, e.g. doet-norman-v1 (recorded for a critique)
    "pov_focus": [],  # the principles of that POV to weigh most
    "timeout_ms": 15000,  # each navigation, step, network settle, and the serve readiness wait
    "viewport": "1280x800",
    "allowed_hosts": ["127.0.0.1", "localhost"],
    "serve": "",  # a command that starts the app (run for the check, then stopped)
    "critique": False,  # a role agent's critique: not run by the lane (an info finding says so)
    "keep_runs": 10,  # run directories kept under runs/
}
FENCE_KEYS = frozenset(
    {"schema", "url", "pages", "steps", "goals", "non_goals", "pov", "pov_focus", "critique", "llm"}
    | {"llm_model", "timeout_ms", "viewport"}
)
POLICY_ONLY = frozenset({"allowed_hosts", "serve", "keep_runs"})
STEP_KEYS = frozenset({"action", "selector", "value", "page"})
NEEDS_SELECTOR = frozenset({StepAction.CLICK, StepAction.FILL, StepAction.WAIT_FOR})
NEEDS_VALUE = frozenset({StepAction.FILL, StepAction.GOTO, StepAction.EXPECT_TEXT})
TAGS = ("ux",)


@dataclass(frozen=True, slots=True)
class UxConfig:
    url: str
    plans: tuple[PagePlan, ...]
    brief: Mapping[str, Any]  # goals, non_goals, pov, pov_focus, llm_model: what a critique reads
    critique: bool
    timeout_ms: int
    viewport: tuple[int, int]
    allowed_hosts: tuple[str, ...]
    serve: tuple[str, ...]
    keep_runs: int


class ConfigProblems:
    """``invalid_ux_config`` findings, one per key, each naming where the value came from."""

    def __init__(self, subject: str, from_fence: set[str]) -> None:
        self.subject = subject
        self.from_fence = from_fence
        self.findings: list[LaneFinding] = []

    def add(self, key: str, problem: str, fix: str) -> None:
        top = key.split("[")[0].split(".")[0]
        where = (
            "the task's ```uxdrift``` fence" if top in self.from_fence else "[uxdrift] in drift-policy.toml"
        )
        self.findings.append(
            LaneFinding(
                NAME,
                "invalid_ux_config",
                f"uxdrift configuration: {key} {problem} (in {where})",
                Severity.ERROR,
                tags=TAGS,
                subject=self.subject,
                key=key,
                evidence=(f"source: {where}",),
                fix=fix,
            )
        )


def read_config(ctx: LaneContext, subject: str) -> tuple[UxConfig | None, ConfigProblems]:
    """The policy's settings overlaid with the task's fence, validated. ``None``: no url and no
    pages (nothing declared); problems are reported with the key and the fix."""
    merged: dict[str, Any] = {**DEFAULTS, **ctx.settings}
    fence = dict(ctx.fence or {})
    problems = ConfigProblems(subject, set(fence))
    for key in sorted(fence):
        if key in POLICY_ONLY:
            problems.add(
                key,
                "cannot be set by a task",
                f"set {key} in [uxdrift] of .workgraph/drift-policy.toml: a task's description may not "
                "widen where the browser goes or start a command",
            )
        elif key not in FENCE_KEYS:
            problems.add(key, "is not a uxdrift key", f"use only: {', '.join(sorted(FENCE_KEYS))}")
    if fence.get("schema", 1) != 1:
        problems.add("schema", f"is {fence.get('schema')!r}; uxdrift reads schema 1", "set schema = 1")
    if "llm" in fence and "critique" not in fence:
        fence["critique"] = fence["llm"]
    merged.update({k: v for k, v in fence.items() if k in DEFAULTS and k not in POLICY_ONLY})
    text = {key: _text(merged, key, problems) for key in ("url", "pov", "viewport", "serve")}
    lists = {key: _strings(merged, key, problems) for key in ("pages", "goals", "non_goals", "allowed_hosts")}
    focus = merged.get("pov_focus")
    pov_focus = [focus] if isinstance(focus, str) else _strings(merged, "pov_focus", problems)
    critique = merged.get("critique")
    if not isinstance(critique, bool):
        problems.add("critique", "must be true or false", "set critique = true or false")
    llm_model = fence.get("llm_model", "")
    if not isinstance(llm_model, str):
        problems.add("llm_model", "must be a string", 'e.g. llm_model = "sonnet"')
    timeout_ms = _positive(merged, "timeout_ms", problems)
    keep_runs = _positive(merged, "keep_runs", problems)
    viewport = _viewport(text["viewport"], problems)
    allowed = tuple(h.strip().lower() for h in lists["allowed_hosts"] if h.strip())
    serve = _serve(text["serve"], problems)
    url, pages = text["url"], list(dict.fromkeys(lists["pages"]))
    raw_steps = merged.get("steps", [])
    if not url and not pages and not raw_steps:
        return None, problems
    if not url:
        problems.add("url", "is missing", 'set url, e.g. url = "http://127.0.0.1:8000"')
    elif not host_allowed(url, allowed):
        problems.add(
            "url",
            f"{url!r} is not an http(s) URL on an allowed host ({', '.join(allowed) or 'none'})",
            "point url at the app on this machine, or add its host to allowed_hosts in the policy",
        )
    if serve and not url:
        problems.add("serve", "needs url: its readiness is waited for there", "set url")
    if problems.findings or not url:
        return None, problems
    page_urls: dict[str, str] = {}
    for index, page in enumerate(pages):
        resolved = urllib.parse.urljoin(url, page)
        if not page.strip() or not host_allowed(resolved, allowed):
            problems.add(
                f"pages[{index}]",
                f"{page!r} is not a path on the app or a URL on an allowed host",
                'use paths such as "/" or "/settings"',
            )
        page_urls[page] = resolved
    steps = _steps(raw_steps, url, page_urls, allowed, problems)
    if problems.findings:
        return None, problems
    plans = tuple(
        PagePlan(page, page_urls[page], _slug(index, page), tuple(s for p, s in steps if p in ("", page)))
        for index, page in enumerate(pages)
    )
    brief = {
        "goals": lists["goals"],
        "non_goals": lists["non_goals"],
        "pov": text["pov"],
        "pov_focus": pov_focus,
        "llm_model": llm_model if isinstance(llm_model, str) else "",
    }
    return (
        UxConfig(url, plans, brief, critique is True, timeout_ms, viewport, allowed, serve, keep_runs),
        problems,
    )


def _text(merged: Mapping[str, Any], key: str, problems: ConfigProblems) -> str:
    value = merged.get(key, DEFAULTS[key])
    if not isinstance(value, str):
        problems.add(key, "must be a string", f"set {key} to a string")
        return ""
    return value.strip()


def _strings(merged: Mapping[str, Any], key: str, problems: ConfigProblems) -> list[str]:
    value = merged.get(key, DEFAULTS[key])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.add(key, "must be a list of strings", f'e.g. {key} = ["…"]')
        return []
    return list(value)


def _positive(merged: Mapping[str, Any], key: str, problems: ConfigProblems) -> int:
    value = merged.get(key, DEFAULTS[key])
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
        problems.add(
            key, f"is {value!r}; it must be a whole number of at least 1", f"set {key} = {DEFAULTS[key]}"
        )
        return int(DEFAULTS[key])
    return int(value)


def _viewport(value: str, problems: ConfigProblems) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{2,5})\s*[xX×]\s*(\d{2,5})", value)
    if match is None:
        problems.add("viewport", f"is {value!r}; it must be WIDTHxHEIGHT", 'e.g. viewport = "1280x800"')
        return 1280, 800
    return int(match.group(1)), int(match.group(2))


def _serve(value: str, problems: ConfigProblems) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        problems.add("serve", f"cannot be split into a command: {exc}", "fix its quoting (no shell is used)")
        return ()


def _steps(
    raw: Any, url: str, page_urls: Mapping[str, str], allowed: Sequence[str], problems: ConfigProblems
) -> list[tuple[str, Step]]:
    """(the page it belongs to, "" for every page; the step) for each declared step."""
    if not isinstance(raw, list):
        problems.add(
            "steps", "must be a list of tables", 'e.g. steps = [{action = "click", selector = "#go"}]'
        )
        return []
    steps: list[tuple[str, Step]] = []
    actions = ", ".join(a.value for a in StepAction)
    for index, item in enumerate(raw):
        where = f"steps[{index}]"
        if not isinstance(item, dict):
            problems.add(where, "must be a table", "write each step as {action = …, selector = …}")
            continue
        unknown = sorted(set(item) - STEP_KEYS)
        if unknown:
            problems.add(
                f"{where}.{unknown[0]}", "is not a step key", "a step takes action, selector, value, page"
            )
            continue
        fields = {key: item.get(key, "") for key in STEP_KEYS}
        if not all(isinstance(v, str) for v in fields.values()):
            problems.add(
                where, "has a value that is not a string", "give action, selector, value, page as strings"
            )
            continue
        try:
            action = StepAction(fields["action"])
        except ValueError:
            problems.add(f"{where}.action", f"is {fields['action']!r}", f"use one of {actions}")
            continue
        if action in NEEDS_SELECTOR and not fields["selector"]:
            problems.add(f"{where}.selector", f"is missing ({action} needs one)", "add a CSS selector")
            continue
        if action in NEEDS_VALUE and not fields["value"]:
            problems.add(f"{where}.value", f"is missing ({action} needs one)", "add the value")
            continue
        page = fields["page"]
        if page and page not in page_urls:
            problems.add(f"{where}.page", f"{page!r} is not one of pages", f"add {page!r} to pages")
            continue
        target = urllib.parse.urljoin(url, fields["value"]) if action is StepAction.GOTO else ""
        if target and not host_allowed(target, allowed):
            problems.add(
                f"{where}.value",
                f"goto {fields['value']!r} leaves the allowed hosts ({', '.join(allowed)})",
                "goto a path on the app",
            )
            continue
        steps.append((page, Step(index, action, fields["selector"], fields["value"], target)))
    return steps


def _slug(index: int, page: str) -> str:
    path = urllib.parse.urlsplit(page).path if "://" in page else page
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.strip("/")).strip("-.")[:60] or "root"
    return f"{index:02d}-{name}"
