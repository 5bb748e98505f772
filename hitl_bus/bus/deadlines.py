"""One timer per event loop that bounds the reads of its command connections.

redis-py bounds every read of a reply by its connection's ``socket_timeout`` with an
``asyncio.timeout`` of its own: a timer scheduled and cancelled around each command, a
few µs on every call. Here a read notes its deadline in a table instead, and one timer,
armed only while reads are open and firing at the earliest deadline, aborts a connection
whose read is past it: the read then fails as redis-py's own timeout fails it (the
connection dropped, ``TimeoutError``), and the command's retries go on from there. While
nothing is read, no timer is armed.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol


class Abortable(Protocol):
    """A connection whose read can be cut off (``bus.connection``'s command connections)."""

    def read_timed_out(self) -> None: ...


class ReadDeadlines:
    """The open reads of one loop's command connections and when each must have ended."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._open: dict[Abortable, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def of_running_loop(cls) -> ReadDeadlines:
        loop = asyncio.get_running_loop()
        deadlines = _per_loop.get(loop)
        if deadlines is None:
            deadlines = _per_loop[loop] = cls(loop)
        return deadlines

    def start(self, connection: Abortable, seconds: float) -> None:
        """``connection`` starts reading a reply; it must end within ``seconds``."""
        deadline = self._loop.time() + seconds
        self._open[connection] = deadline
        timer = self._timer
        if timer is None or deadline < timer.when():  # (a connection of a shorter timeout)
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._expire)

    def stop(self, connection: Abortable) -> None:
        """``connection``'s read ended (a reply, an error, a cancel)."""
        self._open.pop(connection, None)

    def open_reads(self) -> int:
        return len(self._open)

    def _expire(self) -> None:
        self._timer = None
        now = self._loop.time()
        for connection, deadline in list(self._open.items()):
            if deadline <= now:
                del self._open[connection]
                connection.read_timed_out()
        if self._open:
            self._timer = self._loop.call_at(min(self._open.values()), self._expire)


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReadDeadlines] = (
    weakref.WeakKeyDictionary()
)
