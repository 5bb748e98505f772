"""Each delivery once: a lease while one notifier works on it, a mark once it is done.

A delivery is one thing sent to one sink: a pause to a webhook, a pause to one
person's address, an event to a webhook. Before it sends, a notifier takes the
delivery's lease (``SET NX PX``), which it keeps alive while it works; another
notifier (a second event showing the same pause, or one that claimed the entry
of a notifier it believed dead) finds the lease taken and leaves the delivery
to its holder. After the send succeeded, or the delivery was parked as a dead
letter, the delivery is marked done (kept for :data:`DONE_TTL`) and the lease
let go. A notifier killed mid-delivery leaves the lease to expire and no mark:
whoever takes the entry next delivers it (with the same ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator

from hitl_bus import keys
from hitl_bus.bus import get_bus

#: Seconds a done mark is kept: longer than any event waits in the stream.
DONE_TTL = 7 * 24 * 3600

# Let the lease go, or keep it, only while it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class Outcome(enum.Enum):
    SENT = "sent"
    PARKED = "parked"  # failed every try: a dead letter
    DONE_BEFORE = "done before"  # marked done by an earlier delivery
    BUSY = "busy"  # another notifier holds the lease


async def is_done(sink: str, delivery: str) -> bool:
    return bool(await get_bus().client.exists(keys.notify_done(sink, delivery)))


async def mark_done(sink: str, delivery: str, outcome: Outcome) -> None:
    await get_bus().client.set(keys.notify_done(sink, delivery), outcome.value, ex=DONE_TTL)


@contextlib.asynccontextmanager
async def lease(sink: str, delivery: str, holder: str, ttl: float) -> AsyncIterator[bool]:
    """Hold the delivery's lease for the block (True), or yield False when it is taken
    or the delivery is done already."""
    bus = get_bus()
    key = keys.notify_lease(sink, delivery)
    ttl_ms = max(100, int(ttl * 1000))
    if not await bus.client.set(key, holder, nx=True, px=ttl_ms):
        yield False
        return
    done = asyncio.Event()
    keeper = asyncio.create_task(_keep(key, holder, ttl_ms, done))
    try:
        # Done between the caller's look and the lease: its holder marked it, then let go.
        yield not await is_done(sink, delivery)
    finally:
        # Told by an event, not only cancelled: a Redis client can swallow a
        # cancellation that lands mid-command.
        done.set()
        await asyncio.wait([keeper], timeout=2)
        keeper.cancel()
        with contextlib.suppress(Exception):
            await bus.eval(_RELEASE, [key], [holder])


async def _keep(key: str, holder: str, ttl_ms: int, done: asyncio.Event) -> None:
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), ttl_ms / 3000)
            return
        with contextlib.suppress(Exception):  # a blip: the next renewal may still make it
            await get_bus().eval(_RENEW, [key], [holder, ttl_ms])
