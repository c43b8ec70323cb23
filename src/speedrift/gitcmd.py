"""Running git: the one place that builds a git command line and its environment.

Job: turn git arguments into an argv (``git`` + the configuration speedrift forces + args,
``--no-optional-locks`` for a look that must not take ``index.lock``) and an environment, and run
it through the process-group runner (:mod:`speedrift.procs`) under a timeout. git *operations*
(rev-parse, status, worktrees…) live in ``speedrift.repo.git``; the observer's concurrent reads in
``speedrift.control.observe.git``.

Invariants: argv is a list, never a shell string; git never prompts (``GIT_TERMINAL_PROMPT=0``),
speaks the C locale, never reads our stdin, and is never pointed at another repository by a
variable inherited from our own environment (``GIT_DIR``, ``GIT_WORK_TREE``…, as set in a git hook)
— only a variable the caller passes explicitly relocates it. Past its timeout the whole process
group is killed (:class:`~speedrift.procs.ProcessTimeout`).

**Git as a boundary.** A repository's git configuration and its hooks are files anyone with write
access to ``.git`` can change — an agent included — and git runs programs they name. Every git
process speedrift starts (the hub's observe-only ``status`` too) therefore gets, on its command
line, configuration that overrides the repository's (``-c`` is read last, and git hands it on to
the git processes it starts itself, through ``GIT_CONFIG_PARAMETERS``):

- ``core.fsmonitor=false`` — a configured fsmonitor is a program git runs on every command that
  refreshes the index (``status``, ``diff``, ``add``, ``commit``, ``checkout``, ``merge``…).
- ``core.hooksPath=<dir>`` — hooks run on ``commit`` (pre-commit, commit-msg, post-commit…),
  ``merge`` (post-merge), ``rebase`` (pre-rebase, post-rewrite), ``checkout`` and ``worktree add``
  (post-checkout), every ref update (reference-transaction) and more. ``<dir>`` is an empty
  directory speedrift owns (:func:`speedrift.statehome.no_hooks_dir`) unless the caller passes the
  hooks a repo approved (``[git] hooks = "repo"``: speedrift's own commits and landings, with only
  the hooks that were there before the attempt — ``speedrift.repo.gitboundary``).
- ``protocol.ext.allow=never`` — an ``ext::`` remote URL is a command line git runs.
- ``log.showSignature=false`` — else ``log``/``show`` run ``gpg.program`` on signed commits.
- ``diff``, ``log`` and ``show`` get ``--no-ext-diff --no-textconv``: ``diff.external``,
  ``diff.<driver>.command`` and ``diff.<driver>.textconv`` are programs git would run to render a
  diff; speedrift reads diffs as data (numstat, name-status, patches for the gates), never rendered.

And in the environment: ``GIT_EDITOR=true`` and ``GIT_SEQUENCE_EDITOR=true`` (``core.editor`` /
``sequence.editor``: speedrift never wants an editor; a commit message always comes with ``-F``),
``GIT_PAGER=cat`` (``core.pager``/``pager.<cmd>`` run only on a terminal, and git never gets one
from us; this makes it explicit).

Left to the repository, on purpose: ``filter.<driver>.clean/smudge/process`` and
``merge.<driver>.driver`` (content transformations a repo depends on — Git LFS is a filter;
dropping them would commit or check out the wrong bytes), and what reaches a remote
(``core.sshCommand``, ``credential.helper``, ``core.askPass``, ``core.gitProxy``): only network
commands consult them (and a partial clone's lazy fetch of a missing object), and they are how the
user reaches their remote. ``commit.gpgSign``/``gpg.program`` stay the user's signing policy. An
agent that adds or changes any of these in the repository's config is reported by the attempt's
git-boundary check (``speedrift.repo.gitboundary``) and the attempt is held for a human before
anything lands. The hub's fetch pins the rest it can (``control/authority.py``: an explicit
refspec, ``--upload-pack=git-upload-pack``, no tags, no auto-maintenance).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from speedrift import procs, statehome
from speedrift.errors import SpeedriftError

DEFAULT_TIMEOUT_S = 120.0
# set in our own environment (a hook, a script run by git), these would point git at the wrong
# repository
LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY")
BASE_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
    "GIT_EDITOR": "true",
    "GIT_SEQUENCE_EDITOR": "true",
    "GIT_PAGER": "cat",
}
READ_ONLY_ENV = {"GIT_OPTIONAL_LOCKS": "0"}
NO_OPTIONAL_LOCKS = "--no-optional-locks"
# forced on every git command line (see the module docstring); core.hooksPath is added per call
FORCED_CONFIG = ("core.fsmonitor=false", "protocol.ext.allow=never", "log.showSignature=false")
# subcommands that would render a diff through an external program or a textconv filter
RENDERS_DIFFS = frozenset({"diff", "log", "show", "whatchanged"})
NO_DIFF_PROGRAMS = ("--no-ext-diff", "--no-textconv")
# global options that take their value as the next argument
_GLOBAL_WITH_VALUE = frozenset({"-c", "-C", "--exec-path", "--git-dir", "--work-tree", "--namespace"})


class GitError(SpeedriftError):
    """git failed, or could not be run."""


def command(args: Sequence[str], *, no_optional_locks: bool = False, hooks: Path | None = None) -> list[str]:
    """``git`` + the forced configuration + ``args``; ``no_optional_locks``: git takes no optional
    lock (``index.lock``) while it looks, so a look can never make another process's ``git add``
    fail. ``hooks``: the directory whose hooks git may run — only a caller that approved them passes
    one (``[git] hooks = "repo"``); None gives git speedrift's empty hooks directory. Raises
    GitError when that directory is not empty (something was put where nothing belongs)."""
    hooks_path = hooks if hooks is not None else _no_hooks()
    forced = [part for item in (*FORCED_CONFIG, f"core.hooksPath={hooks_path}") for part in ("-c", item)]
    return ["git", *forced, *([NO_OPTIONAL_LOCKS] if no_optional_locks else []), *_no_diff_programs(args)]


def _no_hooks() -> Path:
    try:
        path = statehome.no_hooks_dir()
        found = sorted(os.listdir(path))
    except OSError:
        # no state home here (a read-only HOME): a path that cannot hold a hook ("/dev/null/<hook>"
        # is no file), so git still runs none
        return Path(os.devnull)
    if found:
        raise GitError(
            f"speedrift's empty hooks directory {path} holds {', '.join(found[:5])}: git would run them",
            hint=f"remove everything in {path} (nothing belongs there)",
        )
    return path


def _no_diff_programs(args: Sequence[str]) -> list[str]:
    """``args`` with ``--no-ext-diff --no-textconv`` right after a diff-rendering subcommand."""
    index = 0
    while index < len(args) and args[index].startswith("-"):
        index += 2 if args[index] in _GLOBAL_WITH_VALUE else 1
    if index < len(args) and args[index] in RENDERS_DIFFS:
        return [*args[: index + 1], *NO_DIFF_PROGRAMS, *args[index + 1 :]]
    return list(args)


def environment(extra: Mapping[str, str] | None = None, *, no_optional_locks: bool = False) -> dict[str, str]:
    """Our environment without repository-relocating variables, plus :data:`BASE_ENV`, then
    ``extra`` (which may relocate on purpose, e.g. ``GIT_INDEX_FILE``)."""
    clean = {k: v for k, v in os.environ.items() if k not in LOCATION_VARS}
    return {**clean, **BASE_ENV, **(READ_ONLY_ENV if no_optional_locks else {}), **(extra or {})}


def run(
    args: Sequence[str],
    cwd: Path,
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    input_text: str | None = None,
    no_optional_locks: bool = False,
    hooks: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``git <args>`` in ``cwd``, output as text. ``env``: variables added to :func:`environment`'s.
    ``check``: raise :class:`GitError` on a non-zero exit. ``hooks``: see :func:`command`. Raises
    GitError when git or ``cwd`` is missing, :class:`~speedrift.procs.ProcessTimeout` past
    ``timeout``."""
    line = command(args, no_optional_locks=no_optional_locks, hooks=hooks)
    full_env = environment(env, no_optional_locks=no_optional_locks)
    try:
        result = procs.run(line, cwd=cwd, env=full_env, input=input_text, timeout=timeout, text=True)
    except FileNotFoundError:
        raise _not_found(cwd, args) from None
    if check and result.returncode != 0:
        shown = " ".join([*([NO_OPTIONAL_LOCKS] if no_optional_locks else []), *args])
        raise GitError(f"git {shown} failed in {cwd}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def run_bytes(
    args: Sequence[str],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """``git <args>`` in ``cwd``, output as bytes (paths that are not UTF-8, blobs); never raises
    for git's exit code. Raises GitError when git or ``cwd`` is missing, ProcessTimeout past
    ``timeout``."""
    try:
        return procs.run(command(args), cwd=cwd, env=environment(env), input=input_bytes, timeout=timeout)
    except FileNotFoundError:
        raise _not_found(cwd, args) from None


def start(
    args: Sequence[str],
    cwd: Path,
    *,
    deadline: float,
    environ: Mapping[str, str] | None = None,
    no_optional_locks: bool = False,
    input_bytes: bytes | None = None,
    hooks: Path | None = None,
) -> procs.Running:
    """Start ``git <args>`` now; collect it with ``finish()``. ``deadline`` is a ``time.monotonic()``
    value; ``environ`` a prebuilt :func:`environment` (None builds it); ``input_bytes`` its stdin;
    ``hooks``: see :func:`command`. Raises ProcessTimeout when the deadline has passed already,
    OSError when git cannot be started, GitError when speedrift's hooks directory is not empty."""
    full_env = environ if environ is not None else environment(no_optional_locks=no_optional_locks)
    line = command(args, no_optional_locks=no_optional_locks, hooks=hooks)
    return procs.start(line, deadline=deadline, cwd=cwd, env=full_env, input=input_bytes)


def _not_found(cwd: Path, args: Sequence[str]) -> GitError:
    if not Path(cwd).is_dir():
        return GitError(f"{cwd} does not exist (git {' '.join(args[:2])})")
    return GitError("git is not installed", hint="install git (e.g. `apt-get install git`)")
