"""The types gate: mypy (when the repo configures it) and tsc (tsconfig.json plus a local
TypeScript), diff-aware against the base commit.

mypy runs as the repo configures it: with ``files`` in its config, the whole configured program;
otherwise the changed Python files. Its incremental cache lives under
``<repo>/.speedrift/cache/mypy/`` and is shared by every attempt (mypy's cache keys on content,
so other worktrees of the same repo hit it). The base is checked in a private full checkout and
its findings are cached per base commit.
"""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

from speedrift.failure_class import FailureClass
from speedrift.gates import versus
from speedrift.gates.context import GateContext
from speedrift.gates.lint import PYTHON, ToolFailed, batches, pyproject_has, relative, summarize
from speedrift.gates.model import Finding, GateResult

_TSC_LINE = re.compile(
    r"^(?P<file>.+?)\((?P<line>\d+),(?P<col>\d+)\): error (?P<code>TS\d+): (?P<message>.*)$"
)


def mypy_config(root: Path) -> tuple[bool, bool]:
    """(configured, has a ``files`` setting) from mypy.ini, .mypy.ini, pyproject.toml, setup.cfg."""
    for name, section in (("mypy.ini", "mypy"), (".mypy.ini", "mypy"), ("setup.cfg", "mypy")):
        path = root / name
        if not path.is_file():
            continue
        parser = configparser.ConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        if parser.has_section(section):
            return True, parser.has_option(section, "files")
    if pyproject_has(root, "tool.mypy"):
        return True, pyproject_has(root, "tool.mypy.files")
    return False, False


def fit_argv(paths: list[str]) -> list[str]:
    """The paths, or — when there are too many for one command line — their top-level folders
    (mypy checks the whole program either way; it only reports more)."""
    if len(batches(paths)) <= 1:
        return paths
    return sorted({p.split("/", 1)[0] for p in paths})


class TypesGate:
    name = "types"

    def run(self, ctx: GateContext) -> GateResult:
        ran: list[str] = []
        skipped: list[str] = []
        findings: list[Finding] = []
        try:
            self._mypy(ctx, ran, skipped, findings)
            self._tsc(ctx, ran, skipped, findings)
        except ToolFailed as error:
            from speedrift.gates.context import result

            return result(self.name, "fail", str(error), findings, failure_class=FailureClass.ENV_BOOTSTRAP)
        return summarize(self.name, ran, skipped, findings, block_low=True)

    def _mypy(self, ctx: GateContext, ran: list[str], skipped: list[str], out: list[Finding]) -> None:
        files = ctx.existing(PYTHON)
        switch = ctx.config.types.mypy
        if switch == "off" or not files:
            return
        configured, whole = mypy_config(ctx.worktree)
        if switch == "auto" and not configured:
            skipped.append("mypy: not configured in the repo")
            return
        mypy = ctx.finder.find("mypy")
        if mypy is None:
            skipped.append(ctx.finder.missing_reason("mypy"))
            return
        cache_root = ctx.cache.folder.parent / "mypy"

        def run_at(root: Path, targets: list[str], cache: str) -> list[Finding]:
            argv = [
                str(mypy),
                "--output",
                "json",
                "--no-error-summary",
                "--cache-dir",
                str(cache_root / cache),
            ]
            outcome = ctx.run([*argv, *targets], what="mypy", cwd=root)
            if outcome.returncode not in (0, 1):
                raise ToolFailed(
                    f"mypy exited with {outcome.returncode}: {(outcome.err or outcome.text).strip()[:300]}"
                )
            found: list[Finding] = []
            for line in outcome.text.splitlines():
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(item, dict) or item.get("severity") != "error":
                    continue
                code = str(item.get("code") or "mypy")
                found.append(
                    Finding(
                        file=relative(root, str(item.get("file", ""))),
                        line=item.get("line"),
                        kind=code,
                        message=f"{item.get('message', '')} [{code}]",
                        severity="medium",
                        rule=code,
                    )
                )
            return found

        targets = [] if whole else fit_argv([c.path for c in files])
        tip = run_at(ctx.worktree, targets, "tip")

        def base_run(root: Path) -> list[Finding]:
            if whole and mypy_config(root)[1]:
                return run_at(root, [], "base")
            # the base configures no program (or no mypy at all): check what of the changed
            # files existed there
            existing = [c.base_path for c in files if c.base_path and (root / c.base_path).is_file()]
            return run_at(root, fit_argv(existing), "base") if existing else []

        key = "whole" if whole else "\0".join(sorted(c.base_path or "" for c in files))
        out += versus.compare_whole(ctx, "mypy", key, tip, base_run)
        ran.append("mypy" if whole else f"mypy ({len(files)} files)")

    def _tsc(self, ctx: GateContext, ran: list[str], skipped: list[str], out: list[Finding]) -> None:
        files = ctx.existing((".ts", ".tsx", ".mts", ".cts"))
        switch = ctx.config.types.tsc
        if switch == "off" or not files:
            return
        if not (ctx.worktree / "tsconfig.json").is_file():
            if switch == "on":
                skipped.append("tsc: no tsconfig.json")
            return
        tsc = ctx.finder.find("tsc")
        if tsc is None:
            skipped.append(ctx.finder.missing_reason("tsc"))
            return

        def run_at(root: Path) -> list[Finding]:
            outcome = ctx.run(
                [str(tsc), "--noEmit", "--pretty", "false", "-p", "tsconfig.json"], what="tsc", cwd=root
            )
            found: list[Finding] = []
            for line in outcome.text.splitlines():
                match = _TSC_LINE.match(line.strip())
                if match:
                    found.append(
                        Finding(
                            file=relative(root, match["file"]),
                            line=int(match["line"]),
                            kind=match["code"],
                            message=f"{match['code']} {match['message']}",
                            severity="medium",
                            rule=match["code"],
                        )
                    )
            if outcome.returncode not in (0, 1, 2) or (outcome.returncode and not found):
                raise ToolFailed(
                    f"tsc exited with {outcome.returncode}: {(outcome.text or outcome.err).strip()[:300]}"
                )
            return found

        tip = run_at(ctx.worktree)
        out += versus.compare_whole(ctx, "tsc", "project", tip, run_at, link_node_modules=True)
        ran.append("tsc")
