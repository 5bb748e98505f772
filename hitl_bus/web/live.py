"""Server-Sent Events: the client's followers, turned into JSON messages.

Reading, decoding and waiting are the client's (pushed through the dispatcher; a
corrupt entry is a logged skip, so it never ends a stream). Here records become
SSE messages, several followers share one connection, and a ``ping`` goes out
after 15 s of quiet, so proxies keep the connection and a closed browser tab is
noticed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from starlette.requests import Request

from hitl_bus.bus import codec
from hitl_bus.client import HitlClient, LogRecord, Reply, RunEvent

Message = dict[str, str]
QUIET = 15.0
R = TypeVar("R")
client = HitlClient()


def event_message(event: RunEvent) -> Message:
    """An event as an SSE message named after its type."""
    data = {"run_id": event.run_id, "ts": event.ts, "data": event.data}
    return {"id": event.id, "event": event.type or "event", "data": codec.dumps(data).decode()}


def log_message(record: LogRecord) -> Message:
    return {"id": record.id, "event": "log", "data": codec.dumps(record.as_dict()).decode()}


def reply_message(reply: Reply) -> Message:
    data = {"key_prefix": reply.key_prefix, "data": reply.data}
    return {"id": reply.id, "event": "reply", "data": codec.dumps(data).decode()}


async def _as_messages(
    records: AsyncIterator[R], convert: Callable[[R], Message]
) -> AsyncIterator[Message]:
    async for record in records:
        yield convert(record)


def events(run_id: str | None) -> AsyncIterator[Message]:
    """New events: one run's, or every run's."""
    return _as_messages(client.follow_events(run_id), event_message)


def logs(run_id: str) -> AsyncIterator[Message]:
    """A run's log records: those written so far, then new ones."""
    return _as_messages(client.follow_logs(run_id, after="0-0"), log_message)


def replies(run_id: str) -> AsyncIterator[Message]:
    """What the run sends back, from now on, to inputs this server sent from its inbox."""
    return _as_messages(client.follow_replies(run_id), reply_message)


async def sse(request: Request, *sources: AsyncIterator[Message]) -> AsyncIterator[Message]:
    """Several message streams as one, in the order messages come, with a ``ping`` on quiet.

    A failing source ends the stream with its error (a corrupt entry does not fail one).
    """
    queue: asyncio.Queue[Message | BaseException] = asyncio.Queue()

    async def pump(source: AsyncIterator[Message]) -> None:
        try:
            async for message in source:
                await queue.put(message)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            await queue.put(exc)

    pumps = [asyncio.create_task(pump(source)) for source in sources]
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), QUIET)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield {"event": "ping", "data": "{}"}
                continue
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
