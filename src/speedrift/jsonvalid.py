"""Validating JSON values against a JSON Schema, with errors a person (or an agent) can act on.

The one home for schema validation: a role's typed output (fleet/roles), a coordination record an
agent posts (coord/records.py). Draft 2020-12, every error at once, each naming where in the value
it is (``$.findings[2].line``) and what is wrong, in a stable order (by place, then message), so
an agent shown them can fix all of them in one more try.

Two engines, one answer. ``jsonschema-rs`` (Rust) decides whether a value is valid — about 300
times faster than Python's ``jsonschema`` on a 500-task wave, which is what keeps ``plan lint`` and
``replay`` near the cost of parsing — and only an invalid value is handed to ``jsonschema`` for
its messages, so what a person or an agent reads stays the same. Both implement draft 2020-12;
tests/test_jsonvalid.py checks they agree on every shipped schema's examples and on mutations of
them.

Invariant: a schema is checked once, when it is loaded (:func:`checked_schema`); validating a
value never raises for the value's sake, whatever it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from speedrift.errors import InvalidValue
from speedrift.textclip import clip

if TYPE_CHECKING:
    from jsonschema.validators import Draft202012Validator

MAX_ERRORS = 50


@dataclass(frozen=True)
class Checked:
    """A loaded schema: the fast validity check and the validator that words the problems."""

    fast: Any  # a jsonschema_rs validator (the module ships no type stubs)
    full: Draft202012Validator

    def is_valid(self, value: Any) -> bool:
        try:
            return bool(self.fast.is_valid(value))
        except Exception:  # a value jsonschema-rs cannot take (an int past 64 bits…): ask jsonschema
            return False


def checked_schema(schema: Mapping[str, Any], where: str) -> Checked:
    """A validator for ``schema``; InvalidValue naming ``where`` when the schema itself is wrong.
    jsonschema is imported here, on first use (~100 ms): never on a reader's path."""
    import jsonschema
    import jsonschema_rs
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import Draft202012Validator

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise InvalidValue(
            f"{where}: not a valid JSON Schema: {clip(error.message, 300)} (at {_place(error.path)})",
            hint="fix the schema (draft 2020-12)",
        ) from None
    full = Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    # formats asserted as jsonschema's FormatChecker does; never a remote $ref (no network)
    fast = jsonschema_rs.validator_for(dict(schema), validate_formats=True, offline=True)
    return Checked(fast, full)


def problems(validator: Checked, value: Any) -> list[str]:
    """Every way ``value`` fails the schema, as ``"$.path: message"`` lines ([] when it is valid)."""
    if validator.is_valid(value):
        return []
    found = sorted(validator.full.iter_errors(value), key=lambda e: (_place(e.absolute_path), e.message))
    lines = [f"{_place(e.absolute_path)}: {clip(e.message, 300)}" for e in found[:MAX_ERRORS]]
    if len(found) > MAX_ERRORS:
        lines.append(f"… and {len(found) - MAX_ERRORS} more")
    return lines


def _place(path: Any) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
