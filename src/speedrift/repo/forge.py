"""The forge: the one place speedrift pushes a branch and opens a draft pull/merge request.

Used by compound review's pull request (fleetops/compound_pr.py) and by upstream proposals
(fleetops/upstream.py). Its invariant is the authority rule of the whole project, enforced here
in code by :func:`check_push` and nowhere else:

- the only push speedrift ever makes is a NEW branch (under ``speedrift/``) to one remote;
- never ``--force``, never a refspec with ``+`` or a deletion, never to the target/base branch or
  any branch name the remote already has (``git ls-remote`` is asked first), never a tag;
- a pull/merge request is opened only as a draft, through the forge's own CLI (``gh`` for GitHub,
  ``glab`` for GitLab), after the CLI said it is installed and authenticated.

When a step cannot be done, the exact argv that would run is given back (:func:`shown`), so the
caller can print it; nothing here raises for a forge that is absent or logged out.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from speedrift import procs
from speedrift.errors import Refused
from speedrift.repo import git
from speedrift.textclip import clip

CLI_TIMEOUT_S = 120.0
PUSH_TIMEOUT_S = 300.0
BRANCH_PREFIX = "speedrift/"  # every branch speedrift pushes starts with it
_SAFE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$")
_SLUG = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")


class Forge(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"


CLI = {Forge.GITHUB: "gh", Forge.GITLAB: "glab"}
CLI_NAME = {Forge.GITHUB: "the GitHub CLI", Forge.GITLAB: "the GitLab CLI"}
CLI_SITE = {Forge.GITHUB: "https://cli.github.com", Forge.GITLAB: "https://gitlab.com/gitlab-org/cli"}
REQUEST = {Forge.GITHUB: "pull request", Forge.GITLAB: "merge request"}


def _host_and_path(url: str) -> tuple[str, str]:
    """(host, path) of a remote URL: https://h/p, ssh://u@h/p, u@h:p; a local path has no host."""
    text = url.strip()
    match = re.match(r"^[a-z][a-z0-9+.-]*://(?:[^@/]+@)?([^/:]+)(?::\d+)?/(.*)$", text, re.I)
    if match:
        return match.group(1).lower(), match.group(2)
    match = re.match(r"^(?:[^@/]+@)?([^/:]+):(?!/)(.*)$", text)
    if match and not text.startswith(("/", ".")):
        return match.group(1).lower(), match.group(2)
    return "", text


def detect(url: str | None) -> Forge | None:
    """GitHub or GitLab from a remote URL's host; None for anything else (a local path too)."""
    if not url:
        return None
    host = _host_and_path(url)[0]
    if host == "github.com" or host.startswith("github."):
        return Forge.GITHUB
    if host == "gitlab.com" or host.startswith("gitlab."):
        return Forge.GITLAB
    return None


def slug(url_or_slug: str | None) -> str | None:
    """``OWNER/REPO`` (a GitLab group path keeps its groups) from a URL, a path or a slug."""
    if not url_or_slug:
        return None
    path = _host_and_path(url_or_slug)[1].strip("/")
    path = path.removesuffix("/").removesuffix(".git")
    parts = [p for p in path.split("/") if p]
    if _host_and_path(url_or_slug)[0] == "":
        parts = parts[-2:]  # a local path: its last two names stand for owner/repo
    found = "/".join(parts)
    return found if _SLUG.match(found) else None


def remote_url(repo: Path, remote: str) -> str | None:
    return git.git(["remote", "get-url", remote], repo, check=False) or None


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "GH_PROMPT_DISABLED": "1",
        "GH_NO_UPDATE_NOTIFIER": "1",
        "GLAB_NO_PROMPT": "1",
        "NO_PROMPT": "1",
    }


def cli_ready(forge: Forge, cwd: Path) -> str:
    """ "" when the forge's CLI is installed and ``auth status`` succeeds, else what is wrong."""
    cli = CLI[forge]
    request = REQUEST[forge]
    if shutil.which(cli) is None:
        return f"{cli} ({CLI_NAME[forge]}) is not installed, so no {request} was opened ({CLI_SITE[forge]})"
    try:
        done = procs.run([cli, "auth", "status"], cwd=cwd, timeout=CLI_TIMEOUT_S, text=True, env=_env())
    except (OSError, procs.ProcessTimeout) as error:
        return f"`{cli} auth status` could not run ({error}), so no {request} was opened"
    if done.returncode != 0:
        said = clip((done.stderr or done.stdout).strip(), 300) or f"exit status {done.returncode}"
        return (
            f"{cli} is not authenticated (`{cli} auth status`: {said}), so no {request} was opened; "
            f"run `{cli} auth login`"
        )
    return ""


# ---------------------------------------------------------------- the one authority check


def check_push(repo: Path, remote: str, branch: str, protected: Sequence[str]) -> None:
    """Refuse (``Refused``) any push but a new ``speedrift/…`` branch to ``remote``: not a
    protected (target/base) branch, not a name the remote already has, nothing option-like."""
    if remote.startswith("-") or not remote:
        raise Refused(f"{remote!r} is not a remote name; speedrift pushes only to a named remote")
    if not _SAFE_REF.match(branch) or ".." in branch or branch.endswith((".lock", "/")):
        raise Refused(f"{branch!r} is not a branch name speedrift pushes")
    if not branch.startswith(BRANCH_PREFIX):
        raise Refused(
            f"speedrift pushes only its own new {BRANCH_PREFIX}* branches, never {branch!r}",
            hint="push other branches yourself",
        )
    bare = {p.removeprefix("refs/heads/") for p in protected if p}
    if branch in bare:
        raise Refused(f"{branch} is a target branch; speedrift never pushes to a target branch")
    listed = git.run(
        ["ls-remote", "--heads", "--", remote, f"refs/heads/{branch}"],
        repo,
        check=False,
        timeout=PUSH_TIMEOUT_S,
    )
    if listed.returncode != 0:
        said = clip((listed.stderr or listed.stdout).strip(), 300)
        raise Refused(f"cannot list {remote}'s branches to check {branch} is new: {said}")
    if listed.stdout.strip():
        raise Refused(
            f"{remote} already has a branch {branch}; speedrift pushes only a new branch and never "
            "replaces one",
            hint="delete or rename that branch yourself if it is stale, then try again",
        )


def push_argv(remote: str, branch: str) -> list[str]:
    return ["git", "push", "--quiet", remote, f"refs/heads/{branch}:refs/heads/{branch}"]


@dataclass
class Pushed:
    ok: bool
    said: str
    argv: list[str] = field(default_factory=list)


def push_new_branch(repo: Path, remote: str, branch: str, protected: Sequence[str]) -> Pushed:
    """:func:`check_push`, then the push (no force). Refusals raise; a failed push is said."""
    check_push(repo, remote, branch, protected)
    argv = push_argv(remote, branch)
    done = git.run(argv[1:], repo, check=False, timeout=PUSH_TIMEOUT_S)
    if done.returncode != 0:
        said = clip((done.stderr or done.stdout).strip(), 500)
        return Pushed(
            False, f"git push {remote} {branch} failed (not forced, nothing replaced): {said}", argv
        )
    return Pushed(True, f"pushed {branch} to {remote}", argv)


# ---------------------------------------------------------------- the draft request


def draft_argv(
    forge: Forge,
    *,
    branch: str,
    base: str,
    title: str,
    body_file: Path,
    body: str,
    repo_slug: str | None = None,
    head_owner: str | None = None,
) -> list[str]:
    """The CLI's argv opening a draft: ``repo_slug`` is the project it is opened in (None: the
    current one); ``head_owner`` says where the branch was pushed (None: the same project) — for
    GitHub the fork's owner (``--head OWNER:BRANCH``), for GitLab the fork's project path
    (``--head OWNER/REPO``, glab's head *repository*, with ``--source-branch BRANCH``)."""
    if forge is Forge.GITHUB:
        argv = ["gh", "pr", "create", "--draft"]
        if repo_slug:
            argv += ["--repo", repo_slug]
        argv += ["--title", title, "--body-file", str(body_file)]
        argv += ["--head", f"{head_owner}:{branch}" if head_owner else branch, "--base", base]
        return argv
    argv = ["glab", "mr", "create", "--draft", "--yes", "--no-editor"]
    if repo_slug:
        argv += ["--repo", repo_slug]
    if head_owner:
        argv += ["--head", head_owner]
    argv += ["--title", title, "--description", body]
    argv += ["--source-branch", branch, "--target-branch", base]
    return argv


def shown(argv: Sequence[str], body_file: Path | None = None) -> str:
    """The argv as a shell line (a long ``--description`` shown as ``"$(cat FILE)"``)."""
    words: list[str] = []
    for i, word in enumerate(argv):
        if i > 0 and argv[i - 1] == "--description" and body_file is not None:
            words.append(f'"$(cat {shlex.quote(str(body_file))})"')
        else:
            words.append(shlex.quote(word))
    return " ".join(words)


@dataclass
class Opened:
    ok: bool
    said: str
    url: str | None = None


def open_draft(forge: Forge, argv: list[str], cwd: Path) -> Opened:
    """Run the draft argv (``argv[0]`` must be the forge's CLI); its last stdout line is the URL."""
    cli = CLI[forge]
    if not argv or argv[0] != cli or "--draft" not in argv:
        raise Refused(f"only a draft {REQUEST[forge]} through {cli} is opened, not {shown(argv)[:200]}")
    try:
        done = procs.run(argv, cwd=cwd, timeout=CLI_TIMEOUT_S, text=True, env=_env())
    except (OSError, procs.ProcessTimeout) as error:
        return Opened(False, f"{cli} {' '.join(argv[1:3])} could not run: {error}")
    if done.returncode != 0:
        said = clip((done.stderr or done.stdout).strip(), 500)
        return Opened(False, f"{cli} {' '.join(argv[1:3])} failed: {said}")
    lines = done.stdout.strip().splitlines()
    return Opened(True, f"opened a draft {REQUEST[forge]}", lines[-1].strip() if lines else None)
