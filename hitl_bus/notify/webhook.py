"""Webhook deliveries: a JSON body, signed per Standard Webhooks, posted with retries.

The headers are the scheme's: ``webhook-id`` (the same for every try of one
delivery, so a receiver can drop a repeat), ``webhook-timestamp`` (seconds, this
try) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` of
``<id>.<timestamp>.<body>`` with the webhook's secret), made by the
``standardwebhooks`` package. The body carries a Slack-style ``text``, so a chat
channel's incoming webhook posts it as is.

Tries follow ``retry.py``: a network error, a timeout, a 408, a 429 or a 5xx is
tried again after a growing wait; any other answer but a 2xx is final at once.
What still fails is parked as a dead letter by the caller.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import httpx
import standardwebhooks

from hitl_bus.bus import codec
from hitl_bus.notify.notice import Notice, summary
from hitl_bus.notify.retry import DeliveryFailed, RetryPolicy, TryAgain, retrying
from hitl_bus.notify.sinks import Webhook
from hitl_bus.version import __version__

#: Seconds one try may take (connect, send, answer).
REQUEST_TIMEOUT = 10.0


def message_id(sink: str, delivery: str) -> str:
    """The ``webhook-id`` of a delivery: the same on every try and every resend."""
    return "msg_" + hashlib.sha256(f"{sink}\n{delivery}".encode()).hexdigest()[:32]


def _slack(text: str) -> str:
    """Text as a Slack message's ``text`` takes it: ``&``, ``<`` and ``>`` escaped, since
    ``<...>`` is its link syntax (https://api.slack.com/reference/surfaces/formatting)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link_text(links: dict[str, str], run_url: str) -> str:
    if not links:
        return run_url
    if len(links) == 1:
        return next(iter(links.values()))
    return ", ".join(f"{name}: {url}" for name, url in links.items())


async def body_for(notice: Notice) -> bytes:
    """The JSON body for ``notice``; a pause's body mints an answer link per person named."""
    body = summary(notice)
    if notice.pause is not None:
        links = {p.name: await notice.answer_link(p.name) for p in notice.named_people}
        body["links"] = links
        body["text"] = f"{_slack(notice.headline())} — answer: {_link_text(links, notice.run_url)}"
    else:
        body["text"] = f"{_slack(notice.headline())} — {notice.run_url}"
    return codec.dumps(body)


def signed_headers(webhook: Webhook, msg_id: str, body: bytes) -> dict[str, str]:
    now = datetime.now(UTC)
    signature = standardwebhooks.Webhook(webhook.secret).sign(msg_id, now, body.decode())
    return {
        "content-type": "application/json",
        "user-agent": f"hitl-bus/{__version__}",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


def _judge(response: httpx.Response) -> None:
    if response.is_success:
        return
    status = response.status_code
    message = f"{status} {response.reason_phrase}".strip()
    if status in (408, 429) or status >= 500:
        raise TryAgain(message)
    raise DeliveryFailed(message)


async def post(
    webhook: Webhook,
    msg_id: str,
    body: bytes,
    policy: RetryPolicy,
) -> int:
    """POST ``body`` to the webhook until it answers 2xx; the tries it took.

    :raises DeliveryFailed: every try failed, or an answer said not to try again.
    """
    tries = 0
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT, follow_redirects=False) as http:
        try:
            async for attempt in retrying(policy):
                with attempt:
                    tries += 1
                    try:
                        # Signed at each try: the timestamp is the try's, the id the delivery's.
                        headers = signed_headers(webhook, msg_id, body)
                        response = await http.post(webhook.url, content=body, headers=headers)
                    except httpx.HTTPError as exc:
                        raise TryAgain(f"{type(exc).__name__}: {exc}") from exc
                    _judge(response)
        except DeliveryFailed as exc:
            exc.tries = tries
            raise
    return tries
