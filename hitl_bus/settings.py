"""Settings read from ``HITL_BUS_*`` environment variables.

Read from the environment as it is at each call (never frozen at import), so
tests and long-lived processes pick up the environment they run in; parsing is
cached per distinct set of ``HITL_BUS_*`` values, as a web request asks often.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration; each field maps to ``HITL_BUS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="HITL_BUS_", extra="ignore", frozen=True)

    #: ``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://host:port`` for
    #: Redis Cluster, or ``fakeredis://name`` for tests.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Largest encoded input accepted by ``send_input``.
    max_payload_bytes: int = Field(default=1024 * 1024, gt=0)
    #: Seconds a client inbox lives after its last use.
    inbox_ttl: float = Field(default=3600.0, gt=0)
    #: Connections for ordinary commands, shared by every coroutine of a loop.
    command_connections: int = Field(default=4, ge=1)
    #: Seconds a command keeps retrying (with backoff) after a dropped connection, a timeout
    #: or ``LOADING`` before it raises ``BusConnectionError``; 0: no retries.
    reconnect_timeout: float = Field(default=30.0, ge=0)
    #: Connections the dispatcher keeps for blocking reads (standalone Redis).
    reader_connections: int = Field(default=3, ge=1)
    #: Approximate length kept of each run's event stream and the global one.
    events_maxlen: int = Field(default=10_000, ge=100)
    #: Approximate length kept of each run's log stream.
    logs_maxlen: int = Field(default=10_000, ge=100)
    #: Copy run logs to stderr as well as the run's log stream.
    log_to_stderr: bool = True
    #: The bootstrap admin's token (the person ``admin``): the HTTP API and the web UI accept
    #: it as they accept a person's token. Unset: reads are open, and only people added with
    #: ``hitl-bus users add`` can write.
    api_token: str | None = None
    #: The token the CLI acts with (a person's, made by ``hitl-bus users add``, or the
    #: bootstrap ``api_token``): its role decides what the CLI's writes may do. Unset:
    #: the CLI acts as the machine's local operator, with every right.
    token: str | None = None
    #: Where people reach the web UI from outside: the links the notifier sends
    #: (``<public_url>/answer/<token>``, ``<public_url>/runs/<id>``) start with it.
    public_url: str = "http://127.0.0.1:8000"
    #: Let anyone who reaches the server read runs, logs and events without the token.
    #: (With no token configured, reads are always open and writes are off.)
    public_reads: bool = False
    #: Seconds a web session lasts (its cookie and its record in Redis). Logging out, or
    #: changing ``api_token``, ends it sooner.
    session_max_age: int = Field(default=12 * 3600, gt=0)
    #: Send the session cookie over HTTPS only (set it when the UI is served over TLS).
    session_https_only: bool = False
    #: Seconds a finished run keeps its keys (state, events, logs, inputs); 0 keeps them.
    run_retention: float = Field(default=7 * 24 * 3600.0, ge=0)
    #: Seconds between a worker's heartbeats.
    worker_heartbeat: float = Field(default=2.0, gt=0)
    #: Seconds without a heartbeat after which a worker is dead and its runs are reclaimed.
    worker_dead_after: float = Field(default=10.0, gt=0)
    #: Replicas that must confirm a send, a resume or a state change (Redis ``WAIT``)
    #: before the call returns; 0: the primary's answer is enough. Replication is
    #: asynchronous, so without it a write acknowledged just before a failover can be lost.
    min_replicas: int = Field(default=0, ge=0)
    #: Milliseconds a write waits for ``min_replicas`` before raising ``ReplicationTimeout``.
    replica_timeout_ms: int = Field(default=2000, gt=0)
    #: Buckets the global run indexes and event stream are split into, each on a slot of
    #: its own, so that on Cluster no one master takes every run's index and event writes;
    #: 0: 16 on Cluster, 1 on
    #: standalone Redis (where one bucket costs least). Every process must use the same.
    index_shards: int = Field(default=0, ge=0, le=1024)
    #: How a process waits for stream entries: ``xread``, blocking XREADs over every watched
    #: stream (on Cluster one connection per slot with waiters); ``bells``, one pub/sub
    #: connection per node on the streams' keyspace notifications, then one read per entry
    #: (it turns on ``notify-keyspace-events Kt`` on each node); ``auto``: bells on Cluster,
    #: and on standalone Redis xread for the first 256 watched streams, bells beyond.
    wake: Literal["auto", "xread", "bells"] = "auto"
    #: The event loop of the processes hitl_bus starts itself (``hitl-bus worker``,
    #: ``serve()``, ``hitl-bus web``, ``hitl-bus dev``'s children): ``auto`` is uvloop where
    #: it is installed (the ``fast`` extra), else asyncio's; ``asyncio`` forces the standard
    #: loop; ``uvloop`` requires uvloop. The library itself runs on any loop it is called on.
    loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    #: SMTP server the notifier sends email through, e.g.
    #: ``smtp://user:pass@host:587?starttls=1`` or ``smtps://host:465``; unset: no email.
    smtp_url: str | None = None
    #: The ``From`` address of the notifier's email.
    smtp_from: str = "hitl-bus@localhost"


def get_settings() -> Settings:
    """The settings the environment holds now."""
    prefix = Settings.model_config.get("env_prefix", "")
    return _parse(
        tuple(sorted(kv for kv in os.environ.items() if kv[0].upper().startswith(prefix)))
    )


@functools.lru_cache(maxsize=16)
def _parse(environment: tuple[tuple[str, str], ...]) -> Settings:
    return Settings()


T = TypeVar("T")


def loop_name(choice: str | None = None) -> Literal["asyncio", "uvloop"]:
    """The event loop ``choice`` (default: ``HITL_BUS_LOOP``) means on this machine.

    :raises RuntimeError: ``uvloop`` is asked for and not installed.
    """
    choice = choice or get_settings().loop
    installed = importlib.util.find_spec("uvloop") is not None
    if choice == "uvloop" and not installed:
        raise RuntimeError("HITL_BUS_LOOP=uvloop, but uvloop is not installed (pip install uvloop)")
    return "uvloop" if choice != "asyncio" and installed else "asyncio"


def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """A function making a new event loop of the kind :func:`loop_name` names."""
    if loop_name(choice) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_on_configured_loop(main: Coroutine[Any, Any, T], choice: str | None = None) -> T:
    """``asyncio.run(main)`` on the event loop ``HITL_BUS_LOOP`` (or ``choice``) selects."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
