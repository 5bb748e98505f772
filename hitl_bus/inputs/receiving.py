"""``receive_input``: iterate the inputs of one type sent to a run or an inbox.

Reading is push, not poll: the receiver checks its run exists (the receivers a
loop turn starts share one pipeline for that), then parks on the loop's
dispatcher, whose first read of the stream hands it what is already there and
which wakes it the moment an entry lands (``poll_interval`` is accepted for
Prefect compatibility and not needed). With ``consumer=`` the position lives on
the server in a consumer group: a restarted or re-run flow continues where it
stopped, and an input is acknowledged once the iterator moves past it
(at-least-once).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections import deque
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from hitl_bus import keys
from hitl_bus._sync import dispatch, run_blocking, running_loop
from hitl_bus.bus import Bus, codec, get_bus, groups
from hitl_bus.bus.events import record_events
from hitl_bus.bus.watching import BATCH, Entry
from hitl_bus.context import RunState, current_run, current_run_id, raise_if_cancelled
from hitl_bus.errors import FlowRunNotFound, ReceiveTimeout
from hitl_bus.inputs import inbox
from hitl_bus.inputs.keyset import FLOW_RUN, Mailbox, check_key_prefix
from hitl_bus.inputs.shapes import FlowRunInput, RunInputMetadata, record_from_entry, schema_json

log = logging.getLogger("hitl_bus.inputs")
T = TypeVar("T")
_END: Any = object()


def _target(flow_run_id: uuid.UUID | str | None) -> Mailbox:
    if flow_run_id is not None:
        return Mailbox.for_run(flow_run_id)
    run_id = current_run_id()
    if run_id is not None:
        return Mailbox(FLOW_RUN, run_id)
    return inbox.inbox()


class InputReceiver(Generic[T]):
    """Iterator over received inputs; use ``for``, ``async for`` or ``.next()``."""

    def __init__(
        self,
        input_cls: type[BaseModel],
        *,
        unwrap: bool,
        key_prefix: str,
        timeout: float | None = 3600,
        raise_timeout_error: bool = False,
        exclude_keys: Iterable[str] | None = None,
        flow_run_id: uuid.UUID | str | None = None,
        with_metadata: bool = False,
        consumer: str | None = None,
    ) -> None:
        """Receive instances of ``input_cls`` on the stream ``key_prefix``.

        ``unwrap``: hand out each instance's ``value`` (an automatic input) instead of it.
        """
        self.input_cls = input_cls
        self.timeout = timeout
        self.raise_timeout_error = raise_timeout_error
        self.with_metadata = with_metadata
        self.exclude_keys = set(exclude_keys or ())
        self.key_prefix = check_key_prefix(key_prefix)
        self.mailbox = _target(flow_run_id)
        self.stream = keys.input_stream(self.mailbox.id, self.key_prefix)
        self._receiver = uuid.UUID(self.mailbox.id)  # the metadata's receiver
        self.consumer = consumer
        self._unwrap = unwrap and not with_metadata
        self._buffer: deque[Entry] = deque()
        self._position = "0-0"  # id of the last entry taken from the stream
        self._checked = False
        self._group_ready = False
        self._acks: list[bytes] = []
        #: The key of the input read last: handed out, or refused by the type (the
        #: ``ValidationError`` it raised does not say which input it was).
        self.last_key: str | None = None

    # -- iteration faces ---------------------------------------------------------------

    def __aiter__(self) -> InputReceiver[T]:
        return self

    async def __anext__(self) -> T:
        result = await self._next(self.raise_timeout_error)
        if result is _END:
            raise StopAsyncIteration
        return result  # type: ignore[no-any-return]

    def __iter__(self) -> InputReceiver[T]:
        return self

    def __next__(self) -> T:
        if running_loop() is not None:
            raise TypeError("inside async code use 'async for' or 'await receiver.next()'")
        result = run_blocking(self._next(self.raise_timeout_error))
        if result is _END:
            raise StopIteration
        return result  # type: ignore[no-any-return]

    def next(self) -> T:
        """The next input; awaitable in async code, blocking in sync code (``_sync.dispatch``).

        :raises ReceiveTimeout: (a ``TimeoutError``) when none arrives within ``timeout``.
        """
        return dispatch(self._next(raise_timeout=True))  # type: ignore[no-any-return]

    async def anext(self) -> T:
        """The next input (the coroutine ``next`` is in async code).

        :raises ReceiveTimeout: (a ``TimeoutError``) when none arrives within ``timeout``.
        """
        return await self._next(raise_timeout=True)  # type: ignore[no-any-return]

    # -- Prefect's pull interface --------------------------------------------------------

    async def filter_for_inputs(self) -> list[FlowRunInput]:
        """The next input not yet taken, as a list of at most one record; never waits.

        It moves this receiver on as ``next()`` does, so the two never hand out the same
        input; its key joins ``exclude_keys``. Records are not validated: see
        :meth:`to_instance`.
        """
        bus = await self._start()
        while (entry := await self._pop(bus, wait=False, deadline=None)) is not None:
            record = self._record(entry)
            if record is not None and record.key not in self.exclude_keys:
                self.exclude_keys.add(record.key)
                return [record]
        return []

    def filter_for_inputs_sync(self) -> list[FlowRunInput]:
        """:meth:`filter_for_inputs` for sync code."""
        if running_loop() is not None:
            raise TypeError("inside async code use 'await receiver.filter_for_inputs()'")
        return run_blocking(self.filter_for_inputs())

    def to_instance(self, flow_run_input: FlowRunInput) -> T:
        """A record as what this receiver hands out: validated, with its metadata.

        :raises pydantic.ValidationError: the record's value is not of the receiver's type.
        """
        instance = self.input_cls.model_validate_json(flow_run_input.value)
        instance._metadata = RunInputMetadata(  # type: ignore[attr-defined]
            key=flow_run_input.key,
            sender=flow_run_input.sender,
            receiver=flow_run_input.flow_run_id,
        )
        return instance.value if self._unwrap else instance  # type: ignore[attr-defined,return-value]

    # -- shared logic --------------------------------------------------------------------

    async def _start(self) -> Bus:
        """A checkpoint, then acknowledge what was handed out (consumer groups)."""
        raise_if_cancelled()  # a checkpoint of a cancelled run
        bus = get_bus()
        if self._acks:
            await bus.client.xack(self.stream, self.consumer, *self._acks)
            self._acks.clear()
        return bus

    async def _next(self, raise_timeout: bool) -> Any:
        bus = await self._start()
        now = asyncio.get_running_loop().time()
        deadline = None if self.timeout is None else now + self.timeout
        wait = self.timeout is None or self.timeout > 0  # 0: take what is there, never wait
        while True:
            entry = await self._pop(bus, wait, deadline)
            if entry is None:
                if raise_timeout:
                    raise ReceiveTimeout(
                        f"no {self.key_prefix!r} input for {self.mailbox.name} "
                        f"within {self.timeout}s"
                    )
                return _END
            instance = self._decode(entry)
            if instance is not None:
                self._taken()
                return instance.value if self._unwrap else instance  # type: ignore[attr-defined]

    def _taken(self) -> None:
        """A run's receiver says it handed the input out (``input.taken``), in the background."""
        ctx = current_run()
        key = self.last_key
        if self.mailbox.kind != FLOW_RUN or ctx is None or key is None:
            return
        pending = ctx.state.taken.setdefault(self.mailbox.id, [])
        pending.append(key)
        if len(pending) == 1:  # the first since the last write: that write takes them all
            ctx.state.write_later(_record_taken(ctx.state, self.mailbox.id))

    async def _pop(self, bus: Bus, wait: bool, deadline: float | None) -> Entry | None:
        """The next entry; ``None`` when none came by ``deadline`` (or, without ``wait``, now)."""
        if not self._buffer:
            try:
                if not wait:
                    await self._fill(bus, wait=False)
                elif deadline is None:
                    await self._fill(bus)
                else:
                    async with asyncio.timeout_at(deadline):
                        await self._fill(bus)
            except TimeoutError:
                return None
        entry = self._buffer.popleft()
        if self.consumer is not None:
            self._acks.append(entry[0])  # acknowledged when the iterator moves on
        return entry

    def _record(self, entry: Entry) -> FlowRunInput | None:
        """An entry as a record; ``None`` (logged) for a corrupt one."""
        entry_id, fields = entry
        try:
            record = record_from_entry(self.mailbox.id, entry_id, fields)
        except UnicodeDecodeError:
            self._skip(entry_id, "a field is not UTF-8 text")
            return None
        if record is None:
            self._skip(entry_id, "a field is missing")
        return record

    def _decode(self, entry: Entry) -> BaseModel | None:
        """The input an entry carries; ``None`` for one to pass over.

        A corrupt entry (a field missing, not UTF-8, not JSON) is logged and skipped:
        one bad write must not stop a receiver, nor make it read the entry again.
        """
        entry_id, fields = entry
        raw_key = fields.get(b"key") if fields else None
        data = fields.get(b"data") if fields else None
        if raw_key is None or data is None:
            return self._skip(entry_id, "a field is missing")
        try:
            key = raw_key.decode()
            sender = codec.text(fields.get(b"sender"))
        except UnicodeDecodeError:
            return self._skip(entry_id, "its key or sender is not UTF-8 text")
        if key in self.exclude_keys:
            return None
        self.last_key = key
        try:
            instance = self.input_cls.model_validate_json(data)
        except ValidationError as exc:
            if all(err["type"] == "json_invalid" for err in exc.errors()):
                return self._skip(entry_id, "its data is not valid JSON")
            raise
        # A RunInput's private attribute; every class given to a receiver is one.
        instance._metadata = RunInputMetadata(  # type: ignore[attr-defined]
            key=key, sender=sender, receiver=self._receiver
        )
        return instance

    def _skip(self, entry_id: bytes, why: str) -> BaseModel | None:
        log.warning("skipping entry %s on %s: %s", entry_id.decode(), self.stream, why)
        return None

    async def _fill(self, bus: Bus, wait: bool = True) -> None:
        """Put at least one entry in the buffer, waiting for it if need be.

        :raises TimeoutError: with ``wait=False``, when there is nothing to take now.
        """
        if self.consumer is not None:
            await self._fill_from_group(bus, wait)
            return
        if not self._checked:
            # Waiting, no XRANGE: the dispatcher reads the stream from our position
            # when it places it (or already pushes what lands past it).
            entries = await self._first_read(bus, read=not wait)
        elif wait:
            entries = []  # the same: the wait below reads or pushes it
        else:
            entries = await bus.client.xrange(self.stream, min=f"({self._position}", count=BATCH)
        while not entries:
            if not wait:
                raise TimeoutError
            entries = await self._wait(bus)
        self._buffer.extend(entries)
        self._position = entries[-1][0].decode()

    async def _first_read(self, bus: Bus, read: bool) -> list[Entry]:
        """Check the run exists; with ``read``, also take what is already there.

        A run's check shares one pipeline with the other receivers this loop turn starts.
        """
        if self.mailbox.kind != FLOW_RUN:
            await self._check_mailbox(bus)
            if not read:
                return []
            return await bus.client.xrange(self.stream, min=f"({self._position}", count=BATCH)  # type: ignore[no-any-return]
        check = _FirstCheck(
            self.mailbox.marker_key,
            self.stream if read else None,
            self._position,
            self._announcement(),
            asyncio.get_running_loop().create_future(),
        )
        _first_checks(bus).add(check)
        exists, entries = await check.future
        if not exists:
            raise FlowRunNotFound(self.mailbox.id)
        self._checked = True
        return entries

    def _announcement(self) -> tuple[str, str, bytes] | None:
        """A run receiving on its own mailbox says so: a UI offers a send box of this type.

        The ``HSET`` (key, field, schema) that says it, once per execution and key prefix:
        a flow making a receiver per loop writes it once.
        """
        ctx = current_run()
        if self.mailbox.kind != FLOW_RUN or ctx is None or ctx.flow_run.run_id != self.mailbox.id:
            return None
        announced = ctx.state.receivers_announced
        if self.key_prefix in announced:
            return None
        announced.add(self.key_prefix)
        return keys.run_receivers(self.mailbox.id), self.key_prefix, schema_json(self.input_cls)

    async def _check_mailbox(self, bus: Bus) -> None:
        if self.mailbox.kind == FLOW_RUN:
            await self._first_read(bus, read=False)
        else:
            await inbox.touch(bus)
            self._checked = True

    async def _fill_from_group(self, bus: Bus, wait: bool) -> None:
        if not self._checked:
            await self._check_mailbox(bus)
        while True:
            try:
                entries = await self._read_group(bus)
            except groups.GroupMissing:
                self._group_ready = False  # the group is gone (Redis flushed): make it again
                entries = await self._read_group(bus)
            if entries:
                self._buffer.extend(entries)
                return
            if not wait:
                raise TimeoutError
            # Only a wake-up: the group hands out entries, so read them through it.
            await self._wait(bus)

    async def _read_group(self, bus: Bus) -> list[Entry]:
        """Our pending entries, then new ones, in one round trip.

        Everything handed out before is acknowledged first (in the same pipeline), so
        what is still pending was delivered but never reached this receiver: a reply
        lost in a dropped connection (the retried read would skip it), or entries of a
        receiver of the same name that stopped. Reading them on every fill makes the
        group read safe to retry.
        """
        group = self.consumer
        assert group is not None
        if not self._group_ready:
            await groups.ensure_group(bus.client, self.stream, group)
            for info in await bus.client.xinfo_groups(self.stream):
                if codec.text(info["name"]) == group:
                    self._position = codec.text(info["last-delivered-id"]) or "0-0"
            self._group_ready = True
        async with bus.client.pipeline(transaction=False) as pipe:
            if self._acks:
                pipe.xack(self.stream, group, *self._acks)
            pipe.xreadgroup(group, group, {self.stream: "0"}, count=BATCH)
            pipe.xreadgroup(group, group, {self.stream: ">"}, count=BATCH)
            try:
                replies = await pipe.execute()
            except Exception as exc:
                groups.raise_if_missing(exc)
                raise
        self._acks.clear()
        pending: list[Entry] = replies[-2][0][1] if replies[-2] else []
        new: list[Entry] = replies[-1][0][1] if replies[-1] else []
        if new:
            self._position = new[-1][0].decode()
        return pending + new

    async def _wait(self, bus: Bus) -> list[Entry]:
        """Park on the dispatcher until the stream has entries past our position; returns them."""
        if self.mailbox.kind == FLOW_RUN:
            return await bus.dispatcher.wait(self.stream, self._position, None)
        # An inbox expires unless used: renew it while we wait on it.
        renew_every = bus.settings.inbox_ttl / 3
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() - inbox.touched_at(bus) > renew_every:
                await inbox.touch(bus)
            try:
                return await bus.dispatcher.wait(self.stream, self._position, renew_every)
            except TimeoutError:
                continue


#: Receivers' first checks sent in one pipeline at most; more go in several, side by side.
_CHECKS_PER_PIPELINE = 500


class _FirstCheck:
    """One receiver's first round trip: does its run exist, and (``stream`` set) what is
    in the stream after ``after``; ``announce`` is its receiver's ``HSET``, if any."""

    __slots__ = ("after", "announce", "future", "marker_key", "stream")

    def __init__(
        self,
        marker_key: str,
        stream: str | None,
        after: str,
        announce: tuple[str, str, bytes] | None,
        future: asyncio.Future[tuple[bool, list[Entry]]],
    ) -> None:
        self.marker_key = marker_key
        self.stream = stream
        self.after = after
        self.announce = announce
        self.future = future


class _FirstChecks:
    """The first checks of the receivers one loop turn starts, sent together.

    10,000 receivers started at once cost a few pipelines, not 10,000 round trips: the
    checks queued during a turn go out at the start of the next one.
    """

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.queued: list[_FirstCheck] = []

    def add(self, check: _FirstCheck) -> None:
        if not self.queued:
            asyncio.get_running_loop().call_soon(self._flush)
        self.queued.append(check)

    def _flush(self) -> None:
        queued, self.queued = self.queued, []
        loop = asyncio.get_running_loop()
        for start in range(0, len(queued), _CHECKS_PER_PIPELINE):
            batch = queued[start : start + _CHECKS_PER_PIPELINE]
            task = loop.create_task(self._send(batch))
            # Cancelled (the bus closing), even before it ran: its receivers are not left hanging.
            task.add_done_callback(functools.partial(_abandon, batch))
            self.bus.dispatcher.track(task)

    async def _send(self, checks: list[_FirstCheck]) -> None:
        """One pipeline for ``checks``; each receiver gets its replies, or its error."""
        try:
            async with self.bus.client.pipeline(transaction=False) as pipe:
                for check in checks:
                    pipe.exists(check.marker_key)
                    if check.stream is not None:
                        pipe.xrange(check.stream, min=f"({check.after}", count=BATCH)
                    if check.announce is not None:
                        pipe.hset(*check.announce)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001 - each receiver raises it
            for check in checks:
                if not check.future.done():
                    check.future.set_exception(exc)
            return
        position = 0
        for check in checks:
            size = 1 + (check.stream is not None) + (check.announce is not None)
            mine = replies[position : position + size]
            position += size
            if check.future.done():
                continue  # its receiver gave up meanwhile (cancelled, timed out)
            failed = next((reply for reply in mine if isinstance(reply, Exception)), None)
            if failed is not None:
                check.future.set_exception(failed)
            else:
                check.future.set_result((bool(mine[0]), mine[1] if check.stream else []))


def _abandon(checks: list[_FirstCheck], _: object) -> None:
    for check in checks:
        if not check.future.done():
            check.future.cancel()


def _first_checks(bus: Bus) -> _FirstChecks:
    """The loop's gatherer of first checks (one per bus, so per loop)."""
    return bus.kept(_FirstChecks)


#: How long ``input.taken`` events wait for others to be written with: off the path of the
#: flow's reply, and one write for a burst of inputs. A run ending waits for them.
TAKEN_BATCH_DELAY = 0.005


async def _record_taken(state: RunState, run_id: str) -> None:
    """Record the inputs of ``run_id`` handed out by now as ``input.taken``, in order."""
    await asyncio.sleep(TAKEN_BATCH_DELAY)
    await _write_taken(state, run_id)


async def record_taken_now(run_id: str) -> None:
    """Write the ``input.taken`` events of ``run_id`` still waiting in this execution now,
    before an event that must come after them (``input.skipped``)."""
    ctx = current_run()
    if ctx is not None:
        await _write_taken(ctx.state, run_id)


async def _write_taken(state: RunState, run_id: str) -> None:
    """Write the waiting ``input.taken`` events of ``run_id`` (none: nothing is sent),
    after any such write still under way: a caller that goes on to write an event that
    must follow them (``input.skipped``) finds them written, whoever took them."""
    async with state.writing_taken:
        taken = state.taken.pop(run_id, [])
        await record_events(get_bus(), run_id, "input.taken", [{"key": key} for key in taken])
