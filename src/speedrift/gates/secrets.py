"""The secrets gate: credentials added by the diff are a hard failure (class ``secret_leak``).

Scans every changed text file at the tip (detect-secrets plus speedrift's patterns, see
detect.py). A value that the same file already held at the base is pre-existing: it warns
instead (the leak is old, and failing every task that touches the file would not undo it).
The baseline (``.secrets.baseline``) is read from the *base* commit, so an attempt cannot
allow-list its own leak; configured ``exclude`` globs skip files.

Known values: the exact secrets speedrift holds (redact.named_secrets — every credential-named
variable in its environment, withheld from the agent, and every ``[env] secrets`` name passed to
it; the suite remembers them before the gates run) are searched for in every changed file, text or
binary, symlink targets, file names and the attempt's commit messages, bare and encoded (base64,
base64url, hex, URL-encoded: detect.find_known). No allowlist, baseline or ``exclude`` glob
applies to them: a credential speedrift holds never lands. Only the same value in the same file at
the base commit makes such a hit pre-existing (``warn``).

Findings name the kind and file:line — never the value; a known value's finding names its
variable and encoding (``GITHUB_TOKEN as base64 at notes.txt:3``). Every value found is handed to
the redactor (``redact.remember``) so nothing speedrift writes afterwards carries it, and is kept in
``ctx.notes["secret_values"]`` for the suite to scrub the attempt's run records.
"""

from __future__ import annotations

import json
import os

from speedrift import gitcmd, redact
from speedrift.failure_class import FailureClass
from speedrift.gates import basetree, detect
from speedrift.gates.changes import ChangedFile, git_bytes, read_blobs
from speedrift.gates.context import GateContext, result
from speedrift.gates.globs import matches_any
from speedrift.gates.model import Finding, GateResult, Severity

_GUESSES = frozenset({"high-entropy-string", "high-entropy-hex", "secret-keyword", "assigned-credential"})


def _severity(kind: str, new: bool) -> Severity:
    if not new:
        return "medium"
    return "high" if kind in _GUESSES else "critical"


class SecretsGate:
    name = "secrets"

    def run(self, ctx: GateContext) -> GateResult:
        config = ctx.config.secrets
        baseline = self._baseline(ctx)
        candidates = [
            c for c in ctx.existing() if not matches_any(c.path, config.exclude) and c.path != config.baseline
        ]
        hits: list[tuple[detect.Hit, bool]] = []  # (hit, new)
        large = 0
        base_texts = self._base_texts(ctx, candidates)
        texts: dict[str, str] = {}
        batch: list[tuple[str, str, bool]] = []
        for change in candidates:
            try:
                data = (ctx.worktree / change.path).read_bytes()
            except OSError:
                continue
            big = len(data) > ctx.max_bytes()
            large += big
            texts[change.display] = data.decode("utf-8", "replace")
            batch.append((change.display, texts[change.display], not big))
        found = detect.scan_files(batch)
        for change in candidates:
            lines = texts.get(change.display, "").splitlines()
            old = base_texts.get(change.path)
            for hit in found.get(change.display, []):
                line_text = lines[hit.line - 1] if 0 < hit.line <= len(lines) else ""
                if baseline.allows(hit, line_text):
                    continue
                hits.append((hit, not (hit.value and old is not None and hit.value in old)))
        values = detect.values(h for h, _new in hits)
        redact.remember(values)
        known = self._known(ctx)
        ctx.notes["secret_values"] = [v for _kind, v in values] + [
            hit.needle.decode("utf-8", "surrogateescape") for hit, _new in known
        ]
        findings = [
            Finding(
                file=hit.path,
                line=hit.line,
                kind=hit.kind,
                message=f"{hit.kind} at {hit.path}:{hit.line}"
                + ("" if new else " (already present at the base commit)"),
                severity=_severity(hit.kind, new),
                rule="secrets",
                category="A07:2021-Identification and Authentication Failures",
                new=new,
            )
            for hit, new in hits
        ] + [
            Finding(
                file=hit.path,
                line=hit.line,
                kind=_known_kind(hit),
                message=f"the value of {hit.name}"
                + ("" if hit.encoding == "value" else f", {hit.encoding}-encoded,")
                + f" at {hit.path}:{hit.line}"
                + ("" if new else " (already present at the base commit)"),
                severity="critical" if new else "medium",
                rule="secrets",
                category="A07:2021-Identification and Authentication Failures",
                new=new,
            )
            for hit, new in known
        ]
        note = (
            f"; {large} file(s) over {ctx.config.max_file_mb:g} MB scanned by pattern only" if large else ""
        )
        fresh = [f for f in findings if f.new]
        if fresh:
            shown = ", ".join(f"{f.kind} at {f.file}:{f.line}" for f in fresh[:5])
            more = f" and {len(fresh) - 5} more" if len(fresh) > 5 else ""
            return result(
                self.name,
                "fail",
                f"{len(fresh)} secret(s) added: {shown}{more}{note}",
                findings,
                failure_class=FailureClass.SECRET_LEAK,
            )
        if findings:
            return result(
                self.name,
                "warn",
                f"{len(findings)} secret(s) already present at the base commit{note}",
                findings,
            )
        if not candidates:
            return result(self.name, "skipped", "no changed text files to scan")
        return result(self.name, "pass", f"no secrets in {len(candidates)} changed file(s){note}")

    def _known(self, ctx: GateContext) -> list[tuple[detect.KnownHit, bool]]:
        """The exact values speedrift holds, wherever the attempt put them: (hit, new)."""
        secrets = redact.named_secrets()
        if not secrets:
            return []
        found: list[tuple[detect.KnownHit, ChangedFile | None]] = []
        for change in ctx.changes:
            name = os.fsencode(change.path)
            found += [(h, None) for h in detect.find_known(f"(file name) {change.display}", name, secrets)]
            data = _content(ctx, change)
            if data is not None:
                found += [(h, change) for h in detect.find_known(change.display, data, secrets)]
        if not ctx.working_tree:
            for sha, message, people in _commits(ctx):
                where = f"(commit message of {sha[:12]})"
                found += [(h, None) for h in detect.find_known(where, message, secrets)]
                where = f"(commit author of {sha[:12]})"
                found += [(h, None) for h in detect.find_known(where, people, secrets)]
        olds = read_blobs(
            ctx.worktree, [c.old_blob for _h, c in found if c and c.old_blob and c.status != "A"]
        )
        hits: list[tuple[detect.KnownHit, bool]] = []
        for hit, where_in in found:
            old = olds.get(where_in.old_blob or "") if where_in and where_in.status != "A" else None
            hits.append((hit, not (old is not None and hit.needle in old)))
        return hits

    def _baseline(self, ctx: GateContext) -> detect.Baseline:
        raw = basetree.read_at(ctx.worktree, ctx.base, ctx.config.secrets.baseline)
        if raw is None:
            return detect.Baseline()
        try:
            return detect.Baseline.parse(json.loads(raw))
        except (ValueError, UnicodeDecodeError):
            return detect.Baseline()

    def _base_texts(self, ctx: GateContext, changes: list[ChangedFile]) -> dict[str, str]:
        wanted = [c for c in changes if c.old_blob and c.status != "A"]
        blobs = read_blobs(ctx.worktree, [c.old_blob for c in wanted if c.old_blob])
        return {
            c.path: blobs[c.old_blob].decode("utf-8", "replace")
            for c in wanted
            if c.old_blob in blobs and len(blobs[c.old_blob]) <= ctx.max_bytes()
        }


def _known_kind(hit: detect.KnownHit) -> str:
    return f"{hit.name} value" if hit.encoding == "value" else f"{hit.name} as {hit.encoding}"


def _content(ctx: GateContext, change: ChangedFile) -> bytes | None:
    """A changed file's bytes at the tip, binary or not; a symlink's target; None when deleted."""
    if not change.exists:
        return None
    path = ctx.worktree / change.path
    try:
        if path.is_symlink():
            return os.fsencode(os.readlink(path))
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


def _commits(ctx: GateContext) -> list[tuple[str, bytes, bytes]]:
    """(sha, message, author and committer) of each commit from the base to the tip."""
    try:
        out = git_bytes(
            ["log", "-z", "--format=%H%x01%B%x01%an <%ae> %cn <%ce>", f"{ctx.base}..{ctx.tip}"], ctx.worktree
        )
    except gitcmd.GitError:
        return []
    commits: list[tuple[str, bytes, bytes]] = []
    for entry in out.split(b"\0"):
        parts = entry.split(b"\x01")
        if len(parts) == 3 and parts[0]:
            commits.append((parts[0].decode("ascii", "replace"), parts[1], parts[2]))
    return commits
