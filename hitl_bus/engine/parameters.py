"""A flow's parameters as pydantic reads its annotations: one model behind both checks.

Calling a flow validates (and coerces, ``"3"`` to ``3``) its arguments with this model
(Prefect's ``validate_parameters``); a deployment registers the model's JSON schema,
which ``run_deployment`` checks parameters against in processes without the flow's code.
Every field is aliased to its parameter's name, so a parameter may be named like a
``BaseModel`` attribute (``model_config``, ``copy``).
"""

from __future__ import annotations

import inspect
import typing
import warnings
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PydanticSchemaGenerationError, PydanticUserError

from hitl_bus.errors import ParameterMismatch
from hitl_bus.schema_check import plain_errors, summarize

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def parameters_model(fn: Any, signature: inspect.Signature) -> type[BaseModel] | None:
    """A model with one field per named parameter of ``fn`` (``*args``/``**kwargs`` left out).

    ``None`` when the annotations cannot be resolved or pydantic cannot build a validator
    for them: such a flow's parameters are passed as given.
    """
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable annotations (a local class, say): none
        return None
    fields: dict[str, Any] = {}
    for index, param in enumerate(
        p for p in signature.parameters.values() if p.kind not in _VARIADIC
    ):
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[f"p{index}"] = (hints.get(param.name, Any), Field(default, alias=param.name))
    config = ConfigDict(arbitrary_types_allowed=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydantic.create_model("Parameters", __config__=config, **fields)
    except (PydanticUserError, PydanticSchemaGenerationError, NameError, TypeError, ValueError):
        return None


def parameters_schema(model: type[BaseModel] | None) -> dict[str, Any] | None:
    """The JSON schema of a parameters model; ``None`` when a type has no JSON form."""
    if model is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            schema: dict[str, Any] = model.model_json_schema()
    except (PydanticUserError, PydanticSchemaGenerationError, TypeError, ValueError):
        return None
    return schema


def validate_parameters(
    model: type[BaseModel], flow_name: str, given: dict[str, Any]
) -> dict[str, Any]:
    """``given`` (arguments by parameter name) validated and coerced by ``model``.

    Only the given names are validated and returned, as pydantic leaves defaults alone;
    names the model does not know (``*args``, ``**kwargs``) pass as given.

    :raises ParameterMismatch: a value does not fit its annotation; ``errors`` per parameter.
    """
    aliases = {field.alias: name for name, field in model.model_fields.items()}
    known = {name: value for name, value in given.items() if name in aliases}
    try:
        validated = model.model_validate(known)
    except pydantic.ValidationError as exc:
        errors = plain_errors(exc)
        raise ParameterMismatch(f"{flow_name}: {summarize(errors, whole='')}", errors) from None
    return {**given, **{name: getattr(validated, aliases[name]) for name in known}}
