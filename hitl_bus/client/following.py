"""Following streams through the dispatcher: what is stored, then each entry as it lands.

Followers park on the loop's dispatcher: entries are pushed, and an idle follower sends
Redis no command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from pydantic import ValidationError

from hitl_bus.bus import get_bus
from hitl_bus.bus.watching import Entry
from hitl_bus.client.records import RunEvent, decode_event
from hitl_bus.engine.states import State
from hitl_bus.inputs.keyset import check_key_prefix

T = TypeVar("T")
#: Entries read per XRANGE while catching up with a stream.
_PAGE = 500


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
