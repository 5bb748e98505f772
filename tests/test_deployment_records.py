"""``run_deployment`` checks parameters against the deployment's record it read once; the
create stores nothing unless Redis still holds that record, so a re-registered or removed
deployment is never run against an old record."""

from __future__ import annotations

from typing import Any

import pytest

from hitl_bus import flow, keys, run_deployment
from hitl_bus.bus import get_bus
from hitl_bus.deployments import registry
from hitl_bus.errors import DeploymentNotFound, ParameterMismatch

pytestmark = [pytest.mark.usefixtures("bus_url"), pytest.mark.also_on_cluster]


@flow(name="greeting")
async def greet(name: str, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


@flow(name="greeting")
async def greet_politely(name: str, title: str) -> str:
    return f"hello {title} {name}"


def _deployment(fn: Any, **parameters: Any) -> Any:
    return fn.to_deployment("default", parameters=parameters)


async def _queued(run_id: str) -> bool:
    stream = keys.deployment_queue("greeting/default")
    entries = await get_bus().client.xrange(stream)
    return any(fields[b"run_id"].decode() == run_id for _, fields in entries)


async def test_new_defaults_registered_meanwhile_are_the_ones_a_run_gets() -> None:
    await registry.register(_deployment(greet, punctuation="!"))
    first = await run_deployment("greeting/default", {"name": "ada"}, timeout=0)
    assert first.parameters == {"name": "ada", "punctuation": "!"}
    await registry.register(_deployment(greet, punctuation="?"))  # another process, say
    second = await run_deployment("greeting/default", {"name": "ada"}, timeout=0)
    assert second.parameters == {"name": "ada", "punctuation": "?"}
    assert await _queued(str(second.id))


async def test_a_new_required_parameter_is_asked_for_and_then_accepted() -> None:
    await registry.register(_deployment(greet))
    await run_deployment("greeting/default", {"name": "ada"}, timeout=0)
    await registry.register(_deployment(greet_politely))
    with pytest.raises(ParameterMismatch, match="missing required parameter"):
        await run_deployment("greeting/default", {"name": "ada"}, timeout=0)
    run = await run_deployment("greeting/default", {"name": "ada", "title": "dr"}, timeout=0)
    assert run.parameters == {"name": "ada", "title": "dr"}


async def test_a_removed_deployment_is_not_found_and_nothing_is_queued() -> None:
    await registry.register(_deployment(greet))
    await run_deployment("greeting/default", {"name": "ada"}, timeout=0)
    await get_bus().client.hdel(keys.DEPLOYMENTS, "greeting/default")
    before = await get_bus().client.xlen(keys.deployment_queue("greeting/default"))
    with pytest.raises(DeploymentNotFound, match="no deployment named 'greeting/default'"):
        await run_deployment("greeting/default", {"name": "ada"}, timeout=0)
    assert await get_bus().client.xlen(keys.deployment_queue("greeting/default")) == before
