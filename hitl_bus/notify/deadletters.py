"""Dead letters: deliveries that failed every try, kept until they are resent.

Each is stored as it was to be sent (the webhook's JSON body, or the whole
email), under an id made from its sink and delivery, so parking the same one
twice keeps one letter. ``hitl-bus notify failed`` lists them; ``notify retry``
sends them again (a webhook body re-signed with the webhook's current secret,
under the same ``webhook-id``) and drops each that went through.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
from datetime import UTC, datetime
from email.message import EmailMessage

from pydantic import BaseModel

from hitl_bus import keys
from hitl_bus.bus import get_bus
from hitl_bus.errors import ObjectNotFound
from hitl_bus.notify import ledger, mail, webhook
from hitl_bus.notify.retry import DeliveryFailed, RetryPolicy
from hitl_bus.notify.sinks import get_webhook
from hitl_bus.settings import get_settings


class DeadLetterNotFound(ObjectNotFound):
    def __init__(self, letter_id: str) -> None:
        super().__init__(f"no failed delivery with id {letter_id!r}")
        self.letter_id = letter_id


class DeadLetter(BaseModel):
    """One delivery that failed: where to, what, and why."""

    id: str
    #: ``webhook:<id>`` or ``email:<person>``.
    sink: str
    delivery: str
    #: The URL or the address.
    target: str
    #: One line saying what it was about.
    subject: str
    #: The webhook's body, or the whole email (RFC 5322).
    payload: str
    error: str
    attempts: int
    failed_at: datetime


def letter_id(sink: str, delivery: str) -> str:
    return hashlib.sha256(f"{sink}\n{delivery}".encode()).hexdigest()[:12]


async def park(letter: DeadLetter) -> None:
    await get_bus().client.hset(keys.NOTIFY_FAILED, letter.id, letter.model_dump_json())


async def list_letters() -> list[DeadLetter]:
    raw: dict[bytes, bytes] = await get_bus().client.hgetall(keys.NOTIFY_FAILED)
    letters = [DeadLetter.model_validate_json(v) for v in raw.values()]
    return sorted(letters, key=lambda d: (d.failed_at, d.id))


async def get_letter(letter_id: str) -> DeadLetter:
    raw = await get_bus().client.hget(keys.NOTIFY_FAILED, letter_id)
    if raw is None:
        raise DeadLetterNotFound(letter_id)
    return DeadLetter.model_validate_json(raw)


async def resend(letter: DeadLetter, policy: RetryPolicy) -> None:
    """Send a dead letter again; on success it is dropped, else it stays (error updated).

    :raises DeliveryFailed: it failed again (the letter records why).
    """
    try:
        await _send(letter, policy)
    except DeliveryFailed as exc:
        failed = letter.model_copy(
            update={
                "error": str(exc),
                "attempts": letter.attempts + exc.tries,
                "failed_at": datetime.now(UTC),
            }
        )
        await park(failed)
        raise
    await drop(letter.id)
    await ledger.mark_done(letter.sink, letter.delivery, ledger.Outcome.SENT)


async def drop(letter_id: str) -> None:
    """Forget a dead letter (it went through); no error when there is none."""
    await get_bus().client.hdel(keys.NOTIFY_FAILED, letter_id)


async def _send(letter: DeadLetter, policy: RetryPolicy) -> int:
    kind, _, name = letter.sink.partition(":")
    if kind == "webhook":
        try:
            hook = await get_webhook(name)
        except ObjectNotFound:
            raise DeliveryFailed(f"webhook {name} was removed") from None
        msg_id = webhook.message_id(letter.sink, letter.delivery)
        return await webhook.post(hook, msg_id, letter.payload.encode(), policy)
    if kind == "email":
        smtp_url = get_settings().smtp_url
        if not smtp_url:
            raise DeliveryFailed("HITL_BUS_SMTP_URL is not set")
        message = email.message_from_string(letter.payload, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return await mail.send_with_retries(mail.SmtpServer.from_url(smtp_url), message, policy)
    raise DeliveryFailed(f"unknown sink {letter.sink}")
