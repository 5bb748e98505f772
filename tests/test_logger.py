"""``get_run_logger()``: a run's log records, stored in order; no logger outside a run."""

from __future__ import annotations

import pytest

from hitl_bus import flow, get_client, get_run_context, get_run_logger
from hitl_bus.errors import MissingContextError

pytestmark = pytest.mark.usefixtures("bus_url")


async def test_run_logs_are_stored_in_order() -> None:
    @flow
    async def chatty() -> str:
        logger = get_run_logger()
        for i in range(50):
            logger.info("line %d", i)
        return get_run_context().flow_run.id

    run_id = await chatty()
    logs = await get_client().read_logs(run_id)
    assert [r["message"] for r in logs] == [f"line {i}" for i in range(50)]
    assert {r["level"] for r in logs} == {"INFO"}


async def test_run_logger_outside_a_run_is_an_error() -> None:
    with pytest.raises(MissingContextError):
        get_run_logger()
    with pytest.raises(MissingContextError):
        get_run_context()
