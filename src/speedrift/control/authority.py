"""The hub's authority contract, as code.

The hub may restart services, run its handlers, emit tasks and publish status. It never rewrites
history, pushes (let alone force-pushes), deletes branches it does not own, touches a user's
checkout (least of all one with uncommitted changes) or lands work past the gates. Three guards
enforce that, and every refusal is an :class:`AuthorityRefused` naming its ``rule``:

- :class:`HubGit` is the only way a hub handler runs git. It checks argv against an allowlist
  before anything runs: read-only queries, ``fetch`` into remote-tracking refs, and detached
  scratch worktrees under ``.speedrift/``. Everything else is refused, fail-closed. Its git runs
  no hook and no fsmonitor of the repo (speedrift/gitcmd.py). A fetch must name its refspec into
  ``refs/remotes/<remote>/`` (:meth:`HubGit.fetch` builds the one the hub runs: never the repo's
  configured refspec, no tags, no program the repo configures), and runs under a
  ``reference-transaction`` hook of the hub's own that makes git refuse any ref update outside
  that namespace (rule ``fetch_outside_remote``).
- :func:`guard_action` re-checks the repo's control mode and lease right before each action.
- :func:`refuse_gate_bypass` refuses an action that asks to land or merge work itself: landing
  goes only through the gated worker pipeline (``speedrift run`` / the service).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from speedrift import fsutil, layout, statehome
from speedrift.control.plan.policy import MODE_PERMITS
from speedrift.errors import Refused
from speedrift.gitcmd import GitError
from speedrift.layout import STATE_PREFIX
from speedrift.register.actions import ACTION_KINDS, PARAMS_TYPES, Action
from speedrift.register.record import AUTOMATION_MODES, ControlState
from speedrift.repo import git, gitlocks
from speedrift.repo.worktrees import BRANCH_PREFIX

OWN_REF_PREFIXES = (f"refs/heads/{BRANCH_PREFIX}", "refs/speedrift/")
DEFAULT_TIMEOUT_S = 60.0

# Params that would ask a handler to land work itself. No params type has one; an action carrying
# them anyway (an untyped mapping, say) is refused naming them.
BYPASS_PARAMS = ("land", "merge", "skip_gates", "no_gates", "bypass_gates", "force")


class AuthorityRefused(Refused):
    """A refusal under the authority contract; ``rule`` is the stable key the ledger records."""

    def __init__(self, message: str, *, rule: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule = rule


# ---------------------------------------------------------------- actions


def guard_action(action: Action, control: ControlState, now: datetime) -> str:
    """Raise unless the repo's mode and lease authorise ``action`` at ``now``. Returns the basis."""
    allowed, why = control.authority(now)
    if not allowed:
        rule = "lease" if control.mode in AUTOMATION_MODES else "mode"
        raise AuthorityRefused(
            f"{action.id}: no authority in {action.repo}: {why}",
            rule=rule,
            hint=f"`speedrift mode {action.repo} autonomous --lease-ttl 2h` grants it",
        )
    if action.kind not in MODE_PERMITS[control.mode]:
        raise AuthorityRefused(
            f"{action.id}: control mode {control.mode} does not permit {action.kind}",
            rule="mode",
            hint="dispatching workers needs autonomous mode",
        )
    return why


def refuse_gate_bypass(action: Action) -> None:
    """The hub never lands work itself; an action asking to merge/land directly is refused, and so is
    one whose params are not its kind's typed params (``PARAMS_TYPES``): handlers rely on them."""
    if action.kind not in ACTION_KINDS:
        raise AuthorityRefused(
            f"{action.id}: no deterministic handler for {action.kind!r}; the hub never merges or lands "
            "work itself",
            rule="gate_bypass",
        )
    params: object = action.params
    given = (
        params if isinstance(params, Mapping) else {key: getattr(params, key, None) for key in BYPASS_PARAMS}
    )
    asked = [key for key in BYPASS_PARAMS if given.get(key)]
    if asked:
        raise AuthorityRefused(
            f"{action.id}: asks to {', '.join(asked)}; work lands only through the gated worker "
            "pipeline (`speedrift run` or the repo's service), never by the hub directly",
            rule="gate_bypass",
        )
    expected = PARAMS_TYPES[action.kind]
    if not isinstance(params, expected):
        raise AuthorityRefused(
            f"{action.id}: its params are {type(params).__name__}, not what {action.kind} carries "
            f"({' or '.join(t.__name__ for t in expected)}); the hub runs only what it planned",
            rule="gate_bypass",
        )


# ---------------------------------------------------------------- git


def _refuse(rule: str, message: str, hint: str | None = None) -> AuthorityRefused:
    return AuthorityRefused(f"refused: {message}", rule=rule, hint=hint)


# Read-only subcommands: any options except those that write files or run programs.
READ_ONLY = frozenset(
    {
        "status", "rev-parse", "log", "diff", "show", "for-each-ref", "merge-base", "ls-files",
        "rev-list", "cat-file", "describe", "name-rev", "ls-tree", "shortlog", "diff-tree",
        "check-ignore", "show-ref",
    }
)  # fmt: skip
_WRITING_OPTIONS = ("--output",)
NO_OPTIONAL_LOCKS = {"GIT_OPTIONAL_LOCKS": "0"}
GLOBAL_OK = frozenset({"--no-optional-locks", "--no-pager", "-P", "--literal-pathspecs"})
HISTORY_REWRITE = frozenset({"reset", "rebase", "filter-branch", "filter-repo", "replace"})
CHECKOUT_WRITES = frozenset(
    {"checkout", "switch", "restore", "clean", "stash", "merge", "cherry-pick", "revert", "am", "apply",
     "pull", "mv", "rm", "add", "commit", "notes"}
)  # fmt: skip
LANDING = frozenset({"merge", "cherry-pick", "revert", "am", "pull", "commit"})
# every hub fetch carries these: no tags (refs/tags/ is outside refs/remotes/), no configured
# refspec mapping (--refmap=: only the refspec given), no FETCH_HEAD in the user's git dir, no
# submodule fetches, no garbage collection afterwards, and git's own upload-pack — never a
# program the repo's config names (remote.<name>.uploadpack)
HUB_FETCH_FLAGS = (
    "--no-tags", "--refmap=", "--no-write-fetch-head", "--no-recurse-submodules", "--no-auto-maintenance",
    "--upload-pack=git-upload-pack",
)  # fmt: skip
FETCH_OPTIONS = frozenset(
    {"--prune", "-p", "--quiet", "-q", "--verbose", "-v", "--dry-run", "--progress", "--no-progress",
     *HUB_FETCH_FLAGS}
)  # fmt: skip
# flags without which git would write refs the hub names no refspec for (tags, configured mappings)
_FETCH_NAMESPACE_FLAGS = ("--no-tags", "--refmap=")
_REMOTE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")
FETCH_REMOTE_ENV = "SPEEDRIFT_FETCH_REMOTE"
GUARD_MARK = "speedrift-refused-ref-update:"
# the hub fetch's reference-transaction hook: git aborts the whole update when it exits non-zero
# in the "prepared" state (remote names are checked against _REMOTE_NAME: no pattern characters)
FETCH_GUARD = f"""#!/bin/sh
# speedrift: the hub's git fetch may update refs/remotes/<remote>/ only (control/authority.py)
[ "$1" = prepared ] || exit 0
[ -n "${FETCH_REMOTE_ENV}" ] || {{ echo "{GUARD_MARK} no remote named" >&2; exit 1; }}
refused=0
while read -r old new ref; do
  case "$ref" in
    "refs/remotes/${FETCH_REMOTE_ENV}/"*) ;;
    *) echo "{GUARD_MARK} $ref" >&2; refused=1 ;;
  esac
done
exit $refused
"""
GUARD_HOOK = "reference-transaction"


BRANCH_LISTING = frozenset(
    {"--list", "-l", "-a", "--all", "-r", "--remotes", "-v", "-vv", "--verbose", "--show-current",
     "--contains", "--no-contains", "--merged", "--no-merged", "--points-at", "--column", "--no-column",
     "--ignore-case", "-i"}
)  # fmt: skip
FORCE_PUSH = ("--force", "-f", "--force-with-lease", "--force-if-includes", "--mirror", "--delete", "-d")


def hub_refspec(remote: str) -> str:
    """The one refspec the hub fetches with: the remote's branches into its remote-tracking refs."""
    return f"+refs/heads/*:refs/remotes/{remote}/*"


def fetch_guard() -> Path:
    """The hub fetch's hooks directory, its one hook as the hub wrote it (rewritten when it is not)."""
    folder = statehome.fetch_guard_dir()
    hook = folder / GUARD_HOOK
    wanted = FETCH_GUARD.encode()
    try:
        current = hook.read_bytes()
    except OSError:
        current = None
    if current != wanted or not hook.stat().st_mode & 0o100:
        fsutil.write_atomic(hook, wanted, mode=0o700, keep_mode=False)
    return folder


class HubGit:
    """git for hub handlers: argv is validated against the authority contract before it runs."""

    def __init__(self, repo: Path, *, timeout: float = DEFAULT_TIMEOUT_S, target: str | None = None) -> None:
        self.repo = repo
        self.timeout = timeout
        self._target = target

    # -- running ----------------------------------------------------------------------------
    def run(
        self, *argv: str, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Validate, then run ``git <argv>`` in the repo. A fetch runs under the hub's guard hook
        (module docstring): a ref update outside ``refs/remotes/<remote>/`` is refused by git itself
        and raised here as AuthorityRefused (``fetch_outside_remote``), nothing updated. Raises
        AuthorityRefused or GitError."""
        args = list(argv)
        self.check(args)
        found = _subcommand(args)
        fetching = found is not None and found[0] == "fetch"
        env = dict(NO_OPTIONAL_LOCKS)
        hooks: Path | None = None
        if fetching:
            env[FETCH_REMOTE_ENV] = _fetch_remote(args)
            hooks = fetch_guard()
        # never take index.lock just to look: a user's `git add` must not fail because of the hub
        # and never read the hub's own stdin (input "" closes it at once)
        done = git.run(
            args,
            self.repo,
            check=check and not fetching,
            timeout=timeout or self.timeout,
            env=env,
            input_text="",
            hooks=hooks,
        )
        if fetching and done.returncode != 0:
            refused = [
                line.split(GUARD_MARK, 1)[1].strip()
                for line in done.stderr.splitlines()
                if GUARD_MARK in line
            ]
            if refused:
                raise _refuse(
                    "fetch_outside_remote",
                    f"git {_show(args)} would have updated {', '.join(refused[:10])}, outside "
                    f"refs/remotes/{env[FETCH_REMOTE_ENV]}/; git refused the whole update, nothing moved",
                )
            if check:
                said = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
                raise GitError(f"git {_show(args)} failed in {self.repo}: {said}")
        return done

    def fetch(
        self, remote: str, *, prune: bool = False, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``git fetch`` of ``remote``'s branches into ``refs/remotes/<remote>/`` and nothing else:
        :func:`hub_refspec`, whatever the repo configures, with :data:`HUB_FETCH_FLAGS`."""
        argv = ["fetch", *HUB_FETCH_FLAGS, *(["--prune"] if prune else []), remote, hub_refspec(remote)]
        return self.run(*argv, timeout=timeout)

    def step(
        self, name: str, argv: list[str], locks: list[Path], *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Validate, then run ``git <argv>`` as a marked step (repo/gitlocks.py: a lock file it
        leaves when killed is cleared by recovery), under the worktree-admin lock when it writes
        worktrees. Raises AuthorityRefused, or GitError when ``check`` and git fails."""
        self.check(argv)
        admin = len(argv) > 1 and argv[0] == "worktree" and argv[1] in git.WORKTREE_WRITES
        done = gitlocks.run_step(
            self.repo, name, argv, self.repo, locks, env=NO_OPTIONAL_LOCKS, timeout=self.timeout,
            worktree_admin=admin,
        )  # fmt: skip
        if check and done.returncode != 0:
            said = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
            raise GitError(f"git {_show(argv)} failed in {self.repo}: {said}")
        return done

    def out(self, *argv: str) -> str:
        return self.run(*argv).stdout.strip()

    def ok(self, *argv: str) -> bool:
        return self.run(*argv, check=False).returncode == 0

    # -- the contract -------------------------------------------------------------------------
    def check(self, argv: list[str]) -> None:
        """Raise :class:`AuthorityRefused` unless ``git <argv>`` is within the hub's authority."""
        if any(a == "--no-verify" or a.startswith("--no-verify=") for a in argv):
            raise _refuse(
                "no_verify", f"git {_show(argv)}: the hub never passes --no-verify (a gate it would skip)"
            )
        index = 0
        while index < len(argv) and argv[index].startswith("-"):
            if argv[index] not in GLOBAL_OK:
                raise _refuse(
                    "git_option",
                    f"git option {argv[index]!r}: the hub runs git only in the repo itself, with its own "
                    "configuration (-c, -C, --git-dir and --work-tree are not allowed)",
                )
            index += 1
        if index == len(argv):
            raise _refuse("not_allowed", "git with no subcommand")
        command, rest = argv[index], argv[index + 1 :]
        checker = self._checkers().get(command)
        if checker is not None:
            checker(rest)
            return
        if command in READ_ONLY:
            self._read_only(command, rest)
            return
        if command in HISTORY_REWRITE:
            raise _refuse("history_rewrite", f"git {command}: the hub never rewrites history")
        if command in CHECKOUT_WRITES:
            self._checkout_write(command, rest)
        raise _refuse(
            "not_allowed",
            f"git {command} is not in the hub's allowlist (read-only queries, fetch, and detached "
            f"worktrees under {STATE_PREFIX})",
        )

    def _checkers(self) -> dict[str, Callable[[list[str]], None]]:
        return {
            "push": _check_push,
            "fetch": _check_fetch,
            "branch": self._check_branch,
            "tag": _check_tag,
            "update-ref": self._check_update_ref,
            "worktree": self._check_worktree,
            "reflog": _check_reflog,
            "gc": _check_gc,
            "symbolic-ref": _check_symbolic_ref,
            "config": _check_config,
            "remote": _check_remote,
        }

    def _read_only(self, command: str, rest: list[str]) -> None:
        for arg in rest:
            if arg == "--":
                return
            if any(arg == o or arg.startswith(o + "=") for o in _WRITING_OPTIONS):
                raise _refuse("not_allowed", f"git {command} {arg}: writes a file or runs a program")

    def _checkout_write(self, command: str, rest: list[str]) -> None:
        if command == "commit" and "--amend" in rest:
            raise _refuse("history_rewrite", "git commit --amend: the hub never rewrites history")
        dirty = self.dirty_paths()
        if dirty:
            shown = ", ".join(dirty[:5]) + (" …" if len(dirty) > 5 else "")
            raise _refuse(
                "dirty_checkout",
                f"git {command}: {self.repo} has {len(dirty)} uncommitted change(s) ({shown}); the hub "
                "never touches a checkout with uncommitted changes",
            )
        if command in LANDING:
            raise _refuse(
                "gate_bypass",
                f"git {command}: the hub never brings commits onto a branch itself; work lands only "
                "through the gated worker pipeline",
            )
        raise _refuse(
            "user_checkout",
            f"git {command}: the hub does not operate on a user's checkout (only fetch, read-only "
            f"queries and detached worktrees under {STATE_PREFIX})",
        )

    def dirty_paths(self) -> list[str]:
        """Tracked changes and untracked files in the checkout (speedrift's own dirs are excluded)."""
        return git.status_porcelain(self.repo)  # read-only: --no-optional-locks

    # -- refs the hub owns ----------------------------------------------------------------------
    def target(self) -> str:
        if self._target is None:
            self._target = _target_branch(self.repo)
        return self._target

    def _merged(self, ref: str) -> bool:
        target = self.target()
        done = git.run(["merge-base", "--is-ancestor", ref, target], self.repo, check=False)
        return done.returncode == 0

    def _exists(self, ref: str) -> bool:
        return git.rev_parse(self.repo, ref) is not None

    def _check_branch(self, rest: list[str]) -> None:
        flags = [a for a in rest if a.startswith("-")]
        names = [a for a in rest if not a.startswith("-")]
        if any(f in ("-f", "--force") for f in flags):
            raise _refuse("history_rewrite", "git branch --force: the hub never moves a branch")
        deleting = any(f in ("-d", "-D", "--delete") for f in flags)
        moving = [f for f in flags if f in ("-m", "-M", "--move", "-c", "-C", "--copy")]
        if deleting:
            for name in names:
                self._may_delete(f"refs/heads/{name}", f"branch {name}")
            return
        if moving:
            if len(names) != 2:
                raise _refuse("not_allowed", f"git branch {_show(rest)}: name both the old and new branch")
            old, new = names
            for name in (old, new):
                if not name.startswith(BRANCH_PREFIX):
                    raise _refuse(
                        "ref_not_owned",
                        f"git branch {moving[0]} {old} {new}: the hub renames only its own "
                        f"{BRANCH_PREFIX}* branches",
                    )
            if self._exists(f"refs/heads/{new}"):
                raise _refuse(
                    "ref_not_owned", f"git branch {moving[0]}: {new} exists; it is never overwritten"
                )
            return
        listing = BRANCH_LISTING
        unknown = [
            f for f in flags if f.split("=")[0] not in listing and not f.startswith(("--sort", "--format"))
        ]
        listing_with_pattern = any(f in ("--list", "-l") for f in flags)
        takes_value = any(
            f in ("--contains", "--no-contains", "--merged", "--no-merged", "--points-at") for f in flags
        )
        if unknown or (names and not (listing_with_pattern or takes_value)):
            raise _refuse(
                "not_allowed",
                f"git branch {_show(rest)}: the hub lists branches; it never creates or changes one",
            )

    def _may_delete(self, ref: str, what: str) -> None:
        if not ref.startswith(OWN_REF_PREFIXES):
            raise _refuse(
                "ref_not_owned",
                f"deleting {what}: the hub deletes only its own {BRANCH_PREFIX}* branches",
            )
        if self._exists(ref) and not self._merged(ref):
            raise _refuse(
                "unmerged_branch",
                f"deleting {what}: it holds commits that are not on {self.target()}; the hub deletes its "
                "own branches only once they are merged",
            )

    def _check_update_ref(self, rest: list[str]) -> None:
        flags = [a for a in rest if a.startswith("-")]
        args = [a for a in rest if not a.startswith("-")]
        if "--stdin" in flags:
            raise _refuse("not_allowed", "git update-ref --stdin: the hub updates one named ref at a time")
        if "-m" in flags:  # -m takes the reflog message as its value
            position = rest.index("-m") + 1
            if position < len(rest) and rest[position] in args:
                args.remove(rest[position])
        if not args:
            raise _refuse("not_allowed", "git update-ref without a ref")
        ref = args[0]
        if "-d" in flags:
            self._may_delete(ref, ref)
            return
        if not ref.startswith(OWN_REF_PREFIXES):
            raise _refuse(
                "gate_bypass"
                if ref.startswith("refs/heads/") or not ref.startswith("refs/")
                else "ref_not_owned",
                f"git update-ref {ref}: moving a ref the hub does not own would land or rewrite work "
                "outside the gated worker pipeline",
            )
        if len(args) < 2:
            raise _refuse("not_allowed", f"git update-ref {ref}: no new value")
        if self._exists(ref):
            done = git.run(["merge-base", "--is-ancestor", ref, args[1]], self.repo, check=False)
            if done.returncode != 0:
                raise _refuse("history_rewrite", f"git update-ref {ref}: not a fast-forward")

    def _check_worktree(self, rest: list[str]) -> None:
        if not rest or rest[0] == "list":
            return
        action, args = rest[0], rest[1:]
        flags = [a for a in args if a.startswith("-")]
        paths = [a for a in args if not a.startswith("-")]
        state = layout.state_dir(self.repo).resolve()
        # the hub's own detached scratch worktrees (gate scans): the only ones it removes
        scratch = layout.hub_worktrees_dir(self.repo).resolve()
        if action == "add":
            if "--detach" not in flags or any(f not in ("--detach", "--quiet", "-q") for f in flags):
                raise _refuse(
                    "not_allowed",
                    f"git worktree add {_show(args)}: the hub adds only detached worktrees (--detach), "
                    "never on a branch",
                )
            if not paths or not _inside(Path(paths[0]), state, self.repo):
                raise _refuse(
                    "worktree_outside", f"git worktree add: the hub's worktrees live under {state}/"
                )
            return
        if action == "remove":
            if any(f not in ("--force", "-f") for f in flags) or len(paths) != 1:
                raise _refuse("not_allowed", f"git worktree remove {_show(args)}")
            if not _inside(Path(paths[0]), scratch, self.repo):
                raise _refuse(
                    "worktree_outside",
                    f"git worktree remove {paths[0]}: the hub removes only its own scratch worktrees under "
                    f"{scratch}/",
                )
            return
        raise _refuse("not_allowed", f"git worktree {action}: not in the hub's allowlist")


def _show(argv: Sequence[str]) -> str:
    return " ".join(argv)[:200]


def _inside(path: Path, folder: Path, repo: Path) -> bool:
    resolved = (path if path.is_absolute() else repo / path).resolve()
    return resolved != folder and resolved.is_relative_to(folder)


def _target_branch(repo: Path) -> str:
    from speedrift.fleet.config import ConfigError, load_config

    try:
        configured = load_config(repo).target_branch
    except ConfigError:
        configured = None  # a broken config must not widen what counts as merged: fall back to git's view
    branch = configured or git.default_branch(repo)
    if branch is None:
        raise _refuse("not_allowed", f"{repo} has no target branch to check merges against")
    return branch


def _check_push(rest: list[str]) -> None:
    forced = [
        a for a in rest if a in FORCE_PUSH or a.startswith(("--force-with-lease", "--force-if-includes"))
    ]
    forced += [a for a in rest if a.startswith("+") or (a.startswith(":") and len(a) > 1)]
    if forced:
        raise _refuse(
            "push",
            f"git push {_show(rest)}: force-pushing or deleting remote refs ({', '.join(forced)}) is never "
            "allowed; the hub never pushes at all",
        )
    raise _refuse("push", f"git push {_show(rest)}: the hub never pushes", hint="push yourself")


def _subcommand(argv: list[str]) -> tuple[str, list[str]] | None:
    """(subcommand, its arguments) after the global options :meth:`HubGit.check` allows."""
    index = 0
    while index < len(argv) and argv[index] in GLOBAL_OK:
        index += 1
    return (argv[index], argv[index + 1 :]) if index < len(argv) else None


def _fetch_remote(argv: list[str]) -> str:
    found = _subcommand(argv)
    positional = [a for a in (found[1] if found else []) if not a.startswith("-")]
    return positional[0] if positional else ""


def _check_fetch(rest: list[str]) -> None:
    """A fetch names a remote and refspecs from its branches into ``refs/remotes/<remote>/`` only,
    with :data:`HUB_FETCH_FLAGS`; a bare ``git fetch <remote>`` would use the repo's configured
    refspec, which may write anywhere (``+refs/heads/*:refs/heads/*`` moves local branches)."""
    positional: list[str] = []
    flags: list[str] = []
    for arg in rest:
        if arg.startswith("-"):
            if arg not in FETCH_OPTIONS:
                raise _refuse(
                    "fetch_option",
                    f"git fetch {arg}: not in the hub's fetch allowlist (--prune-tags deletes local "
                    "tags, --update-head-ok moves the checked-out branch, --upload-pack runs a program, "
                    "--all and --multiple fetch with every remote's configured refspec)",
                )
            flags.append(arg)
            continue
        positional.append(arg)
    if not positional or not _REMOTE_NAME.fullmatch(positional[0]) or ".." in positional[0]:
        shown = positional[0] if positional else "no remote"
        raise _refuse(
            "fetch_refspec", f"git fetch {_show(rest)}: {shown!r} is not a remote's name; the hub fetches "
            "only from a configured remote",
        )  # fmt: skip
    remote, refspecs = positional[0], positional[1:]
    into = f"refs/remotes/{remote}/"
    for refspec in refspecs:
        source, sep, destination = refspec.removeprefix("+").partition(":")
        if sep and destination and not destination.startswith("refs/remotes/"):
            raise _refuse(
                "fetch_refspec",
                f"git fetch {refspec}: fetching into a local ref ({destination}) moves a branch; the hub "
                "fetches into remote-tracking refs only",
            )
        if not (sep and source.startswith("refs/heads/") and destination.startswith(into)):
            raise _refuse(
                "fetch_refspec",
                f"git fetch {refspec}: the hub fetches branches (refs/heads/…) into {into} only",
            )
    missing = [flag for flag in HUB_FETCH_FLAGS if flag not in flags]
    if not refspecs or any(flag in missing for flag in _FETCH_NAMESPACE_FLAGS):
        raise _refuse(
            "fetch_refspec",
            f"git fetch {_show(rest)}: the hub fetches only with an explicit refspec into {into} "
            f"(`{hub_refspec(remote)}`), --refmap= and --no-tags; without them git follows the repo's "
            "configured refspec and tag rules, which may write anywhere (refs/heads/*, refs/tags/*)",
        )
    if missing:
        raise _refuse(
            "fetch_option",
            f"git fetch {_show(rest)}: missing {' '.join(missing)} (the hub's fetch writes no FETCH_HEAD, "
            "fetches no submodule, runs no maintenance and no upload-pack the repo configures)",
        )


def _check_tag(rest: list[str]) -> None:
    if any(a in ("-d", "--delete") for a in rest):
        raise _refuse("ref_not_owned", f"git tag {_show(rest)}: the hub never deletes tags")
    listing = {"-l", "--list", "-n", "--contains", "--no-contains", "--points-at", "--merged", "--no-merged"}
    flags = [a for a in rest if a.startswith("-")]
    if rest and not (any(f in listing or f.startswith(("--sort", "--format", "-n")) for f in flags)):
        raise _refuse("not_allowed", f"git tag {_show(rest)}: the hub lists tags; it never creates one")


def _check_reflog(rest: list[str]) -> None:
    if rest and rest[0] in ("expire", "delete", "drop"):
        raise _refuse("destroy_unreachable", f"git reflog {rest[0]}: would drop the record of earlier work")


def _check_gc(rest: list[str]) -> None:
    raise _refuse(
        "destroy_unreachable",
        f"git gc {_show(rest)}: pruning can delete unreachable work; garbage collection is yours to run",
    )


def _check_symbolic_ref(rest: list[str]) -> None:
    names = [a for a in rest if not a.startswith("-")]
    if len(names) != 1 or any(a not in ("-q", "--quiet", "--short") for a in rest if a.startswith("-")):
        raise _refuse("not_allowed", f"git symbolic-ref {_show(rest)}: the hub only reads HEAD")


def _check_config(rest: list[str]) -> None:
    reading = {"--get", "--get-all", "--get-regexp", "--list", "-l"}
    modifiers = {"--show-origin", "--null", "-z", "--default", "--name-only", "--bool", "--int", "--path"}
    flags = [a for a in rest if a.startswith("-")]
    known = all(f in reading or f in modifiers or f.startswith("--type=") for f in flags)
    if not known or not any(f in reading for f in flags):
        raise _refuse("not_allowed", f"git config {_show(rest)}: the hub only reads configuration")


def _check_remote(rest: list[str]) -> None:
    if rest and rest[0] not in ("-v", "--verbose", "get-url", "show"):
        raise _refuse("not_allowed", f"git remote {_show(rest)}: the hub only reads remotes")


# ---------------------------------------------------------------- processes acting on the hub's authority


def hub_admission(repo: Path, clock: Callable[[], datetime] | None = None) -> Callable[[], tuple[bool, str]]:
    """For ``--hub`` processes: re-reads ``<repo>/.speedrift/control.json`` on every call and answers
    whether the hub's authority holds right now. Fail-closed: an unreadable file is no authority."""
    from speedrift.control.controlfile import read_control
    from speedrift.times import now_utc

    tick = clock or now_utc

    def admission() -> tuple[bool, str]:
        try:
            control = read_control(repo)
        except Exception as error:  # fail-closed, whatever went wrong reading it
            return False, f"control state unavailable: {error}"
        return control.authority(tick())

    return admission


def recovery_executor(repo: Path, task_id: str, now: datetime | None = None) -> tuple[str, str]:
    """Who carries out a failed task's automatic recovery in ``repo`` (fleet/followup.py), as
    (``service`` | ``hub`` | ``nobody``, a sentence): the repo's service when one runs, otherwise the
    hub at its next cycle where the repo's mode and lease let it act, otherwise nobody — then the
    sentence says what a person runs instead."""
    from speedrift.control.controlfile import read_control
    from speedrift.fleet import service
    from speedrift.times import now_utc

    pid = service.running_pid(repo)
    if pid is not None:
        shown = f" (pid {pid})" if pid > 0 else ""
        return "service", f"the service running in this repo{shown}"
    try:
        control = read_control(repo)
    except Exception as error:  # fail-closed: an unreadable control state grants nothing
        return (
            "nobody",
            f"nobody: the repo's control state is unreadable ({error}) — run `speedrift retry {task_id}`",
        )
    allowed, why = control.authority(now or now_utc())
    if allowed:
        return "hub", f"the hub at its next cycle (repo mode {control.mode})"
    if control.mode in AUTOMATION_MODES:
        return "nobody", (
            f"nobody: the hub's authority here lapsed ({why}) — renew it with `speedrift mode {repo.name} "
            f"{control.mode} --lease-ttl 2h`, or run `speedrift retry {task_id}`"
        )
    return "nobody", f"nobody: repo in {control.mode} mode — run `speedrift retry {task_id}`"
