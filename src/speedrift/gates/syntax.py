"""The syntax gate: every changed Python, JSON, TOML and YAML file parses; JavaScript too when
Node is installed (``node --check``). No other tool is needed.

YAML is read with safe_load semantics but unknown tags (``!Ref``, ``!include``) are accepted: a
tag without a constructor is not a syntax error. JSON-with-comments files (tsconfig.json,
.vscode settings) are not held to strict JSON.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml

from speedrift.failure_class import FailureClass
from speedrift.gates import tools
from speedrift.gates.changes import ChangedFile
from speedrift.gates.context import GateContext, result
from speedrift.gates.globs import matches_any
from speedrift.gates.model import Finding, GateResult

PYTHON = (".py", ".pyi")
JSON = (".json",)
TOML = (".toml",)
YAML = (".yaml", ".yml")
JS = (".js", ".mjs", ".cjs")
JSONC = ("**/tsconfig*.json", "**/jsconfig*.json", ".vscode/**", "**/.eslintrc.json", "**/*.jsonc")
_TOML_POSITION = re.compile(r"at line (\d+)")
MAX_NODE_FILES = 500


class _TolerantLoader(yaml.SafeLoader):
    pass


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return None


_TolerantLoader.add_multi_constructor("!", _any_tag)
_TolerantLoader.add_multi_constructor("tag:", _any_tag)


def _error(change: ChangedFile, line: int | None, message: str) -> Finding:
    return Finding(
        file=change.display,
        line=line,
        kind="syntax-error",
        message=message[:500],
        severity="high",
        rule="syntax",
    )


def check_python(change: ChangedFile, data: bytes) -> Finding | None:
    try:
        ast.parse(data, filename=change.display)
    except SyntaxError as error:
        return _error(change, error.lineno, f"Python: {error.msg}")
    except ValueError as error:  # e.g. null bytes
        return _error(change, None, f"Python: {error}")
    return None


def check_json(change: ChangedFile, data: bytes) -> Finding | None:
    try:
        json.loads(data)
    except json.JSONDecodeError as error:
        return _error(change, error.lineno, f"JSON: {error.msg} (column {error.colno})")
    except UnicodeDecodeError:
        return _error(change, None, "JSON: the file is not valid UTF-8")
    return None


def check_toml(change: ChangedFile, data: bytes) -> Finding | None:
    try:
        tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return _error(change, None, "TOML: the file is not valid UTF-8")
    except tomllib.TOMLDecodeError as error:
        found = _TOML_POSITION.search(str(error))
        return _error(change, int(found.group(1)) if found else None, f"TOML: {error}")
    return None


def check_yaml(change: ChangedFile, data: bytes) -> Finding | None:
    try:
        for _document in yaml.load_all(data, Loader=_TolerantLoader):
            pass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        return _error(change, line, f"YAML: {error.problem or error.context or 'invalid'}")
    except yaml.YAMLError as error:  # e.g. a reader error on bytes that are no text encoding
        return _error(change, None, f"YAML: {str(error).splitlines()[0] if str(error) else 'invalid'}")
    return None


_CHECKS = ((PYTHON, check_python), (JSON, check_json), (TOML, check_toml), (YAML, check_yaml))


class SyntaxGate:
    name = "syntax"

    def run(self, ctx: GateContext) -> GateResult:
        findings: list[Finding] = []
        checked = 0
        notes: list[str] = []
        too_big = 0
        for change in ctx.existing():
            check = next((fn for suffixes, fn in _CHECKS if change.path.endswith(suffixes)), None)
            if check is None:
                continue
            if check is check_json and matches_any(change.path, JSONC):
                continue
            data = ctx.read(change)
            if data is None:
                too_big += 1
                continue
            checked += 1
            problem = check(change, data)
            if problem is not None:
                findings.append(problem)
        js = [c for c in ctx.existing(JS)]
        if js:
            node = ctx.finder.find("node")
            if node is None:
                notes.append(f"{len(js)} JavaScript file(s) not checked: {ctx.finder.missing_reason('node')}")
            else:
                checked += min(len(js), MAX_NODE_FILES)
                findings += self._node(ctx, str(node), js[:MAX_NODE_FILES])
                if len(js) > MAX_NODE_FILES:
                    notes.append(
                        f"{len(js) - MAX_NODE_FILES} JavaScript file(s) beyond the first "
                        f"{MAX_NODE_FILES} not checked"
                    )
        if too_big:
            notes.append(f"{too_big} file(s) over {ctx.config.max_file_mb:g} MB not parsed")
        suffix = f"; {'; '.join(notes)}" if notes else ""
        if findings:
            first = findings[0]
            reason = f"{len(findings)} file(s) do not parse (first: {first.file}:{first.line or '?'})"
            return result(
                self.name, "fail", reason + suffix, findings, failure_class=FailureClass.IMPLEMENTATION_ERROR
            )
        if checked == 0:
            return result(self.name, "skipped", "no changed files of a parsed kind" + suffix)
        return result(self.name, "pass", f"{checked} file(s) parse" + suffix)

    def _node(self, ctx: GateContext, node: str, files: list[ChangedFile]) -> list[Finding]:
        def one(change: ChangedFile) -> Finding | None:
            run = tools.run(
                [node, "--check", change.path],
                cwd=ctx.worktree,
                env=ctx.env,
                timeout=ctx.remaining(),
                what="node --check",
            )
            if run.returncode == 0:
                return None
            return _node_error(change, run.err)

        with ThreadPoolExecutor(max_workers=4) as pool:
            return [f for f in pool.map(one, files) if f is not None]


def _node_error(change: ChangedFile, stderr: str) -> Finding:
    line: int | None = None
    first = stderr.splitlines()[0] if stderr else ""
    match = re.search(r":(\d+)\s*$", first)
    if match:
        line = int(match.group(1))
    message = next((x for x in stderr.splitlines() if "Error" in x), "node --check failed")
    return _error(change, line, f"JavaScript: {message.strip()}")
