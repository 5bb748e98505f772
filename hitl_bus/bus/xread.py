"""Waiting with blocking XREADs: one connection, one ``XREAD BLOCK 0`` over many streams.

Registering a stream the reader does not yet watch appends to the reader's private *wake
stream*, which ends the blocking call so the reader re-issues it with the new stream. Ids
are explicit, never ``$``, so a reader that reconnects after a dropped connection or a
Redis restart resumes exactly where it was: nothing lost, nothing delivered twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.exceptions import ResponseError

from hitl_bus import keys
from hitl_bus.bus.reading import read_streams
from hitl_bus.bus.retrying import reconnect_backoff
from hitl_bus.bus.watching import (
    BATCH,
    CROWDED,
    LINGER,
    RECONNECTABLE,
    EntryId,
    ReaderOwner,
    Watch,
    deliver,
    format_id,
)

log = logging.getLogger("hitl_bus.dispatcher")


class XreadReader:
    """One connection, one blocking XREAD over the streams placed on it."""

    def __init__(self, dispatcher: ReaderOwner, name: str, tag: str) -> None:
        self.dispatcher = dispatcher
        self.wake_key = keys.wake(tag, name)
        self.wake_last = "0-0"
        self.streams: dict[str, Watch] = {}
        self.poke_pending = False
        self.task: asyncio.Task[None] | None = None
        self.client: Any = None
        self._sample_key: str | None = None

    def ensure_running(self) -> None:
        if self.task is None:
            self.poke_pending = False
            self.task = asyncio.get_running_loop().create_task(
                self._run(), name=f"hitl-bus-reader:{self.wake_key}"
            )

    async def poke(self) -> None:
        """End the reader's blocking XREAD so it picks up newly placed streams.

        Retried like every command; a doubled wake entry (its reply lost) only wakes the
        reader once more, and MAXLEN 1 keeps the stream at one entry.
        """
        bus = self.dispatcher.bus
        try:
            async with bus.client.pipeline(transaction=False) as pipe:
                pipe.xadd(self.wake_key, {"w": "1"}, maxlen=1, approximate=False)
                pipe.pexpire(self.wake_key, 3_600_000)
                await pipe.execute()
        except RECONNECTABLE as exc:
            # The reader is reconnecting too and will rebuild its request.
            log.debug("wake-up of %s failed: %s", self.wake_key, exc)

    async def _connect(self) -> tuple[Any, bool]:
        """The reader's connection, and whether it was opened just now.

        A new one is proved with a PING, so the backoff starts over only once Redis
        answers commands again (not merely accepts connections while still loading).
        """
        if self.client is not None:
            return self.client, False
        self.client = await self.dispatcher.bus.open_reader(self._sample_key or self.wake_key)
        await self.client.ping()
        return self.client, True

    async def drop_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                # Bounded: a connection cut mid-XREAD may never answer a polite close.
                async with asyncio.timeout(0.5):
                    await client.aclose()
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass

    def _prune(self, now: float) -> None:
        linger = 0.0 if len(self.streams) > CROWDED else LINGER
        for stream, watch in list(self.streams.items()):
            idle = watch.idle_since
            if not watch.waiters and idle is not None and now - idle >= linger:
                del self.streams[stream]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        backoff = reconnect_backoff()
        failures = 0
        try:
            while True:
                if me is not None and me.cancelling():
                    # A cancel that a client library swallowed (asyncio.wait_for on
                    # Python 3.11 can) must still stop the reader.
                    raise asyncio.CancelledError
                self._prune(loop.time())
                if not self.streams:
                    self.task = None
                    await self.drop_client()
                    return
                self.poke_pending = False
                request: dict[Any, Any] = {self.wake_key: self.wake_last}
                requested = {stream: watch.last for stream, watch in self.streams.items()}
                for stream, last in requested.items():
                    request[stream] = format_id(last)
                self._sample_key = next(iter(self.streams))
                try:
                    client, fresh = await self._connect()
                    if fresh:
                        failures = 0
                    block = self.dispatcher.bus.reader_block_ms
                    reply = await read_streams(client, request, block=block, count=BATCH)
                    if block is None and not reply:
                        await asyncio.sleep(0.005)
                except RECONNECTABLE as exc:
                    failures += 1
                    log.warning("stream reader lost its connection (%s); retrying", exc)
                    await self.drop_client()
                    await asyncio.sleep(backoff.compute(failures))
                    continue
                except ResponseError as exc:
                    # MOVED after a Cluster resharding, or a foreign key of the wrong type.
                    failures += 1
                    log.error("stream reader got %s; retrying", exc)
                    await self.drop_client()
                    await self.dispatcher.bus.refresh_topology()
                    await asyncio.sleep(backoff.compute(failures))
                    continue
                failures = 0
                if reply:
                    self._deliver(reply, requested, loop.time())
                    # Let the woken receivers run (and come back) before re-reading.
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            # No close here: the loop may be shutting down. Dispatcher.aclose closes it.
            self.task = None
            raise

    def _deliver(self, reply: list[Any], requested: dict[str, EntryId], now: float) -> None:
        for raw_stream, entries in reply:
            stream = raw_stream.decode() if isinstance(raw_stream, bytes) else raw_stream
            if stream == self.wake_key and entries:
                last_raw = entries[-1][0]
                self.wake_last = last_raw.decode() if isinstance(last_raw, bytes) else last_raw
        deliver(self.streams, reply, requested, now)
