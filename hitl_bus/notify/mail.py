"""Email to a pause's assignees, over SMTP (aiosmtplib), as text and HTML.

``HITL_BUS_SMTP_URL`` names the server: ``smtp://user:pass@host:587?starttls=1``
(STARTTLS), ``smtps://user:pass@host:465`` (TLS from the start) or
``smtp://host:25``; user and password are URL-encoded. Each person gets a
message of their own, with an answer link bound to their name.

The description is Markdown written by the flow's author; the HTML part renders
it the way the web UI does (markdown-it-py with raw HTML off, then nh3 keeping
an allow-list of tags and http(s)/mailto links), so a description can put no
script, style or tracking pixel in a mail; the text part carries it as written.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from hitl_bus.markdown import render_markdown
from hitl_bus.notify.notice import Notice
from hitl_bus.notify.retry import DeliveryFailed, RetryPolicy, TryAgain, retrying
from hitl_bus.people.store import Person

#: Seconds one SMTP conversation may take.
SMTP_TIMEOUT = 30.0


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to send: parsed from ``HITL_BUS_SMTP_URL``."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("HITL_BUS_SMTP_URL is smtp://[user:pass@]host[:port] or smtps://...")
        query = parse_qs(parts.query)
        starttls = query.get("starttls", ["0"])[-1].lower() in ("1", "true", "yes", "on")
        use_tls = parts.scheme == "smtps"
        return cls(
            hostname=parts.hostname,
            port=parts.port or (465 if use_tls else 587 if starttls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=use_tls,
            start_tls=starttls and not use_tls,
        )


def compose(notice: Notice, person: Person, link: str, sender: str) -> EmailMessage:
    """The message telling ``person`` that ``notice``'s pause waits for them."""
    assert person.email
    description = (notice.pause.description if notice.pause else None) or ""
    deadline = notice.deadline()
    by = f"Please answer by {deadline:%Y-%m-%d %H:%M} UTC." if deadline else ""
    message = EmailMessage()
    message["Subject"] = notice.headline()
    message["From"] = sender
    message["To"] = formataddr((person.name, person.email))
    message["Message-ID"] = make_msgid(domain="hitl-bus")
    text = [
        f"Hello {person.name},",
        "",
        f"Flow run {notice.run.name} ({notice.run.flow_name}) is waiting for your input.",
        "",
        *([description, ""] if description else []),
        f"Answer here (this link is yours and works once): {link}",
        *([by] if by else []),
        "",
        f"The run: {notice.run_url}",
    ]
    message.set_content("\n".join(text))
    described = f"<div>{render_markdown(description)}</div>" if description else ""
    esc = html.escape
    message.add_alternative(
        "<!doctype html><html><body>"
        f"<p>Hello {esc(person.name)},</p>"
        f"<p>Flow run <strong>{esc(notice.run.name)}</strong> ({esc(notice.run.flow_name)})"
        " is waiting for your input.</p>"
        f"{described}"
        f'<p><a href="{esc(link)}">Answer</a> (this link is yours and works once)'
        f"{'. ' + esc(by) if by else ''}</p>"
        f'<p><a href="{esc(notice.run_url)}">See the run</a></p>'
        "</body></html>",
        subtype="html",
    )
    return message


async def send(server: SmtpServer, message: EmailMessage) -> None:
    """Send one message; raises ``aiosmtplib.SMTPException`` or ``OSError`` when it cannot."""
    await aiosmtplib.send(
        message,
        hostname=server.hostname,
        port=server.port,
        username=server.username,
        password=server.password,
        use_tls=server.use_tls,
        start_tls=server.start_tls,
        timeout=SMTP_TIMEOUT,
    )


async def send_with_retries(server: SmtpServer, message: EmailMessage, policy: RetryPolicy) -> int:
    """Send ``message`` per ``policy``; the tries it took.

    A refused connection, a timeout or a 4xx reply (the server's "try later") is
    tried again; a 5xx reply (no such mailbox, refused) is final.

    :raises DeliveryFailed: every try failed, or the server refused for good.
    """
    tries = 0
    try:
        async for attempt in retrying(policy):
            with attempt:
                tries += 1
                try:
                    await send(server, message)
                except aiosmtplib.SMTPResponseException as exc:
                    failure = f"SMTP {exc.code} {exc.message}"
                    if 400 <= exc.code < 500:
                        raise TryAgain(failure) from exc
                    raise DeliveryFailed(failure) from exc
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    raise TryAgain(f"{type(exc).__name__}: {exc}") from exc
    except DeliveryFailed as exc:
        exc.tries = tries
        raise
    return tries
