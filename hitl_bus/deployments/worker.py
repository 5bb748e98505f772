"""Workers: processes that serve deployments by executing their queued runs.

Each deployment's queue is a stream read through the ``workers`` consumer
group, so several workers share the work and each run starts once. An entry
stays pending under its worker until the run's execution ends (completed,
failed, suspended): a long or long-paused run of a live worker is never taken
from it. Liveness is the worker's heartbeat key; a worker whose key expired is
dead, and only then does another worker claim its pending runs (XPENDING for
that consumer, then XCLAIM): a run that was executing is run again while the
deployment has retries left, else Crashed; a run that was paused becomes
Suspended, so resuming it re-executes it on a live worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Sequence
from typing import Any

from hitl_bus import keys
from hitl_bus.bus import codec, get_bus, groups
from hitl_bus.context import QueueEntry
from hitl_bus.deployments.deployment import Deployment
from hitl_bus.deployments.registry import register
from hitl_bus.engine import indexes, store
from hitl_bus.engine.flows import HAND_BACK, execute_flow_run
from hitl_bus.engine.runs import sweep_expired
from hitl_bus.errors import FlowRunCancelled, FlowRunNotFound, FlowRunSuspended, StateConflict
from hitl_bus.settings import get_settings, run_on_configured_loop

log = logging.getLogger("hitl_bus.worker")

#: Seconds a worker that has just taken a run waits, while its runs execute, before it
#: reads its queues again (see ``Worker._while_busy``).
BUSY_PAUSE = 0.002


class Worker:
    """Serves deployments: takes their queued runs, up to ``concurrency`` at once."""

    def __init__(
        self,
        deployments: Sequence[Deployment],
        *,
        concurrency: int = 4,
        heartbeat_interval: float | None = None,
        dead_after: float | None = None,
        name: str | None = None,
    ) -> None:
        if not deployments:
            raise ValueError("a worker needs at least one deployment to serve")
        settings = get_settings()
        self.deployments = {d.full_name: d for d in deployments}
        self.concurrency = concurrency
        self.heartbeat_interval = heartbeat_interval or settings.worker_heartbeat
        self.dead_after = dead_after or settings.worker_dead_after
        self.id = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.running: dict[str, asyncio.Task[None]] = {}
        self._deployment_of: dict[str, Deployment] = {}
        self._entry_of: dict[str, bytes] = {}
        #: The queue entry of each run executing here (its final state may take the next).
        self._queue_entries: dict[str, QueueEntry] = {}
        #: Runs being handed back: their queue entries are acknowledged after the release.
        self._handing_back: set[str] = set()
        self._stopping: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._freed = asyncio.Event()
        #: Set once the drain is over: heartbeat and upkeep end (they beat during it).
        self._closing = False

    def stop(self) -> None:
        """Stop taking runs; ``run()`` then drains and returns."""
        if self._stopping is not None:
            self._stopping.set()
        for entry in self._queue_entries.values():  # their final states take no next run
            entry.consumer = ""

    async def run(self, grace: float = 10.0) -> None:
        """Serve until :meth:`stop` (or SIGTERM under :func:`serve`), then drain.

        Runs still executing ``grace`` seconds after the stop are handed back to
        their queues for another worker.
        """
        self._stopping = asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        bus = get_bus()
        for deployment in self.deployments.values():
            await register(deployment)
            await groups.ensure_group(
                bus.client, keys.deployment_queue(deployment.full_name), keys.WORKERS_GROUP
            )
        await self._beat()
        upkeep = [asyncio.create_task(self._heartbeat()), asyncio.create_task(self._upkeep())]
        takers = [asyncio.create_task(self._take(d)) for d in self.deployments.values()]
        log.info("worker %s serving %s", self.id, ", ".join(self.deployments))
        try:
            await self._stopping.wait()
        finally:
            for task in takers:
                task.cancel()
            await asyncio.wait(takers, timeout=5)
            await self._drain(grace)
            self._closing = True
            for task in upkeep:
                task.cancel()
            await asyncio.wait(upkeep, timeout=5)
            await bus.client.delete(keys.worker(self.id))
            log.info("worker %s stopped", self.id)

    async def _beat(self) -> None:
        await get_bus().client.set(keys.worker(self.id), self.id, px=int(self.dead_after * 1000))

    async def _heartbeat(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._beat()
            except Exception as exc:  # noqa: BLE001 - upkeep never dies
                log.warning("heartbeat failed: %s", exc)

    async def _upkeep(self) -> None:
        """Every heartbeat: keep the deployments registered (a flushed Redis forgets them),
        claim the runs of dead workers, fail expired pauses."""
        while not self._closing:
            try:
                for deployment in self.deployments.values():
                    await register(deployment)
                    await self._reclaim(deployment)
                    await _trim_queue(keys.deployment_queue(deployment.full_name))
                await sweep_expired()
                await indexes.forget_expired()
            except Exception as exc:  # noqa: BLE001 - upkeep never dies
                log.warning("upkeep failed: %s", exc)
            await asyncio.sleep(self.heartbeat_interval)

    async def _take(self, deployment: Deployment) -> None:
        """Read the deployment's queue on a connection of its own while a slot is free.

        A taker does not hold a slot while it waits (each deployment has one, and
        they share the slots); it takes one when a run arrives.
        """
        assert self._slots is not None
        queue = keys.deployment_queue(deployment.full_name)
        bus = get_bus()
        reader = await bus.open_reader(queue)
        stopping = self._stopping
        assert stopping is not None
        pause = False  # a run was just taken: give the next to an idle worker first
        try:
            # Checked each round as well as cancelled: a Redis client can swallow a
            # cancellation that lands mid-command, and a taker must still end.
            while not stopping.is_set():
                while self._slots.locked():  # full: leave the queue to other workers
                    self._freed.clear()
                    await self._freed.wait()
                if pause and self.running:
                    pause = False
                    await self._while_busy()
                    continue
                try:
                    reply = await groups.read_group(
                        reader, keys.WORKERS_GROUP, self.id, {queue: ">"}, count=1, block=1000
                    )
                except groups.GroupMissing:  # Redis was flushed: make the queue again
                    await groups.ensure_group(bus.client, queue, keys.WORKERS_GROUP)
                    continue
                except Exception as exc:  # noqa: BLE001 - reconnects on the next read
                    log.warning("reading %s failed: %s", queue, exc)
                    await asyncio.sleep(0.5)
                    continue
                if not reply or not reply[0][1]:
                    continue
                entry_id, fields = reply[0][1][0]
                await self._slots.acquire()
                self._start(deployment, entry_id, codec.text(fields.get(b"run_id")) or "")
                pause = True
        finally:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(1):  # a read cut off mid-block may not close politely
                    await reader.aclose()

    async def _while_busy(self) -> None:
        """Wait up to :data:`BUSY_PAUSE` for a slot to free, before reading the queue again
        with runs in flight: meanwhile an idle worker's blocked read takes a new run first,
        and a run ending here takes the next queued one with its final state, begun in the
        same step (no wake-up, no separate begin), keeping its slot. A busy worker reads
        again after the pause either way, so runs still start while its runs wait (paused,
        say), one more every pause."""
        self._freed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(BUSY_PAUSE):
                await self._freed.wait()

    def _start(
        self,
        deployment: Deployment,
        entry_id: bytes,
        run_id: str,
        start: store.Start | None = None,
    ) -> None:
        task = asyncio.create_task(self._execute(deployment, entry_id, run_id, start))
        self.running[run_id] = task
        self._deployment_of[run_id] = deployment
        self._entry_of[run_id] = entry_id

    async def _execute(
        self, deployment: Deployment, entry_id: bytes, run_id: str, start: store.Start | None
    ) -> None:
        assert self._slots is not None
        queue = keys.deployment_queue(deployment.full_name)
        bus = get_bus()
        # While the worker takes runs, the run's final state takes the next one for its slot.
        entry = QueueEntry(queue, keys.WORKERS_GROUP, entry_id, consumer=self._consumer())
        self._queue_entries[run_id] = entry
        try:
            await execute_flow_run(
                deployment.flow, run_id, worker=self.id, entry=entry, start=start
            )
        except StateConflict:
            log.info("run %s was started elsewhere; this queue entry is done", run_id)
        except FlowRunSuspended:
            log.info("run %s suspended; its slot is free", run_id)
        except FlowRunCancelled:
            log.info("run %s was cancelled", run_id)
        except Exception:
            log.exception("run %s ended with an error", run_id)
        finally:
            self.running.pop(run_id, None)
            self._deployment_of.pop(run_id, None)
            self._entry_of.pop(run_id, None)
            self._queue_entries.pop(run_id, None)
            if entry.next is not None:  # taken with the final state: it keeps the slot
                next_id, fields = entry.next
                begun = entry.next_start if isinstance(entry.next_start, store.Start) else None
                self._start(deployment, next_id, codec.text(fields.get(b"run_id")) or "", begun)
            else:
                self._slots.release()
                self._freed.set()
            if run_id in self._handing_back:  # acknowledged once released (see _drain)
                self._handing_back.discard(run_id)
            elif not entry.acknowledged:  # (the final state acknowledged it on one node)
                await asyncio.shield(bus.client.xack(queue, keys.WORKERS_GROUP, entry_id))

    def _consumer(self) -> str:
        """This worker's consumer name while it takes runs; "" once it stops."""
        stopping = self._stopping is not None and self._stopping.is_set()
        return "" if stopping else self.id

    async def _drain(self, grace: float) -> None:
        """Wait ``grace`` seconds for running executions, then hand the rest back.

        The late executions are cancelled as hand-backs (they write no final state)
        and, once they stopped, released through the run store: a paused run becomes
        Suspended (still answerable), a running one is queued again, a cancelling
        one is Cancelled. Should an execution outlive its cancellation (a sync body
        runs on in its thread), its writes carry an attempt the release superseded.
        """
        if not self.running:
            return
        log.info("waiting up to %.0f s for %d run(s) to finish", grace, len(self.running))
        await asyncio.wait(list(self.running.values()), timeout=grace)
        late = dict(self.running)
        if not late:
            return
        # Taken now: a run that ends meanwhile leaves these maps.
        deployments = {run_id: self._deployment_of[run_id] for run_id in late}
        entries = {run_id: self._entry_of[run_id] for run_id in late}
        self._handing_back.update(late)
        for task in late.values():
            task.cancel(HAND_BACK)
        await asyncio.wait(list(late.values()), timeout=5)
        # Each entry stays pending under this worker until its run is released: if this
        # process dies first, another worker finds the entry and releases the run.
        bus = get_bus()
        for run_id, deployment in deployments.items():
            why = store.Release(
                worker=self.id,
                reason=f"its worker {self.id} stopped",
                deployment=deployment.full_name,
                count_crash=False,
            )
            outcome = await store.release(run_id, why)
            log.info("run %s handed back: %s", run_id, outcome.name.lower())
            queue = keys.deployment_queue(deployment.full_name)
            await bus.client.xack(queue, keys.WORKERS_GROUP, entries[run_id])

    async def _reclaim(self, deployment: Deployment) -> None:
        """Take over the pending runs of dead workers on this deployment's queue."""
        bus = get_bus()
        queue = keys.deployment_queue(deployment.full_name)
        summary: dict[str, Any] = await bus.client.xpending(queue, keys.WORKERS_GROUP)
        for consumer in summary.get("consumers") or []:
            name = codec.text(consumer["name"]) or ""
            if name == self.id:
                await self._take_back_lost(deployment)
                continue
            if await bus.client.exists(keys.worker(name)):
                continue  # alive: its runs, even long or paused ones, stay with it
            pending = await bus.client.xpending_range(
                queue, keys.WORKERS_GROUP, min="-", max="+", count=100, consumername=name
            )
            ids = [p["message_id"] for p in pending]
            if not ids:
                continue
            claimed = await bus.client.xclaim(queue, keys.WORKERS_GROUP, self.id, 0, ids)
            log.warning("worker %s is dead; claimed %d run(s)", name, len(claimed))
            for entry_id, fields in claimed:
                run_id = codec.text(fields.get(b"run_id")) if fields else None
                if run_id:
                    await self._release_orphan(deployment, run_id, name)
                # Acknowledged only now: if this worker dies first, the entry stays pending
                # under it and the next live worker releases the run again.
                await bus.client.xack(queue, keys.WORKERS_GROUP, entry_id)

    async def _take_back_lost(self, deployment: Deployment) -> None:
        """Release the runs of entries pending under this worker that it never started.

        A read whose reply was lost with its connection leaves its entry delivered to this
        worker, which never saw it; while the worker lives no one else takes it. An entry
        idle longer than ``dead_after`` that no execution here holds is such a one: its run
        is released (a Scheduled run is queued again, fenced like any release) and the
        entry acknowledged.
        """
        if self._stopping is not None and self._stopping.is_set():
            return  # draining: its own hand-backs release what it held
        bus = get_bus()
        queue = keys.deployment_queue(deployment.full_name)
        pending = await bus.client.xpending_range(
            queue, keys.WORKERS_GROUP, min="-", max="+", count=100,
            consumername=self.id, idle=int(self.dead_after * 1000),
        )  # fmt: skip
        held = set(self._entry_of.values())
        lost = [p["message_id"] for p in pending if p["message_id"] not in held]
        if not lost:
            return
        found = dict(await bus.client.xrange(queue, min=lost[0], max=lost[-1]))
        for entry_id in lost:
            if entry_id in self._entry_of.values():
                continue  # started meanwhile
            fields = found.get(entry_id)
            run_id = codec.text(fields.get(b"run_id")) if fields else None
            if run_id:
                why = store.Release(
                    worker=self.id,
                    reason="its queue entry was read but never seen",
                    deployment=deployment.full_name,
                    count_crash=False,
                )
                outcome = await store.release(run_id, why)
                log.warning("run %s: queue entry lost in transit; %s", run_id, outcome.name.lower())
            await bus.client.xack(queue, keys.WORKERS_GROUP, entry_id)

    async def _release_orphan(self, deployment: Deployment, run_id: str, dead: str) -> None:
        """Release a run whose queue entry was pending under the dead worker ``dead``.

        The execution to release is the one the run names (its owner and attempt):
        usually ``dead``'s, or that of an earlier dead worker whose entry ``dead`` had
        claimed. A run now executing on a live worker is left alone.
        """
        try:
            record = await store.read_record(run_id)
        except FlowRunNotFound:
            return  # expired or deleted: nothing to release
        owner = record.worker or dead
        if owner != dead and (
            owner == self.id or await get_bus().client.exists(keys.worker(owner))
        ):
            return  # executing on a live worker (this one, or another) now
        why = store.Release(
            worker=owner,
            attempt=record.attempt,
            reason=f"its worker {owner} died",
            deployment=deployment.full_name,
            count_crash=True,
            retries=deployment.retries,
        )
        outcome = await store.release(run_id, why)
        log.warning("run %s of dead worker %s: %s", run_id, owner, outcome.name.lower())


async def _trim_queue(queue: str) -> None:
    """Drop acknowledged entries: everything older than the oldest entry still needed.

    Needed are the entries pending under a worker and those not yet delivered to any.
    The group's last delivered id is read first and what is pending after it: an entry
    delivered between the two reads is pending in the second, so it is kept. (Read the
    other way round, an entry delivered in between counted as neither, and was trimmed
    while pending: its run was then lost to the take-back of a lost read and to the
    claims of a dead worker, which find a pending id without its fields.)
    """
    bus = get_bus()
    groups = await bus.client.xinfo_groups(queue)
    delivered = next(
        (g["last-delivered-id"] for g in groups if codec.text(g["name"]) == keys.WORKERS_GROUP),
        None,
    )
    if delivered is None:
        return
    summary: dict[str, Any] = await bus.client.xpending(queue, keys.WORKERS_GROUP)
    oldest_needed = summary.get("min") if summary.get("pending") else None
    if oldest_needed is None:  # nothing pending: keep only what was never delivered
        ms, seq = (codec.text(delivered) or "0-0").split("-")
        oldest_needed = f"{ms}-{int(seq) + 1}"
    await bus.client.xtrim(queue, minid=codec.text(oldest_needed), approximate=False)


def serve(*deployments: Deployment, concurrency: int = 4, grace: float = 10.0) -> None:
    """Serve ``deployments`` in this process until SIGTERM or Ctrl-C (then drain)."""
    worker = Worker(deployments, concurrency=concurrency)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run(grace=grace)

    run_on_configured_loop(main())  # HITL_BUS_LOOP: uvloop where installed, by default
