"""RunInput: automatic inputs, upgraded models, initial data, keysets, save/load."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, Field, PydanticSchemaGenerationError, ValidationError

import hitl_bus
from hitl_bus import AutomaticRunInput, RunInput, keyset_from_base_key
from hitl_bus.errors import FlowRunNotFound
from hitl_bus.ids import normalize_run_id
from hitl_bus.inputs import run_input_subclass_from_type
from hitl_bus.inputs.keyset import new_input_key
from hitl_bus.inputs.run_input import as_run_input, wire_form
from tests.helpers import new_run
from tests.models import ShirtOrder, UserName


def test_builtin_types_become_automatic_inputs_with_one_value_field() -> None:
    cls = run_input_subclass_from_type(str)
    assert issubclass(cls, AutomaticRunInput)
    assert list(cls.model_fields) == ["value"]
    assert cls.default_key_prefix() == "str-auto"
    assert run_input_subclass_from_type(list[int]).default_key_prefix() == "list-auto"
    assert run_input_subclass_from_type(str) is cls  # cached
    with pytest.raises(ValidationError):
        run_input_subclass_from_type(list[int])(value=["x"])


class _Plain(BaseModel):
    n: int


@pytest.mark.parametrize(
    "value",
    ["text", 3, 2.5, True, None, [1, "a"], {"a": [1, 2]}, (1, 2), {3, 4},
     datetime.datetime(2026, 1, 2, 3, 4, 5), uuid.UUID(int=7),
     ShirtOrder(size="medium", color="red"), UserName(name="Ada"), _Plain(n=3)],
)  # fmt: skip
def test_the_wire_form_of_a_value_is_what_its_run_input_dumps(value: Any) -> None:
    payload, prefix = wire_form(value)
    instance = as_run_input(value)
    assert payload == instance.model_dump(mode="json")
    assert prefix == instance.default_key_prefix()


def test_a_value_whose_type_cannot_travel_is_refused_as_by_its_run_input() -> None:
    class Opaque:
        pass

    with pytest.raises(PydanticSchemaGenerationError):
        as_run_input(Opaque())
    with pytest.raises(PydanticSchemaGenerationError):
        wire_form(Opaque())


def test_drawn_input_keys_carry_a_version_4_uuid() -> None:
    drawn = {new_input_key("str-auto") for _ in range(2000)}
    assert len(drawn) == 2000
    for key in drawn:
        prefix, _, text = key.partition("-auto-")
        assert prefix == "str"
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


def test_a_run_id_in_any_spelling_has_one_canonical_form() -> None:
    canonical = str(uuid.uuid4())
    for spelling in (canonical.upper(), canonical, "{" + canonical + "}", uuid.UUID(canonical)):
        assert normalize_run_id(spelling) == canonical
        assert normalize_run_id(spelling) == canonical  # remembered the second time
    with pytest.raises(FlowRunNotFound):
        normalize_run_id("not-a-run")
    with pytest.raises(FlowRunNotFound):
        normalize_run_id("not-a-run")


def test_base_model_is_upgraded_keeping_fields_and_validators() -> None:
    class Order(BaseModel):
        qty: int = Field(gt=0)

    upgraded = run_input_subclass_from_type(Order)
    assert issubclass(upgraded, RunInput) and issubclass(upgraded, Order)
    assert upgraded.__name__ == "Order"
    assert upgraded.default_key_prefix() == "order-auto"
    with pytest.raises(ValidationError):
        upgraded(qty=0)


def test_custom_validator_runs_on_validation() -> None:
    assert ShirtOrder(size="medium", color="green").color == "green"
    with pytest.raises(ValidationError, match="Green is only in stock"):
        ShirtOrder(size="small", color="green")


def test_with_initial_data_sets_defaults_and_description_keeping_help_text() -> None:
    described = UserName.with_initial_data(description="**Who** are you?", name="anonymous")
    assert described._description == "**Who** are you?"
    assert described().name == "anonymous"
    schema = described.model_json_schema()
    assert schema["properties"]["name"]["default"] == "anonymous"
    assert schema["properties"]["name"]["description"] == "What people call you"
    assert UserName._description is None  # the original is untouched
    with pytest.raises(TypeError, match="no field"):
        UserName.with_initial_data(nope=1)


def test_keysets_follow_prefects_naming() -> None:
    assert UserName.keyset_from_type() == {
        "description": "username-description",
        "response": "username-response",
        "schema": "username-schema",
    }
    assert keyset_from_base_key("pause-1")["response"] == "pause-1-response"


def test_metadata_is_only_on_received_inputs() -> None:
    with pytest.raises(AttributeError, match="not received"):
        _ = UserName(name="x").metadata


def test_extra_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        UserName(name="x", extra=1)  # type: ignore[call-arg]


@pytest.mark.usefixtures("bus_url")
async def test_save_and_load_on_a_run() -> None:
    run = await new_run()
    keyset = UserName.keyset_from_type()
    described = UserName.with_initial_data(description="Hi", name="anon")
    await described.save(keyset, flow_run_id=run.id)
    from hitl_bus.inputs.values import aget_value, aset_values

    schema = await aget_value(run.id, keyset["schema"])
    assert schema["properties"]["name"]["default"] == "anon"
    assert await aget_value(run.id, keyset["description"]) == "Hi"
    with pytest.raises(LookupError):
        await UserName.load(keyset, flow_run_id=run.id)
    await aset_values(run.id, {keyset["response"]: {"name": "Ada"}})
    loaded = await UserName.load(keyset, flow_run_id=run.id)
    assert loaded.model_dump() == {"name": "Ada"}  # with metadata, so not == a fresh one


@pytest.mark.usefixtures("bus_url")
async def test_send_to_and_receive_classmethods() -> None:
    run = await new_run()
    await UserName(name="Ada").send_to(run.id)
    got = await UserName.receive(flow_run_id=run.id, timeout=1).next()
    assert got.name == "Ada"


def test_public_api_names() -> None:
    expected = {
        "AutomaticRunInput", "Flow", "FlowRun", "FlowRunContext", "HitlClient", "InputReceiver",
        "Keyset", "RunInput", "RunInputMetadata", "State", "StateType", "SyncHitlClient",
        "TERMINAL_STATES", "asend_input", "errors", "flow", "get_client", "get_run_context",
        "get_run_logger", "keyset_from_base_key", "receive_input", "send_input",
        "send_inputs", "asend_inputs", "reject_input", "areject_input",
        "start_flow_run", "Task", "apause_flow_run", "aresume_flow_run", "asuspend_flow_run",
        "execute_flow_run", "pause_flow_run", "resume_flow_run", "suspend_flow_run",
        "sweep_expired", "task", "Deployment", "Worker", "arun_deployment", "run_deployment",
        "serve",
    }  # fmt: skip
    assert set(hitl_bus.__all__) == expected
    for name in expected:
        assert hasattr(hitl_bus, name)


def test_error_tree() -> None:
    from hitl_bus import errors

    for name in [
        "FlowRunNotFound", "NotPausedError", "ResumeRejected", "FlowPauseTimeout",
        "PayloadTooLarge", "DeploymentNotFound", "BlockNotFound", "FlowRunSuspended",
        "ReceiveTimeout", "InboxNotFound", "NotAnswerable", "MissingContextError",
    ]:  # fmt: skip
        assert issubclass(getattr(errors, name), errors.HitlBusError)
    assert issubclass(errors.ReceiveTimeout, TimeoutError)
    assert issubclass(errors.FlowPauseTimeout, TimeoutError)
