"""One wording for every refusal: ``summarize`` and ``plain_errors``."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError, field_validator

from hitl_bus.schema_check import plain_errors, schema_errors, summarize
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
