"""The UI's Notifications page as a sink: what a webhook would be sent, kept for people to see.

Off until turned on (``hitl-bus notify page --on``; ``hitl-bus dev`` does), because the
entries carry answer links: the page shows them to admins only. Each entry is the webhook
body of one notification (its ``text``, the run's page, the answer links), appended to a
capped stream, so a new user sees what the notifier would send without any outside service.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from hitl_bus import keys
from hitl_bus.bus import codec, get_bus
from hitl_bus.notify.sinks import DEFAULT_EVENTS, check_events

SINK = "page"
#: Notifications the page keeps (approximately: the stream is trimmed with ``~``).
KEPT = 500


class Posted(BaseModel):
    """One notification as the page shows it."""

    id: str
    at: datetime
    event: str
    run_id: str
    text: str
    run_url: str
    links: dict[str, str]


async def turn_on(events: Iterable[str] = DEFAULT_EVENTS) -> list[str]:
    """Post these events to the page from now on; the events it will get."""
    wanted = check_events(events)
    await get_bus().client.set(keys.NOTIFY_PAGE, codec.dumps({"events": wanted}))
    return wanted


async def turn_off() -> None:
    await get_bus().client.delete(keys.NOTIFY_PAGE)


async def events_wanted() -> list[str]:
    """The events the page gets; none while it is off."""
    raw = await get_bus().client.get(keys.NOTIFY_PAGE)
    if raw is None:
        return []
    events = codec.loads(raw).get("events")
    return [str(e) for e in events] if isinstance(events, list) else []


async def post(event: str, run_id: str, body: bytes) -> None:
    """Keep one notification (a webhook body) for the page."""
    decoded: dict[str, Any] = codec.loads(body)
    fields = {
        "event": event,
        "run_id": run_id,
        "text": str(decoded.get("text", "")),
        "run_url": str((decoded.get("run") or {}).get("url", "")),
        "links": codec.dumps(decoded.get("links") or {}),
    }
    await get_bus().client.xadd(keys.NOTIFICATIONS, fields, maxlen=KEPT, approximate=True)


async def recent(limit: int = 100) -> list[Posted]:
    """The newest notifications first."""
    entries = await get_bus().client.xrevrange(keys.NOTIFICATIONS, count=limit)
    posted = []
    for entry_id, fields in entries:
        ms = int(entry_id.split(b"-")[0])
        text = {k.decode(): v.decode() for k, v in fields.items() if k != b"links"}
        links = codec.loads(fields.get(b"links", b"{}"))
        posted.append(
            Posted(
                id=entry_id.decode(),
                at=datetime.fromtimestamp(ms / 1000, UTC),
                event=text.get("event", ""),
                run_id=text.get("run_id", ""),
                text=text.get("text", ""),
                run_url=text.get("run_url", ""),
                links={str(k): str(v) for k, v in links.items()},
            )
        )
    return posted
