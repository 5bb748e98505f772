"""Server-Sent Events fed by Redis streams: events, logs, and replies to the web's inbox.

Each follower parks on the loop's dispatcher (pushed, no polling) and sends a
``ping`` every 15 s of quiet, so proxies keep the connection and a closed
browser tab is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.requests import Request

from hitl_bus import keys
from hitl_bus.bus import codec, get_bus
from hitl_bus.bus.dispatcher import Entry
from hitl_bus.inputs import inbox
from hitl_bus.inputs.keyset import Mailbox

Message = dict[str, str]
QUIET = 15.0


def event_message(entry_id: str, fields: dict[bytes, bytes]) -> Message:
    """An audit event as an SSE message named after its type."""
    data = {
        "run_id": codec.text(fields.get(b"run_id")),
        "ts": int(fields.get(b"ts", b"0")),
        "data": codec.loads(fields.get(b"data", b"{}")),
    }
    return {
        "id": entry_id,
        "event": codec.text(fields.get(b"type")) or "event",
        "data": codec.dumps(data).decode(),
    }


def log_message(entry_id: str, fields: dict[bytes, bytes]) -> Message:
    record = {"id": entry_id, **{k.decode(): v.decode() for k, v in fields.items()}}
    return {"id": entry_id, "event": "log", "data": codec.dumps(record).decode()}


async def _latest(stream: str) -> str:
    last = await get_bus().client.xrevrange(stream, count=1)
    return str(last[0][0].decode()) if last else "0-0"


async def follow(
    request: Request,
    stream: str,
    convert: Callable[[str, dict[bytes, bytes]], Message | None],
    *,
    from_start: bool = False,
) -> AsyncIterator[Message]:
    """Entries of ``stream`` as SSE messages: new ones (or all, ``from_start``) as they land."""
    bus = get_bus()
    position = "0-0" if from_start else await _latest(stream)
    if from_start:
        for entry_id, fields in await bus.client.xrange(stream):
            position = entry_id.decode()
            message = convert(position, fields)
            if message is not None:
                yield message
    while not await request.is_disconnected():
        try:
            entries: list[Entry] = await bus.dispatcher.wait(stream, position, QUIET)
        except TimeoutError:
            yield {"event": "ping", "data": "{}"}
            continue
        for entry_id, fields in entries:
            position = entry_id.decode()
            message = convert(position, fields)
            if message is not None:
                yield message


def web_inbox() -> Mailbox:
    """The mailbox the web server sends from: runs ``respond()`` to it."""
    return inbox.inbox()


async def follow_replies(request: Request, run_id: str) -> AsyncIterator[Message]:
    """Inputs the run sent back to the web server's inbox, on any key prefix, as they land."""
    bus = get_bus()
    box = web_inbox()
    sender = Mailbox.for_run(run_id).name
    positions: dict[str, str] = {}
    queue: asyncio.Queue[Message] = asyncio.Queue()

    def reply(prefix: str) -> Callable[[str, dict[bytes, bytes]], Message | None]:
        def convert(entry_id: str, fields: dict[bytes, bytes]) -> Message | None:
            if codec.text(fields.get(b"sender")) != sender:
                return None
            data = {"key_prefix": prefix, "data": codec.loads(fields.get(b"data", b"null"))}
            return {"id": entry_id, "event": "reply", "data": codec.dumps(data).decode()}

        return convert

    async def watch(prefix: str) -> None:
        stream = keys.input_stream(box.id, prefix)
        position = positions[prefix]
        while True:
            with contextlib.suppress(TimeoutError):
                for entry_id, fields in await bus.dispatcher.wait(stream, position, QUIET):
                    position = entry_id.decode()
                    message = reply(prefix)(position, fields)
                    if message is not None:
                        await queue.put(message)

    seconds, _ = await bus.client.time()
    since = f"{int(seconds) * 1000}-0"  # replies from now on, on old and new prefixes alike
    watchers: list[asyncio.Task[None]] = []
    quiet = 0.0
    try:
        while not await request.is_disconnected():
            # A reply on a new key prefix makes a new stream: look for those every second.
            for raw in await bus.client.smembers(keys.input_streams(box.id)):
                prefix = raw.decode()
                if prefix not in positions:
                    positions[prefix] = since
                    watchers.append(asyncio.create_task(watch(prefix)))
            try:
                yield await asyncio.wait_for(queue.get(), 1.0)
                quiet = 0.0
            except TimeoutError:
                quiet += 1.0
                if quiet >= QUIET:
                    quiet = 0.0
                    yield {"event": "ping", "data": "{}"}
    finally:
        for task in watchers:
            task.cancel()


async def merge(*streams: AsyncIterator[Message]) -> AsyncIterator[Message]:
    """Several SSE message streams as one, in the order messages come; a failure ends it."""
    queue: asyncio.Queue[Message | BaseException] = asyncio.Queue()

    async def pump(stream: AsyncIterator[Message]) -> None:
        try:
            async for message in stream:
                await queue.put(message)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            await queue.put(exc)

    pumps = [asyncio.create_task(pump(stream)) for stream in streams]
    try:
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
