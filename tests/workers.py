"""Worker processes for tests: start them by pid, wait for their deployments and runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hitl_bus import get_client
from hitl_bus import keys as key_names
from hitl_bus.bus import get_bus
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parent.parent

StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start_worker(real_redis_url: str) -> Iterator[StartWorker]:
    """Start worker processes (killed or stopped at the end of the test)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        module: str = "tests/worker_flows.py", *args: str, **env: str
    ) -> subprocess.Popen[bytes]:
        full_env = {
            **os.environ,
            "HITL_BUS_REDIS_URL": real_redis_url,
            # HITL_BUS_TEST_WORKER_LOGS=1: the workers' logs show in a failed test's output
            "HITL_BUS_LOG_TO_STDERR": os.environ.get("HITL_BUS_TEST_WORKER_LOGS", "0"),
            "HITL_BUS_WORKER_HEARTBEAT": "0.2",
            "HITL_BUS_WORKER_DEAD_AFTER": "1.0",
            **env,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "hitl_bus.cli", "worker", module, *args], cwd=ROOT, env=full_env
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


async def registered(*names: str) -> None:
    async def all_there() -> bool:
        return all([await get_bus().client.hexists(key_names.DEPLOYMENTS, n) for n in names])

    await eventually(all_there, timeout=20)


async def state_of(run_id: object) -> object:
    return (await get_client().read_flow_run(run_id)).state


async def wait_state(run_id: object, check: Callable[[object], bool], timeout: float = 20) -> None:
    async def ok() -> bool:
        return check((await get_client().read_flow_run(run_id)).state)

    await eventually(ok, timeout=timeout)


async def workers_alive(count: int) -> None:
    """Wait until ``count`` workers beat (each reads its queues from then on)."""

    async def beating() -> bool:
        return len(await get_bus().client.keys(key_names.worker("*"))) == count

    await eventually(beating, timeout=20)
