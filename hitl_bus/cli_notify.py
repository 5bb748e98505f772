"""``hitl-bus notify``: run a notifier, and manage its webhooks and failed deliveries."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer

from hitl_bus.cli_users import TokenOption, run_as

T = TypeVar("T")

notify_app = typer.Typer(
    help="Tell people a flow is waiting: webhooks and email (run with no command).",
)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    from hitl_bus._sync import run_blocking

    return run_blocking(coro)


def _configure(token: str | None, coro: Coroutine[Any, Any, T]) -> T:
    """A change to the notifier's set-up: an admin's when a token is given (else refused)."""
    from hitl_bus.people.roles import Action

    return run_as(token, Action.CONFIGURE, coro)


@notify_app.callback(invoke_without_command=True)
def notify(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(help="Events handled at once.")] = 8,
    attempts: Annotated[int, typer.Option(help="Tries of a delivery before it is parked.")] = 5,
    backoff: Annotated[
        float, typer.Option(help="Seconds before the second try; doubles each try.")
    ] = 1.0,
    max_backoff: Annotated[float, typer.Option(help="Longest wait between tries.")] = 60.0,
    claim_after: Annotated[
        float, typer.Option(help="Seconds before another notifier's unfinished event is taken.")
    ] = 60.0,
    lease: Annotated[
        float, typer.Option(help="Seconds a delivery stays reserved if its notifier dies.")
    ] = 15.0,
) -> None:
    """Run a notifier until SIGTERM or Ctrl-C (several may run; each event is sent once)."""
    if ctx.invoked_subcommand is not None:
        return
    import asyncio
    import signal

    from hitl_bus.notify import Notifier, NotifierOptions, RetryPolicy
    from hitl_bus.settings import run_on_configured_loop

    options = NotifierOptions(
        concurrency=concurrency,
        claim_after=claim_after,
        lease=lease,
        retry=RetryPolicy(attempts=attempts, backoff=backoff, max_backoff=max_backoff),
    )
    notifier = Notifier(options)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, notifier.stop)
        await notifier.run()

    typer.echo(f"Notifier {notifier.name} running", err=True)
    run_on_configured_loop(main())


@notify_app.command("add-webhook")
def add_webhook(
    url: Annotated[str, typer.Argument(help="Where to POST (http:// or https://).")],
    events: Annotated[
        str, typer.Option(help="Comma-separated: paused, completed, failed, input.received, ...")
    ] = "paused",
    token: TokenOption = None,
) -> None:
    """Add a webhook; prints its id and its signing secret (shown this once)."""
    from hitl_bus.notify import sinks

    try:
        hook = _configure(token, sinks.add_webhook(url, events.split(",")))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"{hook.id}\t{hook.url}\t{','.join(hook.events)}")
    typer.echo(hook.secret)
    typer.echo("Keep the signing secret (above): it is shown only this once.", err=True)


@notify_app.command("ls")
def ls() -> None:
    """List the webhooks: id, URL, events."""
    from hitl_bus.notify import sinks

    for hook in _run(sinks.list_webhooks()):
        typer.echo(f"{hook.id}\t{hook.url}\t{','.join(hook.events)}")


@notify_app.command("rm")
def rm(
    webhook_id: Annotated[str, typer.Argument(help="The webhook's id (notify ls).")],
    token: TokenOption = None,
) -> None:
    """Remove a webhook."""
    from hitl_bus.notify import sinks

    try:
        _configure(token, sinks.remove_webhook(webhook_id))
    except sinks.WebhookNotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"removed {webhook_id}")


@notify_app.command("failed")
def failed() -> None:
    """List deliveries that failed every try: id, when, where to, why, what about."""
    from hitl_bus.notify import deadletters

    letters = _run(deadletters.list_letters())
    if not letters:
        typer.echo("no failed deliveries", err=True)
    for letter in letters:
        when = letter.failed_at.strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{letter.id}\t{when}\t{letter.target}\t{letter.error}\t{letter.subject}")


@notify_app.command("retry")
def retry(
    letter_id: Annotated[
        str | None, typer.Argument(help="A failed delivery's id (notify failed).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Resend every failed delivery.")] = False,
    attempts: Annotated[int, typer.Option(help="Tries of each before it stays failed.")] = 3,
    backoff: Annotated[float, typer.Option(help="Seconds before the second try.")] = 1.0,
    token: TokenOption = None,
) -> None:
    """Send failed deliveries again; each that goes through leaves the list."""
    from hitl_bus.notify import deadletters
    from hitl_bus.notify.retry import DeliveryFailed, RetryPolicy

    if (letter_id is None) == (not all_):
        raise typer.BadParameter("give one id, or --all")
    policy = RetryPolicy(attempts=attempts, backoff=backoff, max_backoff=backoff * 8)

    async def resend() -> int:
        try:
            letters = (
                await deadletters.list_letters()
                if all_
                else [await deadletters.get_letter(letter_id or "")]
            )
        except deadletters.DeadLetterNotFound as exc:
            typer.echo(str(exc), err=True)
            return 1
        code = 0
        for letter in letters:
            try:
                await deadletters.resend(letter, policy)
            except DeliveryFailed as exc:
                typer.echo(f"{letter.id}\tfailed again: {exc}", err=True)
                code = 1
            else:
                typer.echo(f"{letter.id}\tsent to {letter.target}")
        return code

    raise typer.Exit(_configure(token, resend()))


@notify_app.command("listen")
def listen(
    secret: Annotated[
        str | None, typer.Option(help="The webhook's secret (whsec_...): check each signature.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
) -> None:
    """A webhook receiver to try the notifier locally: prints each delivery's text.

    hitl-bus notify add-webhook http://127.0.0.1:8765/ prints a secret; pass it here.
    """
    import json
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import standardwebhooks

    checker = standardwebhooks.Webhook(secret) if secret else None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                if checker is not None:
                    checker.verify(body, headers)
                message = json.loads(body)
            except (standardwebhooks.webhooks.WebhookVerificationError, ValueError) as exc:
                typer.echo(f"refused {headers.get('webhook-id')}: {exc}", err=True)
                self.send_response(400)
            else:
                mark = "signature ok" if checker else "signature not checked"
                text = message.get("text") if isinstance(message, dict) else None
                typer.echo(f"{headers.get('webhook-id')} ({mark}): {text or body.decode()}")
                self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer((host, port), Handler)
    typer.echo(f"Listening on http://{host}:{server.server_address[1]}/ (Ctrl-C stops)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@notify_app.command("page")
def page_sink(
    on: Annotated[
        bool, typer.Option("--on/--off", help="Post to the UI's Notifications page, or stop.")
    ] = True,
    events: Annotated[
        str, typer.Option(help="Comma-separated: paused, completed, failed, input.received, ...")
    ] = "paused",
    token: TokenOption = None,
) -> None:
    """Post what a webhook would be sent to the UI's Notifications page (admins see it)."""
    from hitl_bus.notify import page

    if not on:
        _configure(token, page.turn_off())
        typer.echo("the Notifications page gets nothing now")
        return
    try:
        wanted = _configure(token, page.turn_on(events.split(",")))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"the Notifications page gets: {', '.join(wanted)}")
