"""The secrets gate: credentials added by the diff are a hard failure (class ``secret_leak``).

Scans every changed text file at the tip (detect-secrets plus speedrift's patterns, see
detect.py). A value that the same file already held at the base is pre-existing: it warns
instead (the leak is old, and failing every task that touches the file would not undo it).
The baseline (``.secrets.baseline``) is read from the *base* commit, so an attempt cannot
allow-list its own leak; configured ``exclude`` globs skip files.

Findings name the kind and file:line — never the value. Every value found is handed to the
redactor (``redact.remember``) so nothing speedrift writes afterwards carries it, and is kept in
``ctx.notes["secret_values"]`` for the suite to scrub the attempt's run records.
"""

from __future__ import annotations

import json

from speedrift import redact
from speedrift.failure_class import FailureClass
from speedrift.gates import basetree, detect
from speedrift.gates.changes import ChangedFile, read_blobs
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
        ctx.notes["secret_values"] = [v for _kind, v in values]
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
