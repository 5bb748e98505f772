"""What the notifier's tests share: a local webhook receiver, a local SMTP server, a paused
flow with assignees, and a notifier running on the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from aiosmtpd.controller import Controller

from hitl_bus import RunInput, flow, keys, pause_flow_run
from hitl_bus.bus import get_bus
from hitl_bus.notify import Notifier, NotifierOptions, RetryPolicy
from hitl_bus.redis_server import free_port
from tests.helpers import eventually, start_paused

DESCRIPTION = "**Approve** the invoice of <script>alert(1)</script> ACME\n\nIt is *due* Friday."


@dataclass
class Request:
    """One POST the receiver got."""

    headers: dict[str, str]
    body: bytes
    client_port: int
    #: The status answered; None while held, or when the sender was gone before the answer.
    answered: int | None = None
    dropped: bool = False

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on a free loopback port, answering ``statuses`` in turn (then 200).

    ``hold`` cleared: requests wait until it is set. A request whose sender went away
    before the answer (killed) is marked ``dropped`` and not answered.
    """

    statuses: deque[int] = field(default_factory=deque)
    requests: list[Request] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def __post_init__(self) -> None:
        self.hold.set()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answered(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.answered is not None]

    def in_flight(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.answered is None and not r.dropped]

    def _status(self) -> int:
        with self.lock:
            return self.statuses.popleft() if self.statuses else 200


def _sender_gone(sock: socket.socket) -> bool:
    """Whether the other end closed (it sent its whole request and waits for nothing else)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


@contextlib.contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            request = Request(
                {k.lower(): v for k, v in self.headers.items()}, body, self.client_address[1]
            )
            with receiver.lock:
                receiver.requests.append(request)
            receiver.hold.wait(30)
            status = receiver._status()
            if _sender_gone(self.connection):
                request.dropped = True
                self.close_connection = True
                return
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()
            request.answered = status

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class Mailbox:
    """What the local SMTP server received: each message parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        #: Replies given instead of accepting, in turn (e.g. ``451 try later``).
        self.refusals: deque[str] = deque()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refusals:
            return self.refusals.popleft()
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, str]]:
    """A local SMTP server (aiosmtpd) and its ``smtp://`` URL."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


class Approval(RunInput):
    approved: bool


def approval_flow(assignees: list[str] | None, description: str = DESCRIPTION) -> Any:
    """A flow that pauses for an approval by ``assignees`` (None: any responder)."""

    @flow(name="invoice-approval")
    async def approve() -> bool:
        answer = await pause_flow_run(
            wait_for_input=Approval.with_initial_data(description=description),
            timeout=600,
            assignees=assignees,
        )
        return answer.approved

    return approve


async def paused_run(assignees: list[str] | None = None, description: str = DESCRIPTION) -> str:
    return await start_paused(approval_flow(assignees, description))


FAST = NotifierOptions(
    claim_after=1.0,
    lease=1.0,
    block=0.5,
    retry=RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.2),
)


async def group_ready(readers: int = 1) -> None:
    """Until the notifiers' group exists and ``readers`` reads of it are waiting (a blocked
    ``XREADGROUP`` on an empty stream makes no consumer yet, so Redis's client list tells)."""
    client = get_bus().client

    async def ready() -> bool:
        last = keys.events(get_bus().index_shards - 1, get_bus().index_shards)  # made last
        groups = await client.xinfo_groups(last) if await client.exists(last) else []
        if not any(g["name"] == keys.NOTIFIERS_GROUP.encode() for g in groups):
            return False
        return await blocked_readers() >= readers

    await eventually(ready, timeout=20)


async def blocked_readers() -> int:
    bus = get_bus()
    if bus.cluster:  # every master's clients
        clients = await bus.client.client_list(target_nodes="primaries")
        return sum(c["cmd"] == "xreadgroup" for node in clients.values() for c in node)
    listed = await bus.client.execute_command("CLIENT", "LIST")
    text = listed.decode() if isinstance(listed, bytes) else str(listed)
    return text.count("cmd=xreadgroup")


@contextlib.asynccontextmanager
async def running_notifier(
    options: NotifierOptions = FAST, name: str | None = None
) -> AsyncIterator[Notifier]:
    """A notifier on this loop, reading once this returns."""
    notifier = Notifier(options, name=name)
    task = asyncio.create_task(notifier.run())
    try:
        before = await blocked_readers()
        await group_ready(before + 1)
        yield notifier
    finally:
        notifier.stop()
        await asyncio.wait_for(task, 20)
