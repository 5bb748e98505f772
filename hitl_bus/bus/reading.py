"""Blocking readers' clients: one connection each, reads sent on it directly.

A reader (the dispatcher's stream readers, a worker's or notifier's queue) blocks in
``XREAD`` or ``XREADGROUP`` on a connection of its own, and reads again after every
wake-up. Its owner reconnects it; nothing here retries.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from hitl_bus.bus.codec import pairs
from hitl_bus.bus.connection import CLIENT_NAME, CLUSTER_SCHEMES, fake_server, lean

#: Readers do not retry inside redis-py: their owner reconnects (dispatcher, worker queues),
#: and a blocking read must not be re-sent behind its owner's back.
_NO_RETRY = Retry(NoBackoff(), 0)


def open_reader_client(
    url: str, host: str | None = None, port: int | None = None, *, single: bool = True
) -> Any:
    """A single-connection client for one blocking reader.

    For Cluster, ``host``/``port`` name the node that owns the reader's slot. ``single``
    False: a pool client instead, whose one connection a pub/sub can take over.
    """
    scheme = urlsplit(url).scheme
    if scheme == "fakeredis":
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=fake_server(url))
    # No socket timeout: the reader's XREAD blocks until data comes (redis-py 8 defaults to 5 s).
    options: dict[str, Any] = {
        "protocol": 2,
        "single_connection_client": single,
        "client_name": CLIENT_NAME,
        "socket_timeout": None,
        "socket_keepalive": True,
        "retry": _NO_RETRY,
    }
    if scheme in CLUSTER_SCHEMES:
        parts = urlsplit(CLUSTER_SCHEMES[scheme] + url[len(scheme) :])
        return aioredis.Redis(
            host=host or parts.hostname or "127.0.0.1",
            port=port or parts.port or 6379,
            username=parts.username,
            password=parts.password,
            ssl=parts.scheme == "rediss",
            **options,
        )
    client = aioredis.Redis.from_url(url, **options)
    pool = client.connection_pool  # its reads are packed by hiredis too (one per wake-up)
    pool.connection_class = lean(pool.connection_class)
    return client


async def read_streams(
    client: Any,
    streams: dict[Any, Any],
    *,
    block: int | None,
    count: int,
    group: tuple[str, str] | None = None,
) -> list[Any]:
    """``XREAD`` (``XREADGROUP`` with ``group``: its name and the consumer's) answered as
    redis-py's ``xread``/``xreadgroup`` answer it, on a reader's own connection.

    A blocking reader reads again after every wake-up: sent on its one connection
    directly, a read skips the client's per-command lock, metrics and event hooks. A
    client with no connection of its own yet (before its first command; fakeredis) reads
    the usual way.
    """
    connection = getattr(client, "connection", None)
    if connection is None or not connection.is_connected:
        if group is not None:
            reply = await client.xreadgroup(*group, streams, block=block, count=count)
        else:
            reply = await client.xread(streams, block=block, count=count)
        return reply or []
    args: list[Any] = ["XREAD"] if group is None else ["XREADGROUP", "GROUP", *group]
    args += ["COUNT", count]
    if block is not None:
        args += ["BLOCK", block]
    args += ["STREAMS", *streams.keys(), *streams.values()]
    await connection.send_command(*args)
    reply = await connection.read_response()
    if reply is None:  # the block timed out
        return []
    return [
        [stream, [(entry_id, pairs(fields)) for entry_id, fields in entries]]
        for stream, entries in reply
    ]
