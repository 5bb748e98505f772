"""The notifier tells of each pause: signed webhooks with answer links, retried, parked
when they keep failing and resent from there, and email to the assignees."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import standardwebhooks
from click.testing import Result
from typer.testing import CliRunner

from hitl_bus import flow, get_client, keys, resume_flow_run
from hitl_bus.bus import get_bus
from hitl_bus.cli import app
from hitl_bus.client.records import decode_event
from hitl_bus.markdown import render_markdown
from hitl_bus.notify import Notifier, NotifierOptions, deadletters, sinks
from hitl_bus.notify.mail import SmtpServer
from hitl_bus.notify.notice import event_name
from hitl_bus.people import Role, links
from hitl_bus.people.store import add_person
from hitl_bus.redis_server import free_port
from tests.helpers import eventually
from tests.notify_support import (
    DESCRIPTION,
    FAST,
    Receiver,
    paused_run,
    running_notifier,
    smtp_server,
    webhook_receiver,
)

pytestmark = pytest.mark.realredis

PUBLIC = "https://hitl.example.test"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as found:
        yield found


@pytest.fixture(autouse=True)
def _public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_BUS_PUBLIC_URL", PUBLIC + "/")


async def _count(receiver: Receiver, n: int, timeout: float = 10) -> None:
    async def enough() -> bool:
        return len(receiver.answered()) >= n

    await eventually(enough, timeout=timeout)


async def test_a_pause_is_posted_signed_with_a_link_per_person_named(
    bus_url: str, receiver: Receiver
) -> None:
    await add_person("grace", Role.RESPONDER, email="grace@example.test")
    await add_person("finn", Role.RESPONDER, teams=["finance"])
    hook = await sinks.add_webhook(receiver.url)
    assert hook.secret.startswith("whsec_")
    async with running_notifier():
        run_id = await paused_run(["grace", "role:finance"])
        await _count(receiver, 1)
    [request] = receiver.requests
    body = standardwebhooks.Webhook(hook.secret).verify(request.body, request.headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(sinks.new_secret()).verify(request.body, request.headers)
    assert request.headers["webhook-id"].startswith("msg_")
    run = await get_client().read_flow_run(run_id)
    assert body["type"] == "paused"
    assert body["run"]["id"] == run_id
    assert body["run"]["url"] == f"{PUBLIC}/runs/{run_id}"
    assert body["pause"]["description"] == DESCRIPTION
    assert body["pause"]["assignees"] == ["grace", "role:finance"]
    assert body["pause"]["deadline"]
    assert list(body["links"]) == ["grace"]  # a person named; a team is no one link
    url = body["links"]["grace"]
    assert url.startswith(f"{PUBLIC}/answer/")
    assert body["text"] == (
        f"Flow run {run.name} is waiting for input: **Approve** the invoice of "
        f"&lt;script&gt;alert(1)&lt;/script&gt; ACME — answer: {url}"
    )
    link = await links.peek(url.rsplit("/", 1)[1])
    assert link == links.AnswerLink(run_id, run.state.state_details.pause_key or "", "grace")


async def test_a_pause_with_no_assignees_carries_no_link_but_the_run_page(
    bus_url: str, receiver: Receiver
) -> None:
    await sinks.add_webhook(receiver.url)
    async with running_notifier():
        run_id = await paused_run(None)
        await _count(receiver, 1)
    body = receiver.requests[0].json
    assert body["links"] == {}
    assert body["text"].endswith(f"— answer: {PUBLIC}/runs/{run_id}")


async def test_a_500_is_tried_again_with_the_same_id(bus_url: str, receiver: Receiver) -> None:
    hook = await sinks.add_webhook(receiver.url)
    receiver.statuses.extend([500, 503])
    async with running_notifier():
        await paused_run(["grace"])
        await _count(receiver, 3)
        await asyncio.sleep(0.3)
    assert [r.answered for r in receiver.requests] == [500, 503, 200]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    for request in receiver.requests:
        standardwebhooks.Webhook(hook.secret).verify(request.body, request.headers)
    assert await deadletters.list_letters() == []


async def test_each_sink_gets_the_events_it_asks_for(bus_url: str) -> None:
    @flow(name="quick")
    async def quick() -> int:
        return 1

    with webhook_receiver() as pauses, webhook_receiver() as endings:
        await sinks.add_webhook(pauses.url)
        await sinks.add_webhook(endings.url, ["completed", "failed"])
        async with running_notifier():
            await quick()
            await paused_run()
            await _count(pauses, 1)
            await _count(endings, 1)
            await asyncio.sleep(0.3)
    assert [r.json["type"] for r in pauses.requests] == ["paused"]
    [ended] = endings.requests
    assert ended.json["type"] == "completed"
    assert ended.json["run"]["state"]["type"] == "COMPLETED"
    assert ended.json["text"].startswith("Flow run ") and "completed" in ended.json["text"]


async def test_a_pause_answered_before_it_is_read_is_not_told(
    bus_url: str, receiver: Receiver
) -> None:
    await sinks.add_webhook(receiver.url)
    run_id = await paused_run()
    # The group starts at the stream's end: made now, it sees only what follows.
    client = get_bus().client
    stream = keys.events_of(run_id, get_bus().index_shards)  # the run's bucket
    await client.xgroup_create(stream, keys.NOTIFIERS_GROUP, id="0", mkstream=True)
    await resume_flow_run(run_id, {"approved": True})
    async with running_notifier():
        await asyncio.sleep(1.0)
        pending = await client.xpending(stream, keys.NOTIFIERS_GROUP)
    assert receiver.requests == []
    assert pending["pending"] == 0


async def test_two_notifiers_tell_each_pause_once(bus_url: str, receiver: Receiver) -> None:
    await sinks.add_webhook(receiver.url)
    async with running_notifier(name="one"), running_notifier(name="two"):
        runs = await asyncio.gather(*(paused_run(["grace"]) for _ in range(6)))
        await _count(receiver, 6)
        await asyncio.sleep(1.5)  # past claim_after: nothing is told again
    told = [r.json["run"]["id"] for r in receiver.requests]
    assert sorted(told) == sorted(runs)
    # Stopped with nothing pending, they leave no consumer behind in the group.
    bus = get_bus()
    for shard in range(bus.index_shards):  # every bucket's group
        assert (
            await bus.client.xinfo_consumers(
                keys.events(shard, bus.index_shards), keys.NOTIFIERS_GROUP
            )
            == []
        )


runner = CliRunner()


def _cli(*args: str) -> Result:
    """``hitl-bus notify ARGS`` in this process (off the test's loop: the CLI blocks)."""
    return runner.invoke(app, ["notify", *args])


async def test_what_keeps_failing_is_parked_listed_and_resent(
    bus_url: str, receiver: Receiver
) -> None:
    hook = await sinks.add_webhook(receiver.url)
    receiver.statuses.extend([500] * 3)
    async with running_notifier():
        run_id = await paused_run(["grace"])

        async def parked() -> bool:
            return len(await deadletters.list_letters()) == 1

        await eventually(parked, timeout=10)
    assert [r.answered for r in receiver.requests] == [500, 500, 500]
    [letter] = await deadletters.list_letters()
    assert letter.sink == hook.sink and letter.target == receiver.url
    assert letter.error.startswith("500") and letter.attempts == 3

    listed = await asyncio.to_thread(_cli, "failed")
    assert listed.exit_code == 0, listed.stderr
    assert letter.id in listed.stdout and receiver.url in listed.stdout
    assert "500" in listed.stdout

    resent = await asyncio.to_thread(_cli, "retry", letter.id)
    assert resent.exit_code == 0, resent.stderr
    last = receiver.requests[-1]
    assert last.answered == 200
    body = standardwebhooks.Webhook(hook.secret).verify(last.body, last.headers)
    assert body["run"]["id"] == run_id
    assert last.headers["webhook-id"] == receiver.requests[0].headers["webhook-id"]
    assert await deadletters.list_letters() == []
    again = await asyncio.to_thread(_cli, "failed")
    assert letter.id not in again.stdout


async def test_retry_all_keeps_what_fails_again(bus_url: str, receiver: Receiver) -> None:
    await sinks.add_webhook(receiver.url)
    receiver.statuses.extend([500] * 3)
    async with running_notifier():
        await paused_run()

        async def parked() -> bool:
            return len(await deadletters.list_letters()) == 1

        await eventually(parked, timeout=10)
    receiver.statuses.extend([410])  # final at once
    failed = await asyncio.to_thread(_cli, "retry", "--all", "--backoff", "0.01")
    assert failed.exit_code == 1
    assert "failed again: 410" in failed.stderr
    [letter] = await deadletters.list_letters()
    assert letter.error.startswith("410") and letter.attempts == 4  # 3, then 1 (final at once)
    resent = await asyncio.to_thread(_cli, "retry", "--all")
    assert resent.exit_code == 0, resent.stderr
    assert await deadletters.list_letters() == []


async def test_webhooks_are_added_listed_and_removed_from_the_cli(bus_url: str) -> None:
    added = await asyncio.to_thread(
        _cli, "add-webhook", "http://127.0.0.1:9/hook", "--events", "paused,completed"
    )
    assert added.exit_code == 0, added.stderr
    first, secret = added.stdout.splitlines()
    hook_id = first.split("\t")[0]
    assert secret.startswith("whsec_")
    assert "shown only this once" in added.stderr
    assert (await sinks.get_webhook(hook_id)).events == ["paused", "completed"]
    listed = await asyncio.to_thread(_cli, "ls")
    assert hook_id in listed.stdout and secret not in listed.stdout
    bad = await asyncio.to_thread(_cli, "add-webhook", "http://x/", "--events", "nope")
    assert bad.exit_code != 0 and "unknown event nope" in bad.stderr
    removed = await asyncio.to_thread(_cli, "rm", hook_id)
    assert removed.exit_code == 0
    assert await sinks.list_webhooks() == []
    gone = await asyncio.to_thread(_cli, "rm", hook_id)
    assert gone.exit_code == 1 and "no webhook" in gone.stderr


async def test_assignees_with_an_address_get_an_email_each_with_their_own_link(
    bus_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_person("grace", Role.RESPONDER, email="grace@example.test")
    await add_person("finn", Role.OPERATOR, email="finn@example.test", teams=["finance"])
    await add_person("ada", Role.RESPONDER)  # named, but no address
    await add_person(
        "vic", Role.VIEWER, email="vic@example.test", teams=["finance"]
    )  # can't answer
    with smtp_server() as (mailbox, url):
        monkeypatch.setenv("HITL_BUS_SMTP_URL", url)
        monkeypatch.setenv("HITL_BUS_SMTP_FROM", "flows@example.test")
        async with running_notifier():
            run_id = await paused_run(["grace", "ada", "role:finance"])

            async def two() -> bool:
                return len(mailbox.messages) >= 2

            await eventually(two, timeout=10)
            await asyncio.sleep(0.3)
    run = await get_client().read_flow_run(run_id)
    pause_key = run.state.state_details.pause_key
    by_rcpt = {
        rcpts[0]: m for (_, rcpts), m in zip(mailbox.envelopes, mailbox.messages, strict=True)
    }
    assert sorted(by_rcpt) == ["finn@example.test", "grace@example.test"]
    for name, message in (
        ("grace", by_rcpt["grace@example.test"]),
        ("finn", by_rcpt["finn@example.test"]),
    ):
        assert message["From"] == "flows@example.test"
        assert message["Subject"] == (
            f"Flow run {run.name} is waiting for input: **Approve** the invoice of "
            "<script>alert(1)</script> ACME"
        )
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None and html is not None
        text_body, html_body = text.get_content(), html.get_content()
        assert "It is *due* Friday." in text_body
        assert "<strong>Approve</strong>" in html_body and "<em>due</em>" in html_body
        assert "<script>" not in html_body
        token = text_body.split(f"{PUBLIC}/answer/", 1)[1].split()[0]
        assert f"{PUBLIC}/answer/{token}" in html_body
        assert await links.peek(token) == links.AnswerLink(run_id, pause_key or "", name)


def test_the_description_is_rendered_safely() -> None:
    html = render_markdown(
        "# Title\n[ok](https://a.test) [bad](javascript:alert(1)) ![px](https://t.test/p.gif)"
        "\n\n<img src=x onerror=alert(1)>"
    )
    assert "<h3>Title</h3>" in html  # below the message's own headings, as on a page
    assert 'href="https://a.test"' in html
    assert 'href="javascript' not in html
    assert "<img" not in html and 'href="https://t.test/p.gif"' in html


def test_smtp_urls() -> None:
    assert SmtpServer.from_url("smtp://u%40x:p%2Fw@mail.test:2525?starttls=1") == SmtpServer(
        "mail.test", 2525, "u@x", "p/w", use_tls=False, start_tls=True
    )
    assert SmtpServer.from_url("smtps://mail.test").port == 465
    assert SmtpServer.from_url("smtp://mail.test").port == 25
    with pytest.raises(ValueError):
        SmtpServer.from_url("http://mail.test")


async def test_an_event_handled_again_after_its_delivery_sends_nothing(
    bus_url: str, receiver: Receiver
) -> None:
    """A notifier that died after sending, before its XACK: whoever takes the entry over
    finds the delivery marked done."""
    await sinks.add_webhook(receiver.url)
    async with running_notifier():
        run_id = await paused_run(["grace"])
        await _count(receiver, 1)
    stream = keys.events_of(run_id, get_bus().index_shards)  # the run's bucket
    entries = await get_bus().client.xrange(stream)
    events = [decode_event(stream, entry_id, fields) for entry_id, fields in entries]
    [paused] = [e for e in events if e and e.run_id == run_id and event_name(e) == "paused"]
    assert await Notifier(FAST).handle(paused) is True
    await asyncio.sleep(0.2)
    assert len(receiver.requests) == 1


async def test_notify_listen_prints_each_delivery_and_refuses_a_bad_signature(
    bus_url: str,
) -> None:
    port = free_port()
    hook = await sinks.add_webhook(f"http://127.0.0.1:{port}/")
    argv = [sys.executable, "-m", "hitl_bus.cli", "notify", "listen", "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--secret", hook.secret], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        listening = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 30)
        assert f"Listening on http://127.0.0.1:{port}/" in listening
        async with running_notifier():
            await paused_run(["grace"])
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 15)
        assert "(signature ok): Flow run " in line and f"answer: {PUBLIC}/runs/" in line
        forged = await asyncio.to_thread(
            httpx.post,
            f"http://127.0.0.1:{port}/",
            content=b'{"text": "hi"}',
            headers={"webhook-id": "msg_x", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
        )
        assert forged.status_code == 400
    finally:
        proc.terminate()
        proc.wait(10)


async def test_an_idle_notifier_sends_redis_next_to_nothing(bus_url: str) -> None:
    """A blocking XREADGROUP, not a poll: idle for 3 s, a notifier with the default options
    sends a handful of commands."""
    client = get_bus().client

    async def calls() -> dict[str, int]:
        stats = await client.info("commandstats")
        return {k: int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"}

    async with running_notifier(NotifierOptions()):
        before = await calls()
        await asyncio.sleep(3)
        after = await calls()
    spent = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    assert sum(spent.values()) <= 3, spent


async def test_what_happens_while_no_notifier_runs_is_told_when_one_starts(
    bus_url: str, receiver: Receiver
) -> None:
    await sinks.add_webhook(receiver.url)
    async with running_notifier():
        pass  # the group is made, and stays
    run_id = await paused_run()
    await asyncio.sleep(0.2)
    assert receiver.requests == []
    async with running_notifier():
        await _count(receiver, 1)
    assert receiver.requests[0].json["run"]["id"] == run_id


async def test_an_email_the_server_keeps_refusing_is_parked_and_resent(
    bus_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_person("grace", Role.RESPONDER, email="grace@example.test")
    with smtp_server() as (mailbox, url):
        monkeypatch.setenv("HITL_BUS_SMTP_URL", url)
        mailbox.refusals.extend(["451 4.3.0 try again later"] * 3)
        async with running_notifier():
            run_id = await paused_run(["grace"])

            async def parked() -> bool:
                return len(await deadletters.list_letters()) == 1

            await eventually(parked, timeout=10)
        [letter] = await deadletters.list_letters()
        assert (letter.sink, letter.target) == ("email:grace", "grace@example.test")
        assert letter.error.startswith("SMTP 451")
        assert mailbox.messages == []
        resent = await asyncio.to_thread(_cli, "retry", letter.id)
        assert resent.exit_code == 0, resent.stderr
    [message] = mailbox.messages
    assert message["To"] == "grace <grace@example.test>"
    text = message.get_body(("plain",))
    assert text is not None
    token = text.get_content().split("/answer/", 1)[1].split()[0]
    link = await links.peek(token)
    assert link is not None and (link.run_id, link.assignee) == (run_id, "grace")
    # The link lives until the pause's deadline (600 s), not longer.
    ttl = await get_bus().client.pttl(keys.answer_link(token.split(".")[0]))
    assert 590_000 < ttl <= 600_000
    assert await deadletters.list_letters() == []


async def test_the_notifications_page_shows_what_a_webhook_would_get_to_admins_only(
    bus_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from hitl_bus.notify import page
    from hitl_bus.web import create_app
    from tests.web import AUTH, TOKEN

    _, grace_token = await add_person("grace", Role.RESPONDER)
    refused = _cli("page", "--on", "--token", grace_token)
    assert refused.exit_code == 3
    assert "grace is a responder; to configure the notifier you need the admin role" in (
        refused.stderr
    )
    assert await page.events_wanted() == []
    assert _cli("page", "--on").exit_code == 0  # the local operator
    async with running_notifier():
        run_id = await paused_run(["grace"])

        async def posted() -> bool:
            return bool(await page.recent())

        await eventually(posted)
    [item] = await page.recent()
    assert item.run_id == run_id and item.event == "paused"
    assert item.text.startswith("Flow run") and "waiting for input" in item.text
    assert set(item.links) == {"grace"}
    assert await links.peek(item.links["grace"].rsplit("/", 1)[1]) is not None

    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as web:
        shown = await web.get("/notifications", headers=AUTH)
        assert shown.status_code == 200
        assert item.links["grace"] in shown.text and "Answer as grace" in shown.text
        grace = {"Authorization": f"Bearer {grace_token}"}
        hidden = await web.get("/notifications", headers=grace)
        assert hidden.status_code == 403
        assert item.links["grace"] not in hidden.text
    assert _cli("page", "--off").exit_code == 0
    assert await page.events_wanted() == []


def test_the_page_refuses_an_unknown_event_and_stays_off(bus_url: str) -> None:
    refused = _cli("page", "--on", "--events", "paused,lunch")
    assert refused.exit_code == 2
    assert "unknown event lunch" in refused.output
    assert _cli("page", "--off").exit_code == 0
