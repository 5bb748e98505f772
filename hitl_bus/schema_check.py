"""Check a value against a saved JSON schema and word each failure for a person.

A form shows these beside the failing field (``loc`` is the path to it), so
the wording says what to do ("must be at least 1") rather than echoing the
schema keyword (``1 is less than the minimum of 1``). :func:`summarize` puts
the same failures on one line for messages and the command line, so every
refusal (resume, sent input, deployment parameters) reads the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jsonschema
import jsonschema_rs
from pydantic import ValidationError

_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a set of fields",
    "null": "empty",
}


def _words(kind: Any) -> str:
    kinds = kind if isinstance(kind, list) else [kind]
    return " or ".join(_TYPE_WORDS.get(k, str(k)) for k in kinds)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _expected(schema: Any) -> str:
    """What a pattern field expects, in the schema's own words: an example, else its help."""
    if not isinstance(schema, dict):
        return ""
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return f" (for example {examples[0]})"
    description = schema.get("description")
    if isinstance(description, str) and description.strip():
        return f": {description.strip().removesuffix('.')}"
    return ""


def _message(err: jsonschema.ValidationError) -> tuple[list[Any], str]:
    """The path to the failing field and a plain sentence about it."""
    loc = list(err.absolute_path)
    v, spec = err.validator, err.validator_value
    match v:
        case "required":  # one error per missing name, worded "<name!r> is a required ..."
            instance = err.instance if isinstance(err.instance, dict) else {}
            missing = [n for n in spec if n not in instance and err.message.startswith(repr(n))]
            return [*loc, *missing[:1]], "is required"
        case "additionalProperties":
            return loc, f"has fields the form does not know: {err.message.split('(')[-1][:-1]}"
        case "type":
            return loc, f"must be {_words(spec)}"
        case "minimum":
            return loc, f"must be at least {spec}"
        case "maximum":
            return loc, f"must be at most {spec}"
        case "exclusiveMinimum":
            return loc, f"must be more than {spec}"
        case "exclusiveMaximum":
            return loc, f"must be less than {spec}"
        case "multipleOf":
            return loc, f"must be a multiple of {spec}"
        case "minLength":
            return loc, "must not be empty" if spec == 1 else f"needs at least {spec} characters"
        case "maxLength":
            return loc, f"must be at most {_plural(spec, 'character')}"
        case "pattern":  # the regex is for the machine: show an example or the help
            return loc, f"does not have the expected form{_expected(err.schema)}"
        case "enum":
            return loc, f"must be one of: {', '.join(map(str, spec))}"
        case "const":
            return loc, f"must be {spec}"
        case "minItems":
            return loc, f"needs at least {_plural(spec, 'item')}"
        case "maxItems":
            return loc, f"takes at most {_plural(spec, 'item')}"
        case "uniqueItems":
            return loc, "must not repeat an item"
        case "anyOf" | "oneOf":
            # An optional field is "X or null": the reason is whatever X's check said.
            useful = [
                e
                for e in err.context or ()
                if not (e.validator == "type" and e.validator_value == "null")
            ]
            if useful:
                return _message(jsonschema.exceptions.best_match(useful))
            return loc, "does not match any of the allowed forms"
    return loc, err.message


def _is_multiple(value: Any, step: Any) -> bool:
    if not isinstance(value, int | float) or not isinstance(step, int | float) or not step:
        return False
    quotient = value / step
    return abs(quotient - round(quotient)) < 1e-9


def schema_errors(schema: dict[str, Any], value: Any) -> list[dict[str, Any]]:
    """Every way ``value`` fails ``schema`` (Draft 2020-12), as ``{loc, msg, validator}``."""
    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path))):
        if err.validator == "multipleOf" and _is_multiple(err.instance, err.validator_value):
            continue  # 0.3 is a multiple of 0.1 to a person (and to pydantic), if not to floats
        loc, msg = _message(err)
        out.append({"loc": loc, "msg": msg, "validator": err.validator})
    return out


def plain_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """A pydantic error's failures as ``{loc, msg}``, without pydantic's own prefixes."""
    return [
        {
            "loc": [p for p in err.get("loc", ()) if p != "__root__"],
            "msg": str(err.get("msg", "invalid")).removeprefix("Value error, "),
        }
        for err in exc.errors()
    ]


def summarize(errors: Iterable[Mapping[str, Any]], *, whole: str = "input", sep: str = "; ") -> str:
    """Every failure as ``<field path>: <msg>``, joined by ``sep``.

    A failure of the value as a whole (empty ``loc``) is named ``whole``; with
    ``whole=""`` its message stands alone.
    """
    parts = []
    for err in errors:
        where = ".".join(map(str, err.get("loc", ()))) or whole
        msg = err.get("msg", "is not valid")
        parts.append(f"{where}: {msg}" if where else str(msg))
    return sep.join(parts)


class SchemaChecker:
    """A schema with its validator built once, for checking many values against it.

    A value that passes costs one ``is_valid``; only a failing one is worded (building
    the worded errors costs several times more, and :func:`schema_errors` also forgives
    float rounding in ``multipleOf``, so it has the last word on a refusal).
    """

    __slots__ = ("_is_valid", "schema")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        try:  # compiled in Rust: about 50 times quicker than jsonschema's own is_valid
            self._is_valid: Callable[[Any], bool] = jsonschema_rs.Draft202012Validator(
                schema
            ).is_valid
        except (ValueError, jsonschema_rs.ValidationError):  # a schema it cannot compile
            self._is_valid = jsonschema.Draft202012Validator(schema).is_valid

    def errors(self, value: Any) -> list[dict[str, Any]]:
        """Every way ``value`` fails the schema (``[]``: it passes), as :func:`schema_errors`."""
        try:
            if self._is_valid(value):
                return []
        except ValueError:  # a value outside JSON (a set, a float('nan')): worded below
            pass
        return schema_errors(self.schema, value)
