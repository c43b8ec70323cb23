"""Validating JSON values against a JSON Schema, with errors a person (or an agent) can act on.

The one home for schema validation: a role's typed output (fleet/roles), a coordination record an
agent posts (coord/records.py). Draft 2020-12, every error at once, each naming where in the value
it is (``$.findings[2].line``) and what is wrong, in a stable order (by place, then message), so
an agent shown them can fix all of them in one more try.

Invariant: a schema is checked once, when it is loaded (:func:`checked_schema`); validating a
value never raises for the value's sake, whatever it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from speedrift.errors import InvalidValue
from speedrift.textclip import clip

if TYPE_CHECKING:
    from jsonschema.validators import Draft202012Validator

MAX_ERRORS = 50


def checked_schema(schema: Mapping[str, Any], where: str) -> Draft202012Validator:
    """A validator for ``schema``; InvalidValue naming ``where`` when the schema itself is wrong.
    jsonschema is imported here, on first use (~100 ms): never on a reader's path."""
    import jsonschema
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import Draft202012Validator

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise InvalidValue(
            f"{where}: not a valid JSON Schema: {clip(error.message, 300)} (at {_place(error.path)})",
            hint="fix the schema (draft 2020-12)",
        ) from None
    return Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def problems(validator: Draft202012Validator, value: Any) -> list[str]:
    """Every way ``value`` fails the schema, as ``"$.path: message"`` lines ([] when it is valid)."""
    found = sorted(validator.iter_errors(value), key=lambda e: (_place(e.absolute_path), e.message))
    lines = [f"{_place(e.absolute_path)}: {clip(e.message, 300)}" for e in found[:MAX_ERRORS]]
    if len(found) > MAX_ERRORS:
        lines.append(f"… and {len(found) - MAX_ERRORS} more")
    return lines


def _place(path: Any) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
