"""The SAST gate: semgrep with the rule files shipped in ``speedrift/gates/rules/`` (plus any the
repo lists in ``[gates.sast] rules``), and ruff's ``S`` (bandit) rules for Python.

semgrep always runs with ``--metrics=off --disable-version-check`` (without the latter it stalls
about 97 s offline) and never with registry configs. Only changed files are scanned; findings
already present at the base commit do not count (see versus.py). Each finding has a severity and
an OWASP category; new findings at or above ``[gates.sast] block_severity`` (default high) fail
the gate as ``sast_block``, lower ones warn.
"""

from __future__ import annotations

import json
from pathlib import Path

from speedrift.failure_class import FailureClass
from speedrift.gates import diffaware, versus
from speedrift.gates.changes import ChangedFile
from speedrift.gates.context import GateContext, result
from speedrift.gates.lint import PYTHON, ToolFailed, batches, relative
from speedrift.gates.model import Finding, GateResult, Severity

RULES_DIR = Path(__file__).parent / "rules"
SEMGREP_FLAGS = ("--metrics=off", "--disable-version-check", "--json", "--quiet")
SEMGREP_LANGUAGES = (".py", ".pyi", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx")
RANK: dict[str, int] = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
_SEMGREP_SEVERITY: dict[str, Severity] = {"ERROR": "high", "WARNING": "medium", "INFO": "low"}

INJECTION = "A03:2021-Injection"
CRYPTO = "A02:2021-Cryptographic Failures"
INTEGRITY = "A08:2021-Software and Data Integrity Failures"
AUTH = "A07:2021-Identification and Authentication Failures"
MISCONFIG = "A05:2021-Security Misconfiguration"
ACCESS = "A01:2021-Broken Access Control"
# ruff S codes: (severity, OWASP category); the rest are medium, by prefix below
RUFF_S: dict[str, tuple[Severity, str]] = {
    "S102": ("high", INJECTION),
    "S103": ("medium", ACCESS),
    "S104": ("medium", MISCONFIG),
    "S105": ("medium", AUTH),
    "S106": ("medium", AUTH),
    "S107": ("medium", AUTH),
    "S108": ("low", ACCESS),
    "S110": ("low", "A09:2021-Security Logging and Monitoring Failures"),
    "S112": ("low", "A09:2021-Security Logging and Monitoring Failures"),
    "S113": ("low", MISCONFIG),
    "S301": ("medium", INTEGRITY),
    "S302": ("medium", INTEGRITY),
    "S307": ("high", INJECTION),
    "S311": ("low", CRYPTO),
    "S324": ("medium", CRYPTO),
    "S501": ("high", CRYPTO),
    "S506": ("high", INTEGRITY),
    "S602": ("high", INJECTION),
    "S604": ("medium", INJECTION),
    "S605": ("high", INJECTION),
    "S608": ("high", INJECTION),
    "S701": ("medium", INJECTION),
}
RUFF_S_IGNORED = ("S101", "S603", "S607", "S404", "S403")  # assert; argv subprocess; imports


def ruff_s_class(code: str) -> tuple[Severity, str]:
    if code in RUFF_S:
        return RUFF_S[code]
    if code.startswith("S6"):
        return "medium", INJECTION
    if code.startswith(("S5", "S3")):
        return "medium", CRYPTO
    return "medium", MISCONFIG


def at_least(severity: str, floor: str) -> bool:
    return RANK.get(severity, 2) >= RANK.get(floor, 3)


def semgrep_runner(ctx: GateContext, semgrep: str, configs: list[str]) -> versus.PerFileRun:
    def run(root: Path, paths: list[str]) -> list[Finding]:
        found: list[Finding] = []
        for batch in batches(paths):
            argv = [semgrep, "scan", *SEMGREP_FLAGS]
            for config in configs:
                argv += ["--config", config]
            argv += ["--timeout", "30", "-j", "2", "--", *batch]
            outcome = ctx.run(
                argv, what="semgrep", cwd=root, SEMGREP_ENABLE_VERSION_CHECK="0", SEMGREP_SEND_METRICS="off"
            )
            try:
                report = json.loads(outcome.stdout or b"{}")
            except ValueError:
                report = None
            if not isinstance(report, dict) or outcome.returncode not in (0, 1):
                detail = (outcome.err or outcome.text).strip().splitlines()
                raise ToolFailed(f"semgrep exited with {outcome.returncode}: {' '.join(detail[-2:])[:300]}")
            for item in report.get("results") or []:
                found.append(_semgrep_finding(root, item))
        return found

    return run


def _semgrep_finding(root: Path, item: dict[str, object]) -> Finding:
    extra = item.get("extra") if isinstance(item.get("extra"), dict) else {}
    assert isinstance(extra, dict)
    metadata = extra.get("metadata") if isinstance(extra.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    check = str(item.get("check_id", "semgrep"))
    if "speedrift." in check:
        check = check[check.rfind("speedrift.") :]
    severity: Severity = _SEMGREP_SEVERITY.get(str(extra.get("severity")), "medium")
    wanted = metadata.get("speedrift-severity")
    if isinstance(wanted, str) and wanted in RANK:
        severity = wanted  # type: ignore[assignment]
    owasp = metadata.get("owasp")
    category = owasp[0] if isinstance(owasp, list) and owasp else owasp
    start = item.get("start") if isinstance(item.get("start"), dict) else {}
    assert isinstance(start, dict)
    message = " ".join(str(extra.get("message", "")).split())
    return Finding(
        file=relative(root, str(item.get("path", ""))),
        line=start.get("line") if isinstance(start.get("line"), int) else None,
        kind=check,
        message=f"{check.rsplit('.', 1)[-1]}: {message}"[:400],
        severity=severity,
        rule=check,
        category=str(category) if category else None,
    )


def ruff_s_runner(ctx: GateContext, ruff: str) -> versus.PerFileRun:
    def run(root: Path, paths: list[str]) -> list[Finding]:
        found: list[Finding] = []
        for batch in batches(paths):
            argv = [ruff, "check", "--isolated", "--select", "S", "--ignore", ",".join(RUFF_S_IGNORED)]
            argv += ["--output-format", "json", "--no-cache", "--", *batch]
            outcome = ctx.run(argv, what="ruff --select S", cwd=root)
            if outcome.returncode not in (0, 1):
                raise ToolFailed(f"ruff exited with {outcome.returncode}: {outcome.err.strip()[:300]}")
            for item in json.loads(outcome.stdout or b"[]"):
                code = str(item.get("code") or "S")
                severity, category = ruff_s_class(code)
                location = item.get("location") or {}
                found.append(
                    Finding(
                        file=relative(root, str(item.get("filename", ""))),
                        line=location.get("row"),
                        kind=code,
                        message=f"{code} {item.get('message', '')}",
                        severity=severity,
                        rule=f"ruff.{code}",
                        category=category,
                    )
                )
        return found

    return run


def dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per (file, line, category): semgrep and ruff often flag the same call."""
    best: dict[tuple[str, int | None, str | None], Finding] = {}
    for finding in findings:
        key = (finding.file, finding.line, finding.category)
        current = best.get(key)
        if current is None or RANK[finding.severity] > RANK[current.severity]:
            best[key] = finding
    return sorted(best.values(), key=lambda f: (f.file, f.line or 0))


class SastGate:
    name = "sast"

    def run(self, ctx: GateContext) -> GateResult:
        config = ctx.config.sast
        ran: list[str] = []
        skipped: list[str] = []
        findings: list[Finding] = []
        try:
            files = ctx.existing(SEMGREP_LANGUAGES)
            if files and config.semgrep != "off":
                semgrep = ctx.finder.find("semgrep")
                if semgrep is None:
                    skipped.append(ctx.finder.missing_reason("semgrep"))
                else:
                    findings += self._semgrep(ctx, str(semgrep), files)
                    ran.append(f"semgrep ({len(files)} files)")
            python = ctx.existing(PYTHON)
            if python and config.ruff_security != "off":
                ruff = ctx.finder.find("ruff")
                if ruff is None:
                    skipped.append(ctx.finder.missing_reason("ruff"))
                else:
                    run = ruff_s_runner(ctx, str(ruff))
                    tip = run(ctx.worktree, [c.path for c in python])
                    findings += versus.compare_per_file(ctx, "ruff-s", "S", python, tip, run, ())
                    ran.append(f"ruff S ({len(python)} files)")
        except ToolFailed as error:
            return result(self.name, "fail", str(error), findings, failure_class=FailureClass.ENV_BOOTSTRAP)
        findings = dedupe(findings)
        new = [f for f in findings if f.new]
        blocking = [f for f in new if at_least(f.severity, config.block_severity)]
        old = len(findings) - len(new)
        old_note = f" ({old} pre-existing)" if old else ""
        note = f"; {'; '.join(skipped)}" if skipped and ran else ""
        kept = new + [f for f in findings if not f.new][:50]
        if blocking:
            first = blocking[0]
            reason = f"{len(blocking)} new {config.block_severity}+ finding(s){old_note}, "
            reason += f"first {first.file}:{first.line} {first.message}"
            return result(self.name, "fail", reason[:400] + note, kept, failure_class=FailureClass.SAST_BLOCK)
        if new:
            return result(
                self.name, "warn", f"{len(new)} new lower-severity finding(s){old_note}{note}", kept
            )
        if not ran:
            return result(
                self.name, "skipped", "; ".join(skipped) or "no changed files semgrep or ruff cover"
            )
        return result(self.name, "pass", f"no new findings from {', '.join(ran)}{old_note}{note}", kept)

    def _semgrep(self, ctx: GateContext, semgrep: str, files: list[ChangedFile]) -> list[Finding]:
        configs = [str(RULES_DIR)]
        for extra in ctx.config.sast.rules:
            path = ctx.worktree / extra
            if not path.exists():
                raise ToolFailed(f"semgrep rules {extra} ([gates.sast] rules in speedrift.toml) do not exist")
            configs.append(str(path))
        run = semgrep_runner(ctx, semgrep, configs)
        tip = run(ctx.worktree, [c.path for c in files])
        rules_hash = diffaware.config_hash(RULES_DIR, sorted(p.name for p in RULES_DIR.glob("*.yml")))
        key = rules_hash + "\0" + "\0".join(ctx.config.sast.rules)
        return versus.compare_per_file(ctx, "semgrep", key, files, tip, run, ())
