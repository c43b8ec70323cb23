"""The one way a task, its spec and the gates' verdicts are put into words for a role's inputs.

Every role that reads a task (the Reviewer, the Debugger, the Architect and Plan Verifier of
``speedrift decompose``, the triage step) gets the same text for the same task, so a template
override or a test can rely on it:

- :func:`task_text` — id and title, description, acceptance criteria, deliverables, ``verify``;
- :func:`scope_text` — the declared scope (``speedrift.touch`` and contract globs);
- :func:`spec_text` — ``speedrift.spec``: a text, a list of texts, or ``{"source", "text"}``;
- :func:`gates_text` — what the gates said: each verdict's summary, whether the tests ran, each
  gate's status, and the findings of those that did not pass.

The task fields are speedrift's (inside the task's ``"speedrift"`` object, where wg never reads):
``spec`` (:data:`TASK_SPEC_KEY`) and ``acceptance_criteria`` (:data:`TASK_CRITERIA_KEY`, texts or
``{"criterion", "verify_by"}`` objects). Long texts are clipped. :func:`guidance_text` and
:func:`file_at` read the repository's files at a commit (never the working tree an agent edits).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from speedrift.fleet.classify import gate_views
from speedrift.gates.verdict import GateVerdict
from speedrift.graph.model import Task, declared_scope, speedrift_data, str_list
from speedrift.repo import git
from speedrift.textclip import clip, cut_middle

TASK_SPEC_KEY = "spec"  # speedrift.spec: the spec excerpt the task was written from
TASK_CRITERIA_KEY = "acceptance_criteria"  # speedrift.acceptance_criteria
MAX_TEXT = 20_000  # a description or a spec, as a role reads it
MAX_GATE_TEXT = 20_000
MAX_FINDINGS = 30  # per gate
GUIDANCE_FILES = ("AGENTS.md", "CLAUDE.md", "README.md", "README", "CONTRIBUTING.md")
DOCS_DIR = "docs"
MAX_DOCS = 10  # Markdown files under docs/ given, in path order
MAX_FILE_CHARS = 12_000  # one guidance file, clipped in the middle past this
MAX_GUIDANCE_CHARS = 60_000  # all of them
MAX_FILE_BYTES = 1024 * 1024  # a file read at a commit


def task_text(task: Task) -> str:
    parts = [f"{task.get('id', '?')}: {task.get('title', '')}"]
    description = task.get("description")
    if isinstance(description, str) and description.strip():
        parts += ["", "Description:", clip(description.strip(), MAX_TEXT, flatten=False)]
    criteria = acceptance_criteria(task)
    if criteria:
        parts += ["", "Acceptance criteria:", *[f"- {c}" for c in criteria]]
    deliverables = str_list(task, "deliverables")
    if deliverables:
        parts += ["", "Deliverables (files that must exist):", *[f"- {d}" for d in deliverables]]
    verify = task.get("verify")
    if isinstance(verify, str) and verify.strip():
        parts += ["", f"Verified by: {clip(verify.strip(), 2000)}"]
    return "\n".join(parts)


def acceptance_criteria(task: Task) -> list[str]:
    """``speedrift.acceptance_criteria``: texts, or ``{"criterion", "verify_by"}`` objects."""
    raw = speedrift_data(task).get(TASK_CRITERIA_KEY)
    found: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, str) and item.strip():
            found.append(clip(item.strip(), 2000))
        elif isinstance(item, dict) and isinstance(item.get("criterion"), str):
            how = item.get("verify_by")
            found.append(clip(item["criterion"], 2000) + (f" (verified by: {how})" if how else ""))
    return found


def task_and_scope(task: Task) -> str:
    """:func:`task_text` and the declared scope, for a role that has no scope input of its own."""
    return f"{task_text(task)}\n\nDeclared scope (the files it may change):\n{scope_text(task)}"


def scope_text(task: Task) -> str:
    touch = declared_scope(task)
    if not touch:
        return "none declared: the task may change any file"
    return "\n".join(f"- {t}" for t in touch)


def spec_text(task: Task) -> str:
    """``speedrift.spec``: a text, a list of texts, or ``{"source": …, "text": …}``; "" without one."""
    raw = speedrift_data(task).get(TASK_SPEC_KEY)
    if isinstance(raw, str):
        text = raw
    elif isinstance(raw, list):
        text = "\n\n".join(s for s in raw if isinstance(s, str))
    elif isinstance(raw, dict) and isinstance(raw.get("text"), str):
        source = raw.get("source")
        text = (f"From {source}:\n" if isinstance(source, str) and source else "") + raw["text"]
    else:
        text = ""
    return clip(text.strip(), MAX_TEXT, flatten=False)


def gates_text(verdicts: Sequence[GateVerdict], *, tip: str | None = None) -> str:
    """What the gates said (on ``tip`` when given and judged there, else every verdict): each
    verdict's summary and whether the tests ran, each gate's status, the findings of a gate that
    did not pass (file, line, kind, message)."""
    chosen = [v for v in verdicts if tip is None or v.evidence.get("tip") == tip] or list(verdicts)
    lines: list[str] = []
    for verdict in chosen:
        lines.append(f"{'passed' if verdict.passed else 'blocked'}: {verdict.summary}")
        if verdict.verified:
            lines.append("The repository's tests ran on this commit and nothing new fails.")
        elif verdict.unverified_reason:
            lines.append(f"Unverified: {verdict.unverified_reason}")
        for view in gate_views([verdict.evidence]):
            reason = f" — {clip(view.reason, 300)}" if view.reason else ""
            lines.append(f"- {view.gate}: {view.status}{reason}")
            if view.status == "pass":
                continue
            for finding in view.findings[:MAX_FINDINGS]:
                where = str(finding.get("file") or "")
                line = finding.get("line")
                at = f"{where}:{line}" if where and line else where
                lines.append(f"    {at} {finding.get('kind', '')}: {finding.get('message', '')}".rstrip())
    return cut_middle("\n".join(lines), MAX_GATE_TEXT)


def guidance_text(repo: Path, commit: str) -> str:
    """The repository's guidance at ``commit`` (AGENTS.md, CLAUDE.md, README, CONTRIBUTING.md and
    the first Markdown files under docs/), each under a ``### path`` heading, bounded."""
    listed = git.git(["ls-tree", "-r", "--name-only", commit, "--", f"{DOCS_DIR}/"], repo, check=False)
    docs = sorted(p for p in listed.splitlines() if p.lower().endswith(".md"))[:MAX_DOCS]
    parts: list[str] = []
    used = 0
    for path in [*GUIDANCE_FILES, *docs]:
        text = file_at(repo, commit, path)
        if not text or not text.strip():
            continue
        piece = f"### {path}\n{cut_middle(text.strip(), MAX_FILE_CHARS)}\n"
        if used + len(piece) > MAX_GUIDANCE_CHARS:
            break
        parts.append(piece)
        used += len(piece)
    return "\n".join(parts)


def file_at(repo: Path, commit: str, path: str) -> str | None:
    """A text file at ``commit`` (None: absent, binary, too large, or a path outside the tree)."""
    if not path or path.startswith(("-", "/")) or ".." in path.split("/"):
        return None
    done = git.run(["cat-file", "-s", f"{commit}:{path}"], repo, check=False)
    size = done.stdout.strip()
    if done.returncode != 0 or not size.isdigit() or int(size) > MAX_FILE_BYTES:
        return None
    shown = git.run(["show", f"{commit}:{path}"], repo, check=False)
    if shown.returncode != 0 or "\x00" in shown.stdout:
        return None
    return shown.stdout
