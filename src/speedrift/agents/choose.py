"""Which runtime runs a task, following workgraph's conventions; the one home of the runtime names.

A task with `exec` is a shell task. Otherwise a `model` prefixed with a runtime name
(`claude:sonnet`, `codex:gpt-5.5`, `opencode:anthropic/claude-sonnet-4`) picks that CLI and the
rest is the model; an unprefixed model goes to the repo's default runtime. Other prefixes wg
knows (`openrouter:`, `ollama:` …) name wg's in-process agents, which speedrift does not run:
such a model is handed to the default runtime unchanged, where the CLI reports it.

Invariant: :data:`RUNTIME_NAMES` and :data:`MODEL_RUNTIMES` are the only lists of runtime names;
every other module (the CLI's choices, ``doctor``, fleetops) reads them from here. Importing this
module is cheap: the runtime classes are loaded the first time one is asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from speedrift.agents.protocol import Runtime
from speedrift.errors import InvalidValue

# `demo` is the scripted agent of `speedrift demo` (agents/demo.py): no model, no login.
RUNTIME_NAMES = ("claude", "codex", "opencode", "shell", "demo")
MODEL_RUNTIMES = ("claude", "codex", "opencode")  # the ones a model prefix may name


@functools.cache
def _runtimes() -> dict[str, Runtime]:
    from speedrift.agents.claude import ClaudeRuntime
    from speedrift.agents.codex import CodexRuntime
    from speedrift.agents.demo import DemoRuntime
    from speedrift.agents.opencode import OpenCodeRuntime
    from speedrift.agents.shell import ShellRuntime

    found: dict[str, Runtime] = {
        "claude": ClaudeRuntime(),
        "codex": CodexRuntime(),
        "opencode": OpenCodeRuntime(),
        "shell": ShellRuntime(),
        "demo": DemoRuntime(),
    }
    assert tuple(found) == RUNTIME_NAMES
    return found


def runtime_for(name: str) -> Runtime:
    try:
        return _runtimes()[name]
    except KeyError:
        raise InvalidValue(f"unknown agent runtime {name!r}; known: {', '.join(RUNTIME_NAMES)}") from None


def select_runtime(task: Mapping[str, Any], default: str) -> tuple[str, str | None]:
    """(runtime name, model without its runtime prefix) for `task`; `default` is the repo's."""
    if default not in RUNTIME_NAMES:
        raise InvalidValue(f"unknown default agent runtime {default!r}; known: {', '.join(RUNTIME_NAMES)}")
    command = task.get("exec")
    if isinstance(command, str) and command.strip():
        return "shell", None
    model = task.get("model")
    if not isinstance(model, str) or not model.strip():
        return default, None
    model = model.strip()
    prefix, sep, rest = model.partition(":")
    if sep and prefix in MODEL_RUNTIMES:
        return prefix, rest.strip() or None
    return default, model


def declared_runtime(task: Mapping[str, Any]) -> str | None:
    """The runtime ``task`` names itself (``exec`` → shell, a ``claude:``/``codex:``/``opencode:``
    model prefix → that CLI); None when it runs on the repo's default runtime."""
    command = task.get("exec")
    if isinstance(command, str) and command.strip():
        return "shell"
    model = task.get("model")
    if isinstance(model, str):
        prefix, sep, _rest = model.strip().partition(":")
        if sep and prefix in MODEL_RUNTIMES:
            return prefix
    return None
