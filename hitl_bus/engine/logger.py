"""``get_run_logger()``: log records of a run go to its log stream (and stderr).

This is the writing side; reading and following logs is the client's
(``get_client().read_logs``/``follow_logs``), which holds the one decoder.

A logging call must not block on Redis, and may come from a sync flow's
thread: each run has a shipper task on the run's loop that drains a queue and
writes records in batches, in order. The run waits for its shipper to drain
before it ends, so no record is lost.

A flow with ``log_prints=True`` sends what its body prints to the run log at INFO, as
Prefect does: while any such run is active ``builtins.print`` is a wrapper that looks at
the calling code's run context, so prints outside that run (another run, code outside
runs, a ``file=`` other than stdout) print as usual; the last run to end restores it.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import io
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from hitl_bus import keys
from hitl_bus.bus import get_bus
from hitl_bus.context import current_run, raise_if_cancelled
from hitl_bus.errors import MissingContextError
from hitl_bus.settings import get_settings

RUN_LOGGER = "hitl_bus.flow_runs"
_shippers: dict[str, _Shipper] = {}
_install_lock = threading.Lock()
_installed = False


class _Shipper:
    """Writes one run's records to its log stream from the run's event loop.

    Its writer task starts with the first record: a run that logs nothing costs nothing.
    """

    def __init__(self, run_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.run_id = run_id
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, str] | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def submit(self, fields: dict[str, str] | None) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._put(fields)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._put, fields)

    def _put(self, fields: dict[str, str] | None) -> None:
        """On the run's loop, in the order records were submitted (a thread's come FIFO)."""
        if self.task is None:
            if fields is None:
                return
            self.task = self.loop.create_task(self._write(), name=f"hitl-bus-logs:{self.run_id}")
        self.queue.put_nowait(fields)

    async def _write(self) -> None:
        bus = get_bus()
        stream = keys.run_logs(self.run_id)
        done = False
        while not done:
            batch = [await self.queue.get()]
            while not self.queue.empty():
                batch.append(self.queue.get_nowait())
            records = [r for r in batch if r is not None]
            done = len(records) < len(batch)
            if records:
                try:
                    async with bus.client.pipeline(transaction=False) as pipe:
                        for record in records:
                            pipe.xadd(
                                stream, record, maxlen=bus.settings.logs_maxlen, approximate=True
                            )
                        await pipe.execute()
                except Exception as exc:  # noqa: BLE001 - logging must never break a run
                    logging.getLogger("hitl_bus.logs").warning("could not store run logs: %s", exc)

    async def close(self) -> None:
        self.submit(None)
        if self.task is not None:
            await self.task


class _RunLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        shipper = _shippers.get(getattr(record, "flow_run_id", ""))
        if shipper is None:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            shipper.submit(
                {
                    "level": record.levelname,
                    "logger": record.name,
                    "message": message,
                    "ts": str(int(record.created * 1000)),
                }
            )
        except Exception:  # noqa: BLE001 - logging.Handler contract
            self.handleError(record)


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        logger = logging.getLogger(RUN_LOGGER)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(_RunLogHandler())
        if get_settings().log_to_stderr:
            console = logging.StreamHandler()
            console.setFormatter(
                logging.Formatter(
                    "%(asctime)s | %(levelname)-7s | Flow run %(flow_run_name)r - %(message)s",
                    "%H:%M:%S",
                )
            )
            logger.addHandler(console)
        _installed = True


def start_shipping(run_id: str) -> None:
    """Begin storing the logs of ``run_id`` (called by the engine on the run's loop)."""
    _install()
    _shippers[run_id] = _Shipper(run_id, asyncio.get_running_loop())


async def stop_shipping(run_id: str) -> None:
    """Store what is queued and stop (called by the engine when the run ends)."""
    shipper = _shippers.get(run_id)
    if shipper is not None:
        try:
            await shipper.close()
        finally:
            _shippers.pop(run_id, None)


class RunLogger(logging.LoggerAdapter[logging.Logger]):
    """The run logger; each call is also a cancellation checkpoint."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        raise_if_cancelled()
        super().log(level, msg, *args, **kwargs)


def get_run_logger(**extra: Any) -> logging.LoggerAdapter[logging.Logger]:
    """A logger whose records are stored on the current run's log stream.

    :raises MissingContextError: outside a flow run.
    """
    ctx = current_run()
    if ctx is None:
        raise MissingContextError("get_run_logger() needs a flow run; none is active")
    _install()
    fields = {
        "flow_run_id": ctx.flow_run.run_id,
        "flow_run_name": ctx.flow_run.name,
        "flow_name": ctx.flow_run.flow_name,
        **extra,
    }
    return RunLogger(logging.getLogger(RUN_LOGGER), fields)


#: Whether the current run's body prints to its log (set per run, inherited by subflows).
_log_prints: ContextVar[bool] = ContextVar("hitl_bus_log_prints", default=False)
_print_lock = threading.Lock()
_print_users = 0
_builtin_print: Callable[..., None] = builtins.print


def _print(*args: Any, **kwargs: Any) -> None:
    """``print``, to the current run's log when its flow has ``log_prints`` (stdout only)."""
    target = kwargs.get("file")
    if not _log_prints.get() or current_run() is None or target not in (None, sys.stdout):
        _builtin_print(*args, **kwargs)
        return
    buffer = io.StringIO()
    _builtin_print(*args, **{**kwargs, "file": buffer, "flush": False})
    get_run_logger().info(buffer.getvalue().rstrip())


@contextlib.contextmanager
def log_prints(enabled: bool | None) -> Iterator[None]:
    """Around a run's body: its prints go to its log if ``enabled`` (``None``: as the
    enclosing run does, so a subflow inherits its parent's choice, as in Prefect)."""
    global _builtin_print, _print_users
    token = _log_prints.set(enabled) if enabled is not None else None
    active = _log_prints.get()
    if active:
        with _print_lock:
            if _print_users == 0 and builtins.print is not _print:
                _builtin_print = builtins.print
                builtins.print = _print
            _print_users += 1
    try:
        yield
    finally:
        if active:
            with _print_lock:
                _print_users -= 1
                if _print_users == 0 and builtins.print is _print:
                    builtins.print = _builtin_print
        if token is not None:
            _log_prints.reset(token)
