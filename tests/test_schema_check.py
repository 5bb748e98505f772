"""One wording for every refusal: ``summarize`` and ``plain_errors``."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError, field_validator

from hitl_bus.schema_check import SchemaChecker, plain_errors, schema_errors, summarize
from tests.models import ShirtOrder


def test_summarize_names_each_field_on_one_line() -> None:
    errors: list[dict[str, Any]] = [
        {"loc": ["size"], "msg": "must be one of: small, large"},
        {"loc": ["address", "lines", 0], "msg": "must not be empty"},
    ]
    assert summarize(errors) == (
        "size: must be one of: small, large; address.lines.0: must not be empty"
    )


def test_summarize_names_the_whole_value_when_there_is_no_field() -> None:
    errors = [{"loc": [], "msg": "input is required"}, {"loc": ["a"], "msg": "is required"}]
    assert summarize(errors) == "input: input is required; a: is required"
    assert summarize(errors, whole="parameters") == "parameters: input is required; a: is required"
    assert summarize(errors, whole="") == "input is required; a: is required"


def test_summarize_with_another_separator_and_nothing_to_say() -> None:
    errors = [{"loc": ["a"], "msg": "is required"}, {"loc": ["b"], "msg": "must be text"}]
    assert summarize(errors, sep="\n  ") == "a: is required\n  b: must be text"
    assert summarize([]) == ""
    assert summarize([{"loc": ["a"]}]) == "a: is not valid"  # a failure without a message


def test_summarize_words_schema_errors_as_a_form_does() -> None:
    schema = ShirtOrder.model_json_schema()
    errors = schema_errors(schema, {"size": "huge"})
    assert summarize(errors) == (
        "color: is required; size: must be one of: small, medium, large, xlarge"
    )


def test_plain_errors_drop_pydantics_prefixes() -> None:
    class Order(BaseModel):
        qty: int = Field(gt=0)
        note: str

        @field_validator("note")
        @classmethod
        def _polite(cls, note: str) -> str:
            if "please" not in note:
                raise ValueError("say please")
            return note

    with pytest.raises(ValidationError) as caught:
        Order.model_validate({"qty": 0, "note": "now"})
    errors = plain_errors(caught.value)
    assert errors == [
        {"loc": ["qty"], "msg": "Input should be greater than 0"},
        {"loc": ["note"], "msg": "say please"},
    ]
    assert summarize(errors, whole="") == "qty: Input should be greater than 0; note: say please"


_ORDER = ShirtOrder.model_json_schema()
_CASES: list[tuple[dict[str, Any], list[Any]]] = [
    (_ORDER, [{"size": "small", "color": "red"}, {"size": "huge"}, {}, [], "x"]),
    ({"type": "number", "multipleOf": 0.1}, [0.3, 0.35, 7, "7"]),  # rounding is forgiven
    ({"type": "string", "pattern": "(?<!x)y"}, ["ay", "xy", 3]),
    (
        {"$defs": {"n": {"type": "integer", "minimum": 1}}, "type": "array",
         "items": {"$ref": "#/$defs/n"}},
        [[1, 2], [0], [1.0], [True], None],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("schema", "values"), _CASES)
def test_a_kept_checker_words_exactly_what_a_fresh_check_does(
    schema: dict[str, Any], values: list[Any]
) -> None:
    checker = SchemaChecker(schema)
    for value in values:
        assert checker.errors(value) == schema_errors(schema, value), value


def test_a_schema_the_quick_validator_cannot_build_is_still_checked() -> None:
    checker = SchemaChecker({"type": "string", "pattern": "^(?#a comment)a"})
    assert checker.errors("ab") == []
    assert [e["validator"] for e in checker.errors("ba")] == ["pattern"]
    assert [e["msg"] for e in checker.errors(3)] == ["must be text"]
