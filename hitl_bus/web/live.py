"""Server-Sent Events: the client's followers, turned into JSON messages.

Reading, decoding and waiting are the client's (pushed through the dispatcher; a
corrupt entry is a logged skip, so it never ends a stream). Here records become
SSE messages, several followers (feeds) share one connection, and a ``ping`` goes
out after 15 s of quiet, so proxies keep the connection and a closed browser tab is
noticed.

Every message carries an SSE ``id``: where each feed of the connection stands
(for one feed, its entry id; for several, ``events:<id>,logs:<id>,replies:<id>``).
A browser that reconnects sends the last one back (``Last-Event-ID``, or
``?last_event_id=`` when a page opens the stream again itself), and each feed goes
on after it: nothing is missed and nothing is sent twice. The first message,
``ready``, carries where the feeds start, so even a stream that has sent nothing
yet resumes from its start.

While a stream is open the server checks every few seconds that Redis answers; when
it stops (or starts again) the stream says so with a ``store`` message
(``{"reachable": false}``), worded for people by the page. The technical detail goes
to the server log only. The followers wait through the outage and go on where they
were once Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from starlette.requests import Request

from hitl_bus.bus import codec, get_bus
from hitl_bus.client import HitlClient, LogRecord, Reply, RunEvent, following
from hitl_bus.context import acting_as
from hitl_bus.errors import BusConnectionError
from hitl_bus.people.roles import person_of

Message = dict[str, str]
QUIET = 15.0
#: Seconds between two checks that Redis answers, and how long one may take.
PROBE_EVERY = 2.0
PROBE_TIMEOUT = 2.0
R = TypeVar("R")
client = HitlClient()
log = logging.getLogger("hitl_bus.web")
_ENTRY_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")


@dataclass(frozen=True)
class Feed:
    """One source of a stream: its name in the cursor, where "now" is, how to follow it."""

    name: str
    begin: Callable[[], Awaitable[str]]
    follow: Callable[[str], AsyncIterator[Message]]
    #: Whether a position read from a browser fits this feed (else it starts from now).
    fits: Callable[[str], bool] = lambda _position: True


def event_message(event: RunEvent) -> Message:
    """An event as an SSE message named after its type."""
    data = {"run_id": event.run_id, "ts": event.ts, "data": event.data}
    return {"id": event.id, "event": event.type or "event", "data": codec.dumps(data).decode()}


def log_message(record: LogRecord) -> Message:
    return {"id": record.id, "event": "log", "data": codec.dumps(record.as_dict()).decode()}


def reply_message(reply: Reply) -> Message:
    data = {"id": reply.id, "key": reply.key, "key_prefix": reply.key_prefix, "data": reply.data}
    return {"id": reply.id, "event": "reply", "data": codec.dumps(data).decode()}


async def _as_messages(
    records: AsyncIterator[R], convert: Callable[[R], Message]
) -> AsyncIterator[Message]:
    async for record in records:
        yield convert(record)


async def _from_the_start() -> str:
    return "0-0"


def events(run_id: str | None) -> Feed:
    """New events: one run's, or every run's (a position over every bucket of the global
    stream, which a position for another number of buckets does not fit)."""
    return Feed(
        "events",
        lambda: client.event_position(run_id),
        lambda after: _as_messages(client.follow_events(run_id, after), event_message),
        (lambda _position: True) if run_id else _fits_global_events,
    )


def _fits_global_events(position: str) -> bool:
    try:
        following.split_position(position, following.global_event_streams())
    except ValueError:
        return False
    return True


def logs(run_id: str) -> Feed:
    """A run's log records: those written so far, then new ones."""
    return Feed(
        "logs",
        _from_the_start,
        lambda after: _as_messages(client.follow_logs(run_id, after=after), log_message),
    )


def replies(run_id: str) -> Feed:
    """What the run sends back, from now on, to inputs sent from here: to the person the
    request acts for (their mailbox), else to this server's inbox."""
    person = person_of(acting_as())  # taken now: the stream outlives the request's handler
    return Feed(
        "replies",
        client.reply_position,
        lambda after: _as_messages(
            client.follow_replies(run_id, person=person, after=after), reply_message
        ),
    )


def _entry_id(text: str) -> str | None:
    """``text`` if it is a position: a stream entry id Redis accepts (two 64-bit numbers),
    or one per bucket of the global event stream joined by ``_``; else None."""
    for entry_id in text.strip().split(following.BUCKETS_SEPARATOR):
        match = _ENTRY_ID.fullmatch(entry_id)
        if match is None or any(int(part) >= 2**64 for part in match.groups()):
            return None
    return text.strip()


def parse_cursor(raw: str | None, feeds: Sequence[Feed]) -> dict[str, str]:
    """The positions a ``Last-Event-ID`` names; anything unreadable is left out."""
    if not raw:
        return {}
    if len(feeds) == 1:
        position = _entry_id(raw)
        return {feeds[0].name: position} if position else {}
    names = {feed.name for feed in feeds}
    positions: dict[str, str] = {}
    for part in raw.split(","):
        name, _, text = part.partition(":")
        position = _entry_id(text)
        if name.strip() in names and position:
            positions[name.strip()] = position
    return positions


def format_cursor(positions: dict[str, str], feeds: Sequence[Feed]) -> str:
    if len(feeds) == 1:
        return positions[feeds[0].name]
    return ",".join(f"{feed.name}:{positions[feed.name]}" for feed in feeds)


async def start(feeds: Sequence[Feed], last_event_id: str | None) -> dict[str, str]:
    """Where each feed starts: after the browser's last event, else from now.

    Called before the response begins, so Redis being down answers 503 rather than
    a stream that breaks at once.
    """
    positions = parse_cursor(last_event_id, feeds)
    for feed in feeds:
        if feed.name not in positions or not feed.fits(positions[feed.name]):
            positions[feed.name] = await feed.begin()
    return positions


async def store_reachable() -> bool:
    """Whether Redis answers a PING within ``PROBE_TIMEOUT``; why not goes to the log."""
    # Not ``wait_for``: a cancellation the retrying client swallows would make it wait out
    # the whole reconnect window. The answer is awaited, and given up on, from outside.
    ping = asyncio.ensure_future(get_bus().client.ping())
    done, _ = await asyncio.wait({ping}, timeout=PROBE_TIMEOUT)
    if not done:
        ping.cancel()
        _abandoned.add(ping)
        ping.add_done_callback(_abandoned.discard)
        log.warning("live streams: Redis did not answer a PING within %.1f s", PROBE_TIMEOUT)
        return False
    error = ping.exception()
    if isinstance(error, BusConnectionError | OSError):
        log.warning("live streams: Redis cannot be reached: %s", error)
        return False
    if error is not None:
        raise error
    return True


#: Probes given up on, kept until they end (a task nobody references may vanish mid-run).
_abandoned: set[asyncio.Future[object]] = set()


def _store_message(reachable: bool) -> Message:
    return {"event": "store", "data": codec.dumps({"reachable": reachable}).decode()}


async def sse(
    request: Request, feeds: Sequence[Feed], positions: dict[str, str]
) -> AsyncIterator[Message]:
    """Several feeds as one stream, in the order messages come, with a ``ping`` on quiet
    and a ``store`` message whenever Redis stops or starts answering.

    A failing feed ends the stream with its error (a corrupt entry does not fail one);
    Redis being unreachable ends it after saying so, and the browser comes back.
    """
    positions = dict(positions)
    queue: asyncio.Queue[tuple[str, Message] | BaseException] = asyncio.Queue()

    async def pump(feed: Feed) -> None:
        try:
            async for message in feed.follow(positions[feed.name]):
                await queue.put((feed.name, message))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            await queue.put(exc)

    async def probe() -> None:
        reachable = True
        while True:
            await asyncio.sleep(PROBE_EVERY)
            now = await store_reachable()
            if now != reachable:
                reachable = now
                await queue.put(("", _store_message(now)))

    tasks = [asyncio.create_task(pump(feed)) for feed in feeds]
    tasks.append(asyncio.create_task(probe()))
    try:
        yield {"id": format_cursor(positions, feeds), "event": "ready", "data": "{}"}
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), QUIET)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield {"event": "ping", "data": "{}"}
                continue
            if isinstance(item, BusConnectionError):
                log.warning("live stream ended: Redis cannot be reached: %s", item)
                yield _store_message(False)
                return
            if isinstance(item, BaseException):
                raise item
            name, message = item
            if name:
                positions[name] = message["id"]
                message = {**message, "id": format_cursor(positions, feeds)}
            yield message
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
