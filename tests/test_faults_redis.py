"""The seed's chat and single sends across real faults: cut connections, kill -9, lost replies.

Each test runs its own ``redis-server`` (or a proxy in front of the shared one) and stops it
by pid. The calling code never retries by itself: every error it sees is counted.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from examples.greeter_chat import DEPLOYMENT, EXIT_SIGNAL
from hitl_bus import get_client, receive_input, run_deployment, send_input
from hitl_bus import keys as key_names
from hitl_bus.bus import codec, get_bus
from hitl_bus.engine.runs import FlowRun
from hitl_bus.errors import BusConnectionError
from hitl_bus.inputs.inbox import inbox
from hitl_bus.redis_server import RedisServer
from tests.faults import ReplyLosingProxy, kill_clients_every
from tests.helpers import eventually, new_run

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.realredis

#: Generous bound on one exchange (a send and its reply); not a speed check.
REPLY_WAIT = 20.0


@pytest.fixture
def aof_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A server of this test's own with AOF ``appendfsync always``, configured as the bus."""
    with RedisServer(appendonly=True) as server:
        monkeypatch.setenv("HITL_BUS_REDIS_URL", server.url)
        yield server


@pytest.fixture
def chat_worker(aof_redis: RedisServer, tmp_path: Path) -> Iterator[Callable[[], None]]:
    """Starts ``python -m hitl_bus.cli worker workers.chat`` (the greeter) on that server.

    Its stderr (a warning per cut connection) goes to ``worker.log`` in the test's tmp_path.
    """
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        env = {**os.environ, "HITL_BUS_REDIS_URL": aof_redis.url, "HITL_BUS_LOG_TO_STDERR": "0"}
        with open(tmp_path / "worker.log", "ab") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "hitl_bus.cli", "worker", "workers.chat"],
                    cwd=ROOT,
                    env=env,
                    stderr=log,
                )
            )

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


async def _greeter_running(start_worker: Callable[[], None]) -> FlowRun:
    start_worker()

    async def registered() -> bool:
        return bool(await get_bus().client.hexists(key_names.DEPLOYMENTS, DEPLOYMENT))

    await eventually(registered, timeout=20)
    run = await run_deployment(DEPLOYMENT, timeout=0)

    async def running() -> bool:
        return (await get_client().read_flow_run(run.id)).state.is_running()

    await eventually(running, timeout=20)
    return run


@dataclass
class Chat:
    """What the sender saw: names sent, replies received, errors, the slowest exchange."""

    sent: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    slowest: float = 0.0
    slowest_at: float = 0.0  # when the slowest exchange began (loop time)


async def _converse(run_id: str, until: asyncio.Future[object], chat: Chat) -> None:
    """Send names one by one, each after the previous reply, until ``until`` is done.

    No retries here: an error is recorded and the chat goes on (or ends, if a reply is lost).
    """
    loop = asyncio.get_running_loop()
    replies = receive_input(str, timeout=REPLY_WAIT)
    n = 0
    while not until.done() or n < 3:
        name = f"name-{n}"
        n += 1
        began = loop.time()
        try:
            await send_input(name, flow_run_id=run_id)
        except Exception as exc:  # noqa: BLE001 - counted, never retried
            chat.errors.append(f"send {name}: {exc!r}")
            await asyncio.sleep(0.05)
            continue
        chat.sent.append(name)
        try:
            chat.replies.append(await replies.next())
        except Exception as exc:  # noqa: BLE001 - a lost reply ends the chat
            chat.errors.append(f"reply to {name}: {exc!r}")
            return
        took = loop.time() - began
        if took > chat.slowest:
            chat.slowest, chat.slowest_at = took, began


async def _stored_values(owner_id: str) -> list[str]:
    """The values in an owner's ``str-auto`` input stream, checking every key is unique."""
    entries = await get_bus().client.xrange(key_names.input_stream(owner_id, "str-auto"))
    stored_keys = [fields[b"key"] for _, fields in entries]
    assert len(stored_keys) == len(set(stored_keys)), "an input key was stored twice"
    return [codec.loads(fields[b"data"])["value"] for _, fields in entries]


async def _check_chat_and_finish(run_id: str, chat: Chat) -> None:
    assert chat.errors == []
    assert len(chat.sent) >= 10
    assert chat.replies == [f"Hello, {name}!" for name in chat.sent]  # none lost
    assert await _stored_values(run_id) == chat.sent  # each name stored once
    assert await _stored_values(inbox().id) == chat.replies  # each reply stored once
    assert (await get_client().read_flow_run(run_id)).state.is_running()
    await send_input(EXIT_SIGNAL, flow_run_id=run_id)

    async def completed() -> bool:
        return (await get_client().read_flow_run(run_id)).state.is_completed()

    await eventually(completed, timeout=20)


async def test_the_greeter_chat_survives_connection_kills_every_200ms(
    aof_redis: RedisServer, chat_worker: Callable[[], None]
) -> None:
    run = await _greeter_running(chat_worker)
    killer = asyncio.create_task(kill_clients_every(aof_redis.port, 0.2, 10.0))
    chat = Chat()
    await _converse(str(run.id), killer, chat)
    kills = await killer
    print(
        f"\nconnection kills: {kills} connections in 10 s; {len(chat.sent)} exchanges, "
        f"{len(chat.errors)} errors; slowest exchange {chat.slowest:.2f}s"
    )
    for error in chat.errors:
        print(" ", error)
    assert kills >= 20  # the worker's and this process's connections, again and again
    await _check_chat_and_finish(str(run.id), chat)


async def test_the_greeter_chat_survives_a_redis_kill_9_and_restart(
    aof_redis: RedisServer, chat_worker: Callable[[], None]
) -> None:
    run = await _greeter_running(chat_worker)
    loop = asyncio.get_running_loop()
    outage: dict[str, float] = {}

    async def crash() -> None:
        await asyncio.sleep(1.0)  # mid-chat
        outage["killed"] = loop.time()
        await asyncio.to_thread(aof_redis.kill_and_restart, 0.3)
        outage["back"] = loop.time()
        await asyncio.sleep(2.0)  # the chat goes on after the restart

    crasher = asyncio.create_task(crash())
    chat = Chat()
    await _converse(str(run.id), crasher, chat)
    await crasher
    print(
        f"\nkill -9 and restart: Redis down {outage['back'] - outage['killed']:.2f}s; "
        f"{len(chat.sent)} exchanges, {len(chat.errors)} errors; slowest exchange "
        f"{chat.slowest:.2f}s, begun {chat.slowest_at - outage['killed']:+.2f}s from the kill"
    )
    for error in chat.errors:
        print(" ", error)
    await _check_chat_and_finish(str(run.id), chat)


@pytest.fixture
async def proxy(
    real_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ReplyLosingProxy]:
    """A reply-losing proxy in front of the shared (flushed) server, configured as the bus."""
    port = redis.Redis.from_url(real_redis_url).connection_pool.connection_kwargs["port"]
    losing = await ReplyLosingProxy(port).start()
    monkeypatch.setenv("HITL_BUS_REDIS_URL", losing.url)
    yield losing
    await losing.aclose()


async def test_a_send_whose_reply_was_lost_is_retried_and_stored_once(
    proxy: ReplyLosingProxy,
) -> None:
    run = await new_run()
    await send_input("warm-up", flow_run_id=run.id)  # the send script is loaded now
    before = proxy.seen[b"EVALSHA"]
    proxy.arm(b"EVALSHA")
    await send_input("once", flow_run_id=run.id)  # no error: the retry is answered as applied
    assert proxy.lost and proxy.lost[0].startswith(b"*2\r\n:1\r\n")  # Redis had stored it
    assert proxy.seen[b"EVALSHA"] - before == 2  # the lost call and its retry
    assert await _stored_values(str(run.id)) == ["warm-up", "once"]


async def test_a_group_read_whose_reply_was_lost_loses_no_input(proxy: ReplyLosingProxy) -> None:
    """A consumer-group read is applied (the entries are now pending under the consumer)
    but its reply is lost; the retried read must still hand those entries over."""
    run = await new_run()
    receiver = receive_input(str, flow_run_id=run.id, consumer="reader", timeout=3)
    await send_input("a", flow_run_id=run.id)
    assert await receiver.next() == "a"
    await send_input("b", flow_run_id=run.id)
    await send_input("c", flow_run_id=run.id)
    proxy.arm(b"XREADGROUP")
    assert [await receiver.next(), await receiver.next()] == ["b", "c"]
    assert proxy.lost  # the read really was applied and its reply lost


async def test_an_application_retry_with_the_same_key_is_stored_once(
    proxy: ReplyLosingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await new_run()
    await send_input("warm-up", flow_run_id=run.id)
    monkeypatch.setenv("HITL_BUS_RECONNECT_TIMEOUT", "0")  # no retries: the error surfaces
    from hitl_bus.bus import close_bus

    await close_bus()  # settings are read when a bus opens
    proxy.arm(b"EVALSHA")
    with pytest.raises(BusConnectionError):
        await send_input("order 42", flow_run_id=run.id, key="order-42")
    assert proxy.lost and proxy.lost[0].startswith(b"*2\r\n:1\r\n")
    await send_input("order 42", flow_run_id=run.id, key="order-42")  # the application retries
    await send_input("order 42", flow_run_id=run.id, key="order-42")  # ... and again
    assert await _stored_values(str(run.id)) == ["warm-up", "order 42"]


async def test_commands_wait_while_redis_loads_its_data(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1000 keys at 1 ms each: about a second of LOADING replies after a restart.
    slow_load = ["--key-load-delay", "1000", "--loading-process-events-interval-bytes", "1024"]
    with RedisServer(extra_args=slow_load) as server:
        monkeypatch.setenv("HITL_BUS_REDIS_URL", server.url)
        run = await new_run()
        admin = aioredis.Redis(port=server.port, protocol=2)
        async with admin.pipeline(transaction=False) as pipe:
            for i in range(1000):
                pipe.set(f"filler:{i}", i)
            await pipe.execute()
        await admin.save()
        await admin.aclose()
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start, loaded=False)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"PING\r\n")
            assert sock.recv(64).startswith(b"-LOADING")  # still loading
        began = time.monotonic()
        await send_input("after the load", flow_run_id=run.id)
        print(f"\nsend during LOADING answered after {time.monotonic() - began:.2f}s")
        assert await _stored_values(str(run.id)) == ["after the load"]
