"""Cancelling runs: ``cancel_flow_run`` and the watcher that stops a running execution.

Cancelling a run with a process moves it to Cancelling and appends ``cancel``
to its control stream. Every execution watches that stream through the
dispatcher (no polling): on ``cancel`` it flags the run, interrupts an async
flow at its current ``await`` and any blocking call of a sync flow, and the
run's code stops at its next checkpoint (task, pause, receive, log call). The
engine then records Cancelled, so nothing after that point runs.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hitl_bus import keys
from hitl_bus._sync import dual
from hitl_bus.bus import codec, get_bus
from hitl_bus.context import FlowRunContext
from hitl_bus.engine import store
from hitl_bus.engine.states import State, StateDetails, StateType
from hitl_bus.errors import FlowRunNotFound
from hitl_bus.ids import normalize_run_id
from hitl_bus.inputs.keyset import current_actor


async def acancel_flow_run(flow_run_id: uuid.UUID | str, *, actor: str | None = None) -> State:
    """Cancel a run; returns the state it moved to (Cancelling, or Cancelled with no process).

    A run that already ended is left as it is and its final state returned. ``actor``
    is who cancels (default: who is acting, else the current flow run), recorded on
    the state written (Cancelling or Cancelled) and its ``state.changed`` event.

    :raises FlowRunNotFound: no such run.
    """
    run_id = normalize_run_id(flow_run_id)
    by = StateDetails(actor=current_actor(actor))
    cancelling = State(type=StateType.CANCELLING, message="cancel requested", state_details=by)
    cancelled = State(
        type=StateType.CANCELLED, message="cancelled before it ran again", state_details=by
    )
    change = await store.cancel(run_id, cancelling, cancelled)
    if change.outcome is store.Outcome.MISSING:
        raise FlowRunNotFound(run_id)
    if change.outcome is store.Outcome.CONFLICT:
        return (await store.read_record(run_id)).run.state
    return cancelled if change.outcome is store.Outcome.SUSPENDED_RESUMED else cancelling


cancel_flow_run = dual(acancel_flow_run)


#: Seconds a run runs before its execution starts watching for a cancel. A run that ends
#: sooner never takes a place in the dispatcher; a cancel that lands meanwhile is not
#: missed, only seen this much later: the watch reads the control stream from the
#: position taken when the execution began.
WATCH_AFTER = 0.05


class CancelWatch:
    """An execution's watch for a cancel: started :data:`WATCH_AFTER` seconds after the
    execution began (a timer, not a task, until then), stopped when it ends."""

    def __init__(self, ctx: FlowRunContext, position: str, main: asyncio.Task[Any] | None):
        self._ctx, self._position, self._main = ctx, position, main
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(WATCH_AFTER, self._start)
        self._task: asyncio.Task[None] | None = None

    def _start(self) -> None:
        self._timer = None
        self._task = self._loop.create_task(self._watch())

    async def _watch(self) -> None:
        """Flag the run and interrupt its code when ``cancel`` lands on its control stream
        after the position the execution began at."""
        ctx, position = self._ctx, self._position
        bus = get_bus()
        control = keys.run_control(ctx.flow_run.run_id)
        while True:
            # In the background: a paused flow waiting on the same stream wakes first.
            entries = await bus.dispatcher.wait(control, position, None, background=True)
            for entry_id, fields in entries:
                position = entry_id.decode()
                if codec.text(fields.get(b"type")) == "cancel":
                    ctx.cancel_requested = True
                    for future in list(ctx.state.in_flight):
                        future.cancel()  # a sync flow's blocking call
                    if self._main is not None:
                        self._main.cancel()  # an async flow, at its current await
                    return

    async def stop(self) -> None:
        """Stop watching and let the control stream go (its waiter gone first)."""
        if self._timer is not None:
            self._timer.cancel()
            return
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            get_bus().dispatcher.release(keys.run_control(self._ctx.flow_run.run_id))
