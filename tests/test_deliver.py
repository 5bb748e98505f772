"""Every sender is held to the receiver's schema: send_input, respond and the CLI.

The HTTP route's own checks are in ``test_api.py``; the wording of the failures in
``test_schema_check.py``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from hitl_bus import flow, get_client, receive_input, send_input, start_flow_run
from hitl_bus import keys as key_names
from hitl_bus.bus import get_bus
from hitl_bus.bus.core import Bus
from hitl_bus.cli import app
from hitl_bus.errors import HitlBusError, InputRejected
from hitl_bus.inputs.run_input import RawInput, run_input_subclass_from_type, schema_json
from hitl_bus.inputs.sending import _SEND
from tests.helpers import eventually, new_run
from tests.models import ShirtOrder

PREFIX = ShirtOrder.default_key_prefix()
SIZES = "must be one of: small, medium, large, xlarge"
runner = CliRunner()


@flow
async def orders() -> str:
    order = await receive_input(ShirtOrder, timeout=30).next()
    return f"{order.size} {order.color}"


@flow
async def asks_for_a_number(helper: str) -> int:
    numbers = receive_input(int, timeout=30)
    await send_input("how many?", flow_run_id=helper)
    return await numbers.next()  # type: ignore[no-any-return]


async def receiving(run_id: uuid.UUID | str, prefix: str) -> None:
    """Wait until the run has announced its receiver for ``prefix``."""

    async def announced() -> bool:
        return prefix in await get_client().read_receivers(run_id)

    await eventually(announced)


def fields(exc: InputRejected) -> dict[tuple[Any, ...], str]:
    return {tuple(e["loc"]): e["msg"] for e in exc.errors}


@pytest.mark.usefixtures("bus_url")
async def test_send_input_is_refused_by_the_receivers_schema() -> None:
    run = await start_flow_run(orders)
    await receiving(run.id, PREFIX)
    with pytest.raises(InputRejected) as refused:
        await send_input(RawInput(size="huge"), flow_run_id=run.id, key_prefix=PREFIX)
    assert isinstance(refused.value, ValueError) and isinstance(refused.value, HitlBusError)
    assert refused.value.key_prefix == PREFIX
    assert fields(refused.value) == {("size",): SIZES, ("color",): "is required"}
    assert str(refused.value) == (
        f"the input does not match the receiver's type ({PREFIX}): "
        f"color: is required; size: {SIZES}"
    )
    assert await get_client().read_inputs(run.id) == []  # nothing was stored
    await send_input(ShirtOrder(size="large", color="red"), flow_run_id=run.id)
    finished = await get_client().wait_for_flow_run(run.id, timeout=10)
    assert finished.state.is_completed()
    assert [i["data"] for i in await get_client().read_inputs(run.id)] == [
        {"size": "large", "color": "red"}
    ]


@pytest.mark.usefixtures("bus_url")
async def test_respond_is_refused_by_the_receivers_schema() -> None:
    helper = await new_run("helper")
    asking = await start_flow_run(asks_for_a_number, str(helper.id))
    question = await receive_input(str, flow_run_id=helper.id, with_metadata=True).next()
    await receiving(asking.id, "int-auto")
    with pytest.raises(InputRejected) as refused:
        await question.respond("seven", key_prefix="int-auto")
    assert fields(refused.value) == {("value",): "must be a whole number"}
    await question.respond(7)
    finished = await get_client().wait_for_flow_run(asking.id, timeout=10)
    assert finished.state.is_completed()
    sent = await get_client().read_inputs(asking.id)
    assert [(i["key_prefix"], i["data"]) for i in sent] == [("int-auto", {"value": 7})]


@pytest.mark.usefixtures("bus_url")
async def test_inputs_are_accepted_while_no_receiver_is_known() -> None:
    run = await new_run()  # nothing receives on it yet
    await send_input(RawInput(size="huge"), flow_run_id=run.id, key_prefix=PREFIX)
    await send_input("seven", flow_run_id=run.id, key_prefix="int-auto")
    sent = await get_client().read_inputs(run.id)
    assert sorted(i["key_prefix"] for i in sent) == ["int-auto", PREFIX]


@pytest.mark.usefixtures("bus_url")
async def test_a_changed_receiver_schema_is_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process keeps the schemas it has seen; Redis says when one changed."""
    run = await new_run()
    receivers = key_names.run_receivers(str(run.id))
    client = get_bus().client
    shirts = run_input_subclass_from_type(ShirtOrder)
    await client.hset(receivers, PREFIX, schema_json(shirts))

    class AnyShirt(BaseModel):
        size: str
        color: str = "white"

    calls = 0
    real_eval = Bus.eval

    async def counted(self: Bus, source: str, keys: Any, args: Any, **options: Any) -> Any:
        nonlocal calls
        calls += source == _SEND
        return await real_eval(self, source, keys, args, **options)

    monkeypatch.setattr(Bus, "eval", counted)

    async def sends(value: Any, key: str | None = None) -> int:
        nonlocal calls
        calls = 0
        await send_input(value, flow_run_id=run.id, key_prefix=PREFIX, key=key)
        return calls

    good = ShirtOrder(size="large", color="red")
    assert await sends(good) == 2  # the first send learns the schema
    assert await sends(good, key="kept") == 1  # then one round trip
    with pytest.raises(InputRejected):
        await sends(RawInput(size="huge"))  # refused only after Redis confirmed the schema
    assert calls == 1
    anything = run_input_subclass_from_type(AnyShirt)
    await client.hset(receivers, PREFIX, schema_json(anything))
    assert await sends(RawInput(size="huge")) == 2  # the cached schema refused it; Redis did not
    with pytest.raises(InputRejected) as refused:
        await sends(RawInput(color="red"))
    assert fields(refused.value) == {("size",): "is required"}
    assert await sends(good, key="kept") == 1  # stored already: a repeat is never refused
    inputs = await get_client().read_inputs(run.id)
    assert [i["data"] for i in inputs] == [good.model_dump(), good.model_dump(), {"size": "huge"}]


@pytest.mark.usefixtures("bus_url")
async def test_a_receiver_schema_that_is_not_json_checks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = await new_run()
    await get_bus().client.hset(key_names.run_receivers(str(run.id)), PREFIX, b"{not json")
    with caplog.at_level(logging.WARNING, logger="hitl_bus.inputs"):
        await send_input(RawInput(size="huge"), flow_run_id=run.id, key_prefix=PREFIX)
    assert "not valid JSON" in caplog.text
    assert len(await get_client().read_inputs(run.id)) == 1


@pytest.mark.usefixtures("real_redis_url")
async def test_runs_send_is_refused_plainly() -> None:
    run = await start_flow_run(orders)
    run_id = str(run.id)
    await receiving(run_id, PREFIX)
    refused = runner.invoke(app, ["runs", "send", run_id, "size=huge", "--key-prefix", PREFIX])
    assert refused.exit_code == 2
    assert refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"{run_id}: input rejected by its {PREFIX} receiver (nothing sent)",
        "  color: is required",
        f"  size: {SIZES}",
    ]
    assert "Traceback" not in refused.output
    assert await get_client().read_inputs(run_id) == []
    sent = runner.invoke(
        app, ["runs", "send", run_id, "size=large", "color=red", "--key-prefix", PREFIX]
    )
    assert sent.exit_code == 0, sent.output
    assert (await get_client().wait_for_flow_run(run_id, timeout=10)).state.is_completed()
