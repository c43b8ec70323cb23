"""The sandbox an agent runs in: bubblewrap (``bwrap``) around the argv its runtime built.

Job: the one home of the containment policy. :func:`probe` says whether bwrap works on this
machine (asked once per process, the verdict cached), :func:`decide` turns ``[sandbox] mode`` and
that verdict into what an attempt runs in (and the evidence says), :func:`wrap` prefixes a
runtime's argv with the bwrap command line and rewrites its environment, :func:`discard` removes
the attempt's private HOME and TMPDIR once the agent is gone.

Invariant: a sandboxed agent can write only its worktree and its own private HOME and TMPDIR
(plus, deliberately, its CLI's credential file, below); it cannot see speedrift's processes or
their environment, cannot write the repository's git data (hooks, config, refs, objects), the
main checkout or anything else, and cannot take back the privileges it was started without. The
wrapper only prefixes: the runtime's argv reaches the CLI unchanged.

The policy, and why:

- **namespaces**: new pid, ipc and uts namespaces (``--unshare-pid --unshare-ipc --unshare-uts``)
  with a fresh ``/proc``: the agent sees only its own processes, so ``/proc/$PPID/environ`` is the
  sandbox's init (which carries the agent's own environment), never speedrift's. ``--unshare-net``
  only with ``[sandbox] network = false``: the CLIs must reach their provider.
- **privileges**: ``--cap-drop ALL``. bwrap started by root keeps every capability unless told
  otherwise, and a root agent with ``CAP_SYS_ADMIN`` simply remounts ``/`` read-write.
- **filesystem**: ``--ro-bind / /`` (everything read-only), ``--dev /dev`` (null, zero, random,
  tty, pts, shm: nothing else), ``--proc /proc``; then read-write: the private HOME and TMPDIR,
  the worktree. Last come two read-only binds that no earlier rw bind can undo: the worktree's
  ``.git`` file (an agent that rewrote it would point speedrift's own later git commands — run
  outside the sandbox — at a git dir of its making, with its hooks and config) and the
  repository's common git dir.
- **the worktree's git admin dir** (``<common>/worktrees/<name>/``, holding its HEAD and index)
  stays read-only with the rest of the common dir. ``git status``, ``git diff`` and ``git log`` work
  (status only skips its opportunistic index refresh); ``git add`` and ``git commit`` fail with
  "Read-only file system". Speedrift, not the agent, commits what the agent leaves — and a
  writable admin dir would let the agent move its worktree's HEAD onto another branch that
  speedrift would then commit to.
- **process supervision**: ``--die-with-parent``, and no ``--new-session``. The session starts
  bwrap as the leader of its own process group (:func:`speedrift.procs.popen_group`: a new session,
  so no controlling terminal and no ``TIOCSTI`` injection, which is what ``--new-session`` guards
  against); the agent stays in that group, so ``agent_pgid`` still names everything and a cancel,
  a budget or a dead worker's cleanup still ends it. A process that leaves the group is still in
  the pid namespace, which dies with its init. One difference: on SIGTERM bwrap itself exits, and
  ``--die-with-parent`` then SIGKILLs the sandbox at once, so a sandboxed agent gets no grace.
- **a private HOME and TMPDIR** under the attempt's run dir (``layout.sandbox_dir``), made fresh
  for the attempt and removed by :func:`discard`: nothing an agent leaves in its home reaches the
  next attempt or the user's own.
- **a task's session store** (``Policy.sessions``, fleet/resume.py), when the task may resume its
  agent's session in a later attempt: bound read-write where the runtime's CLI keeps its sessions
  (:data:`SESSION_DIRS`), so they outlive this private home; fleet/resume.py removes it.
- **the agent CLIs' own configuration and login.** With a private HOME the CLIs would lose
  ``~/.claude*``, ``~/.codex`` and ``~/.config/opencode`` + ``~/.local/share/opencode``. From the
  home the agent's environment names (and from ``CLAUDE_CONFIG_DIR``, ``CODEX_HOME`` and the
  ``XDG_*_HOME`` it names, which are pointed into the private home) the sandbox maps in:

  - *configuration* (claude's ``settings.json``, ``CLAUDE.md``, agents, commands, skills, plugins;
    codex's ``config.toml``, profiles, ``AGENTS.md``, prompts, rules; opencode's whole config
    dir): bound **read-only** into a fresh, writable directory of the private home. The CLIs
    write session logs, caches and databases next to it (into the private home, discarded), but
    an agent cannot plant hooks or settings that would run in the user's next interactive session;
  - ``~/.claude.json``, which Claude Code rewrites on every start (replace by rename): **copied**
    into the private home; the copy is discarded with it;
  - the *credential files* (``.credentials.json``, codex's ``auth.json``, opencode's
    ``auth.json``): bound **read-write**, because the CLIs refresh OAuth tokens into them and a
    refresh written only to a discarded copy could leave the user's own login holding a rotated,
    dead refresh token. Claude Code falls back from a rename to an in-place copy on EBUSY (read
    from its bundle); codex and opencode write these files in place. The agent could read them in
    any case — its CLI has to.

  ``.rustup``, ``.cargo/bin`` and ``.pyenv`` are bound read-only too where they exist, because
  their shims find their toolchains through ``$HOME``.

- **credentials the agent has no use for are hidden**: everything the user can read stays
  readable (read-only) to the agent, except the paths of :data:`HIDDEN` (``~/.ssh``, ``~/.aws``,
  ``~/.gnupg``, cloud and cluster logins, git and package-registry credentials …) and ``[sandbox]
  hide``, each under the home the agent's environment names or absolute: a directory becomes an
  empty read-only one, a file an empty one. ``[sandbox] reveal`` leaves named defaults visible (an
  agent that must push over ssh). A path that holds the worktree, the run dir or a CLI's own
  state is never hidden (that would hide what the agent needs); it is skipped and said so.

What the sandbox does not do: a private HOME changes ``$HOME``, not what ``/`` shows, so any other
readable file stays readable. A Unix socket on the read-only filesystem (a Docker socket) can still
be connected to, and with the network shared so can abstract sockets. ``/tmp`` itself is
read-only: ``$TMPDIR`` is the agent's writable temporary directory.
"""

from __future__ import annotations

import fnmatch
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from speedrift import layout, procs
from speedrift.errors import Refused

Mode = Literal["auto", "required", "off"]  # ``[sandbox] mode`` (fleet/config.py)
BWRAP = "bwrap"
FIX = "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`)"
PROBE_TIMEOUT_S = 20.0
# Credentials an agent has no use for, hidden from it (``~`` is the home its environment names).
HIDDEN = (
    "~/.ssh",
    "~/.aws",
    "~/.gnupg",
    "~/.password-store",
    "~/.config/gcloud",
    "~/.azure",
    "~/.kube",
    "~/.docker/config.json",
    "~/.config/gh/hosts.yml",
    "~/.git-credentials",
    "~/.netrc",
    "~/.npmrc",
    "~/.pypirc",
    "~/.vault-token",
    "~/.terraform.d/credentials.tfrc.json",
)

# Every sandbox: namespaces, privileges, devices, /proc. The probe runs exactly these.
_BASE = (
    "--die-with-parent",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--cap-drop",
    "ALL",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
)


@dataclass(frozen=True, slots=True)
class _CliState:
    """One directory of an agent CLI's state: where it is (an environment variable naming it, else
    relative to HOME), what of it is configuration (globs, bound read-only) and what is a
    credential file (bound read-write)."""

    runtime: str  # the runtime whose CLI keeps it: only that runtime's agents get it
    variable: str | None  # e.g. CODEX_HOME; its value is the directory itself
    parent_variable: str | None  # e.g. XDG_CONFIG_HOME; the directory is ``sub`` under it
    home_relative: str  # under HOME when neither variable is set
    sub: str  # under the private home (and under ``parent_variable``'s value)
    read_only: tuple[str, ...]
    read_write: tuple[str, ...]
    # directories of ``read_only`` the CLI also writes into: made fresh and writable, each of their
    # entries bound read-only (codex installs its own system skills under ``skills/.system``)
    open_dirs: tuple[str, ...] = ()


_CLI_STATE = (
    _CliState(
        "claude",
        "CLAUDE_CONFIG_DIR",
        None,
        ".claude",
        ".claude",
        ("settings.json", "CLAUDE.md", "agents", "commands", "skills", "output-styles", "plugins"),
        (".credentials.json",),
    ),
    _CliState(
        "codex",
        "CODEX_HOME",
        None,
        ".codex",
        ".codex",
        ("config.toml", "*.config.toml", "AGENTS.md", "AGENTS.override.md", "prompts", "skills", "rules"),
        ("auth.json",),
        ("skills",),
    ),
    _CliState("opencode", None, "XDG_CONFIG_HOME", ".config/opencode", ".config/opencode", ("*",), ()),
    _CliState(
        "opencode",
        None,
        "XDG_DATA_HOME",
        ".local/share/opencode",
        ".local/share/opencode",
        (),
        ("auth.json", "mcp-auth.json"),
    ),
)
# XDG base directories the agent's environment names: pointed into the private home
_XDG = {
    "XDG_CONFIG_HOME": ".config",
    "XDG_DATA_HOME": ".local/share",
    "XDG_CACHE_HOME": ".cache",
    "XDG_STATE_HOME": ".local/state",
}
_TOOLCHAINS = (".rustup", ".cargo/bin", ".pyenv")  # shims that find their toolchain through $HOME


class SandboxUnavailable(Refused):
    """``[sandbox] mode = "required"`` and bwrap cannot run here: the attempt is refused before
    its claim, nothing burned."""


# --- can bwrap run here? -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Probe:
    usable: bool
    bwrap: str | None  # where it was found
    why: str  # "" when usable: else why not, in one line


_probes: dict[tuple[str | None, bool], Probe] = {}
_probe_lock = threading.Lock()


def probe(*, network: bool = True) -> Probe:
    """Whether ``bwrap`` (looked for on our PATH) can build the sandbox here, network cut or not:
    it runs ``true`` inside exactly the base policy. Asked once per process per bwrap and network
    setting; the verdict is cached (a PATH without bwrap is a different question)."""
    found = shutil.which(BWRAP)
    key = (found, network)
    with _probe_lock:
        known = _probes.get(key)
    if known is not None:
        return known
    verdict = _run_probe(found, network)
    with _probe_lock:
        _probes[key] = verdict
    return verdict


def forget() -> None:
    """Drop the cached verdicts (after installing bubblewrap, in a long-lived process)."""
    with _probe_lock:
        _probes.clear()


def _run_probe(found: str | None, network: bool) -> Probe:
    if found is None:
        return Probe(False, None, "bwrap (bubblewrap) is not installed")
    argv = [
        found,
        *_BASE,
        *(() if network else ("--unshare-net",)),
        "--",
        shutil.which("true") or "/bin/true",
    ]
    try:
        done = procs.run(argv, timeout=PROBE_TIMEOUT_S, end_group=True, text=True)
    except procs.ProcessTimeout:
        return Probe(False, found, f"bwrap did not finish a trivial sandbox within {PROBE_TIMEOUT_S:g}s")
    except OSError as error:
        return Probe(False, found, f"bwrap could not start: {error.strerror or error}")
    if done.returncode != 0:
        said = next((line.strip() for line in reversed(done.stderr.splitlines()) if line.strip()), "")
        said = said or f"exit code {done.returncode}"
        return Probe(False, found, f"bwrap cannot build a sandbox here ({said[:200]})")
    return Probe(True, found, "")


# --- what an attempt runs in ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Decision:
    """What one attempt runs in, as its evidence records it."""

    used: bool
    network: bool = True
    why: str = ""  # when not used: why not
    bwrap: str | None = None

    def evidence(self) -> dict[str, Any]:
        if self.used:
            return {"used": True, "network": self.network}
        return {"used": False, "why": self.why}


def decide(mode: Mode, *, network: bool) -> Decision:
    """The sandbox an attempt gets under ``[sandbox] mode``: ``off`` never; otherwise bwrap when it
    works here. Refusing a ``required`` attempt without one is the caller's (:func:`require`)."""
    if mode == "off":
        return Decision(False, network, 'turned off ([sandbox] mode = "off" in speedrift.toml)')
    found = probe(network=network)
    if not found.usable:
        return Decision(False, network, f"{found.why}; {FIX}")
    return Decision(True, network, bwrap=found.bwrap)


def require(mode: Mode, decision: Decision) -> None:
    """Raise :class:`SandboxUnavailable` when ``mode`` is ``required`` and ``decision`` has none."""
    if mode == "required" and not decision.used:
        why = decision.why.split("; ")[0]
        raise SandboxUnavailable(
            f'[sandbox] mode = "required" in speedrift.toml, but the agent cannot be sandboxed: {why}',
            hint=f'{FIX}; or set [sandbox] mode = "auto" to run unsandboxed where bwrap is missing',
        )


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything :func:`wrap` needs for one attempt."""

    bwrap: str  # the executable (from :func:`decide`)
    worktree: Path
    run_dir: Path  # the private HOME and TMPDIR are made under it (``layout.sandbox_dir``)
    git_common_dir: Path | None = None
    network: bool = True
    # whose CLI state (configuration, login) is mapped into the private home: that runtime's only
    # (a shell agent gets none: least privilege, and less to set up per attempt); None: every CLI's
    runtime: str | None = None
    # what is hidden from the agent (``~`` is its environment's HOME): :data:`HIDDEN` by default
    hide: tuple[str, ...] = HIDDEN
    # a role's read-only checkout: the worktree is bound read-only but for its ``.speedrift/``,
    # where the role writes its report
    read_only: bool = False
    # the task's session store (fleet/resume.py): kept across its attempts, bound read-write over
    # where ``runtime``'s CLI keeps its sessions in the private home (see :data:`SESSION_DIRS`)
    sessions: Path | None = None

    @property
    def home(self) -> Path:
        return layout.sandbox_dir(self.run_dir) / "home"

    @property
    def tmp(self) -> Path:
        return layout.sandbox_dir(self.run_dir) / "tmp"


@dataclass(frozen=True, slots=True)
class Wrapped:
    argv: list[str]  # bwrap's command line, then the runtime's argv unchanged
    env: dict[str, str]
    not_hidden: tuple[str, ...] = ()  # paths of ``hide`` left visible, and why (see hidden_paths)


def wrap(policy: Policy, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Wrapped:
    """The bwrap command line that runs ``argv`` in ``cwd`` in the sandbox, and the environment for it
    (``env`` with HOME, TMPDIR and the CLI state variables pointed into the private home, which is
    made here, fresh). Raises OSError when the private directories cannot be made."""
    discard(policy)  # a crashed earlier run of this attempt left its own: never reused
    for folder in (layout.sandbox_dir(policy.run_dir), policy.home, policy.tmp):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    # bwrap binds and mounts at absolute paths: every one resolved (symlinks too) on this side
    home, tmp, worktree = policy.home.resolve(), policy.tmp.resolve(), policy.worktree.resolve()
    child = dict(env)
    binds = _session_binds(policy, home) + _cli_binds(env, home, child, policy.runtime)
    child["HOME"] = str(home)
    child["TMPDIR"] = str(tmp)
    command = [policy.bwrap, *_BASE]
    if not policy.network:
        command.append("--unshare-net")
    keep = [home, tmp, worktree, policy.run_dir.resolve(), *_bind_sources(binds)]
    hidden, not_hidden = hidden_paths(policy.hide, env.get("HOME"), keep)
    empty = layout.sandbox_dir(policy.run_dir) / "empty"  # what a hidden file shows: nothing
    empty.touch(mode=0o444)
    command += hiding(hidden, empty.resolve())
    command += ["--bind", str(home), str(home), "--bind", str(tmp), str(tmp), *binds]
    if policy.read_only:
        reports = worktree / layout.STATE_DIR
        reports.mkdir(exist_ok=True)
        command += ["--ro-bind", str(worktree), str(worktree), "--bind", str(reports), str(reports)]
    else:
        command += ["--bind", str(worktree), str(worktree)]
    command += ["--ro-bind-try", str(worktree / ".git"), str(worktree / ".git")]
    if policy.git_common_dir is not None:
        common = str(policy.git_common_dir.resolve())
        command += ["--ro-bind", common, common]
    command += ["--chdir", str(cwd.resolve()), "--"]
    return Wrapped([*command, *argv], child, tuple(not_hidden))


def hidden_paths(
    patterns: Sequence[str], home: str | None, keep: Sequence[Path]
) -> tuple[list[Path], list[str]]:
    """The existing paths ``patterns`` name (``~`` is ``home``; relative ones are skipped), resolved,
    and what was skipped and why: a path that holds (or is) one of ``keep`` — the worktree, the run
    dir, a CLI's own state — is never hidden, since that would hide what the agent needs."""
    found: list[Path] = []
    skipped: list[str] = []
    for pattern in patterns:
        if pattern.startswith("~"):
            if not home:
                continue
            raw = Path(home) / pattern[1:].lstrip("/")
        else:
            raw = Path(pattern)
        if not raw.is_absolute():
            skipped.append(f"{pattern}: not an absolute path or under ~")
            continue
        try:
            path = raw.resolve(strict=True)
        except (OSError, RuntimeError):
            continue  # not there: nothing to hide
        if any(path == k or k.is_relative_to(path) for k in keep):
            skipped.append(f"{pattern}: holds what the agent needs (its worktree, run dir or CLI state)")
            continue
        found.append(path)
    return found, skipped


def hiding(paths: Sequence[Path], empty: Path) -> list[str]:
    """bwrap arguments hiding ``paths`` (from :func:`hidden_paths`): an empty read-only directory
    over a directory, the empty file ``empty`` (read-only) over a file. Not /dev/null: a bind of a
    device node lands on a nodev mount, where opening it is refused rather than empty."""
    args: list[str] = []
    for path in paths:
        if path.is_dir():
            args += ["--tmpfs", str(path), "--remount-ro", str(path)]
        else:
            args += ["--ro-bind", str(empty), str(path)]
    return args


def _bind_sources(binds: Sequence[str]) -> list[Path]:
    """The source paths of bwrap ``--bind``/``--ro-bind`` triples (the CLI state mapped in)."""
    sources: list[Path] = []
    for index, arg in enumerate(binds):
        if arg in ("--bind", "--ro-bind", "--bind-try", "--ro-bind-try") and index + 1 < len(binds):
            sources.append(Path(binds[index + 1]))
    return sources


def discard(policy: Policy) -> None:
    """Remove the attempt's private HOME and TMPDIR (never following a link the agent left)."""
    remove_private(policy.run_dir)


def remove_private(run_dir: Path) -> None:
    """Remove the private HOME and TMPDIR a sandboxed agent had under ``run_dir``, if any (also
    what crash recovery does for an attempt whose process died)."""
    shutil.rmtree(layout.sandbox_dir(run_dir), ignore_errors=True)


def _cli_binds(env: Mapping[str, str], home: Path, child: dict[str, str], runtime: str | None) -> list[str]:
    """bwrap arguments mapping the agent CLIs' configuration and login into the private ``home``
    (see the module docstring) — ``runtime``'s only, every CLI's when None; ``child`` gets the
    variables that must now point there."""
    real_home = env.get("HOME")
    binds: list[str] = []
    for state in _CLI_STATE:
        if runtime is not None and state.runtime != runtime:
            continue
        source = _state_source(state, env, real_home)
        target = home / state.sub
        if state.variable and env.get(state.variable):
            child[state.variable] = str(target)
        if source is None or not source.is_dir():
            continue
        target.mkdir(parents=True, exist_ok=True)
        for entry in _entries(source):
            if entry.name in state.open_dirs and entry.is_dir():
                binds += _read_only_entries(entry, target / entry.name)
            elif any(fnmatch.fnmatch(entry.name, glob) for glob in state.read_only):
                binds += ["--ro-bind", str(entry), str(target / entry.name)]
            elif entry.name in state.read_write and entry.is_file():
                binds += ["--bind", str(entry), str(target / entry.name)]
    for variable, sub in _XDG.items():
        if env.get(variable):
            child[variable] = str(home / sub)
    if runtime in (None, "claude"):
        _copy_claude_json(env, real_home, home)
    if real_home:
        for sub in _TOOLCHAINS:
            source = Path(real_home) / sub
            if source.is_dir():
                binds += ["--ro-bind", str(source), str(home / sub)]
    return binds


# Where each CLI keeps its sessions, under the private home: what a task's session store stands in
# for, so that a later attempt (a new private home) can resume the session (fleet/resume.py).
# opencode keeps them in its SQLite database in its data dir, whose auth files are bound over it.
SESSION_DIRS = {"claude": ".claude/projects", "codex": ".codex/sessions", "opencode": ".local/share/opencode"}


def _session_binds(policy: Policy, home: Path) -> list[str]:
    """The task's session store bound over the runtime's session directory in ``home``; first, so
    that the CLI's own files bound into the same directory land on top of it."""
    sub = SESSION_DIRS.get(policy.runtime or "")
    if policy.sessions is None or sub is None:
        return []
    store = policy.sessions / (policy.runtime or "")
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = home / sub
    target.mkdir(parents=True, exist_ok=True)
    return ["--bind", str(store.resolve()), str(target)]


def _read_only_entries(source: Path, target: Path) -> list[str]:
    target.mkdir(parents=True, exist_ok=True)
    binds: list[str] = []
    for entry in _entries(source):
        binds += ["--ro-bind", str(entry), str(target / entry.name)]
    return binds


def _state_source(state: _CliState, env: Mapping[str, str], real_home: str | None) -> Path | None:
    if state.variable and env.get(state.variable):
        return Path(env[state.variable])
    if state.parent_variable and env.get(state.parent_variable):
        return Path(env[state.parent_variable]) / Path(state.sub).name
    return Path(real_home) / state.home_relative if real_home else None


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _copy_claude_json(env: Mapping[str, str], real_home: str | None, home: Path) -> None:
    """Claude Code's global state file: next to its config dir when ``CLAUDE_CONFIG_DIR`` is set,
    else in HOME. Copied (it is rewritten on every start), owner-only."""
    configured = env.get("CLAUDE_CONFIG_DIR")
    if configured:
        source, target = Path(configured) / ".claude.json", home / ".claude" / ".claude.json"
    elif real_home:
        source, target = Path(real_home) / ".claude.json", home / ".claude.json"
    else:
        return
    if not source.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(source, target)
        target.chmod(0o600)
    except OSError:
        target.unlink(missing_ok=True)  # claude starts without it, as on a fresh machine
