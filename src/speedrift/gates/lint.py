"""The lint gate: ruff (Python) and eslint (JavaScript/TypeScript), diff-aware.

A tool runs when the repo configures it (``[tool.ruff]`` in pyproject.toml, ruff.toml; an eslint
config plus ``node_modules/.bin/eslint``) or when speedrift.toml switches it ``on``. Only the
changed files are linted; findings already present at the base commit do not block, new ones
fail (eslint warnings warn). See versus.py for how new is told from old.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from speedrift.errors import SpeedriftError
from speedrift.failure_class import FailureClass
from speedrift.gates import versus
from speedrift.gates.context import GateContext, result
from speedrift.gates.model import Finding, GateResult

PYTHON = (".py", ".pyi")
JAVASCRIPT = (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts")
ESLINT_CONFIGS = versus.JS_CONFIGS[1:-2]  # the eslint config names (no package.json, tsconfig)
ARGV_BUDGET = 512 * 1024  # bytes of paths per tool invocation


def pyproject_has(root: Path, table: str) -> bool:
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    node: object = data
    for part in table.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def ruff_configured(root: Path) -> bool:
    return (
        (root / "ruff.toml").is_file() or (root / ".ruff.toml").is_file() or pyproject_has(root, "tool.ruff")
    )


def eslint_configured(root: Path) -> bool:
    if any((root / name).is_file() for name in ESLINT_CONFIGS):
        return True
    try:
        package = json.loads((root / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(package, dict) and "eslintConfig" in package


def batches(items: list[str], budget: int = ARGV_BUDGET) -> list[list[str]]:
    """Paths split so no one call's argv passes ``budget`` bytes (the kernel allows ~2 MB in all,
    environment included); tools that start slowly (semgrep) get as few calls as possible."""
    out: list[list[str]] = [[]]
    used = 0
    for item in items:
        size = len(item.encode("utf-8", "surrogateescape")) + 1
        if out[-1] and used + size > budget:
            out.append([])
            used = 0
        out[-1].append(item)
        used += size
    return out if out[-1] else []


def relative(root: Path, filename: str) -> str:
    path = Path(filename)
    if not path.is_absolute():
        return filename
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return filename


def ruff_runner(ctx: GateContext, ruff: str, extra: list[str], rule_prefix: str = "") -> versus.PerFileRun:
    def run(root: Path, paths: list[str]) -> list[Finding]:
        found: list[Finding] = []
        for batch in batches(paths):
            argv = [ruff, "check", "--output-format", "json", "--force-exclude", "--no-cache", *extra, *batch]
            outcome = ctx.run(argv, what="ruff", cwd=root)
            if outcome.returncode not in (0, 1):
                raise ToolFailed(f"ruff exited with {outcome.returncode}: {outcome.err.strip()[:300]}")
            for item in json.loads(outcome.stdout or b"[]"):
                code = item.get("code") or "ruff"
                if rule_prefix and not str(code).startswith(rule_prefix):
                    continue
                location = item.get("location") or {}
                found.append(
                    Finding(
                        file=relative(root, str(item.get("filename", ""))),
                        line=location.get("row"),
                        kind=str(code),
                        message=f"{code} {item.get('message', '')}",
                        severity="medium",
                        rule=str(code),
                    )
                )
        return found

    return run


def eslint_runner(ctx: GateContext, eslint: str) -> versus.PerFileRun:
    def run(root: Path, paths: list[str]) -> list[Finding]:
        found: list[Finding] = []
        for batch in batches(paths):
            argv = [eslint, "--format", "json", "--no-error-on-unmatched-pattern", *batch]
            outcome = ctx.run(argv, what="eslint", cwd=root)
            if outcome.returncode not in (0, 1):
                raise ToolFailed(f"eslint exited with {outcome.returncode}: {outcome.err.strip()[:300]}")
            for report in json.loads(outcome.stdout or b"[]"):
                for message in report.get("messages") or []:
                    rule = message.get("ruleId") or "eslint"
                    found.append(
                        Finding(
                            file=relative(root, str(report.get("filePath", ""))),
                            line=message.get("line"),
                            kind=str(rule),
                            message=f"{rule} {message.get('message', '')}",
                            severity="medium" if message.get("severity") == 2 else "low",
                            rule=str(rule),
                        )
                    )
        return found

    return run


class ToolFailed(SpeedriftError):
    """A tool ran but could not do its job (bad config, crash): the gate fails with this reason."""


class LintGate:
    name = "lint"

    def run(self, ctx: GateContext) -> GateResult:
        ran: list[str] = []
        skipped: list[str] = []
        findings: list[Finding] = []
        try:
            self._ruff(ctx, ran, skipped, findings)
            self._eslint(ctx, ran, skipped, findings)
        except ToolFailed as error:
            return result(self.name, "fail", str(error), findings, failure_class=FailureClass.ENV_BOOTSTRAP)
        return summarize(self.name, ran, skipped, findings, block_low=False)

    def _ruff(self, ctx: GateContext, ran: list[str], skipped: list[str], out: list[Finding]) -> None:
        files = ctx.existing(PYTHON)
        switch = ctx.config.lint.ruff
        if not files or switch == "off":
            return
        if switch == "auto" and not ruff_configured(ctx.worktree):
            skipped.append("ruff: not configured in the repo")
            return
        ruff = ctx.finder.find("ruff")
        if ruff is None:
            skipped.append(ctx.finder.missing_reason("ruff"))
            return
        run = ruff_runner(ctx, str(ruff), [])
        tip = run(ctx.worktree, [c.path for c in files])
        out += versus.compare_per_file(ctx, "ruff", "check", files, tip, run, versus.PYTHON_CONFIGS)
        ran.append(f"ruff ({len(files)} files)")

    def _eslint(self, ctx: GateContext, ran: list[str], skipped: list[str], out: list[Finding]) -> None:
        files = ctx.existing(JAVASCRIPT)
        switch = ctx.config.lint.eslint
        if not files or switch == "off":
            return
        if switch == "auto" and not eslint_configured(ctx.worktree):
            skipped.append("eslint: not configured in the repo")
            return
        eslint = ctx.finder.find("eslint")
        if eslint is None:
            skipped.append(ctx.finder.missing_reason("eslint"))
            return
        run = eslint_runner(ctx, str(eslint))
        tip = run(ctx.worktree, [c.path for c in files])
        out += versus.compare_per_file(
            ctx, "eslint", "check", files, tip, run, versus.JS_CONFIGS, link_node_modules=True
        )
        ran.append(f"eslint ({len(files)} files)")


def summarize(
    gate: str,
    ran: list[str],
    skipped: list[str],
    findings: list[Finding],
    *,
    block_low: bool,
    failure_class: FailureClass = FailureClass.IMPLEMENTATION_ERROR,
) -> GateResult:
    """pass / warn / fail / skipped for a diff-aware tool gate from its new and old findings."""
    new, old = versus.split_new(findings)
    blocking = [f for f in new if block_low or f.severity != "low"]
    note = f"; {'; '.join(skipped)}" if skipped and ran else ""
    old_note = f" ({len([f for f in findings if not f.new])} pre-existing)" if len(old) else ""
    kept = new + old
    if blocking:
        first = blocking[0]
        reason = f"{len(blocking)} new finding(s){old_note}, first {first.file}:{first.line or '?'} "
        reason = (reason + first.message)[:400] + note
        return result(gate, "fail", reason, kept, failure_class=failure_class)
    if new:
        return result(gate, "warn", f"{len(new)} new warning(s){old_note}{note}", kept)
    if not ran:
        reason = "; ".join(skipped) if skipped else "no changed files for its tools"
        return result(gate, "skipped", reason)
    return result(gate, "pass", f"no new findings from {', '.join(ran)}{old_note}{note}", kept)
