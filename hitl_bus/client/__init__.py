"""``get_client()``: the read side. Runs, their events, logs and inputs, read or followed.

Every reader of a run's streams goes through here (the web API and its SSE streams,
the CLI): each stream kind has one decoder, and a corrupt entry (not UTF-8, not
JSON) is a logged skip naming the stream and entry, never an error that ends a read
or a live stream. Followers park on the loop's dispatcher: entries are pushed, and
an idle follower sends Redis no command.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from types import TracebackType
from typing import Any, Literal, TypeVar, cast, overload

from pydantic import ValidationError

from hitl_bus import keys
from hitl_bus._sync import run_blocking
from hitl_bus.bus import codec
from hitl_bus.client import following
from hitl_bus.client.pauses import PauseDetails, read_pause, runs_waiting_for
from hitl_bus.client.records import (
    LogRecord,
    Reply,
    RunEvent,
    decode_event,
    decode_log,
)
from hitl_bus.engine import runs
from hitl_bus.engine.cancelling import acancel_flow_run
from hitl_bus.engine.runs import FlowRun
from hitl_bus.engine.states import State, StateType
from hitl_bus.ids import normalize_run_id
from hitl_bus.inputs import inbox, received
from hitl_bus.inputs.keyset import CLIENT, Mailbox, acting_person

log = logging.getLogger("hitl_bus.client")
T = TypeVar("T")

__all__ = [
    "HitlClient",
    "LogRecord",
    "PauseDetails",
    "Reply",
    "RunEvent",
    "SyncHitlClient",
    "decode_event",
    "decode_log",
    "get_client",
    "runs_waiting_for",
]


class HitlClient:
    """Async reads of flow runs; usable with or without ``async with``."""

    async def __aenter__(self) -> HitlClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def read_flow_run(self, flow_run_id: uuid.UUID | str) -> FlowRun:
        """One run. :raises FlowRunNotFound: no such run."""
        return await runs.read_flow_run(flow_run_id)

    async def read_flow_runs(
        self,
        state: StateType | str | None = None,
        flow_name: str | None = None,
        limit: int = 100,
        deployment: str | None = None,
        *,
        waiting_for: str | None = None,
    ) -> list[FlowRun]:
        """The newest runs, optionally filtered by state type, flow name and deployment.

        ``waiting_for`` (a person's name) keeps the paused runs that person may answer,
        as :meth:`runs_waiting_for` (with any other ``state`` nothing is left).
        """
        if waiting_for is not None:
            if state is not None and StateType(state) is not StateType.PAUSED:
                return []
            return await runs_waiting_for(
                waiting_for, limit, flow_name=flow_name, deployment=deployment
            )
        return await runs.read_flow_runs(
            state=state, flow_name=flow_name, limit=limit, deployment=deployment
        )

    async def runs_waiting_for(self, person: str, limit: int = 100) -> list[FlowRun]:
        """The newest paused runs ``person`` may answer ("Waiting for me"): those whose
        assignees name them (by name, role or team) or that have none. Empty for an
        unknown person or one without the responder role."""
        return await runs_waiting_for(person, limit)

    async def wait_for_flow_run(
        self,
        flow_run_id: uuid.UUID | str,
        until: Callable[[State], bool] = State.is_final,
        timeout: float | None = None,
    ) -> FlowRun:
        """Wait (pushed, not polled) until the run's state satisfies ``until`` (default: final).

        Returns the run as it is then, also when ``timeout`` passed first.
        """
        return await runs.wait_for_state(flow_run_id, until, timeout)

    async def cancel_flow_run(
        self, flow_run_id: uuid.UUID | str, *, actor: str | None = None
    ) -> State:
        """Cancel a run (Cancelling until its code reaches a checkpoint; Cancelled if idle).

        ``actor``: who cancels (default: who is acting), recorded on the state written.
        """
        return await acancel_flow_run(flow_run_id, actor=actor)

    async def read_events(self, flow_run_id: uuid.UUID | str) -> list[dict[str, Any]]:
        """A run's state changes and input arrivals, oldest first (``RunEvent.as_dict()``)."""
        return [event.as_dict() for event in await self._events(flow_run_id)]

    async def _events(self, flow_run_id: uuid.UUID | str, count: int = 1000) -> list[RunEvent]:
        stream = keys.run_events(normalize_run_id(flow_run_id))
        return (await following.read_stream(stream, "0-0", decode_event, count))[0]

    async def read_logs(
        self, flow_run_id: uuid.UUID | str, limit: int | None = 1000
    ) -> list[dict[str, Any]]:
        """A run's first ``limit`` log records (``None``: all), oldest first, as dicts."""
        stream = keys.run_logs(normalize_run_id(flow_run_id))
        return [
            record.as_dict()
            for record in (await following.read_stream(stream, "0-0", decode_log, limit))[0]
        ]

    async def read_state_history(self, flow_run_id: uuid.UUID | str) -> list[State]:
        """Every state the run has been in, oldest first (an unreadable one logged, left out)."""
        stream = keys.run_events(normalize_run_id(flow_run_id))
        history = []
        for event in await self._events(flow_run_id):
            if event.type != "state.changed":
                continue
            try:
                history.append(State.model_validate(event.data.get("state")))
            except ValidationError:
                log.warning("skipping entry %s on %s: no valid state", event.id, stream)
        return history

    async def event_position(self, flow_run_id: uuid.UUID | str | None = None) -> str:
        """Where the events stand now (one run's, or every run's): the newest one's id.

        Following with ``after`` set to it gives what happens from then on, so a follower
        started later (say, on a reconnect) misses nothing in between.
        """
        if flow_run_id is None:
            return await following.latest_of(following.global_event_streams())
        return await following.latest(keys.run_events(normalize_run_id(flow_run_id)))

    async def reply_position(self) -> str:
        """An ``after`` for :meth:`follow_replies` meaning "from this moment on"."""
        return await following.now()

    async def follow_events(
        self, flow_run_id: uuid.UUID | str | None = None, after: str | None = None
    ) -> AsyncIterator[RunEvent]:
        """Events as they happen: one run's, or with no run every run's (``hitl:events``).

        ``after`` is the entry id to start after: ``"0-0"`` for everything still stored,
        ``None`` for what happens from now on. Never ends by itself.

        When the global stream is split into buckets (``HITL_BUS_INDEX_SHARDS``, 16 on
        Cluster), every run's events come from all of them, and an event's ``id`` is a
        position across the buckets (their entry ids joined by ``_``) that ``after`` takes
        back, as :meth:`event_position` gives.

        :raises ValueError: ``after`` names another number of buckets.
        """
        if flow_run_id is None:
            async for event in following.follow_global_events(after):
                yield event
            return
        stream = keys.run_events(normalize_run_id(flow_run_id))
        start = after if after is not None else await following.latest(stream)
        async for event in following.follow(stream, start, decode_event):
            yield event

    async def follow_logs(
        self, flow_run_id: uuid.UUID | str, after: str | None = None, *, until_final: bool = False
    ) -> AsyncIterator[LogRecord]:
        """A run's log records as they are written (``after`` as for :meth:`follow_events`).

        With ``until_final`` the iterator ends once the run is in a final state and every
        record it wrote has been given (a run stores its logs before its final state).
        :raises FlowRunNotFound: ``until_final`` for a run that does not exist.
        """
        run_id = normalize_run_id(flow_run_id)
        stream = keys.run_logs(run_id)
        start = after if after is not None else await following.latest(stream)
        if not until_final:
            async for record in following.follow(stream, start, decode_log):
                yield record
            return
        events = keys.run_events(run_id)
        mark = await following.latest(events)
        final = (await runs.read_flow_run(run_id)).state.is_final()
        records, position = await following.read_stream(stream, start, decode_log)
        for record in records:
            yield record
        if final:
            return
        streams = following.Streams()
        streams.add(stream, position)
        streams.add(events, mark)
        try:
            while not final:
                for name, entries in await streams.next():
                    decode = decode_log if name == stream else decode_event
                    for entry_id, fields in entries:
                        item = decode(name, entry_id, fields)
                        if isinstance(item, LogRecord):
                            yield item
                        elif isinstance(item, RunEvent) and following.is_final_change(item):
                            final = True
            # The final state was written after the run's last record: take what is left.
            records, _ = await following.read_stream(stream, streams.positions[stream], decode_log)
            for record in records:
                yield record
        finally:
            await streams.aclose()

    async def follow_replies(
        self,
        flow_run_id: uuid.UUID | str | None = None,
        *,
        inbox_id: str | None = None,
        person: str | None = None,
        after: str | None = None,
    ) -> AsyncIterator[Reply]:
        """Inputs sent back to an inbox as they land: a run's ``respond()`` to what it was sent.

        The inbox is ``person``'s mailbox (``hitl.user.<name>``: replies to what that
        person sent), else ``inbox_id``, else the person acting here
        (``context.acting_as()``), else this process's inbox (the one ``send_input``
        sends from outside a run). With ``flow_run_id`` only that run's replies, else
        every reply to the inbox. ``after`` as for :meth:`follow_events` (``None``: from
        now on).

        Pushed, on any key prefix: each of the inbox's input streams is followed through
        the dispatcher. A reply on a key prefix the inbox has never had makes a new
        stream; the send script announces the new prefix on the inbox's ``prefixes``
        stream, which the follower also waits on, and follows the new stream from there.
        The run's event stream is followed too: an ``input.received`` from this inbox
        names the prefix it was sent on, whose reply stream is followed at once (before
        it exists), and the inbox's prefix set is read again on the run's events.
        """
        box = _reply_box(inbox_id, person)
        run_id = normalize_run_id(flow_run_id) if flow_run_id else None
        sender = Mailbox.for_run(run_id).name if run_id else None
        signals = [keys.run_events(run_id)] if run_id else following.global_event_streams()
        start = after if after is not None else await following.now()
        prefixes: dict[str, str] = {}  # stream -> key prefix
        contacted: set[str] = set()  # runs this inbox sent to while following (no run given)
        announced = keys.inbox_prefixes(box.owner)
        streams = following.Streams()
        for stream, position in following.split_position(
            await following.latest_of(signals), signals
        ).items():
            streams.add(stream, position)
        streams.add(announced, await following.latest(announced))

        def follow_prefixes(names: Iterable[str]) -> None:
            for prefix in names:
                stream = keys.input_stream(box.owner, prefix)
                if stream not in prefixes:
                    prefixes[stream] = prefix
                    streams.add(stream, start)

        follow_prefixes(await received.read_prefixes(box.owner))
        try:
            while True:
                for stream, entries in await streams.next():
                    if stream == announced:  # a reply type new to the inbox
                        follow_prefixes(
                            prefix
                            for _, fields in entries
                            if (prefix := codec.text((fields or {}).get(b"prefix")))
                        )
                        continue
                    if stream in signals:
                        sent, look_again = following.reply_signals(
                            stream, entries, box.name, run_id, contacted
                        )
                        follow_prefixes(sent)
                        if look_again:
                            follow_prefixes(await received.read_prefixes(box.owner))
                        continue
                    for entry_id, fields in entries:
                        reply = received.decode_input(stream, prefixes[stream], entry_id, fields)
                        if reply is not None and (sender is None or reply.sender == sender):
                            yield reply
        finally:
            await streams.aclose()

    async def read_pause(self, flow_run_id: uuid.UUID | str) -> PauseDetails | None:
        """The run's current pause (keyset, schema, description, defaults, deadline), if paused.

        A saved value that is not JSON is logged and left out, so the run can still be shown.
        """
        return await read_pause(flow_run_id)

    async def read_inputs(
        self, flow_run_id: uuid.UUID | str, per_prefix: int = 50
    ) -> list[dict[str, Any]]:
        """The newest inputs sent to the run, per key prefix, oldest first."""
        return await received.read_received_inputs(normalize_run_id(flow_run_id), per_prefix)

    async def read_receivers(self, flow_run_id: uuid.UUID | str) -> dict[str, Any]:
        """Key prefix -> JSON schema of each input type the run receives on."""
        return await received.read_receivers(normalize_run_id(flow_run_id))

    async def read_replies(
        self, flow_run_id: uuid.UUID | str, *, person: str | None = None
    ) -> list[dict[str, Any]]:
        """What the run sent back (its newest replies), oldest first: to ``person``'s
        mailbox, else to the person acting here, else to this process's inbox."""
        sender = Mailbox.for_run(normalize_run_id(flow_run_id)).name
        replies = await received.read_sent_by(_reply_box(None, person).owner, sender)
        return [reply.as_dict() for reply in replies]

    async def read_input_outcomes(self, flow_run_id: uuid.UUID | str) -> dict[str, dict[str, str]]:
        """Input key -> what became of it: ``{"status": "taken"}``, or ``"skipped"`` with
        the flow's ``reason`` (a skip outranks a take). Inputs not listed wait unread."""
        outcomes: dict[str, dict[str, str]] = {}
        for event in await self._events(flow_run_id):
            key = event.data.get("key")
            if not isinstance(key, str):
                continue
            if event.type == "input.skipped":
                outcomes[key] = {"status": "skipped", "reason": str(event.data.get("reason", ""))}
            elif event.type == "input.taken" and key not in outcomes:
                outcomes[key] = {"status": "taken"}
        return outcomes


def _reply_box(inbox_id: str | None, person: str | None) -> Mailbox:
    """Where replies are read: a person's mailbox, an inbox, who acts, this process's inbox."""
    if person is not None:
        return Mailbox.for_person(person)
    if inbox_id is not None:
        return Mailbox(CLIENT, inbox_id)
    return acting_person() or inbox.inbox()


async def _step(items: AsyncIterator[T]) -> tuple[bool, T | None]:
    try:
        return True, await anext(items)
    except StopAsyncIteration:
        return False, None


async def _close(items: AsyncIterator[T]) -> None:
    await cast(Any, items).aclose()


def _blocking(items: AsyncIterator[T]) -> Generator[T, None, None]:
    """An async iterator of the client, iterated from sync code (one blocking step a time).

    Every step runs on the same loop (the run's, or the portal's), where its waits live;
    closing the sync iterator closes the async one there too.
    """
    try:
        while True:
            more, item = run_blocking(_step(items))
            if not more:
                return
            yield cast(T, item)
    finally:
        run_blocking(_close(items))


class SyncHitlClient:
    """The same reads as :class:`HitlClient`, blocking."""

    def __init__(self) -> None:
        self._client = HitlClient()

    def __enter__(self) -> SyncHitlClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def read_flow_run(self, flow_run_id: uuid.UUID | str) -> FlowRun:
        return run_blocking(self._client.read_flow_run(flow_run_id))

    def read_flow_runs(
        self,
        state: StateType | str | None = None,
        flow_name: str | None = None,
        limit: int = 100,
        deployment: str | None = None,
        *,
        waiting_for: str | None = None,
    ) -> list[FlowRun]:
        return run_blocking(
            self._client.read_flow_runs(
                state, flow_name, limit, deployment, waiting_for=waiting_for
            )
        )

    def runs_waiting_for(self, person: str, limit: int = 100) -> list[FlowRun]:
        return run_blocking(self._client.runs_waiting_for(person, limit))

    def cancel_flow_run(self, flow_run_id: uuid.UUID | str, *, actor: str | None = None) -> State:
        return run_blocking(self._client.cancel_flow_run(flow_run_id, actor=actor))

    def wait_for_flow_run(
        self,
        flow_run_id: uuid.UUID | str,
        until: Callable[[State], bool] = State.is_final,
        timeout: float | None = None,
    ) -> FlowRun:
        return run_blocking(self._client.wait_for_flow_run(flow_run_id, until, timeout))

    def read_events(self, flow_run_id: uuid.UUID | str) -> list[dict[str, Any]]:
        return run_blocking(self._client.read_events(flow_run_id))

    def read_logs(
        self, flow_run_id: uuid.UUID | str, limit: int | None = 1000
    ) -> list[dict[str, Any]]:
        return run_blocking(self._client.read_logs(flow_run_id, limit))

    def read_state_history(self, flow_run_id: uuid.UUID | str) -> list[State]:
        return run_blocking(self._client.read_state_history(flow_run_id))

    def read_pause(self, flow_run_id: uuid.UUID | str) -> PauseDetails | None:
        return run_blocking(self._client.read_pause(flow_run_id))

    def follow_events(
        self, flow_run_id: uuid.UUID | str | None = None, after: str | None = None
    ) -> Generator[RunEvent, None, None]:
        return _blocking(self._client.follow_events(flow_run_id, after))

    def follow_logs(
        self, flow_run_id: uuid.UUID | str, after: str | None = None, *, until_final: bool = False
    ) -> Generator[LogRecord, None, None]:
        return _blocking(self._client.follow_logs(flow_run_id, after, until_final=until_final))

    def follow_replies(
        self,
        flow_run_id: uuid.UUID | str | None = None,
        *,
        inbox_id: str | None = None,
        person: str | None = None,
        after: str | None = None,
    ) -> Generator[Reply, None, None]:
        return _blocking(
            self._client.follow_replies(flow_run_id, inbox_id=inbox_id, person=person, after=after)
        )

    def read_replies(
        self, flow_run_id: uuid.UUID | str, *, person: str | None = None
    ) -> list[dict[str, Any]]:
        return run_blocking(self._client.read_replies(flow_run_id, person=person))

    def read_inputs(
        self, flow_run_id: uuid.UUID | str, per_prefix: int = 50
    ) -> list[dict[str, Any]]:
        return run_blocking(self._client.read_inputs(flow_run_id, per_prefix))

    def read_receivers(self, flow_run_id: uuid.UUID | str) -> dict[str, Any]:
        return run_blocking(self._client.read_receivers(flow_run_id))


@overload
def get_client(sync_client: Literal[False] = False) -> HitlClient: ...
@overload
def get_client(sync_client: Literal[True]) -> SyncHitlClient: ...
@overload
def get_client(sync_client: bool) -> HitlClient | SyncHitlClient: ...
def get_client(sync_client: bool = False) -> HitlClient | SyncHitlClient:
    """An async client, or with ``sync_client=True`` a blocking one with the same methods."""
    return SyncHitlClient() if sync_client else HitlClient()
