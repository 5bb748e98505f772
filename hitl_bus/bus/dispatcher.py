"""Many waiters, few blocking XREADs.

Every coroutine of a loop that waits for stream entries (receivers, paused
runs) registers here instead of reading Redis itself. A handful of reader
tasks each hold one connection and one ``XREAD BLOCK 0`` over all the streams
placed on them, plus a private *wake stream*: registering a stream the reader
does not yet watch appends to that wake stream, which ends the blocking call so
the reader re-issues it with the new stream. Ids are explicit, never ``$``, so
a reader that reconnects after a dropped connection or a Redis restart resumes
exactly where it was: nothing lost, nothing delivered twice.

Placement: on standalone Redis a stream goes to one of ``reader_connections``
readers by hash. On Redis Cluster an XREAD may not span slots, so there is one
reader (and connection) per slot that has waiters; a reader whose streams are
all gone stops and closes its connection. Idle waiters cost Redis nothing: the
readers send no command until an entry arrives or a new stream is registered.

*Bells* (``HITL_BUS_WAKE``: the default on Cluster) replace the blocking XREADs with
doorbells: one pub/sub connection per Redis node subscribes to the keyspace
notification of each watched stream (``__keyspace@<db>__:<stream>``, enabled on the
node with ``notify-keyspace-events Kt`` when it is not already), and an ``xadd``
notification makes the dispatcher read that one stream from its last id with a plain
XREAD. Connections are then bounded by nodes, not slots, and a new stream or an entry
costs one command, whatever else is watched. The stream stays the truth: each
subscription, when Redis confirms it (first time or after a reconnect), is followed by
a read from the stream's last id, so an entry added before it, or a notification lost
with a connection, is still delivered.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import zlib
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hitl_bus import keys
from hitl_bus.bus.connection import reconnect_backoff

if TYPE_CHECKING:
    from hitl_bus.settings import Settings

log = logging.getLogger("hitl_bus.dispatcher")

EntryId = tuple[int, int]
Entry = tuple[bytes, dict[bytes, bytes]]

#: Entries taken per stream per XREAD; a waiter gets at most this many at once.
BATCH = 200
#: Seconds a stream with no waiters stays in the XREAD, so a receiver that
#: comes straight back (the usual loop) needs no wake-up.
LINGER = 30.0
#: Above this many streams on one reader, a stream leaves the XREAD as soon as
#: it has no waiter: every wake-up re-sends the whole list, so keep it short.
CROWDED = 256
#: A reader reconnects after these, for as long as it has streams (``LOADING`` is a
#: ``ConnectionError``; a Cluster with no node answering raises ``RedisClusterException``).
_RECONNECTABLE = (RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError)


def parse_id(raw: bytes | str) -> EntryId:
    """``b"1700000000000-3"`` -> ``(1700000000000, 3)``; ids compare as tuples."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(entry_id: EntryId) -> str:
    return f"{entry_id[0]}-{entry_id[1]}"


class _Waiter:
    __slots__ = ("after", "future")

    def __init__(self, after: EntryId, future: asyncio.Future[list[Entry]]) -> None:
        self.after = after
        self.future = future


class _Watch:
    """One watched stream: the id the reader reads after, and who waits on it."""

    __slots__ = ("idle_since", "last", "waiters")

    def __init__(self, last: EntryId) -> None:
        self.last = last
        self.waiters: list[_Waiter] = []
        self.idle_since: float | None = None


class _Reader:
    """One connection, one blocking XREAD over the streams placed on it."""

    def __init__(self, dispatcher: Dispatcher, name: str, tag: str) -> None:
        self.dispatcher = dispatcher
        self.wake_key = keys.wake(tag, name)
        self.wake_last = "0-0"
        self.streams: dict[str, _Watch] = {}
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
        except _RECONNECTABLE as exc:
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

    async def _drop_client(self) -> None:
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
                    await self._drop_client()
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
                    reply = await client.xread(request, block=block, count=BATCH)
                    if block is None and not reply:
                        await asyncio.sleep(0.005)
                except _RECONNECTABLE as exc:
                    failures += 1
                    log.warning("stream reader lost its connection (%s); retrying", exc)
                    await self._drop_client()
                    await asyncio.sleep(backoff.compute(failures))
                    continue
                except ResponseError as exc:
                    # MOVED after a Cluster resharding, or a foreign key of the wrong type.
                    failures += 1
                    log.error("stream reader got %s; retrying", exc)
                    await self._drop_client()
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


def deliver(
    streams: dict[str, _Watch], reply: list[Any], requested: dict[str, EntryId], now: float
) -> None:
    """Hand each waiter the entries after its position.

    A waiter registered behind the id this reply was read from (it lowered
    the stream's position meanwhile) is left for the next read, which
    starts from its position: serving it now would skip entries.
    """
    for raw_stream, entries in reply:
        if not entries:
            continue
        stream = raw_stream.decode() if isinstance(raw_stream, bytes) else raw_stream
        watch = streams.get(stream)
        if watch is None:
            continue
        ids = [parse_id(entry[0]) for entry in entries]
        read_from = requested.get(stream, ids[0])
        if watch.last >= read_from:
            watch.last = ids[-1]
        waiting: list[_Waiter] = []
        for waiter in watch.waiters:
            if waiter.future.done():
                continue
            if waiter.after < read_from:
                waiting.append(waiter)
                continue
            start = next((i for i, eid in enumerate(ids) if eid > waiter.after), None)
            if start is None:
                waiting.append(waiter)
            else:
                waiter.future.set_result(entries[start:])
        watch.waiters = waiting
        if not waiting:
            watch.idle_since = now


#: Where the bells of a standalone Redis sit among the readers.
_STANDALONE_BELLS = ("bells", None)


class _NoNotifications(Exception):
    """A node's keyspace notifications are off and cannot be turned on from here."""


#: Seconds between checks that a Cluster node the bells listen to is still a master.
ROLE_CHECK = 5.0
#: The keyspace notification classes bells need: ``K`` (keyspace channels), ``t`` (streams).
KEYSPACE_FLAGS = "Kt"


def keyspace_flags(current: str) -> str:
    """``notify-keyspace-events`` with keyspace stream events added to what is set already."""
    have = set(current)
    if "A" in have:  # "A" is every class, streams included
        have.discard("t")
    wanted = {"K"} | ({"t"} if "A" not in have else set())
    return "".join(sorted(have | wanted))


class _Bells:
    """One pub/sub connection to one node: a doorbell per watched stream, one read per ring."""

    def __init__(self, dispatcher: Dispatcher, node: tuple[str, int] | None) -> None:
        self.dispatcher = dispatcher
        self.node = node
        self.streams: dict[str, _Watch] = {}
        self.task: asyncio.Task[None] | None = None
        self.pubsub: Any = None
        self.client: Any = None
        #: Streams whose subscription Redis has confirmed on the current connection.
        self.confirmed: set[str] = set()
        #: Streams to read (rung, newly confirmed, or a waiter moved back), and the task
        #: reading them.
        self.dirty: set[str] = set()
        self.reading: asyncio.Task[None] | None = None
        #: Streams to subscribe at the next ``SUBSCRIBE``, and the task sending it.
        self.to_subscribe: set[str] = set()
        self.subscribing: asyncio.Task[None] | None = None
        self.prefix = ""

    def ensure_running(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(
                self._run(), name=f"hitl-bus-bells:{self.node}"
            )

    def changed(self, stream: str, moved_back: bool) -> None:
        """A waiter arrived on ``stream``: subscribe it, or read it again when it moved back."""
        if self.task is None:
            self.ensure_running()  # subscribes every watched stream as it connects
        elif stream not in self.confirmed:
            self._subscribe([stream])
        elif moved_back:
            self._mark([stream])

    def settled(self) -> bool:
        return self.task is not None and not self.dirty and self.confirmed >= set(self.streams)

    def _subscribe(self, streams: list[str]) -> None:
        """Subscribe ``streams``: coalesced, so many new waiters cost one ``SUBSCRIBE``."""
        if self.pubsub is None:
            return  # not connected: the connection subscribes them all when it is
        self.to_subscribe.update(streams)
        if self.subscribing is None:
            self.subscribing = asyncio.get_running_loop().create_task(self._send_subscribe())

    async def _send_subscribe(self) -> None:
        try:
            await asyncio.sleep(0)  # let the waiters of this loop turn register first
            while self.to_subscribe and self.pubsub is not None:
                streams, self.to_subscribe = self.to_subscribe, set()
                try:
                    await self.pubsub.subscribe(*[self.prefix + stream for stream in streams])
                except _RECONNECTABLE as exc:
                    log.debug("bell subscription failed (%s); the reconnect subscribes again", exc)
                    return
        finally:
            self.subscribing = None

    def _mark(self, streams: list[str]) -> None:
        self.dirty.update(streams)
        if self.reading is None:
            self.reading = asyncio.get_running_loop().create_task(self._read_dirty())

    async def _read_dirty(self) -> None:
        """Read every rung stream from its last id, one XREAD each, in one pipeline."""
        bus = self.dispatcher.bus
        failures = 0
        try:
            while self.dirty:
                batch = [s for s in self.dirty if s in self.streams]
                self.dirty.clear()
                requested = {stream: self.streams[stream].last for stream in batch}
                try:
                    async with bus.client.pipeline(transaction=False) as pipe:
                        for stream, last in requested.items():
                            pipe.xread({stream: format_id(last)}, count=BATCH)
                        replies = await pipe.execute()
                except (*_RECONNECTABLE, ResponseError) as exc:
                    # The command client retried already; the bells reconnect reads again.
                    failures += 1
                    log.warning("reading rung streams failed (%s); retrying", exc)
                    self.dirty.update(requested)
                    await asyncio.sleep(reconnect_backoff().compute(failures))
                    continue
                now = asyncio.get_running_loop().time()
                log.debug("bells on %s read %d streams", self.node, len(requested))
                for reply in replies:
                    if reply:
                        deliver(self.streams, reply, requested, now)
                        for raw_stream, entries in reply:
                            if len(entries) >= BATCH:  # more may wait behind this batch
                                self.dirty.add(
                                    raw_stream.decode()
                                    if isinstance(raw_stream, bytes)
                                    else raw_stream
                                )
                await asyncio.sleep(0)
        finally:
            self.reading = None

    def _prune(self, now: float) -> list[str]:
        gone = [
            stream
            for stream, watch in self.streams.items()
            if not watch.waiters
            and watch.idle_since is not None
            and now - watch.idle_since >= LINGER
        ]
        for stream in gone:
            del self.streams[stream]
            self.confirmed.discard(stream)
        return gone

    async def _connect(self) -> None:
        bus = self.dispatcher.bus
        client = self.client = await bus.open_node(self.node)
        try:
            flags = (await client.config_get("notify-keyspace-events")).get(
                "notify-keyspace-events", ""
            )
            flags = flags.decode() if isinstance(flags, bytes) else str(flags)
            if keyspace_flags(flags) != "".join(sorted(flags)):
                await client.config_set("notify-keyspace-events", keyspace_flags(flags))
        except ResponseError as exc:  # CONFIG disabled or not permitted (managed Redis)
            raise _NoNotifications(str(exc)) from exc
        db = client.connection_pool.connection_kwargs.get("db", 0) or 0
        self.prefix = f"__keyspace@{db}__:"
        await self._check_role()
        self.pubsub = client.pubsub()
        self.confirmed.clear()
        self.to_subscribe.clear()  # this subscribes every watched stream
        log.info("stream bells on %s subscribe %d streams", self.node, len(self.streams))
        if self.streams:
            await self.pubsub.subscribe(*[self.prefix + stream for stream in self.streams])

    async def _check_role(self) -> None:
        """On Cluster, a node a failover made a replica keeps its pub/sub clients but no
        longer sees the writes: treat it as a lost connection (the streams move)."""
        if self.dispatcher.bus.cluster:
            role = await self.client.execute_command("ROLE")
            if role[0] not in (b"master", "master"):
                raise RedisConnectionError(f"{self.node} is a replica now")

    async def _drop(self) -> None:
        pubsub, client, self.pubsub, self.client = self.pubsub, self.client, None, None
        self.confirmed.clear()
        for closing in (pubsub, client):
            if closing is None:
                continue
            try:
                async with asyncio.timeout(0.5):
                    await closing.aclose()
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = reconnect_backoff()
        failures = 0
        cluster = self.dispatcher.bus.cluster
        checked = pruned = loop.time()
        try:
            while True:
                gone: list[str] = []
                if loop.time() - pruned >= 1.0 or not self.streams:  # O(streams): not per ring
                    gone, pruned = self._prune(loop.time()), loop.time()
                if not self.streams:
                    self.task = None
                    await self._drop()
                    return
                try:
                    if self.pubsub is None:
                        if failures:
                            await self.dispatcher.bus.refresh_topology()
                            if self.dispatcher.replace(self):
                                self.task = None
                                return
                        await self._connect()
                        checked = loop.time()
                    elif gone:
                        await self.pubsub.unsubscribe(*[self.prefix + s for s in gone])
                    if cluster and loop.time() - checked >= ROLE_CHECK:
                        await self._check_role()
                        checked = loop.time()
                        if self.dispatcher.replace(self):  # by the map the commands keep
                            self.task = None
                            await self._drop()
                            return
                    message = await self.pubsub.get_message(
                        timeout=ROLE_CHECK if cluster else LINGER
                    )
                except _NoNotifications as exc:
                    await self._drop()
                    self.task = None
                    self.dispatcher.fall_back_to_xread(str(exc))
                    return
                except (*_RECONNECTABLE, ResponseError) as exc:
                    failures += 1
                    log.warning("stream bells lost their connection (%s); retrying", exc)
                    await self._drop()
                    await asyncio.sleep(backoff.compute(failures))
                    continue
                failures = 0
                if message is not None:
                    self._on_message(message)
        except asyncio.CancelledError:
            self.task = None
            raise

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        log.debug("bells on %s: %s %s", self.node, kind, message.get("channel"))
        channel = message.get("channel")
        if not isinstance(channel, bytes | str):
            return
        name = channel.decode() if isinstance(channel, bytes) else channel
        stream = name[len(self.prefix) :]
        if stream not in self.streams:
            return
        if kind in ("subscribe", b"subscribe"):
            # Confirmed: what was added before the subscription is read now.
            self.confirmed.add(stream)
            self._mark([stream])
        elif kind in ("message", b"message") and message.get("data") in (b"xadd", "xadd"):
            self._mark([stream])


class ReaderSource(Protocol):
    """What a dispatcher needs of its bus: connections for its readers, and the settings."""

    settings: Settings
    cluster: bool
    #: ``XREAD BLOCK`` milliseconds (0: forever); ``None`` re-reads every few ms instead.
    reader_block_ms: int | None
    #: The command client (the readers' wake-up pokes go through it).
    client: Any
    #: Wait with bells (keyspace notifications) rather than blocking XREADs.
    bells: bool
    #: Standalone: bells only for the streams beyond this many; None: never.
    bells_past: int | None

    async def open_reader(self, key: str) -> Any: ...

    async def open_node(self, node: tuple[str, int] | None) -> Any: ...

    async def know_nodes(self) -> None: ...

    def node_of(self, key: str) -> tuple[str, int] | None: ...

    async def refresh_topology(self) -> None: ...


class Dispatcher:
    """Routes stream entries to the coroutines of one event loop that wait for them."""

    def __init__(self, bus: ReaderSource) -> None:
        self.bus = bus
        self.id = uuid.uuid4().hex
        self._readers: dict[Hashable, _Reader | _Bells] = {}
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
            if not isinstance(reader, _Bells):
                continue
            del self._readers[place]
            if reader.task is not None and reader.task is not current:
                reader.task.cancel()
            moved, reader.streams = reader.streams, {}
            for stream, watch in moved.items():
                target = self._reader_for(stream)
                assert isinstance(target, _Reader)
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
        watched = sum(len(r.streams) for r in self._readers.values() if isinstance(r, _Reader))
        return _STANDALONE_BELLS if watched >= self.bells_past else bucket

    def _place_or_none(self, stream: str) -> Hashable:
        try:
            return self._place(stream)
        except RedisClusterException:
            return None  # no reader sits there

    def _reader_for(self, stream: str) -> _Reader | _Bells:
        place = self._place(stream)
        reader = self._readers.get(place)
        if reader is None:
            if isinstance(place, tuple):
                reader = self._readers[place] = _Bells(self, place[1])
            else:
                tag = keys.hash_tag(stream) if self.bus.cluster else f"{self.id}-{place}"
                reader = self._readers[place] = _Reader(self, f"{self.id}-{place}", tag)
        return reader

    async def _placed(self, stream: str) -> _Reader | _Bells:
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

    def replace(self, bells: _Bells) -> bool:
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
                target = self._readers[place] = _Bells(self, place[1])  # type: ignore[index]
            assert isinstance(target, _Bells)
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
                target._subscribe(streams)
        if bells.streams:
            return False
        self._readers.pop(("bells", bells.node), None)
        return True

    async def wait(self, stream: str, after: bytes | str, timeout: float | None) -> list[Entry]:
        """Wait for entries of ``stream`` newer than ``after``; they come back oldest first.

        Raises ``TimeoutError`` after ``timeout`` seconds (``None``: wait forever).
        """
        loop = asyncio.get_running_loop()
        reader = await self._placed(stream) if self.bells else self._reader_for(stream)
        after_id = parse_id(after)
        waiter = _Waiter(after_id, loop.create_future())
        watch = reader.streams.get(stream)
        needs_wake = moved_back = False
        if watch is None:
            watch = reader.streams[stream] = _Watch(after_id)
            needs_wake = True
        elif after_id < watch.last:
            watch.last = after_id
            needs_wake = moved_back = True
        elif not watch.waiters:
            watch.last = after_id
        watch.waiters.append(waiter)
        watch.idle_since = None
        if isinstance(reader, _Bells):
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
            if isinstance(reader, _Bells):
                if reader.streams and not reader.settled():
                    return False
            elif reader.streams and (reader.poke_pending or reader.task is None):
                return False
        return True

    def blocking_readers(self) -> int:
        """Readers blocked (or about to block) in an XREAD now: one connection each."""
        return sum(1 for r in self._readers.values() if isinstance(r, _Reader) and r.task)

    def rung_streams(self) -> int:
        """Streams waited on through bells now (one subscription each)."""
        return sum(len(r.streams) for r in self._readers.values() if isinstance(r, _Bells))

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
        if isinstance(reader, _Bells):
            return reader.task is not None and stream in reader.confirmed
        return reader is not None and reader.task is not None and stream in reader.streams

    def waiting(self) -> int:
        """How many waiters are registered now (for tests and metrics)."""
        return sum(len(w.waiters) for r in self._readers.values() for w in r.streams.values())

    async def aclose(self) -> None:
        tasks = [r.task for r in self._readers.values() if r.task is not None]
        for r in self._readers.values():
            if isinstance(r, _Bells):
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
            if isinstance(reader, _Bells):
                await reader._drop()
            else:
                await reader._drop_client()
        self._readers.clear()
