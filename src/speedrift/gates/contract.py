"""The contract gate: declared deliverables exist, and changed JSON/YAML files satisfy their schemas.

Schemas are mapped in speedrift.toml (``[gates.schemas] "config/*.json" = "schemas/c.json"``); a
mapping may point into a document with a JSON pointer (``"api.yaml#/components/schemas/User"``),
so an OpenAPI document's component schemas can validate example files. Schemas are read from the
tip (the task may change them) and relative ``$ref``s resolve against the schema's directory.
Changed documents declaring ``openapi: 3.x`` are checked as OpenAPI 3 (see openapi.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from speedrift.errors import SpeedriftError
from speedrift.failure_class import FailureClass
from speedrift.gates import openapi
from speedrift.gates.changes import ChangedFile, git_bytes
from speedrift.gates.context import GateContext, result
from speedrift.gates.globs import compile_glob, first_match
from speedrift.gates.model import Finding, GateResult
from speedrift.graph.model import str_list

DOCUMENTS = (".json", ".yaml", ".yml")
_GLOB_CHARS = frozenset("*?[")
MAX_ERRORS_PER_FILE = 20


class ConfigProblem(SpeedriftError):
    pass


def load_document(path: Path, data: bytes | None = None) -> Any:
    raw = path.read_bytes() if data is None else data
    if path.suffix == ".json":
        return json.loads(raw)
    return yaml.safe_load(raw)


class ContractGate:
    name = "contract"

    def run(self, ctx: GateContext) -> GateResult:
        findings: list[Finding] = []
        problems: list[str] = []
        checked: list[str] = []
        deliverables = str_list(ctx.task, "deliverables") if ctx.task else []
        if deliverables:
            missing = self._missing(ctx, deliverables)
            checked.append(f"{len(deliverables)} deliverable(s)")
            findings += [
                Finding(d, None, "missing-deliverable", f"deliverable {d} does not exist", "high", "contract")
                for d in missing
            ]
        documents = [c for c in ctx.existing(DOCUMENTS) if not c.binary]
        schema_cache: dict[str, Any] = {}
        validated = 0
        for change in documents:
            try:
                document = load_document(ctx.worktree / change.path, ctx.read(change))
            except (OSError, ValueError, yaml.YAMLError, TypeError):
                continue  # unparsable: the syntax gate reports it
            pattern = first_match(change.path, ctx.config.schemas)
            if pattern is not None:
                target = ctx.config.schemas[pattern]
                try:
                    schema = schema_cache.get(target) or self._schema(ctx, target, pattern)
                except ConfigProblem as problem:
                    problems.append(str(problem))
                    continue
                schema_cache[target] = schema
                findings += _validate(change, document, schema, f"schema {target}")
                validated += 1
            spec = openapi.schema_for(document)
            if spec is not None:
                findings += _validate(change, document, {"schema": spec}, "OpenAPI 3")
                validated += 1
        if validated:
            checked.append(f"{validated} document validation(s)")
        if problems:
            return result(
                self.name,
                "fail",
                "; ".join(problems[:3]),
                findings,
                failure_class=FailureClass.ENV_BOOTSTRAP,
            )
        if findings:
            first = findings[0]
            return result(
                self.name,
                "fail",
                f"{len(findings)} contract problem(s) (first: {first.file}: {first.message})",
                findings,
                failure_class=FailureClass.IMPLEMENTATION_ERROR,
            )
        if not checked:
            return result(
                self.name, "skipped", "no deliverables declared and no mapped or OpenAPI documents changed"
            )
        return result(self.name, "pass", " and ".join(checked) + " satisfied")

    def _missing(self, ctx: GateContext, deliverables: list[str]) -> list[str]:
        missing = [d for d in deliverables if not _GLOB_CHARS & set(d) and not (ctx.worktree / d).exists()]
        globbed = [d for d in deliverables if _GLOB_CHARS & set(d)]
        if globbed:
            listing = git_bytes(
                ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], ctx.worktree
            )
            files = [p.decode("utf-8", "replace") for p in listing.split(b"\0") if p]
            for pattern in globbed:
                regex = compile_glob(pattern)
                if not any(regex.match(f) for f in files):
                    missing.append(pattern)
        return missing

    def _schema(self, ctx: GateContext, target: str, pattern: str) -> dict[str, Any]:
        path_text, _, pointer = target.partition("#")
        path = (ctx.worktree / path_text).resolve()
        where = f'[gates.schemas] "{pattern}" = "{target}" in speedrift.toml'
        if not path.is_file():
            raise ConfigProblem(f"schema {path_text} does not exist ({where})")
        try:
            document = load_document(path)
        except (OSError, ValueError, yaml.YAMLError) as error:
            raise ConfigProblem(f"schema {path_text} cannot be read: {error} ({where})") from None
        return {"schema": document, "uri": path.as_uri(), "pointer": pointer, "where": where}


def _validate(change: ChangedFile, document: Any, spec: dict[str, Any], label: str) -> list[Finding]:
    import jsonschema
    from referencing import Registry, Resource
    from referencing.exceptions import NoSuchResource, Unresolvable
    from referencing.jsonschema import DRAFT202012

    schema = spec["schema"]
    uri = spec.get("uri")
    pointer = spec.get("pointer", "")

    def retrieve(address: str) -> Resource[Any]:
        parts = urlsplit(address)
        if parts.scheme != "file":
            raise NoSuchResource(address)  # never fetched over a network
        try:
            contents = load_document(Path(unquote(parts.path)))
        except (OSError, ValueError, yaml.YAMLError):
            raise NoSuchResource(address) from None
        return Resource.from_contents(contents, default_specification=DRAFT202012)

    registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    if uri:
        resource = Resource.from_contents(schema, default_specification=DRAFT202012)
        registry = registry.with_resource(uri, resource)
        root: Any = {"$ref": f"{uri}#{pointer}"} if pointer else {"$ref": uri}
    else:
        root = schema
    try:
        cls = jsonschema.validators.validator_for(schema if isinstance(schema, dict) else {})
        validator = cls(root, registry=registry)
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    except (jsonschema.exceptions.SchemaError, Unresolvable) as error:
        return [
            Finding(
                change.display,
                None,
                "invalid-schema",
                f"{label}: {str(error).splitlines()[0]}",
                "high",
                "contract",
            )
        ]
    return [
        Finding(
            change.display,
            None,
            "schema-violation",
            f"{label}: {_json_path(error.absolute_path)}: {error.message}"[:500],
            "high",
            "contract",
        )
        for error in errors[:MAX_ERRORS_PER_FILE]
    ]


def _json_path(parts: Any) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
