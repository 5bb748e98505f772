"""What every way of waiting shares: stream entry ids, a waiter and a watched stream,
handing entries to waiters, and what the readers need of the bus and the dispatcher.

The dispatcher (``dispatcher.py``) places each watched stream on one reader: a blocking
XREAD over many streams (``xread.py``) or a node's keyspace-notification bells
(``bells.py``). Both keep a :class:`Watch` per stream and hand entries out with
:func:`deliver`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from hitl_bus.settings import Settings

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
RECONNECTABLE = (RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError)


def parse_id(raw: bytes | str) -> EntryId:
    """``b"1700000000000-3"`` -> ``(1700000000000, 3)``; ids compare as tuples."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(entry_id: EntryId) -> str:
    return f"{entry_id[0]}-{entry_id[1]}"


class Waiter:
    """One wait for a stream's entries after ``after``. A ``background`` waiter (a run's
    watch for a cancel) is handed its entries after the others, so the code someone is
    waiting on (a paused flow, a receiver) runs first in the loop turn they share."""

    __slots__ = ("after", "background", "future")

    def __init__(
        self, after: EntryId, future: asyncio.Future[list[Entry]], background: bool = False
    ) -> None:
        self.after = after
        self.future = future
        self.background = background


class Watch:
    """One watched stream: the id the reader reads after, and who waits on it."""

    __slots__ = ("idle_since", "last", "waiters")

    def __init__(self, last: EntryId) -> None:
        self.last = last
        self.waiters: list[Waiter] = []
        self.idle_since: float | None = None

    def add(self, waiter: Waiter) -> None:
        """Place ``waiter`` after every waiter but the background ones (unless it is one)."""
        waiters = self.waiters
        if not waiter.background and waiters and waiters[-1].background:
            at = len(waiters)
            while at and waiters[at - 1].background:
                at -= 1
            waiters.insert(at, waiter)
        else:
            waiters.append(waiter)


def deliver(
    streams: dict[str, Watch], reply: list[Any], requested: dict[str, EntryId], now: float
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
        waiting: list[Waiter] = []
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


class ReaderOwner(Protocol):
    """The dispatcher as its readers see it."""

    bus: ReaderSource

    def track(self, task: asyncio.Task[None]) -> None: ...
