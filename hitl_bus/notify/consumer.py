"""The notifier: reads the global event stream through a consumer group and tells the sinks.

Several notifiers may run: the ``notifiers`` group on each bucket of the global
event stream (``hitl:events``; ``HITL_BUS_INDEX_SHARDS`` buckets, one on standalone
Redis by default) hands each entry to one of them (per bucket, a blocking
``XREADGROUP`` on a connection of its own, since on Cluster the buckets sit on
different slots; an idle notifier sends Redis one command per bucket per ``block``
seconds). An entry is
acknowledged once every delivery it asks for is done (``ledger``): sent, or
parked as a dead letter after its last try. A notifier that dies leaves its
entries pending; every notifier looks for entries idle longer than
``claim_after`` (``XAUTOCLAIM``) and takes them over, and the ledger's leases
and done marks make sure that what the dead one sent is not sent again, and
what a live but slow one is still sending is left to it.

The group is made at the stream's end (``$``) the first time a notifier starts:
a new notifier tells of what happens from then on, not of the stream's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage

from hitl_bus import keys
from hitl_bus.bus import codec, get_bus, groups
from hitl_bus.client.records import RunEvent, decode_event
from hitl_bus.notify import deadletters, ledger, mail, page, webhook
from hitl_bus.notify.notice import Notice, event_name, notice_for
from hitl_bus.notify.retry import DeliveryFailed, RetryPolicy
from hitl_bus.notify.sinks import Webhook, list_webhooks
from hitl_bus.people.store import Person
from hitl_bus.settings import get_settings

log = logging.getLogger("hitl_bus.notify")


@dataclass(frozen=True)
class NotifierOptions:
    """How a notifier reads, retries and takes over the work of dead ones."""

    #: Entries handled at once.
    concurrency: int = 8
    #: Seconds an entry may sit unacknowledged under a notifier before another takes it.
    claim_after: float = 60.0
    #: Seconds a delivery's lease lasts without renewal (renewed every third of it).
    lease: float = 15.0
    #: Seconds one blocking read waits for new entries.
    block: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class _Delivery:
    sink: str
    target: str
    #: Sends it, with retries; raises ``DeliveryFailed`` when it failed for good.
    send: Callable[[], Awaitable[None]]
    #: What was to be sent, kept as the dead letter when it failed.
    payload: Callable[[], str]


class Notifier:
    """One notifier process's worth of work; :meth:`run` until :meth:`stop`."""

    def __init__(self, options: NotifierOptions | None = None, *, name: str | None = None) -> None:
        self.options = options or NotifierOptions()
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._stopping = asyncio.Event()
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self._working: set[asyncio.Task[None]] = set()
        #: Entries (bucket, id) being handled here, so a claim round does not take them twice.
        self._handling: set[tuple[str, bytes]] = set()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Read and deliver until :meth:`stop`; then finish the entries in hand (≤ 10 s)."""
        bus = get_bus()
        for stream in self._streams:
            await groups.ensure_group(bus.client, stream, keys.NOTIFIERS_GROUP, start="$")
        if not get_settings().smtp_url:
            log.info("HITL_BUS_SMTP_URL is not set: no email, webhooks only")
        log.info("notifier %s reading %s", self.name, ", ".join(self._streams))
        tasks = [asyncio.create_task(self._read(stream)) for stream in self._streams]
        tasks.append(asyncio.create_task(self._claim()))
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            # Either loop ending by itself is a bug: the notifier stops, and says why.
            await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception():
                    raise RuntimeError("a notifier loop failed") from task.exception()
        finally:
            stopping.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=5)
            if self._working:
                await asyncio.wait(self._working, timeout=10)
            for task in list(self._working):  # left pending: another notifier takes it
                task.cancel()
            with contextlib.suppress(Exception):  # nothing pending: no one needs its name
                await self._forget_self()
            log.info("notifier %s stopped", self.name)

    @property
    def _streams(self) -> list[str]:
        """The buckets of the global event stream, each read through its own group."""
        shards = get_bus().index_shards
        return [keys.events(shard, shards) for shard in range(shards)]

    async def _forget_self(self) -> None:
        client = get_bus().client
        for stream in self._streams:
            pending = await client.xpending_range(
                stream, keys.NOTIFIERS_GROUP, "-", "+", 1, consumername=self.name
            )
            if not pending:
                await client.xgroup_delconsumer(stream, keys.NOTIFIERS_GROUP, self.name)

    async def _read(self, stream: str) -> None:
        bus = get_bus()
        reader = await bus.open_reader(stream)
        block_ms = max(1, int(self.options.block * 1000))
        try:
            while not self._stopping.is_set():
                await self._slots.acquire()  # read only what there is room to handle
                self._slots.release()
                try:
                    reply = await groups.read_group(
                        reader,
                        keys.NOTIFIERS_GROUP,
                        self.name,
                        {stream: ">"},
                        count=1,
                        block=block_ms,
                    )
                    for _stream, entries in reply or []:
                        for entry_id, fields in entries:
                            await self._start(stream, entry_id, fields)
                except groups.GroupMissing:  # a flushed Redis: make the group again
                    with contextlib.suppress(Exception):  # if not now, at the next read
                        await groups.ensure_group(
                            bus.client, stream, keys.NOTIFIERS_GROUP, start="$"
                        )
                except Exception as exc:  # noqa: BLE001 - reconnects on the next read
                    log.warning("reading %s failed: %s", stream, exc)
                    await asyncio.sleep(0.5)
        finally:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(1):
                    await reader.aclose()

    async def _claim(self) -> None:
        """Every half ``claim_after``: take over entries idle that long (a dead notifier's)."""
        while not self._stopping.is_set():
            await asyncio.sleep(self.options.claim_after / 2)
            for stream in self._streams:
                try:
                    await self._claim_in(stream)
                    await self._forget_idle_consumers(stream)
                except Exception as exc:  # noqa: BLE001 - the next round tries again
                    if not isinstance(exc, groups.GroupMissing):
                        log.warning("claiming idle entries of %s failed: %s", stream, exc)

    async def _claim_in(self, stream: str) -> None:
        client = get_bus().client
        idle_ms = max(1, int(self.options.claim_after * 1000))
        start = "0-0"
        while True:
            reply = await client.xautoclaim(
                stream, keys.NOTIFIERS_GROUP, self.name, idle_ms, start, count=50
            )
            # Redis 7 answers [next, entries, deleted ids]; Redis 6.2 [next, entries].
            start, entries = reply[0], reply[1]
            for entry_id, fields in entries:
                if fields is None:  # trimmed away meanwhile: nothing left to tell
                    await self._ack(stream, entry_id)
                elif (stream, entry_id) not in self._handling:
                    log.info("notifier %s took over entry %s", self.name, entry_id)
                    await self._start(stream, entry_id, fields)
            if start in (b"0-0", "0-0"):
                break

    async def _forget_idle_consumers(self, stream: str) -> None:
        """Drop consumers with nothing pending and idle ten ``claim_after``s (notifiers that
        stopped): each process reads as a new consumer, and the group would keep them all.
        Dropping one loses nothing; a live one that was dropped is made again by its next
        read."""
        client = get_bus().client
        idle_ms = 10 * self.options.claim_after * 1000
        for consumer in await client.xinfo_consumers(stream, keys.NOTIFIERS_GROUP):
            name = codec.text(consumer["name"])
            if name != self.name and not consumer["pending"] and consumer["idle"] > idle_ms:
                await client.xgroup_delconsumer(stream, keys.NOTIFIERS_GROUP, name)

    async def _start(self, stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        await self._slots.acquire()
        self._handling.add((stream, entry_id))
        task = asyncio.create_task(self._handle(stream, entry_id, fields))
        self._working.add(task)
        task.add_done_callback(self._working.discard)

    async def _handle(self, stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            event = decode_event(stream, entry_id, fields)
            if event is None or await self.handle(event):
                await self._ack(stream, entry_id)
        except Exception:
            log.exception("event %s: delivery failed; it stays pending", entry_id.decode())
        finally:
            self._handling.discard((stream, entry_id))
            self._slots.release()

    async def _ack(self, stream: str, entry_id: bytes) -> None:
        await get_bus().client.xack(stream, keys.NOTIFIERS_GROUP, entry_id)

    async def handle(self, event: RunEvent) -> bool:
        """Deliver ``event`` to every sink that wants it; whether all of it is done."""
        name = event_name(event)
        hooks = [w for w in await list_webhooks() if name in w.events]
        email_on = name == "paused" and bool(get_settings().smtp_url)
        page_on = name in await page.events_wanted()
        if not hooks and not email_on and not page_on:
            return True
        notice = await notice_for(event, name)
        if notice is None:
            return True
        deliveries = [self._webhook(notice, hook) for hook in hooks]
        if page_on:
            deliveries.append(self._page(notice))
        if email_on:
            deliveries += self._emails(notice)
        outcomes = [await self._once(notice, d) for d in deliveries]
        return ledger.Outcome.BUSY not in outcomes

    async def _once(self, notice: Notice, delivery: _Delivery) -> ledger.Outcome:
        """Send ``delivery`` unless it is done or in another notifier's hands."""
        key = notice.delivery
        if await ledger.is_done(delivery.sink, key):
            return ledger.Outcome.DONE_BEFORE
        async with ledger.lease(delivery.sink, key, self.name, self.options.lease) as mine:
            if not mine:
                done = await ledger.is_done(delivery.sink, key)
                return ledger.Outcome.DONE_BEFORE if done else ledger.Outcome.BUSY
            try:
                await delivery.send()
            except DeliveryFailed as exc:
                log.warning("%s to %s failed for good: %s", key, delivery.target, exc)
                await deadletters.park(
                    deadletters.DeadLetter(
                        id=deadletters.letter_id(delivery.sink, key),
                        sink=delivery.sink,
                        delivery=key,
                        target=delivery.target,
                        subject=notice.headline(),
                        payload=delivery.payload(),
                        error=str(exc),
                        attempts=exc.tries,
                        failed_at=datetime.now(UTC),
                    )
                )
                await ledger.mark_done(delivery.sink, key, ledger.Outcome.PARKED)
                return ledger.Outcome.PARKED
            # A letter parked by a notifier that died before its done mark is moot now.
            await deadletters.drop(deadletters.letter_id(delivery.sink, key))
            await ledger.mark_done(delivery.sink, key, ledger.Outcome.SENT)
            log.info("%s sent to %s", key, delivery.target)
            return ledger.Outcome.SENT

    def _webhook(self, notice: Notice, hook: Webhook) -> _Delivery:
        made: dict[str, bytes] = {}

        async def send() -> None:
            made["body"] = body = await webhook.body_for(notice)
            msg_id = webhook.message_id(hook.sink, notice.delivery)
            await webhook.post(hook, msg_id, body, self.options.retry)

        return _Delivery(hook.sink, hook.url, send, lambda: made.get("body", b"").decode())

    def _page(self, notice: Notice) -> _Delivery:
        async def send() -> None:
            await page.post(notice.name, notice.run_id, await webhook.body_for(notice))

        return _Delivery(page.SINK, "the Notifications page", send, lambda: "")

    def _emails(self, notice: Notice) -> list[_Delivery]:
        settings = get_settings()
        assert settings.smtp_url
        server = mail.SmtpServer.from_url(settings.smtp_url)
        return [
            self._email(notice, person, server, settings.smtp_from)
            for person in notice.people
            if person.email
        ]

    def _email(
        self, notice: Notice, person: Person, server: mail.SmtpServer, sender: str
    ) -> _Delivery:
        made: dict[str, EmailMessage] = {}

        async def send() -> None:
            link = await notice.answer_link(person.name)
            made["message"] = message = mail.compose(notice, person, link, sender)
            await mail.send_with_retries(server, message, self.options.retry)

        def payload() -> str:
            return made["message"].as_string() if "message" in made else ""

        assert person.email
        return _Delivery(f"email:{person.name}", person.email, send, payload)
