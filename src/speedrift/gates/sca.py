"""The SCA gate: known-vulnerable dependencies, via pip-audit and npm audit.

Runs only when the repo has dependency files (``requirements*.txt`` / ``requirements/*.txt`` for
pip-audit, ``package-lock.json`` for npm audit). Both tools need their advisory service: when it
cannot be reached — a connection error, an HTTP error, or every dependency reported as "could
not be audited" — the result is **skipped: offline**, never a pass. A vulnerability in a
dependency file the attempt did not change is pre-existing and warns; one in a changed file
fails only at high/critical severity (pip-audit reports no severity: SPEED treats its findings
as high, and so does speedrift).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from speedrift.errors import SpeedriftError
from speedrift.failure_class import FailureClass
from speedrift.gates.context import GateContext, result
from speedrift.gates.model import Finding, GateResult, Severity
from speedrift.gates.sast import RANK, at_least

_OFFLINE = re.compile(
    r"(?i)connection ?error|could not resolve|name or service not known|temporary failure in name|"
    r"network is unreachable|timed out|max retries exceeded|enotfound|eai_again|econnrefused|"
    r"econnreset|etimedout|getaddrinfo|audit endpoint returned an error|\b(?:4\d\d|5\d\d) [A-Z]"
)
_NPM_SEVERITY: dict[str, Severity] = {
    "critical": "critical",
    "high": "high",
    "moderate": "medium",
    "low": "low",
    "info": "info",
}
VULNERABLE_CATEGORY = "A06:2021-Vulnerable and Outdated Components"


def requirement_files(root: Path) -> list[str]:
    found = sorted(p.name for p in root.glob("requirements*.txt") if p.is_file())
    folder = root / "requirements"
    if folder.is_dir():
        found += sorted(f"requirements/{p.name}" for p in folder.glob("*.txt") if p.is_file())
    return found


class Offline(SpeedriftError):
    pass


class ScaGate:
    name = "sca"

    def run(self, ctx: GateContext) -> GateResult:
        config = ctx.config.sca
        findings: list[Finding] = []
        ran: list[str] = []
        skipped: list[str] = []
        offline: list[str] = []
        changed = {c.path for c in ctx.changes}
        requirements = requirement_files(ctx.worktree)
        if requirements and config.pip_audit != "off":
            tool = ctx.finder.find("pip-audit")
            if tool is None:
                skipped.append(ctx.finder.missing_reason("pip-audit"))
            else:
                try:
                    findings += self._pip_audit(ctx, str(tool), requirements, changed)
                    ran.append("pip-audit")
                except Offline as why:
                    offline.append(f"pip-audit: {why}")
        if (ctx.worktree / "package-lock.json").is_file() and config.npm_audit != "off":
            npm = ctx.finder.find("npm")
            if npm is None:
                skipped.append(ctx.finder.missing_reason("npm"))
            else:
                try:
                    findings += self._npm_audit(ctx, str(npm), "package-lock.json" in changed)
                    ran.append("npm audit")
                except Offline as why:
                    offline.append(f"npm audit: {why}")
        if not requirements and not (ctx.worktree / "package-lock.json").is_file():
            return result(self.name, "skipped", "no requirements or lock files in the repo")
        blocking = [f for f in findings if f.new and at_least(f.severity, "high")]
        notes = "; ".join(offline + skipped)
        suffix = f"; {notes}" if notes else ""
        if blocking:
            first = blocking[0]
            return result(
                self.name,
                "fail",
                f"{len(blocking)} vulnerable dependenc(ies) added or changed, first {first.message}{suffix}"[
                    :500
                ],
                findings,
                failure_class=FailureClass.SAST_BLOCK,
            )
        if findings:
            return result(self.name, "warn", f"{len(findings)} known vulnerabilit(ies){suffix}", findings)
        if offline and not ran:
            return result(self.name, "skipped", "offline: " + "; ".join(offline))
        if not ran:
            return result(self.name, "skipped", notes)
        return result(self.name, "pass", f"no known vulnerabilities ({', '.join(ran)}){suffix}")

    def _pip_audit(self, ctx: GateContext, tool: str, files: list[str], changed: set[str]) -> list[Finding]:
        findings: list[Finding] = []
        for name in files:
            argv = [tool, "--disable-pip", "--no-deps", "-r", name, "-f", "json", "--progress-spinner", "off"]
            argv += [
                "--timeout",
                str(max(5, int(min(60, ctx.remaining())))),
                "--cache-dir",
                str(ctx.cache.folder / "pip-audit"),
            ]
            outcome = ctx.run(argv, what="pip-audit")
            try:
                report = json.loads(outcome.stdout or b"{}")
            except ValueError:
                report = None
            if not isinstance(report, dict) or "dependencies" not in report:
                text = (outcome.err or outcome.text).strip()
                if _OFFLINE.search(text):
                    raise Offline("advisory service unreachable")
                lines = text.splitlines()
                raise Offline(f"could not audit {name}: {lines[-1][:200] if lines else 'no output'}")
            dependencies = [d for d in report["dependencies"] if isinstance(d, dict)]
            audited = [d for d in dependencies if "skip_reason" not in d]
            if dependencies and not audited:
                raise Offline(f"none of the {len(dependencies)} dependencies in {name} could be audited")
            for dependency in audited:
                for vuln in dependency.get("vulns") or []:
                    fix = ", ".join(vuln.get("fix_versions") or []) or "none"
                    findings.append(
                        Finding(
                            file=name,
                            line=None,
                            kind=str(vuln.get("id", "vulnerability")),
                            message=f"{dependency.get('name')} {dependency.get('version')}: "
                            f"{vuln.get('id')} (fixed in {fix})",
                            severity="high",
                            rule="pip-audit",
                            category=VULNERABLE_CATEGORY,
                            new=name in changed,
                        )
                    )
        return findings

    def _npm_audit(self, ctx: GateContext, npm: str, lock_changed: bool) -> list[Finding]:
        outcome = ctx.run([npm, "audit", "--json", "--package-lock-only"], what="npm audit")
        try:
            report = json.loads(outcome.stdout or b"{}")
        except ValueError:
            report = None
        if not isinstance(report, dict) or "vulnerabilities" not in report:
            text = (outcome.err or outcome.text or "").strip()
            status = report.get("statusCode") if isinstance(report, dict) else None
            raise Offline(
                f"advisory service unreachable{f' (HTTP {status})' if status else ''}"
                if status or _OFFLINE.search(text)
                else "npm audit gave no report"
            )
        findings: list[Finding] = []
        for name, vuln in (report.get("vulnerabilities") or {}).items():
            if not isinstance(vuln, dict):
                continue
            severity = _NPM_SEVERITY.get(str(vuln.get("severity")), "medium")
            findings.append(
                Finding(
                    file="package-lock.json",
                    line=None,
                    kind="npm-advisory",
                    message=f"{name} {vuln.get('range', '')}: {severity} severity advisory",
                    severity=severity,
                    rule="npm-audit",
                    category=VULNERABLE_CATEGORY,
                    new=lock_changed and RANK[severity] >= 0,
                )
            )
        return findings
