"""The roles of the resilience fleet: ``speedrift roles list|show|run``.

``list`` and ``show`` print the roles as the repo at hand would run them — its template override
(``.speedrift/roles/<role>.md`` or ``[roles.<role>] template``), its runtime and model — and,
outside any repository, as the package ships them. ``run`` runs one role now through
fleet/roles/runner.py (a read-only checkout of the commit, its schema-checked output), recorded
under ``.speedrift/runs/_roles/<role>-<stamp>/``.

Invariant: what is printed as a role's output is only ever its validated output; anything else
(an invalid output, a failed run) exits 1 with the problems or the failure.
"""

from __future__ import annotations

import os
import sys
import threading
from argparse import Namespace
from pathlib import Path
from typing import Any

import orjson

from speedrift import layout, safejson
from speedrift.cli.output import emit_json, printable, say, table
from speedrift.cli.worker_cmds import cancel_on_signals, repo_context
from speedrift.errors import NotFound, Refused, SpeedriftError, UsageError
from speedrift.fleet.attempts import prune_records
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.roles.model import Role, load_role, parse_role_name, shipped
from speedrift.fleet.roles.names import RoleName
from speedrift.procs import make_non_dumpable
from speedrift.times import now_utc, stamp

MAX_INPUTS_BYTES = 16 * 1024 * 1024  # the inputs file of `roles run` (each input is clipped anyway)
INPUTS_SHAPE = '{"input name": "text", …}'


# --- where -----------------------------------------------------------------------------------------
def _where(args: Namespace) -> tuple[Path | None, RepoConfig]:
    """The repo at hand and its config; outside any repo, none and the defaults (the shipped
    roles) — unless a graph was named (``--dir``, ``$WG_DIR``), which must then exist."""
    try:
        repo, _graph, config = repo_context(args)
    except NotFound:
        if getattr(args, "dir", None) or os.environ.get("WG_DIR"):
            raise
        return None, RepoConfig()
    return repo, config


def _role(repo: Path | None, config: RepoConfig, name: RoleName) -> Role:
    return load_role(repo, name, config.role(name.value).template)


def _view(role: Role, repo: Path | None, config: RepoConfig) -> dict[str, Any]:
    """What ``show`` and ``list`` say of one role, beyond its data: where its template comes from
    and what it would run on here."""
    from speedrift.fleet.roles.runner import role_model

    options = config.role(role.name.value)
    runtime = options.runtime or config.default_runtime
    overridden = role.template_source != shipped(role.name).template_source
    return {
        "template_origin": "repo" if overridden else "shipped",
        "runtime": runtime,
        "model": role_model(config, role, runtime),
        "enabled": options.enabled,
        "example": role.examples[0] if role.examples else None,
        "repo": str(repo) if repo is not None else None,
    }


def _source(role: Role, repo: Path | None) -> str:
    """The template's source for people: a repo's file relative to the repo."""
    if repo is not None:
        try:
            return str(Path(role.template_source).relative_to(repo))
        except ValueError:
            pass
    return role.template_source


def _model_words(model: str | None) -> str:
    return model or "the CLI's default model"


# --- list ------------------------------------------------------------------------------------------
def roles_list(args: Namespace) -> int:
    repo, config = _where(args)
    rows: list[dict[str, Any]] = []
    for name in RoleName:
        problem: str | None = None
        try:
            role = _role(repo, config, name)
        except SpeedriftError as error:  # the repo's override is broken: shown, and exit 1
            role, problem = shipped(name), str(error)
        row = {k: v for k, v in role.as_dict().items() if k not in ("template", "schema")}
        view = _view(role, repo, config)
        del view["example"]
        rows.append({**row, **view, "problem": problem})
    if args.as_json:
        emit_json(rows)
    else:
        where = f"for {repo}" if repo is not None else "as shipped (no repository here)"
        table(
            f"Roles {where}",
            ["role", "tier", "runs on", "inputs (? optional)", "template"],
            [
                (
                    r["name"],
                    r["tier"],
                    f"{r['runtime']} {r['model']}" if r["model"] else f"{r['runtime']} (its default)",
                    ", ".join(i["name"] + ("" if i["required"] else "?") for i in r["inputs"]),
                    "PROBLEM (below)" if r["problem"] else r["template_origin"],
                )
                for r in rows
            ],
        )
        for r in rows:
            if r["problem"]:
                say(f"{r['name']}: {printable(r['problem'], newlines=True)}")
        say("`speedrift roles show ROLE` prints a role's template, schema and example.")
    return 1 if any(r["problem"] for r in rows) else 0


# --- show ------------------------------------------------------------------------------------------
def roles_show(args: Namespace) -> int:
    repo, config = _where(args)
    role = _role(repo, config, parse_role_name(args.role))
    view = _view(role, repo, config)
    if args.as_json:
        emit_json({**role.as_dict(), **view})
        return 0
    origin = "the repo's, replacing the shipped one" if view["template_origin"] == "repo" else "shipped"
    say(f"{role.name.value} — {role.title}")
    say(role.summary)
    say(f"tier: {role.tier.value}; here it runs on {view['runtime']}, {_model_words(view['model'])}")
    say(f"template: {printable(_source(role, repo))} ({origin})")
    say("inputs:")
    for given in role.inputs:
        need = "required" if given.required else "optional"
        say(f"  {given.name} ({need}): {given.description}")
    say(f"on a valid output: {role.on_valid}")
    say(f"on an invalid output: {role.on_invalid}")
    say("\n--- template ---")
    say(role.template.rstrip())
    say("\n--- output schema (JSON Schema 2020-12) ---")
    say(_pretty(dict(role.schema)))
    if view["example"] is not None:
        say("\n--- example output ---")
        say(_pretty(view["example"]))
    return 0


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


# --- run -------------------------------------------------------------------------------------------
def roles_run(args: Namespace) -> int:
    from speedrift.fleet.roles.runner import RoleCall, role_model, run_role

    make_non_dumpable()  # it holds the secrets it hands to the agent: no one else reads them
    repo, graph_store, config = repo_context(args)
    name = parse_role_name(args.role)
    inputs = _read_inputs(args.inputs)
    commit = _commit(repo, args.commit)
    task_id = args.task_id or ""
    if task_id and graph_store.load().get(task_id) is None:
        raise NotFound(f"no task {task_id!r} in {graph_store.graph_path}", hint="`speedrift list` shows them")
    role = _role(repo, config, name)
    role.render(inputs)  # an undeclared or missing input is refused before anything starts
    runtime = config.role(name.value).runtime or config.default_runtime
    record = _record_dir(repo, name)
    model = _model_words(role_model(config, role, runtime))
    _progress(f"running the {role.title} on {commit[:12]} ({runtime}, {model}); record: {record}")
    cancel = threading.Event()
    with cancel_on_signals(cancel):
        result = run_role(
            repo, config, RoleCall(name, inputs, record, commit, task_id=task_id), cancel=cancel
        )
    rounds = f"{result.rounds} round(s)"
    _progress(f"{name.value}: {'a valid output' if result.valid else 'no valid output'} after {rounds}")
    if args.as_json:
        emit_json(result.as_dict())
    elif result.output is not None:
        say(_pretty(result.output))
    else:
        say(result.reason())
        for problem in result.problems:
            say(f"  {printable(problem)}")
        if result.failure_class is not None:
            say(f"failure class: {result.failure_class.value}")
        say(f"run record: {record}")
    return 0 if result.valid else 1


def _progress(message: str) -> None:
    sys.stderr.write(f"speedrift: {printable(message)}\n")
    sys.stderr.flush()


def _read_inputs(source: str) -> dict[str, str]:
    """``--inputs``: a JSON object of input name to text, from a file or standard input (``-``).
    A null input counts as not given."""
    where = "standard input" if source == "-" else source
    try:
        if source == "-":
            raw = sys.stdin.buffer.read(MAX_INPUTS_BYTES + 1)
        else:
            with Path(source).open("rb") as handle:
                raw = handle.read(MAX_INPUTS_BYTES + 1)
    except FileNotFoundError:
        raise NotFound(f"--inputs {source}: no such file", hint=f"give a JSON file {INPUTS_SHAPE}") from None
    except OSError as error:
        raise Refused(f"--inputs {source}: cannot read it: {error.strerror or error}") from None
    if len(raw) > MAX_INPUTS_BYTES:
        raise UsageError(f"--inputs {where}: larger than {MAX_INPUTS_BYTES} bytes")
    try:
        value = safejson.loads(raw)
    except safejson.MalformedJson as bad:
        raise UsageError(
            f"--inputs {where}: not valid JSON: {bad.problem}", hint=f"give a JSON object {INPUTS_SHAPE}"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"--inputs {where}: not a JSON object", hint=f"give a JSON object {INPUTS_SHAPE}")
    inputs: dict[str, str] = {}
    for key, text in value.items():
        if text is None:
            continue
        if not isinstance(text, str):
            raise UsageError(
                f"--inputs {where}: input {printable(key)!r} is not text",
                hint="give every input as a JSON string (a diff, a task, a JSON document as text)",
            )
        inputs[key] = text
    return inputs


def _commit(repo: Path, rev: str) -> str:
    from speedrift.repo import git

    found = git.rev_parse(repo, rev) if rev.strip() and not rev.startswith("-") else None
    if found is None:
        raise NotFound(
            f"--commit {printable(rev)!r}: no such commit in {repo}",
            hint="give a commit, branch or tag of the repository (default HEAD: it needs a first commit)",
        )
    return found


def _record_dir(repo: Path, name: RoleName) -> Path:
    """A new record directory for this run (a run started in the same microsecond gets a suffix)."""
    base = layout.role_run_dir(repo, name.value, stamp(now_utc()))
    for n in range(1, 100):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        prune_records(path.parent)  # the newest role runs kept, as a task's attempts are
        return path
    raise Refused(f"cannot make a record directory beside {base}", hint="remove the old role runs there")
