"""The webhooks the notifier posts to, kept in Redis (``hitl:notify:webhooks``).

Each has an id, its URL, the events it asks for and its signing secret
(``whsec_`` and base64 of 32 random bytes, as the Standard Webhooks scheme has
it). The secret is shown once, when the webhook is added; the notifier needs it
in clear to sign, so it is stored as is.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from hitl_bus import keys
from hitl_bus.bus import get_bus
from hitl_bus.errors import ObjectNotFound

#: What a webhook is sent when it names no events: each pause.
DEFAULT_EVENTS = ("paused",)
#: Event names a webhook may ask for: a state a run enters (lowercase), or an event type.
STATE_EVENTS = (
    "scheduled", "pending", "running", "paused", "cancelling", "cancelled", "completed",
    "failed", "crashed",
)  # fmt: skip
OTHER_EVENTS = ("input.received", "input.taken", "input.skipped", "pause.answered")


class WebhookNotFound(ObjectNotFound):
    def __init__(self, webhook_id: str) -> None:
        super().__init__(f"no webhook with id {webhook_id!r}")
        self.webhook_id = webhook_id


class Webhook(BaseModel):
    """A place the notifier posts JSON to, signed with ``secret``."""

    id: str
    url: str
    events: list[str] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    secret: str
    created: datetime

    @property
    def sink(self) -> str:
        """Its name in delivery records and dead letters."""
        return f"webhook:{self.id}"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a webhook URL is http:// or https:// with a host, not {url!r}")
    return url


def check_events(events: Iterable[str]) -> list[str]:
    wanted = [e.strip() for e in events if e.strip()]
    known = set(STATE_EVENTS) | set(OTHER_EVENTS)
    unknown = [e for e in wanted if e not in known]
    if unknown:
        raise ValueError(
            f"unknown event {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    return list(dict.fromkeys(wanted)) or list(DEFAULT_EVENTS)


async def add_webhook(url: str, events: Iterable[str] = DEFAULT_EVENTS) -> Webhook:
    """Store a new webhook with a new secret; the caller shows the secret once."""
    webhook = Webhook(
        id=secrets.token_hex(4),
        url=check_url(url),
        events=check_events(events),
        secret=new_secret(),
        created=datetime.now(UTC),
    )
    await get_bus().client.hset(keys.NOTIFY_WEBHOOKS, webhook.id, webhook.model_dump_json())
    return webhook


async def list_webhooks() -> list[Webhook]:
    raw: dict[bytes, bytes] = await get_bus().client.hgetall(keys.NOTIFY_WEBHOOKS)
    hooks = [Webhook.model_validate_json(v) for v in raw.values()]
    return sorted(hooks, key=lambda w: (w.created, w.id))


async def get_webhook(webhook_id: str) -> Webhook:
    raw = await get_bus().client.hget(keys.NOTIFY_WEBHOOKS, webhook_id)
    if raw is None:
        raise WebhookNotFound(webhook_id)
    return Webhook.model_validate_json(raw)


async def remove_webhook(webhook_id: str) -> None:
    if not await get_bus().client.hdel(keys.NOTIFY_WEBHOOKS, webhook_id):
        raise WebhookNotFound(webhook_id)
