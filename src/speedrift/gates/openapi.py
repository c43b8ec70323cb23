"""A structural JSON Schema for OpenAPI 3.x documents (written for speedrift, not the official one).

It checks what breaks tooling in practice: the version string, ``info`` with title and version,
paths that start with ``/``, operations with their required parts (``responses`` in 3.0,
parameters with ``name`` and a valid ``in``, path parameters marked required), response keys,
servers with a ``url``, and ``$ref`` objects shaped as references. Schema objects themselves are
not validated (3.1 allows any JSON Schema there).
"""

from __future__ import annotations

from typing import Any

_REF = {"type": "object", "required": ["$ref"], "properties": {"$ref": {"type": "string"}}}


def _or_ref(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [_REF, {**schema, "not": {"required": ["$ref"]}}]}


_PARAMETER = _or_ref(
    {
        "type": "object",
        "required": ["name", "in"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "in": {"enum": ["query", "header", "path", "cookie", "querystring"]},
            "required": {"type": "boolean"},
            "deprecated": {"type": "boolean"},
        },
        "if": {"properties": {"in": {"const": "path"}}, "required": ["in"]},
        "then": {"required": ["required"], "properties": {"required": {"const": True}}},
    }
)
_RESPONSE = _or_ref(
    {
        "type": "object",
        "properties": {"description": {"type": "string"}, "content": {"type": "object"}},
    }
)
_RESPONSES = {
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"pattern": r"^(?:[1-5](?:\d\d|XX)|default|x-.*)$"},
    "additionalProperties": _RESPONSE,
}


def _operation(responses_required: bool) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["responses"] if responses_required else [],
        "properties": {
            "operationId": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "parameters": {"type": "array", "items": _PARAMETER},
            "requestBody": _or_ref({"type": "object", "required": ["content"]}),
            "responses": _RESPONSES,
            "deprecated": {"type": "boolean"},
            "security": {"type": "array", "items": {"type": "object"}},
        },
    }


def _path_item(responses_required: bool) -> dict[str, Any]:
    operation = _operation(responses_required)
    return {
        "type": "object",
        "properties": {
            **{
                verb: operation
                for verb in ("get", "put", "post", "delete", "options", "head", "patch", "trace")
            },
            "parameters": {"type": "array", "items": _PARAMETER},
            "$ref": {"type": "string"},
        },
    }


def _document(version_pattern: str, responses_required: bool) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["openapi", "info"],
        "properties": {
            "openapi": {"type": "string", "pattern": version_pattern},
            "info": {
                "type": "object",
                "required": ["title", "version"],
                "properties": {"title": {"type": "string"}, "version": {"type": "string"}},
            },
            "servers": {
                "type": "array",
                "items": {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}},
            },
            "paths": {
                "type": "object",
                "propertyNames": {"pattern": r"^(?:/|x-)"},
                "additionalProperties": _path_item(responses_required),
            },
            "components": {"type": "object"},
            "tags": {
                "type": "array",
                "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
            },
            "security": {"type": "array", "items": {"type": "object"}},
        },
    }


OPENAPI_30 = {**_document(r"^3\.0\.\d+", True), "required": ["openapi", "info", "paths"]}
OPENAPI_31 = {
    **_document(r"^3\.[1-9]\.\d+", False),
    "anyOf": [{"required": ["paths"]}, {"required": ["components"]}, {"required": ["webhooks"]}],
}


def schema_for(document: object) -> dict[str, Any] | None:
    """The schema an OpenAPI document is checked against, or None if it is not OpenAPI 3."""
    if not isinstance(document, dict):
        return None
    version = document.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        return None
    return OPENAPI_30 if version.startswith("3.0") else OPENAPI_31
