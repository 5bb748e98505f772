"""``HITL_BUS_LOOP``: the event loop of the processes hitl_bus starts (uvloop or asyncio's)."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest
from typer.testing import CliRunner

from hitl_bus import receive_input, run_deployment, send_input
from hitl_bus import settings as settings_module
from hitl_bus.cli import app
from hitl_bus.settings import loop_factory, loop_name, run_on_configured_loop
from tests.workers import StartWorker, registered, wait_state

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
needs_uvloop = pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed")


def test_auto_is_uvloop_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert loop_name() == ("uvloop" if HAS_UVLOOP else "asyncio")
    monkeypatch.setenv("HITL_BUS_LOOP", "asyncio")
    assert loop_name() == "asyncio"
    assert loop_factory() is asyncio.new_event_loop


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def hide_uvloop(name: str, *args: Any) -> Any:
        return None if name == "uvloop" else real(name, *args)

    monkeypatch.setattr(settings_module.importlib.util, "find_spec", hide_uvloop)
    assert loop_name("auto") == "asyncio"
    with pytest.raises(RuntimeError, match="uvloop is not installed"):
        loop_name("uvloop")


@pytest.mark.parametrize("choice", ["asyncio", pytest.param("uvloop", marks=needs_uvloop)])
def test_run_uses_the_chosen_loop(choice: str) -> None:
    async def kind() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run_on_configured_loop(kind(), choice).startswith(choice)


@pytest.mark.parametrize("choice", ["asyncio", pytest.param("uvloop", marks=needs_uvloop)])
def test_the_web_server_gets_the_loop(choice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    loops: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: loops.append(options["loop"]))
    monkeypatch.setenv("HITL_BUS_LOOP", choice)
    assert CliRunner().invoke(app, ["web"]).exit_code == 0
    assert loops == [choice]


@pytest.mark.realredis
@pytest.mark.parametrize("choice", ["asyncio", pytest.param("uvloop", marks=needs_uvloop)])
async def test_a_worker_runs_flows_and_messages_on_either_loop(
    choice: str, start_worker: StartWorker
) -> None:
    start_worker("tests/loop_flows.py", HITL_BUS_LOOP=choice)
    await registered("which-loop/default")
    run = await run_deployment("which-loop/default", timeout=0)
    replies = receive_input(str, timeout=15)
    for word in ("one", "two"):
        await send_input(word, flow_run_id=run.id)
        answer = await replies.next()
        assert answer.startswith(f"{word} {choice}"), answer
    await send_input("exit", flow_run_id=run.id)
    await wait_state(run.id, lambda s: s.is_completed())  # type: ignore[attr-defined]
