"""Faults for tests against a real redis-server: cut connections, and replies that never arrive."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import redis.asyncio as aioredis


async def kill_clients_every(port: int, interval: float, duration: float) -> int:
    """``CLIENT KILL TYPE normal`` every ``interval`` s for ``duration`` s; returns the kills.

    Sent from an admin connection of its own, which ``SKIPME yes`` (the default) spares.
    """
    admin = aioredis.Redis(port=port, protocol=2)
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    killed = 0
    try:
        while loop.time() < end:
            killed += int(await admin.client_kill_filter(_type="normal", skipme=True))
            await asyncio.sleep(interval)
    finally:
        await admin.aclose()
    return killed


class ReplyLosingProxy:
    """A TCP proxy in front of Redis that can lose the reply to one command.

    It relays both ways. Once armed with a command name, the next request that carries it
    is forwarded to Redis, Redis's reply is read (so the command has been applied) and
    kept in ``lost``, and the client's connection is cut instead of relaying it: an
    ambiguous failure, as when a connection drops between a write and its reply.
    """

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.port = 0
        self.seen: Counter[bytes] = Counter()
        self.lost: list[bytes] = []
        self._armed: bytes | None = None
        self._carrying = b""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def arm(self, command: bytes, carrying: bytes = b"") -> None:
        """Lose the reply to the next request that carries ``command`` (e.g. ``b"EVALSHA"``)
        and, when given, ``carrying`` (a key it names, say)."""
        self._armed = command
        self._carrying = carrying

    @property
    def armed(self) -> bool:
        """Whether the armed request has yet to pass (it has been sent on once this is False)."""
        return self._armed is not None

    async def start(self) -> ReplyLosingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self.redis_port)
        except OSError:
            client_w.close()
            return
        self._writers.update((client_w, redis_w))
        lose = asyncio.Event()
        up = asyncio.create_task(self._requests(client_r, redis_w, lose))
        down = asyncio.create_task(self._replies(redis_r, client_w, lose))
        self._tasks.update((up, down))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
                self._tasks.discard(task)
            for writer in (client_w, redis_w):
                writer.close()
                self._writers.discard(writer)

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, lose: asyncio.Event
    ) -> None:
        while data := await reader.read(65536):
            for name in (b"EVALSHA", b"XADD", b"EXEC", b"SET"):
                if f"\r\n{name.decode()}\r\n".encode() in data.upper():
                    self.seen[name] += 1
            armed = self._armed
            if (
                armed is not None
                and f"\r\n{armed.decode()}\r\n".encode() in data.upper()
                and self._carrying in data
            ):
                self._armed = None
                lose.set()
            writer.write(data)
            await writer.drain()

    async def _replies(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, lose: asyncio.Event
    ) -> None:
        while data := await reader.read(65536):
            if lose.is_set():
                self.lost.append(data)
                return  # the caller closes both sides: the reply never reaches the client
            writer.write(data)
            await writer.drain()
