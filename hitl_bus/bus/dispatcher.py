"""Many waiters, few connections: routes stream entries to the coroutines waiting for them.

Every coroutine of a loop that waits for stream entries (receivers, paused runs) registers
here instead of reading Redis itself, and the dispatcher places each stream on one reader:

- blocking XREADs (``xread.py``): on standalone Redis one of ``reader_connections``
  readers by hash; on Redis Cluster, where an XREAD may not span slots, one reader per slot
  that has waiters;
- bells (``bells.py``): one pub/sub connection per node, woken by keyspace notifications.

``HITL_BUS_WAKE`` chooses: ``auto`` is bells on Cluster, and on standalone Redis XREADs
for the first ``CROWDED`` streams (quicker per wake-up) and bells beyond (no key list
re-sent). A stream stays with the reader that watches it. Idle waiters cost Redis
nothing; a reader whose streams are all gone stops and closes its connection.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import zlib
from collections.abc import Hashable

from redis.exceptions import RedisClusterException

from hitl_bus import keys
from hitl_bus.bus.bells import Bells
from hitl_bus.bus.retrying import reconnect_backoff
from hitl_bus.bus.watching import (
    Entry,
    ReaderSource,
    Waiter,
    Watch,
    parse_id,
)
from hitl_bus.bus.xread import XreadReader

log = logging.getLogger("hitl_bus.dispatcher")

#: Where the bells of a standalone Redis sit among the readers.
_STANDALONE_BELLS = ("bells", None)


class Dispatcher:
    """Routes stream entries to the coroutines of one event loop that wait for them."""

    def __init__(self, bus: ReaderSource) -> None:
        self.bus = bus
        self.id = uuid.uuid4().hex
        self._readers: dict[Hashable, XreadReader | Bells] = {}
        #: Waiting with bells (``HITL_BUS_WAKE``); off for good if a node refuses them.
        self.bells = bus.bells
        #: Standalone ``auto``: bells for the streams beyond this many; None: never.
        self.bells_past = bus.bells_past
        self._tasks: set[asyncio.Task[None]] = set()

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep a fire-and-forget task referenced until it ends."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def fall_back_to_xread(self, reason: str) -> None:
        """Wait with blocking XREADs from now on: the bells cannot ring (notifications are
        off and ``CONFIG SET`` is refused). Every watched stream moves, waiters and all."""
        if not self.bells and self.bells_past is None:
            return
        self.bells, self.bells_past = False, None
        log.error(
            "keyspace notifications cannot be turned on (%s): waiting with blocking XREADs"
            " instead; set notify-keyspace-events to include Kt on the server, or"
            " HITL_BUS_WAKE=xread",
            reason,
        )
        current = asyncio.current_task()
        for place, reader in list(self._readers.items()):
            if not isinstance(reader, Bells):
                continue
            del self._readers[place]
            if reader.task is not None and reader.task is not current:
                reader.task.cancel()
            moved, reader.streams = reader.streams, {}
            for stream, watch in moved.items():
                target = self._reader_for(stream)
                assert isinstance(target, XreadReader)
                there = target.streams.get(stream)
                if there is None:
                    target.streams[stream] = watch
                else:
                    there.waiters += watch.waiters
                    there.last = min(there.last, watch.last)
                if target.task is None:
                    target.ensure_running()
                elif not target.poke_pending:
                    target.poke_pending = True
                    self.track(asyncio.get_running_loop().create_task(target.poke()))

    def _place(self, stream: str) -> Hashable:
        """Which reader a stream goes to: with bells its node; else its slot in Cluster, or
        a hash bucket; on standalone ``auto``, bells once the XREADs hold ``bells_past``
        streams (a stream stays where it is watched)."""
        if self.bells:
            return ("bells", self.bus.node_of(stream))
        if self.bus.cluster:
            return keys.slot(stream)
        bucket = zlib.crc32(stream.encode()) % self.bus.settings.reader_connections
        if self.bells_past is None:
            return bucket
        reader = self._readers.get(bucket)
        if reader is not None and stream in reader.streams:
            return bucket
        bells = self._readers.get(_STANDALONE_BELLS)
        if bells is not None and stream in bells.streams:
            return _STANDALONE_BELLS
        watched = sum(len(r.streams) for r in self._readers.values() if isinstance(r, XreadReader))
        return _STANDALONE_BELLS if watched >= self.bells_past else bucket

    def _place_or_none(self, stream: str) -> Hashable:
        try:
            return self._place(stream)
        except RedisClusterException:
            return None  # no reader sits there

    def _reader_for(self, stream: str) -> XreadReader | Bells:
        place = self._place(stream)
        reader = self._readers.get(place)
        if reader is None:
            if isinstance(place, tuple):
                reader = self._readers[place] = Bells(self, place[1])
            else:
                tag = keys.hash_tag(stream) if self.bus.cluster else f"{self.id}-{place}"
                reader = self._readers[place] = XreadReader(self, f"{self.id}-{place}", tag)
        return reader

    async def _placed(self, stream: str) -> XreadReader | Bells:
        """The bells of the node that serves ``stream``; mid-failover, once a node does."""
        backoff = reconnect_backoff()
        deadline = asyncio.get_running_loop().time() + self.bus.settings.reconnect_timeout
        failures = 0
        while True:
            try:
                await self.bus.know_nodes()
                return self._reader_for(stream)
            except RedisClusterException:
                failures += 1
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(backoff.compute(failures))
                await self.bus.refresh_topology()

    def replace(self, bells: Bells) -> bool:
        """After a node failed: move each of ``bells``' streams to the node that has it now.

        True when none is left on ``bells`` (it stops; the others carry on).
        """
        moved: dict[Hashable, list[str]] = {}
        for stream in list(bells.streams):
            try:
                place = self._place(stream)
            except RedisClusterException:
                continue  # no node serves its slot yet: it stays, and is placed next time
            if place != ("bells", bells.node):
                moved.setdefault(place, []).append(stream)
                bells.confirmed.discard(stream)
        for place, streams in moved.items():
            log.info("moving %d watched streams from %s to %s", len(streams), bells.node, place)
            target = self._readers.get(place)
            if target is None:
                target = self._readers[place] = Bells(self, place[1])  # type: ignore[index]
            assert isinstance(target, Bells)
            for stream in streams:
                moving = bells.streams.pop(stream)
                there = target.streams.get(stream)
                if there is None:
                    target.streams[stream] = moving
                else:  # a waiter came back meanwhile and was placed there: keep both
                    there.waiters += moving.waiters
                    there.last = min(there.last, moving.last)
                    if there.waiters:
                        there.idle_since = None
            if target.task is None:
                target.ensure_running()
            else:
                target.subscribe(streams)
        if bells.streams:
            return False
        self._readers.pop(("bells", bells.node), None)
        return True

    async def wait(
        self, stream: str, after: bytes | str, timeout: float | None, *, background: bool = False
    ) -> list[Entry]:
        """Wait for entries of ``stream`` newer than ``after``; they come back oldest first.

        Raises ``TimeoutError`` after ``timeout`` seconds (``None``: wait forever). A
        ``background`` wait is served after the others on the same stream.
        """
        loop = asyncio.get_running_loop()
        reader = await self._placed(stream) if self.bells else self._reader_for(stream)
        after_id = parse_id(after)
        waiter = Waiter(after_id, loop.create_future(), background)
        watch = reader.streams.get(stream)
        needs_wake = moved_back = False
        if watch is None:
            watch = reader.streams[stream] = Watch(after_id)
            needs_wake = True
        elif after_id < watch.last:
            watch.last = after_id
            needs_wake = moved_back = True
        elif not watch.waiters:
            watch.last = after_id
        watch.add(waiter)
        watch.idle_since = None
        if isinstance(reader, Bells):
            reader.changed(stream, moved_back)
        elif reader.task is None:
            reader.ensure_running()
        elif needs_wake and not reader.poke_pending:
            reader.poke_pending = True
            self.track(loop.create_task(reader.poke()))
        try:
            if timeout is None:
                return await waiter.future
            async with asyncio.timeout(timeout):
                return await waiter.future
        finally:
            if not waiter.future.done():
                waiter.future.cancel()
            current = reader.streams.get(stream)
            if current is not None and waiter in current.waiters:
                current.waiters.remove(waiter)
                if not current.waiters:
                    current.idle_since = loop.time()

    def settled(self) -> bool:
        """Every watched stream is being read: no wake-up or subscription is in flight."""
        for reader in self._readers.values():
            if isinstance(reader, Bells):
                if reader.streams and not reader.settled():
                    return False
            elif reader.streams and (reader.poke_pending or reader.task is None):
                return False
        return True

    def blocking_readers(self) -> int:
        """Readers blocked (or about to block) in an XREAD now: one connection each."""
        return sum(1 for r in self._readers.values() if isinstance(r, XreadReader) and r.task)

    def rung_streams(self) -> int:
        """Streams waited on through bells now (one subscription each)."""
        return sum(len(r.streams) for r in self._readers.values() if isinstance(r, Bells))

    def connections(self) -> int:
        """Connections the readers hold now (for tests and metrics)."""
        return sum(1 for r in self._readers.values() if r.task is not None)

    def release(self, stream: str) -> None:
        """Stop watching ``stream`` once nobody waits on it (e.g. a finished run's control).

        Saves it lingering in a reader's XREAD; no wake-up is needed, the reader
        drops it from its next request.
        """
        reader = self._readers.get(self._place_or_none(stream))
        watch = reader.streams.get(stream) if reader is not None else None
        if reader is not None and watch is not None and not watch.waiters:
            del reader.streams[stream]

    def is_watching(self, stream: str) -> bool:
        """Whether a reader has ``stream`` in its XREAD or bells (so new entries are pushed)."""
        reader = self._readers.get(self._place_or_none(stream))
        if isinstance(reader, Bells):
            return reader.task is not None and stream in reader.confirmed
        return reader is not None and reader.task is not None and stream in reader.streams

    def waiting(self) -> int:
        """How many waiters are registered now (for tests and metrics)."""
        return sum(len(w.waiters) for r in self._readers.values() for w in r.streams.values())

    async def aclose(self) -> None:
        tasks = [r.task for r in self._readers.values() if r.task is not None]
        for r in self._readers.values():
            if isinstance(r, Bells):
                tasks += [t for t in (r.reading, r.subscribing) if t is not None]
        tasks += list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                async with asyncio.timeout(1):
                    await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        for reader in self._readers.values():
            if isinstance(reader, Bells):
                await reader.drop()
            else:
                await reader.drop_client()
        self._readers.clear()
