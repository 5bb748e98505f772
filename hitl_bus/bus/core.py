"""The bus of one event loop: a command client, a dispatcher and cached scripts.

Connections belong to the loop that opened them, so each running loop gets
its own :class:`Bus` on first use (several ``asyncio.run`` calls in one
process, a fresh loop per test, the sync portal's loop). Nothing is cached at
import time.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from redis.exceptions import NoScriptError, RedisClusterException

from hitl_bus._sync import on_portal_exit
from hitl_bus.bus.connection import calls_plain, is_cluster_url, open_command_client
from hitl_bus.bus.dispatcher import Dispatcher
from hitl_bus.bus.reading import open_reader_client
from hitl_bus.bus.retrying import retry_window
from hitl_bus.bus.watching import CROWDED
from hitl_bus.errors import ReplicationTimeout
from hitl_bus.settings import Settings, get_settings

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


class Bus:
    """Redis access for one event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env_url = os.environ.get("HITL_BUS_REDIS_URL")
        self.url = settings.redis_url
        self.cluster = is_cluster_url(self.url)
        #: XREAD BLOCK for dispatcher readers: 0 (forever) on Redis. ``None`` on
        #: fakeredis, whose blocked reads can swallow a task's cancellation (and so
        #: hang ``asyncio.run``'s shutdown): there readers re-read every few ms.
        self.reader_block_ms: int | None = None if self.url.startswith("fakeredis:") else 0
        # Typed Any: redis-py's stubs return unions of sync and async replies that
        # never narrow for a client picked at run time (standalone or Cluster).
        self.client: Any = open_command_client(
            self.url, settings.command_connections, settings.reconnect_timeout
        )
        #: Scripts go as plain calls where the client offers them (standalone Redis).
        self._call = self.client.call_plain if calls_plain(self.client) else None
        wake = settings.wake
        #: Wait with bells (keyspace notifications), not blocking XREADs (fakeredis: never).
        real = not self.url.startswith("fakeredis:")
        self.bells = real and (wake == "bells" or (wake == "auto" and self.cluster))
        #: ``auto`` on standalone Redis: blocking XREADs, and bells for the streams beyond
        #: this many (XREADs are quicker per wake-up, bells do not re-send the key list).
        self.bells_past: int | None = (
            CROWDED if real and wake == "auto" and not self.cluster else None
        )
        self.dispatcher = Dispatcher(self)
        #: What upper layers keep per bus, by kind (see :meth:`kept`).
        self._kept: dict[Callable[[Bus], Any], Any] = {}
        self.closed = False
        #: Kept here: the loop holds async generators only weakly.
        self.shutdown_hook: AsyncIterator[None] | None = None

    def kept(self, kind: Callable[[Bus], T]) -> T:
        """The ``kind`` this bus keeps for an upper layer (names of keys made once, a loop's
        gatherer of checks...), made by ``kind(bus)`` on first use. Per bus, so per event
        loop and Redis: it goes with the bus."""
        found = self._kept.get(kind)
        if found is None:
            found = self._kept[kind] = kind(self)
        return found

    @property
    def one_node(self) -> bool:
        """Every key lives on one Redis (standalone): a script or a MULTI/EXEC may span
        hash tags. In Cluster each tag is a slot of its own, possibly on another node."""
        return not self.cluster

    @property
    def index_shards(self) -> int:
        """Buckets of the global run indexes (``HITL_BUS_INDEX_SHARDS``; 0: by the Redis kind)."""
        return self.settings.index_shards or (16 if self.cluster else 1)

    def transaction(self) -> Any:
        """A pipeline that is one MULTI/EXEC where every key is on one node, else a plain one."""
        return self.client.pipeline(transaction=self.one_node)

    async def eval(
        self, source: str, keys: Sequence[Any], args: Sequence[Any], *, replicated: bool = False
    ) -> Any:
        """Run a Lua script by its SHA, loading it first when Redis does not know it.

        Retried like any command, within one reconnect window for the whole call (a
        restarted Redis has forgotten its scripts, so a retry may load it again). A retry
        after a lost reply runs the script a second time with the same arguments, so a
        script that writes must leave nothing more the second time (the send script
        refuses an input key it already has).

        ``replicated``: the write must reach ``HITL_BUS_MIN_REPLICAS`` replicas before this
        returns (an answer, a state change), else :class:`ReplicationTimeout`.
        """
        sha = _sha(source)
        wanted = self.settings.min_replicas if replicated else 0
        with retry_window():
            try:
                if not wanted:  # the common case, with no call in between
                    if self._call is not None:
                        return await self._call("EVALSHA", sha, len(keys), *keys, *args)
                    return await self.client.execute_command(
                        "EVALSHA", sha, len(keys), *keys, *args
                    )
                return await self._evalsha(sha, keys, args, wanted)
            except NoScriptError:
                await self.client.script_load(source)
                return await self._evalsha(sha, keys, args, wanted)

    async def _evalsha(
        self, sha: str, keys: Sequence[Any], args: Sequence[Any], wanted: int
    ) -> Any:
        if not wanted:
            return await self.client.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        # WAIT counts the replicas that have this connection's writes, so it follows the
        # script on the same connection: one pipeline, to the node of the script's keys.
        timeout = self.settings.replica_timeout_ms
        async with self.client.pipeline(transaction=False) as pipe:
            # As a plain command: redis-py's Cluster pipeline refuses its evalsha method.
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
            if self.cluster:  # the node of the script's slot, looked up on every try
                pipe.execute_command("WAIT", wanted, timeout, node_of=keys[0])
            else:
                pipe.execute_command("WAIT", wanted, timeout)
            reply, confirmed = await pipe.execute()
        if confirmed < wanted:
            raise ReplicationTimeout(confirmed, wanted, timeout)
        return reply

    async def open_reader(self, key: str) -> Any:
        """A dedicated connection for a blocking read of ``key`` (its slot's node in Cluster)."""
        if not self.cluster:
            return open_reader_client(self.url)
        cluster: Any = self.client
        await cluster.initialize()
        node = cluster.get_node_from_key(key)
        return open_reader_client(self.url, node.host, node.port)

    async def know_nodes(self) -> None:
        """Read the Cluster's slot map if not read yet (cheap after the first time)."""
        if self.cluster:
            cluster: Any = self.client
            await cluster.initialize()

    def node_of(self, key: str) -> tuple[str, int] | None:
        """The node that holds ``key`` (Cluster, by the slot map last read); None: standalone.

        :raises RedisClusterException: the map has no node for its slot (mid-failover).
        """
        if not self.cluster:
            return None
        cluster: Any = self.client
        node = cluster.get_node_from_key(key)
        if node is None:
            raise RedisClusterException(f"no node serves the slot of {key}")
        return (node.host, node.port)

    async def open_node(self, node: tuple[str, int] | None) -> Any:
        """A connection to one node for a pub/sub (the configured Redis when ``node`` is None)."""
        if node is None and self.cluster:
            cluster: Any = self.client
            await cluster.initialize()
            first = cluster.get_nodes()[0]
            node = (first.host, first.port)
        host, port = node if node is not None else (None, None)
        return open_reader_client(self.url, host, port, single=False)

    async def refresh_topology(self) -> None:
        """Re-read the Cluster's slot map after a MOVED reply."""
        if self.cluster:
            cluster: Any = self.client
            await cluster.nodes_manager.initialize()

    async def aclose(self) -> None:
        """Close the readers and connections (once; later calls do nothing)."""
        if self.closed:
            return
        self.closed = True
        await self.dispatcher.aclose()
        await self.client.aclose()


class Remembered(dict[K, V], Generic[K, V]):
    """Facts a bus remembers for an upper layer (:meth:`Bus.kept`), at most ``limit`` of
    them: a cache about this process's own names and writes, never a record, so the
    oldest goes when it is full."""

    limit = 4096

    def __init__(self, bus: Bus) -> None:
        super().__init__()

    def remember(self, key: K, value: V) -> V:
        if len(self) >= self.limit:
            del self[next(iter(self))]  # a bus is used from its own loop only
        self[key] = value
        return value


async def _close_at_loop_shutdown(bus: Bus) -> AsyncIterator[None]:
    """An async generator whose only job is its ``finally``.

    ``asyncio.run`` (and ``asyncio.Runner``) finalize a loop's async generators
    before closing it, so the bus closes its connections while the loop still
    runs, instead of leaving sockets for a closed loop to trip over.
    """
    try:
        yield
    finally:
        await bus.aclose()


def _arm_shutdown_hook(loop: asyncio.AbstractEventLoop, bus: Bus) -> None:
    on_portal_exit(loop, bus.aclose)  # the portal loop never shuts down by itself
    hook = _close_at_loop_shutdown(bus)
    bus.shutdown_hook = hook
    loop.create_task(anext(hook))  # type: ignore[arg-type]


def read_lua(module_file: str, name: str) -> str:
    """The Lua script ``lua/<name>.lua`` beside the module ``module_file`` names."""
    return (Path(module_file).parent / "lua" / f"{name}.lua").read_text()


@functools.lru_cache(maxsize=64)
def _sha(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


_buses: dict[asyncio.AbstractEventLoop, Bus] = {}
_buses_lock = threading.Lock()
_closing: set[asyncio.Task[None]] = set()


def get_bus() -> Bus:
    """The bus of the running event loop, opened on first use."""
    loop = asyncio.get_running_loop()
    bus = _buses.get(loop)
    if bus is not None and bus.env_url == os.environ.get("HITL_BUS_REDIS_URL"):
        return bus
    with _buses_lock:
        for old in [lp for lp in _buses if lp.is_closed()]:
            del _buses[old]
        stale = _buses.get(loop)
        if stale is not None and stale.env_url == os.environ.get("HITL_BUS_REDIS_URL"):
            return stale
        bus = _buses[loop] = Bus(get_settings())
    _arm_shutdown_hook(loop, bus)
    if stale is not None:  # the configured Redis changed: let the old bus go
        task = loop.create_task(stale.aclose())
        _closing.add(task)
        task.add_done_callback(_closing.discard)
    return bus


async def close_bus() -> None:
    """Close the running loop's bus (its connections and readers); the next use opens anew."""
    loop = asyncio.get_running_loop()
    with _buses_lock:
        bus = _buses.pop(loop, None)
    if bus is not None:
        await bus.aclose()
