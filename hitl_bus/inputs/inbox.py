"""The client inbox: the mailbox of code that sends from outside any flow run.

One inbox per process, named ``hitl.client.<id>``. It exists in Redis as a
marker hash that expires ``inbox_ttl`` seconds after it was last renewed. Sends
from it renew the marker and the inbox's sets at most every tenth of that TTL
(and in between remake a marker that is gone, after a Redis flush or restart);
waits on it renew them every third.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from typing import Any

from hitl_bus import keys
from hitl_bus.bus import Bus
from hitl_bus.inputs.keyset import CLIENT, Mailbox

_lock = threading.Lock()
_inbox_id: str | None = None
_HOST = socket.gethostname()
#: The inbox id and its marker, prefix set and key set, made once per inbox.
_renewal_keys: tuple[str, str, str, str] | None = None


class _Touched:
    """When a bus (so a loop) last created or renewed the inbox (loop time; -inf: never)."""

    def __init__(self, bus: Bus) -> None:
        self.at = float("-inf")


# Marks the inbox alive and renews its bookkeeping. Its input streams get the
# same TTL on every write to them (see sending.py), so only declared keys here.
# Safe to repeat (a retry after a lost reply): HSET of the same fields and PEXPIRE
# from now leave the same state as running it once.
_TOUCH = """
redis.call('HSET', KEYS[1], 'pid', ARGV[2], 'host', ARGV[3])
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
return 1
"""


def _reset_after_fork() -> None:
    global _inbox_id
    _inbox_id = None


os.register_at_fork(after_in_child=_reset_after_fork)


def inbox() -> Mailbox:
    """This process's inbox (its id is made on first use; nothing is written yet)."""
    global _inbox_id
    with _lock:
        if _inbox_id is None:
            _inbox_id = str(uuid.uuid4())
        return Mailbox(CLIENT, _inbox_id)


def renewal(due: bool = True) -> tuple[list[str], list[Any]]:
    """Keys and ``pid``/``host`` args that renew the inbox in a send script.

    Due: the marker, prefix set and key set, all renewed. Not due: the marker alone, which
    the script only remakes when it is gone (a flushed or restarted Redis), one ``EXISTS``.
    """
    global _renewal_keys
    box_id = _inbox_id if _inbox_id is not None else inbox().id
    made = _renewal_keys
    if made is None or made[0] != box_id:  # first use, or a new inbox after a fork
        made = (box_id, keys.inbox(box_id), keys.input_streams(box_id), keys.input_keys(box_id))
        _renewal_keys = made
    renew_keys = list(made[1:]) if due else [made[1]]
    return renew_keys, [os.getpid(), _HOST]


async def touch(bus: Bus) -> None:
    """Create or renew this process's inbox now."""
    renew_keys, (pid, host) = renewal()
    await bus.eval(_TOUCH, renew_keys, [int(bus.settings.inbox_ttl * 1000), pid, host])
    renewed(bus)


def is_due(bus: Bus) -> bool:
    """Whether the inbox was last renewed on this loop more than a tenth of its TTL ago.

    Renewing at most that often keeps an inbox in use alive (it expires no sooner than
    nine tenths of its TTL after the last send) for a fraction of the writes.
    """
    return asyncio.get_running_loop().time() - touched_at(bus) > bus.settings.inbox_ttl / 10


def renewed(bus: Bus, when: float | None = None) -> None:
    """Note that the inbox was renewed (at loop time ``when``, default now)."""
    bus.kept(_Touched).at = asyncio.get_running_loop().time() if when is None else when


async def renew_if_due(bus: Bus) -> None:
    """Renew the inbox unless that was done within the last tenth of its TTL."""
    if is_due(bus):
        await touch(bus)


def touched_at(bus: Bus) -> float:
    """When this loop last created or renewed the inbox (loop time; -inf: never)."""
    return bus.kept(_Touched).at
