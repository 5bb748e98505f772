"""The client inbox: the mailbox of code that sends from outside any flow run.

One inbox per process, named ``hitl.client.<id>``. It exists in Redis as a
marker hash that expires ``inbox_ttl`` seconds after its last use; every send
from it and every wait on it renews the marker and the inbox's streams, and
recreates them after a Redis flush or restart.
"""

from __future__ import annotations

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

# Marks the inbox alive and renews its bookkeeping. Its input streams get the
# same TTL on every write to them (see sending.py), so only declared keys here.
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


def touch_call(bus: Bus) -> tuple[str, list[str], list[Any]]:
    """The script call that creates or renews this process's inbox (for ``Bus.eval_many``)."""
    box = inbox()
    return (
        _TOUCH,
        [keys.inbox(box.id), keys.input_streams(box.id), keys.input_keys(box.id)],
        [int(bus.settings.inbox_ttl * 1000), os.getpid(), socket.gethostname()],
    )


async def touch(bus: Bus) -> None:
    """Create or renew this process's inbox now."""
    await bus.eval(*touch_call(bus))
