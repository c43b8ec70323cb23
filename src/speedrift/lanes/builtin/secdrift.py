"""secdrift: the security posture of the whole tree at the target branch's tip — not a diff of
recent commits, so a key committed long ago (or in the root commit) is found, and one deleted
from the tree is not.

Finding kinds: ``secret`` (credentials by pattern and entropy, with the secrets gate's own
detector, gates/detect.py, honouring a ``.secrets.baseline`` at head and inline allowlist
pragmas), ``sensitive_artifact`` (a tracked ``.env``, private key, keystore, registry credential
file: _secposture.py) and ``manifest_without_lock`` (a dependency manifest without its lockfile).
The lane's score is the original's risk score, ``min(100, 28·critical + 16·error + 8·warning +
3·info)``.

Incremental: what the detector found in each blob is cached in the lane's state directory
(``blobs.json``: blob SHA and base name -> [line, kind, sha1 of the value]) under a version that
covers the detector's code and the settings, so a rerun after a five-file change runs the
detector over those five blobs only (``stats.scanned`` in the cache, and the summary, say how many).

Invariant: no secret value is ever written — not in a finding, its evidence, the summary or the
cache (which holds only the value's SHA-1, as detect-secrets baselines do). Every value found is
handed to the redactor (redact.remember), as the secrets gate does, so nothing speedrift writes
afterwards carries it.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata
from typing import Any

from speedrift import redact
from speedrift import secret_patterns as patterns
from speedrift.gates import detect
from speedrift.gates.globs import matches_any
from speedrift.lanes.builtin import _secposture as posture
from speedrift.lanes.builtin._blobcache import BlobCache, source_of, version_of
from speedrift.lanes.context import LaneContext, TreeEntry
from speedrift.lanes.model import LaneFinding, LaneScope, Severity
from speedrift.lanes.spec import Lane, LaneOutput

NAME = "secdrift"
CACHE_FILE = "blobs.json"
CACHE_FORMAT = "1"
RECOVER_SPAN = 160  # lines up to this long are searched slice by slice for a value
BINARY_SNIFF = 8192  # a NUL byte in the first 8 KiB: a binary file (as gates/changes.py decides)


class Kind(StrEnum):
    SECRET = "secret"  # noqa: S105 (a finding kind, not a password)
    SENSITIVE_ARTIFACT = "sensitive_artifact"
    MANIFEST_WITHOUT_LOCK = "manifest_without_lock"


DEFAULTS: dict[str, Any] = {
    "scan_max_files": 20000,  # files whose content is scanned (in path order); the rest are counted
    "max_file_bytes": 262144,  # larger files are not scanned for secrets (names are still checked)
    "exclude": [],  # globs (gates/globs.py) of files never scanned
    "use_detect_secrets": True,  # detect-secrets' plugins besides speedrift's own patterns
    "baseline": ".secrets.baseline",  # a detect-secrets baseline at head: its hashes and filters apply
}
_RISK_WEIGHTS = {Severity.CRITICAL: 28, Severity.ERROR: 16, Severity.WARNING: 8, Severity.INFO: 3}
_EMPTY_SHA1 = detect.sha1("")
# how a value may sit in a line: tried in order when a cached hit's value must be found again
_TOKENS = (
    re.compile(r"[^\s'\"`]+"),
    re.compile(r"[^\s'\"`=:,;(){}\[\]<>]+"),
    re.compile(r"[^\s'\"`=:,;(){}\[\]<>@/]+"),
)
_QUOTED = re.compile(r"([\"'`])(.+?)\1")


def severity_of(kind: str) -> Severity:
    """private-key material critical; cloud and provider tokens high (error); generic guesses medium."""
    if kind.startswith("private-key"):
        return Severity.CRITICAL
    return Severity.WARNING if kind in detect.GENERIC_KINDS else Severity.ERROR


def risk_score(findings: Sequence[LaneFinding]) -> int:
    return min(100, sum(_RISK_WEIGHTS[f.severity] for f in findings))


def detector_version(settings: Mapping[str, Any]) -> str:
    try:
        plugins = metadata.version("detect-secrets")
    except metadata.PackageNotFoundError:
        plugins = "absent"
    return version_of(
        CACHE_FORMAT,
        plugins,
        source_of(detect.__file__),
        source_of(patterns.__file__),
        f"use_detect_secrets={bool(settings['use_detect_secrets'])}",
    )


@dataclass(frozen=True, slots=True)
class _Found:
    """One detector hit as the cache keeps it: no value, only its SHA-1."""

    line: int
    kind: str
    hashed: str


def run(ctx: LaneContext) -> LaneOutput:
    settings = {**DEFAULTS, **ctx.settings}
    view = ctx.view
    entries = [e for e in view.tree() if e.mode in ("100644", "100755")]
    exclude = [str(g) for g in settings["exclude"]]
    baseline_path = str(settings["baseline"])
    candidates = [e for e in entries if e.path != baseline_path and not matches_any(e.path, exclude)]
    limit = max(0, int(settings["max_file_bytes"]))
    oversize = [e for e in candidates if e.size > limit]
    small = [e for e in candidates if e.size <= limit]
    maximum = max(0, int(settings["scan_max_files"]))
    scanned_entries, unscanned = small[:maximum], len(small) - min(len(small), maximum)

    cache = BlobCache(ctx.state_dir / CACHE_FILE if ctx.state_dir else None, detector_version(settings))
    found, values, fresh = _scan(ctx, scanned_entries, cache, bool(settings["use_detect_secrets"]))
    findings = _secret_findings(ctx, found, values, _baseline(ctx, baseline_path))
    findings += _artifact_findings(ctx, entries)
    findings += _posture_findings(ctx, entries)
    score = risk_score(findings)
    stats = {"files": len(scanned_entries), "scanned": fresh, "cached": len(scanned_entries) - fresh}
    cache.save(stats)
    notes = [f"scanned {len(scanned_entries)} file(s): {fresh} afresh, {stats['cached']} from cache"]
    if oversize:
        notes.append(f"{len(oversize)} over max_file_bytes ({limit}) not scanned")
    if unscanned:
        notes.append(f"{unscanned} past scan_max_files ({maximum}) not scanned")
    counts = ", ".join(f"{sum(f.kind == k for f in findings)} {k}" for k in Kind)
    return LaneOutput(findings=findings, summary=f"risk {score}: {counts}; {'; '.join(notes)}", score=score)


def _cache_key(entry: TreeEntry) -> str:
    # detect-secrets' filters look at the file's name (and the prefilter at its suffix)
    return f"{entry.blob}:{posixpath.basename(entry.path)}"


def _scan(
    ctx: LaneContext, entries: Sequence[TreeEntry], cache: BlobCache, deep: bool
) -> tuple[dict[str, list[_Found]], dict[str, str], int]:
    """(hits per path, value per SHA-1 for the values seen this run, blobs run through the detector)."""
    found: dict[str, list[_Found]] = {}
    todo: dict[str, list[TreeEntry]] = {}
    for entry in entries:
        cached = cache.get(_cache_key(entry))
        if cached is None:
            todo.setdefault(_cache_key(entry), []).append(entry)
        else:
            found[entry.path] = [_Found(int(h[0]), str(h[1]), str(h[2])) for h in cached]
    first = {key: group[0] for key, group in todo.items()}
    data = ctx.view.read_many([e.path for e in first.values()])
    batch: list[tuple[str, str, bool]] = []
    for key, entry in first.items():
        raw = data.get(entry.path)
        if raw is None or b"\0" in raw[:BINARY_SNIFF]:
            cache.put(key, [])
            continue
        batch.append((entry.path, raw.decode("utf-8", "replace"), deep))
    hits = detect.scan_files(batch) if batch else {}
    values: dict[str, str] = {}
    for key, entry in first.items():
        if entry.path not in hits:
            continue
        cache.put(key, [[h.line, h.kind, h.hashed] for h in hits[entry.path]])
        values.update((h.hashed, h.value) for h in hits[entry.path] if h.value)
    for key, group in todo.items():
        row = cache.entries.get(key, [])
        for entry in group:
            found[entry.path] = [_Found(int(h[0]), str(h[1]), str(h[2])) for h in row]
    return found, values, len(batch)


def _baseline(ctx: LaneContext, path: str) -> detect.Baseline:
    raw = ctx.view.read(path)
    if raw is None:
        return detect.Baseline()
    try:
        return detect.Baseline.parse(json.loads(raw))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return detect.Baseline()


def recover_value(line: str, hashed: str) -> str:
    """The value on ``line`` whose SHA-1 is ``hashed`` ("" when none is found): a cached hit keeps
    only the hash, and the redactor and the baseline's secret filters need the value."""
    if hashed == _EMPTY_SHA1:
        return ""
    candidates = [m.value for m in patterns.find(line)]
    candidates += [m.group(2) for m in _QUOTED.finditer(line)]
    for tokens in _TOKENS:
        candidates += tokens.findall(line)
    candidates.append(line.strip())
    found = next((c for c in candidates if detect.sha1(c) == hashed), None)
    if found is not None or len(line) > RECOVER_SPAN:
        return found or ""
    # a detector may report part of a token (a JWT's first two segments): any slice of a short line
    return next(
        (
            line[start:end]
            for start in range(len(line))
            for end in range(start + 1, len(line) + 1)
            if detect.sha1(line[start:end]) == hashed
        ),
        "",
    )


def _clusters(hits: list[detect.Hit]) -> list[list[detect.Hit]]:
    """Hits on one line grouped by value: a value inside another one's (detect-secrets' "BEGIN RSA
    PRIVATE KEY" inside the pattern's whole header line) is the same secret. Longest value first."""
    clusters: list[list[detect.Hit]] = []
    for hit in sorted(hits, key=lambda h: -len(h.value)):
        home = next((c for c in clusters if hit.value in c[0].value), None)
        if home is None:
            clusters.append([hit])
        else:
            home.append(hit)
    return clusters


def _secret_findings(
    ctx: LaneContext, found: Mapping[str, list[_Found]], values: Mapping[str, str], baseline: detect.Baseline
) -> list[LaneFinding]:
    with_hits = [path for path, hits in found.items() if hits]
    texts = ctx.view.read_many(with_hits)
    kept: list[tuple[detect.Hit, str]] = []  # (the hit, the most severe kind among its cluster)
    remembered: list[detect.Hit] = []
    for path in with_hits:
        lines = texts.get(path, b"").decode("utf-8", "replace").splitlines()
        by_line: dict[int, list[detect.Hit]] = {}
        for seen in found[path]:
            line = lines[seen.line - 1] if 0 < seen.line <= len(lines) else ""
            value = values.get(seen.hashed) or recover_value(line, seen.hashed)
            by_line.setdefault(seen.line, []).append(
                detect.Hit(path, seen.line, seen.kind, value, seen.hashed)
            )
        for number, hits in by_line.items():
            line = lines[number - 1] if 0 < number <= len(lines) else ""
            for cluster in _clusters(hits):
                if any(baseline.allows(h, line) for h in cluster):
                    continue
                remembered += cluster
                kept.append((cluster[0], max((h.kind for h in cluster), key=_weight)))
    redact.remember(detect.values(remembered))
    grouped: dict[tuple[str, str], list[tuple[detect.Hit, str]]] = {}
    for hit, kind in kept:
        key = hit.hashed if hit.hashed != _EMPTY_SHA1 else f"{kind}:unknown-value"
        grouped.setdefault((hit.path, key), []).append((hit, kind))
    findings = []
    for (path, key), group in sorted(grouped.items()):
        group.sort(key=lambda pair: pair[0].line)
        kind = max((k for _h, k in group), key=_weight)
        first = group[0][0]
        numbers = sorted({h.line for h, _k in group})
        more = f" (and line {', '.join(map(str, numbers[1:]))})" if len(numbers) > 1 else ""
        evidence = [
            f"detector kind: {', '.join(sorted({k for _h, k in group}))}",
            f"at {path} line {', '.join(map(str, numbers))} in the tree at {ctx.view.head}",
        ]
        if first.hashed != _EMPTY_SHA1:
            evidence.append(f"sha1 of the value (as .secrets.baseline stores it): {first.hashed}")
        findings.append(
            LaneFinding(
                lane=NAME,
                kind=Kind.SECRET,
                message=f"{kind} at {path}:{first.line}{more}",
                severity=severity_of(kind),
                file=path,
                line=first.line,
                tags=("security", "secret", kind),
                key=key,
                evidence=tuple(evidence),
                fix=(
                    f"Revoke and rotate the credential at {path}:{first.line} (it is in git history, so "
                    "deleting it is not enough), then load it from the environment or a secret store. "
                    "If it is a test fixture, not a credential, mark the line `# pragma: allowlist "
                    "secret` or add it to .secrets.baseline."
                ),
            )
        )
    return findings


def _weight(kind: str) -> tuple[int, bool]:
    """How serious a detector kind is: by severity, then a specific kind over a generic guess."""
    return _RISK_WEIGHTS[severity_of(kind)], kind not in detect.GENERIC_KINDS


def _artifact_findings(ctx: LaneContext, entries: Sequence[TreeEntry]) -> list[LaneFinding]:
    peek = ctx.view.read_many([e.path for e in entries if posture.needs_content(e.path)])
    findings = []
    for entry in entries:
        found = posture.artifact(entry.path, peek.get(entry.path))
        if found is None:
            continue
        findings.append(
            LaneFinding(
                lane=NAME,
                kind=Kind.SENSITIVE_ARTIFACT,
                message=f"{found.what} is tracked at {entry.path}",
                severity=found.severity,
                file=entry.path,
                tags=("security", "sensitive-artifact"),
                key=entry.path,
                evidence=(f"{entry.path} is in the tree at {ctx.view.head[:12]} ({entry.size} bytes)",),
                fix=found.fix,
            )
        )
    return findings


def _posture_findings(ctx: LaneContext, entries: Sequence[TreeEntry]) -> list[LaneFinding]:
    tree = {e.path for e in entries}
    contents = ctx.view.read_many(posture.manifest_reads(sorted(tree)))
    return [
        LaneFinding(
            lane=NAME,
            kind=Kind.MANIFEST_WITHOUT_LOCK,
            message=f"{u.manifest} declares {u.ecosystem} dependencies but no lockfile is committed with it",
            severity=Severity.WARNING,
            file=u.manifest,
            tags=("security", "supply-chain", u.ecosystem),
            key=u.manifest,
            evidence=(f"none of {', '.join(u.locks)} next to {u.manifest} (or in a folder above it)",),
            fix=u.fix,
        )
        for u in posture.unlocked(tree, contents)
    ]


LANE = Lane(
    name=NAME,
    scope=LaneScope.TREE,
    summary="secrets, sensitive files and unlocked manifests anywhere in the target branch's tree",
    run=run,
    defaults=DEFAULTS,
    fence=None,
)
