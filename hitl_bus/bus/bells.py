"""Waiting with bells: a node's keyspace notifications ring, then one read per stream.

One pub/sub connection per Redis node subscribes to the keyspace notification of each
watched stream (``__keyspace@<db>__:<stream>``, turned on with ``notify-keyspace-events
Kt`` when it is not already), and an ``xadd`` makes the bells read that one stream from
its last id with a plain XREAD. Connections are bounded by nodes, not slots, and a new
stream or an entry costs one command, whatever else is watched. The stream stays the
truth: each subscription, when Redis confirms it (first time or after a reconnect), is
followed by a read from the stream's last id, so an entry added before it, or a
notification lost with a connection, is still delivered.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from hitl_bus import keys
from hitl_bus.bus.retrying import reconnect_backoff
from hitl_bus.bus.watching import (
    BATCH,
    LINGER,
    RECONNECTABLE,
    EntryId,
    ReaderOwner,
    Watch,
    deliver,
    format_id,
)

log = logging.getLogger("hitl_bus.dispatcher")


class NoNotifications(Exception):
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


#: Streams read by one XREAD at most after rings (one reply lists only those with entries).
STREAMS_PER_READ = 1000


def _xread_groups(requested: dict[str, EntryId], cluster: bool) -> list[dict[str, str]]:
    """``requested`` as XREAD arguments: a few big reads instead of one per stream. On
    Cluster the streams of one hash tag (one slot) go together."""
    groups: dict[str, dict[str, str]] = {}
    reads: list[dict[str, str]] = []
    for stream, last in requested.items():
        tag = keys.hash_tag(stream) if cluster else ""
        group = groups.get(tag)
        if group is None or len(group) >= STREAMS_PER_READ:
            group = groups[tag] = {}
            reads.append(group)
        group[stream] = format_id(last)
    return reads


class BellsOwner(ReaderOwner, Protocol):
    """The dispatcher as bells see it: it moves streams between nodes and off bells."""

    def replace(self, bells: Bells) -> bool: ...

    def fall_back_to_xread(self, reason: str) -> None: ...


class Bells:
    """One pub/sub connection to one node: a doorbell per watched stream, one read per ring."""

    def __init__(self, dispatcher: BellsOwner, node: tuple[str, int] | None) -> None:
        self.dispatcher = dispatcher
        self.node = node
        self.streams: dict[str, Watch] = {}
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
            self.subscribe([stream])
        elif moved_back:
            self._mark([stream])

    def settled(self) -> bool:
        return self.task is not None and not self.dirty and self.confirmed >= set(self.streams)

    def subscribe(self, streams: list[str]) -> None:
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
                except RECONNECTABLE as exc:
                    log.debug("bell subscription failed (%s); the reconnect subscribes again", exc)
                    return
        finally:
            self.subscribing = None

    def _mark(self, streams: list[str]) -> None:
        self.dirty.update(streams)
        if self.reading is None:
            self.reading = asyncio.get_running_loop().create_task(self._read_dirty())

    async def _read_dirty(self) -> None:
        """Read every rung stream from its last id: one XREAD over many streams (per hash
        tag on Cluster, where an XREAD may not span slots), all in one pipeline."""
        bus = self.dispatcher.bus
        failures = 0
        try:
            while self.dirty:
                batch = [s for s in self.dirty if s in self.streams]
                self.dirty.clear()
                requested = {stream: self.streams[stream].last for stream in batch}
                try:
                    async with bus.client.pipeline(transaction=False) as pipe:
                        for group in _xread_groups(requested, bus.cluster):
                            pipe.xread(group, count=BATCH)
                        replies = await pipe.execute()
                except (*RECONNECTABLE, ResponseError) as exc:
                    # The command client retried already; the bells reconnect reads again.
                    failures += 1
                    log.warning("reading rung streams failed (%s); retrying", exc)
                    self.dirty.update(requested)
                    await asyncio.sleep(reconnect_backoff().compute(failures))
                    continue
                now = asyncio.get_running_loop().time()
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
            raise NoNotifications(str(exc)) from exc
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

    async def drop(self) -> None:
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
                    await self.drop()
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
                            await self.drop()
                            return
                    message = await self.pubsub.get_message(
                        timeout=ROLE_CHECK if cluster else LINGER
                    )
                except NoNotifications as exc:
                    await self.drop()
                    self.task = None
                    self.dispatcher.fall_back_to_xread(str(exc))
                    return
                except (*RECONNECTABLE, ResponseError) as exc:
                    failures += 1
                    log.warning("stream bells lost their connection (%s); retrying", exc)
                    await self.drop()
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
