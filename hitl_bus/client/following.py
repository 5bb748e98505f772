"""Following streams through the dispatcher: what is stored, then each entry as it lands.

Followers park on the loop's dispatcher: entries are pushed, and an idle follower sends
Redis no command.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeVar

from pydantic import ValidationError

from hitl_bus import keys
from hitl_bus.bus import get_bus
from hitl_bus.bus.watching import Entry
from hitl_bus.client.records import RunEvent, decode_event
from hitl_bus.engine.states import State
from hitl_bus.inputs.keyset import check_key_prefix

T = TypeVar("T")
#: Entries read per XRANGE while catching up with a stream.
_PAGE = 500
#: Separates the buckets' entry ids in a position over the global event stream.
BUCKETS_SEPARATOR = "_"


async def read_stream(
    stream: str,
    after: str,
    decode: Callable[[str, bytes, dict[bytes, bytes]], T | None],
    limit: int | None = None,
) -> tuple[list[T], str]:
    """Entries of ``stream`` after ``after`` (at most ``limit``), decoded, and the last id read."""
    client = get_bus().client
    items: list[T] = []
    position = after
    read = 0
    while limit is None or read < limit:
        count = _PAGE if limit is None else min(_PAGE, limit - read)
        entries = await client.xrange(stream, min=f"({position}", count=count)
        for entry_id, fields in entries:
            position = entry_id.decode()
            item = decode(stream, entry_id, fields)
            if item is not None:
                items.append(item)
        read += len(entries)
        if len(entries) < count:
            break
    return items, position


async def latest(stream: str) -> str:
    """The id of the stream's newest entry (``0-0`` when empty): "from now on"."""
    last = await get_bus().client.xrevrange(stream, count=1)
    return str(last[0][0].decode()) if last else "0-0"


async def now() -> str:
    """An entry id for this moment on Redis's clock: "from now on" across several streams."""
    seconds, _ = await get_bus().client.time()
    return f"{int(seconds) * 1000}-0"  # from the second's start: a little early, never late


def stop_if_cancelled() -> None:
    """Raise the cancellation a client library swallowed (``asyncio.wait_for`` on 3.11 can).

    A follower cancelled during a command would otherwise go back to waiting for ever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def follow(
    stream: str, after: str, decode: Callable[[str, bytes, dict[bytes, bytes]], T | None]
) -> AsyncIterator[T]:
    """Entries of one stream after ``after``: what is stored, then each new one as it lands."""
    stored, position = await read_stream(stream, after, decode)
    for item in stored:
        yield item
    dispatcher = get_bus().dispatcher
    while True:
        stop_if_cancelled()
        for entry_id, fields in await dispatcher.wait(stream, position, None):
            position = entry_id.decode()
            new = decode(stream, entry_id, fields)
            if new is not None:
                yield new


class Streams:
    """Several streams followed at once through the dispatcher, batches as they arrive.

    Streams can be added while following (a reply type seen for the first time).
    """

    def __init__(self) -> None:
        self.positions: dict[str, str] = {}
        self._waits: dict[str, asyncio.Task[list[Entry]]] = {}

    def add(self, stream: str, after: str) -> None:
        self.positions.setdefault(stream, after)

    async def next(self) -> list[tuple[str, list[Entry]]]:
        """The next entries of any stream (each stream's oldest first)."""
        stop_if_cancelled()
        dispatcher = get_bus().dispatcher
        for stream, position in self.positions.items():
            if stream not in self._waits:
                wait = dispatcher.wait(stream, position, None)
                self._waits[stream] = asyncio.create_task(wait)
        done, _ = await asyncio.wait(self._waits.values(), return_when=asyncio.FIRST_COMPLETED)
        batches = []
        for stream, task in list(self._waits.items()):
            if task in done:
                del self._waits[stream]
                entries = task.result()
                self.positions[stream] = entries[-1][0].decode()
                batches.append((stream, entries))
        return batches

    async def aclose(self) -> None:
        for task in self._waits.values():
            task.cancel()
        await asyncio.gather(*self._waits.values(), return_exceptions=True)
        self._waits.clear()


def global_event_streams() -> list[str]:
    """The buckets of the global event stream (one on standalone Redis by default)."""
    shards = get_bus().index_shards
    return [keys.events(shard, shards) for shard in range(shards)]


def split_position(position: str, streams: Sequence[str]) -> dict[str, str]:
    """Each bucket's entry id in a position over ``streams``.

    A position is one entry id per bucket, joined by ``_`` (a single bucket's is a plain
    entry id). A plain entry id, such as ``0-0`` or a moment from :func:`now`, stands for
    the same id in every bucket.

    :raises ValueError: the position names another number of buckets.
    """
    parts = position.split(BUCKETS_SEPARATOR)
    if len(parts) == 1:
        return dict.fromkeys(streams, position)
    if len(parts) != len(streams):
        raise ValueError(
            f"the position {position!r} names {len(parts)} event buckets; "
            f"this store has {len(streams)} (HITL_BUS_INDEX_SHARDS)"
        )
    return dict(zip(streams, parts, strict=True))


def join_position(positions: dict[str, str], streams: Sequence[str]) -> str:
    return BUCKETS_SEPARATOR.join(positions[stream] for stream in streams)


async def latest_of(streams: Sequence[str]) -> str:
    """The position of the newest entry of every bucket: "from now on" over all of them."""
    if len(streams) == 1:
        return await latest(streams[0])
    async with get_bus().client.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xrevrange(stream, count=1)
        newest = await pipe.execute()
    return BUCKETS_SEPARATOR.join(last[0][0].decode() if last else "0-0" for last in newest)


def _entry_order(entry_id: bytes) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition(b"-")
    return int(milliseconds), int(sequence or 0)


async def follow_buckets(
    streams: Sequence[str], after: str, decode: Callable[[str, bytes, dict[bytes, bytes]], T | None]
) -> AsyncIterator[tuple[T, str]]:
    """Entries of a stream split into buckets, as one: what is stored (merged by entry id),
    then each new one as it lands, each with the position just after it.

    Across buckets the order is that of arrival: two buckets may sit on two nodes whose
    clocks differ, so positions are kept per bucket and nothing is skipped or repeated.
    """
    positions = split_position(after, streams)
    stored: list[tuple[tuple[int, int], str, bytes, dict[bytes, bytes]]] = []
    for stream in streams:
        raw, _ = await read_stream(stream, positions[stream], lambda _s, i, f: (i, f))
        stored += [(_entry_order(entry_id), stream, entry_id, fields) for entry_id, fields in raw]
    stored.sort(key=lambda entry: entry[0])
    for _, stream, entry_id, fields in stored:
        positions[stream] = entry_id.decode()
        item = decode(stream, entry_id, fields)
        if item is not None:
            yield item, join_position(positions, streams)
    waiting = Streams()
    for stream in streams:
        waiting.add(stream, positions[stream])
    try:
        while True:
            for stream, entries in await waiting.next():
                for entry_id, fields in entries:
                    positions[stream] = entry_id.decode()
                    item = decode(stream, entry_id, fields)
                    if item is not None:
                        yield item, join_position(positions, streams)
    finally:
        await waiting.aclose()


async def follow_global_events(after: str | None) -> AsyncIterator[RunEvent]:
    """Every run's events, from every bucket of the global stream; each event's ``id`` is
    the position just after it (its entry id when there is one bucket)."""
    streams = global_event_streams()
    start = after if after is not None else await latest_of(streams)
    if len(streams) == 1:
        async for event in follow(streams[0], start, decode_event):
            yield event
        return
    async for event, position in follow_buckets(streams, start, decode_event):
        yield dataclasses.replace(event, id=position)


def is_final_change(event: RunEvent) -> bool:
    state = event.data.get("state")
    if event.type != "state.changed" or not isinstance(state, dict):
        return False
    try:
        return State.model_validate(state).is_final()
    except ValidationError:
        return False


def reply_signals(
    stream: str, entries: list[Entry], inbox_name: str, run_id: str | None, contacted: set[str]
) -> tuple[list[str], bool]:
    """What these events say about replies to come (see ``follow_replies``).

    Returns the key prefixes the inbox sent inputs on (a reply of the same type may
    follow), and whether the inbox's prefix set is worth reading again: any event of
    the run followed, or of a run the inbox sent to, may come after a reply.
    """
    sent: list[str] = []
    look_again = False
    for entry_id, fields in entries:
        event = decode_event(stream, entry_id, fields)
        if event is None or (run_id is not None and event.run_id not in ("", run_id)):
            continue
        if event.type == "input.received" and event.data.get("sender") == inbox_name:
            contacted.add(event.run_id)
            with contextlib.suppress(ValueError):  # not a prefix: no stream to follow
                sent.append(check_key_prefix(str(event.data.get("key_prefix"))))
        look_again = look_again or run_id is not None or event.run_id in contacted
    return sent, look_again
