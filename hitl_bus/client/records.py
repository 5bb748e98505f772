"""What the read side hands out, typed, and the one decoder of each stream kind.

A corrupt entry (not UTF-8, not JSON) is a logged skip naming the stream and entry,
never an error that ends a read or a live stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hitl_bus.bus import codec
from hitl_bus.inputs.keyset import CLIENT, FLOW_RUN, USER, Mailbox
from hitl_bus.inputs.received import ReceivedInput

log = logging.getLogger("hitl_bus.client")

#: A reply is an input that came back to an inbox (a run's ``respond()``).
Reply = ReceivedInput


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One entry of a run's event stream (or of the global one): what happened, when."""

    id: str
    type: str
    run_id: str
    ts: int
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The form ``read_events`` returns: ``{"id", "type", "ts", "data"}``."""
        return {"id": self.id, "type": self.type, "ts": self.ts, "data": self.data}


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record of a run's log stream; ``ts`` in ms since the epoch."""

    id: str
    level: str
    logger: str
    message: str
    ts: int

    def as_dict(self) -> dict[str, str]:
        """The stored form, every field text, with the entry id (``read_logs``, SSE ``log``)."""
        return {
            "id": self.id,
            "level": self.level,
            "logger": self.logger,
            "message": self.message,
            "ts": str(self.ts),
        }


def actor_label(actor: str) -> str:
    """An actor (or sender) as people read it: ``grace``, ``flow run 1b2c3d4e``,
    ``a program (inbox 5f6a7b8c)``; anything else as it is."""
    box = Mailbox.parse(actor)
    if box is None:
        return actor
    if box.kind == USER:
        return box.id
    if box.kind == FLOW_RUN:
        return f"flow run {box.id[:8]}"
    assert box.kind == CLIENT
    return f"a program (inbox {box.id[:8]})"


def deed_of(event: RunEvent) -> tuple[str, str] | None:
    """What someone did in an event, and who: ``("Resumed", "hitl.user.grace")``.

    ``Sent`` (an input arrived: its sender), ``Resumed`` (a resume's Running or
    Resuming state), ``Cancelled`` (Cancelling or Cancelled), ``Started`` (the first
    Scheduled or Pending state); ``None`` for an event that names no actor.
    """
    if event.type == "input.received":
        sender = event.data.get("sender")
        return ("Sent", sender) if isinstance(sender, str) and sender else None
    actor = event.data.get("actor")
    state = event.data.get("state")
    if event.type != "state.changed" or not isinstance(actor, str) or not isinstance(state, dict):
        return None
    kind, name = state.get("type"), state.get("name")
    if kind == "RUNNING" or (kind == "SCHEDULED" and name == "Resuming"):
        return "Resumed", actor
    if kind in ("CANCELLING", "CANCELLED"):
        return "Cancelled", actor
    if kind in ("SCHEDULED", "PENDING"):
        return "Started", actor
    return None


def _skipped(stream: str, entry_id: bytes, exc: Exception) -> None:
    log.warning("skipping entry %s on %s: %s", entry_id.decode(), stream, exc)


def decode_event(stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> RunEvent | None:
    """An event entry; ``None`` (logged) if it is not UTF-8, its data no JSON object, its
    ``ts`` no number."""
    try:
        data = codec.loads(fields.get(b"data", b"{}"))
        if not isinstance(data, dict):
            raise ValueError("its data is not a JSON object")
        return RunEvent(
            id=entry_id.decode(),
            type=codec.text(fields.get(b"type")) or "",
            run_id=codec.text(fields.get(b"run_id")) or "",
            ts=int(fields.get(b"ts", b"0")),
            data=data,
        )
    except ValueError as exc:
        _skipped(stream, entry_id, exc)
        return None


def decode_log(stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> LogRecord | None:
    """A log entry; ``None`` (logged) if it is not UTF-8 or its ``ts`` is no number."""
    try:
        return LogRecord(
            id=entry_id.decode(),
            level=codec.text(fields.get(b"level")) or "",
            logger=codec.text(fields.get(b"logger")) or "",
            message=codec.text(fields.get(b"message")) or "",
            ts=int(fields.get(b"ts", b"0")),
        )
    except ValueError as exc:
        _skipped(stream, entry_id, exc)
        return None
