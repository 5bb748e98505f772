"""``RunInput``: the typed payload of pauses and of messages between runs.

Built-in types and collections are wrapped in an automatic ``RunInput`` with one
field, ``value``; a plain ``BaseModel`` is upgraded to a ``RunInput`` subclass of
the same name, so its fields, titles and validators carry over.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar, Generic, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, PrivateAttr
from pydantic.fields import FieldInfo

from hitl_bus._sync import dual
from hitl_bus.errors import InputNotFound
from hitl_bus.inputs import sending, values
from hitl_bus.inputs.keyset import Keyset, Mailbox, keyset_from_base_key, type_slug
from hitl_bus.inputs.receiving import InputReceiver
from hitl_bus.inputs.shapes import FlowRunInput as FlowRunInput
from hitl_bus.inputs.shapes import RunInputMetadata as RunInputMetadata
from hitl_bus.inputs.shapes import schema_json as schema_json

T = TypeVar("T")
R = TypeVar("R", bound="RunInput")


class RunInput(BaseModel):
    """Base class of typed inputs; subclass it like a pydantic model."""

    model_config = ConfigDict(extra="forbid")

    _description: ClassVar[str | None] = None
    _metadata: RunInputMetadata | None = PrivateAttr(default=None)

    @property
    def metadata(self) -> RunInputMetadata:
        """Key, sender and receiver of an input received, loaded or read from a record."""
        if self._metadata is None:
            raise AttributeError("this input was not received, so it has no metadata")
        return self._metadata

    @classmethod
    def default_key_prefix(cls) -> str:
        """The default stream this type travels on: ``{classname}-auto``."""
        return f"{type_slug(cls)}-auto"

    @classmethod
    def keyset_from_type(cls) -> Keyset:
        return keyset_from_base_key(type_slug(cls))

    @classmethod
    def with_initial_data(cls: type[R], description: str | None = None, **defaults: Any) -> type[R]:
        """A subclass with new field defaults and a Markdown description for the form.

        Field titles, help texts and validators are kept.
        """
        unknown = sorted(set(defaults) - set(cls.model_fields))
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
        fields: dict[str, Any] = {}
        for name, value in defaults.items():
            info = cls.model_fields[name]
            fields[name] = (info.annotation, FieldInfo.merge_field_infos(info, default=value))
        model: type[R] = pydantic.create_model(cls.__name__, __base__=cls, **fields)
        model.__doc__ = cls.__doc__
        model.__module__ = cls.__module__
        if description is not None:
            model._description = description
        return model

    @classmethod
    async def asave(cls, keyset: Keyset, flow_run_id: uuid.UUID | str | None = None) -> None:
        """Save this type's JSON schema and description under ``keyset`` on a run.

        Saving again overwrites: a re-executed flow saves the same keyset again.
        """
        await values.asave_schema(cls, keyset, flow_run_id)

    @classmethod
    @dual
    async def save(cls, keyset: Keyset, flow_run_id: uuid.UUID | str | None = None) -> None:
        """:meth:`asave`, awaited in async code and blocking in sync code."""
        await cls.asave(keyset, flow_run_id)

    @classmethod
    async def aload(cls: type[R], keyset: Keyset, flow_run_id: uuid.UUID | str | None = None) -> R:
        """The response saved under ``keyset`` on a run (default: the current run).

        With none saved (or an empty one) it is the type's defaults, as in Prefect. Its
        metadata names the response key and the run; it has no sender, so it cannot be
        answered.

        :raises InputNotFound: none saved, and the type has fields without defaults.
        :raises pydantic.ValidationError: the saved response does not fit the type.
        """
        run_id = values.resolve_run_id(flow_run_id)
        key = keyset["response"]
        saved = await values.aget_value(run_id, key)
        if saved:
            instance = cls.model_validate(saved)
        else:
            try:
                instance = cls()
            except pydantic.ValidationError as exc:
                raise InputNotFound(
                    f"no response saved under {key!r} on flow run {run_id}, and "
                    f"{cls.__name__} cannot be made from its defaults"
                ) from exc
        instance._metadata = RunInputMetadata(key=key, sender=None, receiver=uuid.UUID(run_id))
        return instance

    @classmethod
    @dual
    async def load(cls: type[R], keyset: Keyset, flow_run_id: uuid.UUID | str | None = None) -> R:
        """:meth:`aload`, awaited in async code and blocking in sync code."""
        return await cls.aload(keyset, flow_run_id)

    @classmethod
    def load_from_flow_run_input(cls: type[R], flow_run_input: FlowRunInput) -> R:
        """An instance from a stored record, with the record's key, sender and run as metadata.

        :raises pydantic.ValidationError: the record's value does not fit the type.
        """
        instance = cls.model_validate_json(flow_run_input.value)
        instance._metadata = RunInputMetadata(
            key=flow_run_input.key,
            sender=flow_run_input.sender,
            receiver=flow_run_input.flow_run_id,
        )
        return instance

    async def asend_to(
        self,
        flow_run_id: uuid.UUID | str,
        sender: str | None = None,
        key_prefix: str | None = None,
        key: str | None = None,
    ) -> None:
        """Send this input to a flow run (``key`` as for ``send_input``)."""
        await sending.deliver_payload(
            Mailbox.for_run(flow_run_id),
            self.model_dump(mode="json"),
            key_prefix=key_prefix or self.default_key_prefix(),
            sender=sender,
            key=key,
        )

    @dual
    async def send_to(
        self,
        flow_run_id: uuid.UUID | str,
        sender: str | None = None,
        key_prefix: str | None = None,
        key: str | None = None,
    ) -> None:
        """:meth:`asend_to`, awaited in async code and blocking in sync code."""
        await self.asend_to(flow_run_id, sender, key_prefix, key)

    async def arespond(
        self,
        run_input: Any,
        sender: str | None = None,
        key_prefix: str | None = None,
        key: str | None = None,
    ) -> None:
        """Send ``run_input`` back to whoever sent this input (a flow run or a client inbox).

        ``key`` as for ``send_input``: a reply repeated with the same key is stored once.

        :raises NotAnswerable: (a ``RuntimeError``) this input has no sender to answer,
            e.g. one from :meth:`load`.
        """
        payload, default_prefix = wire_form(run_input)
        await sending.deliver_reply(
            self.metadata.sender,
            payload,
            key_prefix=key_prefix or default_prefix,
            sender=sender,
            key=key,
        )

    @dual
    async def respond(
        self,
        run_input: Any,
        sender: str | None = None,
        key_prefix: str | None = None,
        key: str | None = None,
    ) -> None:
        """:meth:`arespond`, awaited in async code and blocking in sync code."""
        await self.arespond(run_input, sender, key_prefix, key)

    @classmethod
    def receive(
        cls: type[R],
        timeout: float | None = 3600,
        poll_interval: float = 10,
        raise_timeout_error: bool = False,
        exclude_keys: Iterable[str] | None = None,
        key_prefix: str | None = None,
        flow_run_id: uuid.UUID | str | None = None,
        with_metadata: bool = False,
        consumer: str | None = None,
    ) -> InputReceiver[R]:
        """Iterate the inputs of this type sent to a run (see ``receive_input``)."""
        del poll_interval  # delivery is pushed
        return InputReceiver(
            cls,
            unwrap=False,
            key_prefix=key_prefix or cls.default_key_prefix(),
            timeout=timeout,
            raise_timeout_error=raise_timeout_error,
            exclude_keys=exclude_keys,
            flow_run_id=flow_run_id,
            with_metadata=with_metadata,
            consumer=consumer,
        )

    @classmethod
    def subclass_from_base_model_type(cls, model_cls: type[BaseModel]) -> type[RunInput]:
        """Upgrade a plain ``BaseModel`` to a ``RunInput`` keeping its name and fields."""
        return _upgrade_model(model_cls)


class AutomaticRunInput(RunInput, Generic[T]):
    """The wrapper for built-in types and collections: one field, ``value``."""

    value: T

    _wrapped_type: ClassVar[Any] = None

    @classmethod
    def default_key_prefix(cls) -> str:
        return f"{type_slug(cls._wrapped_type)}-auto"

    @classmethod
    def keyset_from_type(cls) -> Keyset:
        return keyset_from_base_key(type_slug(cls._wrapped_type))

    @classmethod
    def subclass_from_type(cls, tp: Any) -> type[AutomaticRunInput[Any]]:
        return _automatic(tp)

    @classmethod
    async def aload(cls, keyset: Keyset, flow_run_id: uuid.UUID | str | None = None) -> Any:
        """The saved response's ``value`` (Prefect's automatic inputs load as the plain value)."""
        instance = await super().aload(keyset, flow_run_id)
        return instance.value


@functools.lru_cache(maxsize=1024)
def _automatic(tp: Any) -> type[AutomaticRunInput[Any]]:
    name = f"{type_slug(tp).title().replace('-', '')}Input"
    model: type[AutomaticRunInput[Any]] = pydantic.create_model(
        name, __base__=AutomaticRunInput, value=(tp, ...)
    )
    model._wrapped_type = tp
    return model


@functools.lru_cache(maxsize=1024)
def _upgrade_model(model_cls: type[BaseModel]) -> type[RunInput]:
    upgraded = type(model_cls.__name__, (RunInput, model_cls), {"__module__": model_cls.__module__})
    upgraded.__doc__ = model_cls.__doc__
    return upgraded


class RawInput(RunInput):
    """A JSON object sent as is (the HTTP API's send box): the receiver's type validates it."""

    model_config = ConfigDict(extra="allow")


def run_input_subclass_from_type(tp: Any) -> type[RunInput]:
    """The ``RunInput`` class that carries values of ``tp`` (cached)."""
    if isinstance(tp, type) and issubclass(tp, RunInput):
        return tp
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _upgrade_model(tp)
    return _automatic(tp)


def is_automatic(cls: type[RunInput]) -> bool:
    return issubclass(cls, AutomaticRunInput)


def wire_form(value: Any) -> tuple[dict[str, Any], str]:
    """What ``value`` travels as: its JSON-safe payload and its type's default key prefix.

    The payload :func:`as_run_input` would give, with the same validation; a plain value
    goes through its type's own validator and serializer (cached) instead of an automatic
    model's instance, which is most of a send's Python time.
    """
    if isinstance(value, BaseModel):
        instance = as_run_input(value)
        return instance.model_dump(mode="json"), instance.default_key_prefix()
    value_type: Any = type(value)
    adapter, prefix = _automatic_wire(value_type)
    return {"value": adapter.dump_python(adapter.validate_python(value), mode="json")}, prefix


@functools.lru_cache(maxsize=1024)
def _automatic_wire(tp: Any) -> tuple[pydantic.TypeAdapter[Any], str]:
    model = _automatic(tp)  # also settles that the type can travel, as for a model
    return pydantic.TypeAdapter(tp), model.default_key_prefix()


def as_run_input(value: Any) -> RunInput:
    """The ``RunInput`` instance that carries ``value`` on the wire."""
    if isinstance(value, RunInput):
        return value
    if isinstance(value, BaseModel):
        return _upgrade_model(type(value)).model_validate(value.model_dump())
    value_type: Any = type(value)
    return _automatic(value_type)(value=value)
